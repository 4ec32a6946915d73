/**
 * The panel's preprocessing of a foreign ONNX backbone, through the built
 * worker (dist/worker.js, real handlers, ONNX Runtime): a model made by code
 * (a 3x3 convolution over an NCHW image, its feature map pooled by the
 * wrapper) resolves from its graph, its sidecar and the panel's edits, each
 * value with where it came from; what training would refuse comes back as
 * the one-line reason; a run trained with the edits records them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { onnx } from 'onnx-proto';
import type { OnnxPreprocessingResult } from '../shared/onnxInput';
import type { RunRecord } from '../shared/records';
import { type ClientLog, TrainerClient } from './trainerClient';

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const dims = (d: Array<number | string>) => ({ dim: d.map((x) => (typeof x === 'number' ? { dimValue: x } : { dimParam: x })) });

/** An NCHW image model: `pixel_values` [batch, 3, side, side] → Conv 3x3 (4 filters, seeded weights) → Relu → `fmap` [batch, 4, side, side]. `side` a string: a dynamic size. */
function convModel(side: number | string): Uint8Array {
  let s = 7;
  const rand = () => ((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1;
  const w = Float32Array.from({ length: 4 * 3 * 3 * 3 }, rand);
  const model = onnx.ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: '', version: 13 }],
    producerName: 'headstart-test',
    graph: {
      name: 'conv',
      node: [
        { opType: 'Conv', input: ['pixel_values', 'w'], output: ['c'], name: 'conv', attribute: [{ name: 'pads', type: onnx.AttributeProto.AttributeType.INTS, ints: [1, 1, 1, 1] }] },
        { opType: 'Relu', input: ['c'], output: ['fmap'], name: 'relu' },
      ],
      initializer: [{ name: 'w', dims: [4, 3, 3, 3], dataType: FLOAT, rawData: new Uint8Array(w.buffer) }],
      input: [{ name: 'pixel_values', type: { tensorType: { elemType: FLOAT, shape: dims(['batch', 3, side, side]) } } }],
      output: [{ name: 'fmap', type: { tensorType: { elemType: FLOAT, shape: dims(['batch', 4, side, side]) } } }],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

const quiet: ClientLog = { info: () => undefined, warn: () => undefined, error: () => undefined };
const repo = process.env.HEADSTART_REPO_ROOT ?? process.cwd();
const workerJs = path.join(repo, 'dist', 'worker.js');
const skip = existsSync(workerJs) ? false : `${workerJs} is not built (npm run build)`;

function resolved(r: OnnxPreprocessingResult) {
  assert.ok(r.ok, r.ok ? '' : r.reason);
  return r.preprocessing;
}

test('the built worker resolves a foreign ONNX model\'s preprocessing: graph, sidecar and the panel\'s edits, each with its source; refusals are one line', { timeout: 60_000, skip }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'headstart-onnx-pre-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const client = new TrainerClient(workerJs, quiet);
  t.after(() => client.dispose());
  const file = path.join(dir, 'conv.onnx');
  writeFileSync(file, convModel(16));

  // The graph alone: NCHW 16 px from its input shape, the last output, defaults for the values.
  const g = resolved(await client.request('onnxPreprocessing', { backbone: file }));
  assert.deepEqual(
    { input: g.input, size: g.size, layout: g.layout, channels: g.channels, channelOrder: g.channelOrder, range: g.range, mean: g.mean, std: g.std, output: g.output, pooling: g.pooling, featureSize: g.featureSize, outputs: g.outputs, sidecar: g.sidecar },
    { input: 'pixel_values', size: 16, layout: 'NCHW', channels: 3, channelOrder: 'RGB', range: [0, 1], mean: [0, 0, 0], std: [1, 1, 1], output: 'fmap', pooling: 'avg', featureSize: 4, outputs: ['fmap'], sidecar: undefined },
  );
  assert.deepEqual(g.from, { input: 'graph', size: 'graph', layout: 'graph', channelOrder: 'default', range: 'default', mean: 'default', std: 'default', output: 'graph', pooling: 'default' });

  // A sidecar sets the range and mean/std; the panel's edits override the mean and pooling.
  writeFileSync(`${file}.json`, JSON.stringify({ range: '0-255', mean: [123.7, 116.3, 103.5], std: [58.4, 57.1, 57.4] }));
  const s = resolved(await client.request('onnxPreprocessing', { backbone: file, onnxInput: { mean: [120, 120, 120], pooling: 'max' } }));
  assert.deepEqual([s.range, s.mean, s.std, s.pooling, s.sidecar], [[0, 255], [120, 120, 120], [58.4, 57.1, 57.4], 'max', `${file}.json`]);
  assert.deepEqual([s.from.range, s.from.mean, s.from.std, s.from.pooling, s.from.layout], ['sidecar', 'flag', 'sidecar', 'flag', 'graph']);

  // Refused, each with a one-line reason: a hostile edit (std 0), a size that conflicts with the graph, a file that is not ONNX, a missing file.
  const reason = async (backbone: string, onnxInput?: object) => {
    const r = await client.request('onnxPreprocessing', { backbone, ...(onnxInput ? { onnxInput } : {}) });
    assert.ok(!r.ok, JSON.stringify(r));
    assert.ok(!r.reason.includes('\n'), r.reason);
    return r.reason;
  };
  assert.match(await reason(file, { std: [0, 1, 1] }), /'std' must be 1 or 3 numbers greater than 0/);
  assert.match(await reason(file, { size: 32 }), /--input-size 32 conflicts with .*fixed input of 16 pixels/);
  const junk = path.join(dir, 'junk.onnx');
  writeFileSync(junk, 'not a model at all');
  assert.match(await reason(junk), /is not an ONNX model/);
  assert.match(await reason(path.join(dir, 'gone.onnx')), /cannot read ONNX model .*gone\.onnx \(ENOENT\)/);

  // A dynamic spatial size is refused until the panel gives one; then the size is the panel's.
  const dynamic = path.join(dir, 'dynamic.onnx');
  writeFileSync(dynamic, convModel('side'));
  assert.match(await reason(dynamic), /dynamic spatial size \[batch, 3, side, side\]; give --input-size/);
  const d = resolved(await client.request('onnxPreprocessing', { backbone: dynamic, onnxInput: { size: 24 } }));
  assert.deepEqual([d.size, d.from.size, d.featureSize], [24, 'flag', 4]);
});

test('the built worker trains on a foreign ONNX model with the panel\'s preprocessing: run.json records it', { timeout: 120_000, skip }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'headstart-onnx-train-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'conv.onnx');
  writeFileSync(file, convModel(16));
  const data = path.join(dir, 'shapes');
  const made = spawnSync(process.execPath, [path.join(repo, 'bin', 'headstart.js'), 'sample', data, '--per-class', '8', '--classes', '2', '--seed', '3'], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  const client = new TrainerClient(workerJs, quiet);
  t.after(() => client.dispose());
  const out = path.join(dir, 'run');
  const report = await client.request('train', { options: { data, backbone: file, out, epochs: 3, onnxInput: { mean: [0.5, 0.5, 0.5], range: [0, 1] } }, settings: { cacheDir: path.join(dir, 'cache'), workers: 1 } });
  assert.equal(report.runDir, out);
  const rec = JSON.parse(readFileSync(path.join(out, 'run.json'), 'utf8')) as RunRecord & { backbone: { onnxInput?: { mean: number[]; std: number[]; layout: string; size: number } } };
  assert.deepEqual([rec.backbone.onnxInput?.mean, rec.backbone.onnxInput?.std, rec.backbone.onnxInput?.layout, rec.backbone.onnxInput?.size], [[0.5, 0.5, 0.5], [1, 1, 1], 'NCHW', 16]);
  // An edit the engine would refuse never reaches it: the worker checks it as a sidecar's.
  await assert.rejects(client.request('train', { options: { data, backbone: file, out: path.join(dir, 'run2'), onnxInput: { std: [-1] } }, settings: { cacheDir: path.join(dir, 'cache'), workers: 1 } }), /'std' must be 1 or 3 numbers greater than 0/);
});
