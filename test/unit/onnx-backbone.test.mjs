// Bring your own ONNX backbone (--backbone model.onnx | URL): foreign ONNX
// models made by code (a tiny TF.js model converted with Headstart's
// converter, then given other layouts / channel orders / ranges / mean-std
// inputs and unpooled outputs by graph edits) give the same features as the
// TF.js extraction of the original model; the preprocessing comes from flags,
// a sidecar, or the graph; changing it re-extracts; a URL is downloaded,
// verified and reused offline; a run trains, evaluates, predicts and exports
// (backbone + head in one ONNX graph, quantized too) and the export agrees
// with predict RUN in a fresh process; each bad input is a one-line reason.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { colourDataset, tinyBackbone } from './fixtures.mjs';
import { core, root, runCli, tempDir } from './helpers.mjs';

const { onnx } = createRequire(import.meta.url)('onnx-proto');
const SIZE = 32;
const REL_TOL = 1e-4;
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];

/** The tiny TF.js backbone and its ONNX conversion: NHWC input `x` in [0,1], output `y` (the pooled vector, or with `unpooled` the last conv's map). */
async function converted(dir, unpooled = false) {
  const modelJson = await tinyBackbone(path.join(dir, 'tfjs'), { size: SIZE });
  const layer = JSON.parse(await readFile(modelJson, 'utf8')).modelTopology.config.layers[1].config.name;
  const conv = await core.convertTfjsModel(path.dirname(modelJson), { inputName: 'x', outputName: 'y', ...(unpooled ? { output: layer } : {}) });
  return { modelJson, model: onnx.ModelProto.decode(conv.bytes) };
}

const f32 = (name, dims, values) => ({ name, dims, dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(Float32Array.from(values).buffer) });
const i64 = (name, values) => ({ name, dims: [values.length], dataType: onnx.TensorProto.DataType.INT64, rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) });

/**
 * A new model whose input `input` [dims] goes through `nodes` (ending in the
 * old input `x`) into the old graph: another preprocessing, same features.
 */
function prepend(model, input, dims, nodes, inits) {
  const m = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  m.graph.node = [...nodes, ...m.graph.node];
  m.graph.initializer = [...m.graph.initializer, ...inits];
  m.graph.input = [{ name: input, type: { tensorType: { elemType: 1, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } } }];
  return onnx.ModelProto.encode(m).finish();
}

const node = (opType, input, output, attribute = []) => ({ opType, input, output: [output], name: output, attribute });
const perm = (p) => ({ name: 'perm', type: onnx.AttributeProto.AttributeType.INTS, ints: p });

/** NCHW input of a model that expects (v - mean) / std with v in [0,1]: undoes it, then transposes to NHWC. */
const nchwMeanStd = (model) =>
  prepend(model, 'pixel_values', ['batch', 3, SIZE, SIZE], [
    node('Transpose', ['pixel_values'], 't', [perm([0, 2, 3, 1])]),
    node('Mul', ['t', 'std'], 'scaled'),
    node('Add', ['scaled', 'mean'], 'x'),
  ], [f32('std', [3], STD), f32('mean', [3], MEAN)]);

/** NHWC input in BGR 0..255 (Caffe style): reorders to RGB and scales onto [0,1]. */
const nhwcBgr255 = (model) =>
  prepend(model, 'data', ['N', SIZE, SIZE, 3], [
    node('Gather', ['data', 'bgr'], 'rgb', [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 3 }]),
    node('Mul', ['rgb', 'inv255'], 'x'),
  ], [i64('bgr', [2, 1, 0]), f32('inv255', [], [1 / 255])]);

/** NHWC input in [-1,1] (TF style), with the batch fixed to 1 by a Reshape to [1, 16] at the end (as some exports do). */
function nhwcMinus1Batch1(model) {
  const m = onnx.ModelProto.decode(prepend(model, 'input', [1, SIZE, SIZE, 3], [node('Mul', ['input', 'half'], 'h'), node('Add', ['h', 'half'], 'x')], [f32('half', [], [0.5])]));
  m.graph.node.push(node('Reshape', ['y', 'one_row'], 'y1'));
  m.graph.initializer.push(i64('one_row', [1, 16]));
  m.graph.output = [{ name: 'y1', type: { tensorType: { elemType: 1 } } }];
  return onnx.ModelProto.encode(m).finish();
}

async function items(dir, n = 6) {
  const files = Object.values(await colourDataset(path.join(dir, 'data'), { perClass: n / 2, seed: 5 })).flat();
  return Promise.all(files.map(async (f) => ({ path: f, hash: await core.sha256File(f) })));
}

async function features(id, opts, list) {
  const b = await core.openBackbone(id, { workers: 1, ...opts });
  try {
    const r = await b.extract(list);
    return { b, byHash: r.features, computed: r.computed };
  } finally {
    b.dispose();
  }
}

function assertClose(actual, expected, what) {
  let max = 0;
  let scale = 0;
  for (const [h, e] of expected) {
    const a = actual.get(h);
    assert.ok(a, `${what}: features for ${h}`);
    assert.equal(a.length, e.length, `${what}: feature size`);
    e.forEach((v, i) => {
      max = Math.max(max, Math.abs(a[i] - v));
      scale = Math.max(scale, Math.abs(v));
    });
  }
  assert.ok(scale > 0, `${what}: features are not all zero`);
  assert.ok(max <= REL_TOL * scale, `${what}: max |onnx - tfjs| ${max} > ${REL_TOL} x ${scale}`);
}

test('foreign ONNX backbones (NHWC [0,1], NCHW mean/std from a sidecar, BGR 0..255 from flags, [-1,1] with a fixed batch of 1, an unpooled map) give the TF.js features', async (t) => {
  const dir = await tempDir(t);
  const cacheDir = path.join(dir, 'cache');
  const list = await items(dir);
  const { modelJson, model } = await converted(dir);
  const ref = await features(modelJson, { engine: 'tfjs', cacheDir }, list);

  const plain = path.join(dir, 'plain.onnx');
  await writeFile(plain, onnx.ModelProto.encode(model).finish());
  const warnings = [];
  const a = await core.openBackbone(plain, { workers: 1, cacheDir }, { onEvent: (e) => e.type === 'warning' && warnings.push(e.message) });
  try {
    assert.equal(a.engine, 'onnxruntime');
    assert.deepEqual(a.backbone.entry.onnxInput, { input: 'x', size: SIZE, layout: 'NHWC', channels: 3, channelOrder: 'RGB', range: [0, 1], mean: [0, 0, 0], std: [1, 1, 1], resize: 'centre-crop', output: 'y', pooling: 'avg' });
    assert.equal(a.backbone.entry.featureSize, 16);
    assert.match(warnings.join('\n'), /no preprocessing given .*assuming inputs in \[0,1\]/);
    assertClose((await a.extract(list)).features, ref.byHash, 'NHWC [0,1]');
  } finally {
    a.dispose();
  }

  // NCHW, mean/std: from the sidecar model.onnx.json; layout and size detected from [batch, 3, 32, 32].
  const nchw = path.join(dir, 'nchw', 'model.onnx');
  await mkdir(path.dirname(nchw));
  await writeFile(nchw, nchwMeanStd(model));
  await writeFile(`${nchw}.json`, JSON.stringify({ range: '0-1', mean: MEAN, std: STD }));
  const b = await features(nchw, { cacheDir }, list);
  assert.equal(b.b.backbone.entry.onnxInput.layout, 'NCHW');
  assert.deepEqual(b.b.backbone.entry.onnxInput.mean, MEAN);
  assertClose(b.byHash, ref.byHash, 'NCHW mean/std (sidecar)');

  // BGR 0..255 from flags.
  const bgr = path.join(dir, 'bgr.onnx');
  await writeFile(bgr, nhwcBgr255(model));
  const c = await features(bgr, { cacheDir, onnxInput: { channelOrder: 'BGR', range: [0, 255] } }, list);
  assertClose(c.byHash, ref.byHash, 'NHWC BGR 0..255 (flags)');

  // [-1,1] with the batch fixed to 1 in the graph's input: wrapped [1, …] and fed one image at a time.
  const tf1 = path.join(dir, 'minus1.onnx');
  await writeFile(tf1, nhwcMinus1Batch1(model));
  const d = await features(tf1, { cacheDir, onnxInput: { range: [-1, 1] } }, list);
  assert.equal(d.b.backbone.entry.onnxInput.batch, 1);
  assertClose(d.byHash, ref.byHash, 'NHWC [-1,1]');

  // The second conv's 4-D NHWC map, globally average-pooled by the wrapper = the model's own pooled vector.
  const mapDir = path.join(dir, 'map');
  await mkdir(mapDir);
  const unpooled = await converted(mapDir, true);
  assert.equal(unpooled.model.graph.node.at(-1).opType !== 'GlobalAveragePool' && unpooled.model.graph.node.at(-1).opType !== 'ReduceMean', true, 'the map is not pooled inside the model');
  const map = path.join(dir, 'map.onnx');
  await writeFile(map, onnx.ModelProto.encode(unpooled.model).finish());
  const e = await features(map, { cacheDir }, list);
  assertClose(e.byHash, ref.byHash, 'spatial map pooled');
});

test('the cache key holds the model hash and the preprocessing: a changed mean re-extracts, the same one is served from the cache', async (t) => {
  const dir = await tempDir(t);
  const cacheDir = path.join(dir, 'cache');
  const list = await items(dir, 4);
  const { model } = await converted(dir);
  const file = path.join(dir, 'm.onnx');
  await writeFile(file, nchwMeanStd(model));
  const first = await features(file, { cacheDir, onnxInput: { mean: MEAN, std: STD } }, list);
  assert.equal(first.computed, 4);
  const again = await features(file, { cacheDir, onnxInput: { mean: MEAN, std: STD } }, list);
  assert.equal(again.computed, 0, 'same model and preprocessing: from the cache');
  const other = await features(file, { cacheDir, onnxInput: { mean: [0.5, 0.5, 0.5], std: STD } }, list);
  assert.equal(other.computed, 4, 'another mean: extracted again');
  const h = list[0].hash;
  assert.notDeepEqual([...other.byHash.get(h)], [...first.byHash.get(h)]);
  // Same preprocessing, changed weights (another file content): another key.
  const { model: m2 } = await converted(path.join(dir, 'two'));
  m2.graph.initializer[0].rawData = new Uint8Array(m2.graph.initializer[0].rawData.map((v, i) => (i % 4 === 3 ? v ^ 1 : v)));
  await writeFile(file, nchwMeanStd(m2));
  const changed = await features(file, { cacheDir, onnxInput: { mean: MEAN, std: STD } }, list);
  assert.equal(changed.computed, 4, 'changed model file: extracted again');
});

test('a URL model is downloaded once with progress, its sha256 recorded, verified and reused with the server gone; a damaged copy is named', async (t) => {
  const dir = await tempDir(t);
  const cacheDir = path.join(dir, 'cache');
  const list = await items(dir, 4);
  const { model } = await converted(dir);
  const bytes = Buffer.from(onnx.ModelProto.encode(model).finish());
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    if (req.url !== '/models/tiny.onnx') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': bytes.length }).end(bytes);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}/models/tiny.onnx`;
  const progress = [];
  let first;
  try {
    const b = await core.openBackbone(url, { workers: 1, cacheDir }, { onEvent: (e) => e.type === 'progress' && progress.push(e) });
    try {
      first = (await b.extract(list)).features;
      assert.equal(b.backbone.entry.id, url);
      assert.equal(b.backbone.modelHash, core.sha256(bytes));
    } finally {
      b.dispose();
    }
  } finally {
    await new Promise((r) => server.close(r));
  }
  assert.equal(hits, 1);
  assert.equal(progress.at(-1).done, bytes.length);
  const folder = (await readdir(path.join(cacheDir, 'backbones')))[0];
  const recorded = JSON.parse(await readFile(path.join(cacheDir, 'backbones', folder, 'files.json'), 'utf8'));
  assert.deepEqual(recorded, [{ path: 'model.onnx', bytes: bytes.length, sha256: core.sha256(bytes) }]);
  // Offline: the server is closed; the cached copy is verified and used.
  const again = await features(url, { cacheDir }, list);
  assert.equal(again.computed, 0);
  assertClose(again.byHash, first, 'offline reuse');
  // A damaged cached file: re-download is attempted, fails offline, and the error names the folder to delete.
  const cached = path.join(cacheDir, 'backbones', folder, 'model.onnx');
  const bad = Buffer.from(bytes);
  bad[bad.length - 1] ^= 0xff;
  await writeFile(cached, bad);
  await assert.rejects(core.openBackbone(url, { workers: 1, cacheDir }), (err) => err.code === 'BAD_MODEL' && /damaged \(model\.onnx has sha256 [0-9a-f]{64}, but [0-9a-f]{64} was recorded/.test(err.message) && err.message.includes(path.join(cacheDir, 'backbones', folder)));
});

test('catalogue ONNX entries state licence and source, and download through the same verified path with their documented preprocessing', async (t) => {
  const entries = core.CATALOGUE.filter((e) => e.format === 'onnx');
  assert.ok(entries.length >= 3);
  for (const e of entries) {
    assert.equal(e.bundled, false, e.id);
    assert.match(e.url, /^https:\/\/.+\.onnx$/, e.id);
    assert.match(e.licence, /Apache-2\.0|MIT|BSD/, e.id);
    assert.ok(e.source.length > 10 && e.approxBytes > 1e6, e.id);
  }
  // The zoo's MobileNetV2 documents [0,1] + ImageNet mean/std on NCHW input: a model made by code with exactly that
  // input, served on loopback in place of the zoo's URL, gives the TF.js features of the original.
  const dir = await tempDir(t);
  const cacheDir = path.join(dir, 'cache');
  const list = await items(dir, 4);
  const { modelJson, model } = await converted(dir);
  const ref = await features(modelJson, { engine: 'tfjs', cacheDir }, list);
  const bytes = Buffer.from(nchwMeanStd(model));
  const server = createServer((req, res) => res.writeHead(200, { 'content-length': bytes.length }).end(bytes));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const entry = core.findBackbone('mobilenet-v2-onnx-zoo');
  const asked = [];
  const fetchImpl = (url, init) => {
    asked.push(String(url));
    return fetch(`http://127.0.0.1:${server.address().port}/m.onnx`, init);
  };
  try {
    assert.equal(await core.isCached(entry, cacheDir), false);
    const b = await core.openBackbone(entry.id, { workers: 1, cacheDir }, { fetchImpl });
    try {
      assert.deepEqual(asked, [entry.url]);
      assert.equal(b.backbone.entry.licence, entry.licence);
      assert.deepEqual(b.backbone.entry.onnxInput.std, [0.229, 0.224, 0.225]);
      assertClose((await b.extract(list)).features, ref.byHash, 'catalogue entry');
    } finally {
      b.dispose();
    }
  } finally {
    await new Promise((r) => server.close(r));
  }
  assert.equal(await core.isCached(entry, cacheDir), true);
});

test('bad ONNX backbones: each a one-line reason naming what was found', async (t) => {
  const dir = await tempDir(t);
  const cacheDir = path.join(dir, 'cache');
  const { model } = await converted(dir);
  const write = async (name, bytes) => {
    const f = path.join(dir, name);
    await writeFile(f, bytes);
    return f;
  };
  const expectBad = async (file, re, opts = {}) => {
    await assert.rejects(core.openBackbone(file, { workers: 1, cacheDir, ...opts }), (err) => {
      assert.equal(err.name, 'HeadstartError', String(err));
      assert.doesNotMatch(err.message, /\n/);
      assert.match(err.message, re);
      return true;
    });
  };
  // Not ONNX.
  await expectBad(await write('text.onnx', 'name,label\na.jpg,cat\n'), /text\.onnx is not an ONNX model/);
  // A rank-2 input: not an image.
  const vec = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  vec.graph.input[0].type.tensorType.shape.dim = [{ dimParam: 'N' }, { dimValue: 3072 }];
  await expectBad(await write('vector.onnx', onnx.ModelProto.encode(vec).finish()), /input 'x' has shape \[N, 3072\] \(rank 2\), not an image tensor/);
  // 5 channels.
  const five = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  five.graph.input[0].type.tensorType.shape.dim = [{ dimParam: 'N' }, { dimValue: 5 }, { dimValue: 32 }, { dimValue: 32 }];
  await expectBad(await write('five.onnx', onnx.ModelProto.encode(five).finish()), /\[N, 5, 32, 32\]: neither dim 1 nor dim 3 is 1 or 3 channels/);
  // Dynamic spatial size: needs --input-size; with it, it loads.
  const dyn = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  dyn.graph.input[0].type.tensorType.shape.dim = [{ dimParam: 'N' }, { dimParam: 'H' }, { dimParam: 'W' }, { dimValue: 3 }];
  const dynFile = await write('dynamic.onnx', onnx.ModelProto.encode(dyn).finish());
  await expectBad(dynFile, /input 'x' has a dynamic spatial size \[N, H, W, 3\]; give --input-size N/);
  const ok = await core.openBackbone(dynFile, { workers: 1, cacheDir, onnxInput: { size: SIZE } });
  assert.equal(ok.backbone.entry.inputSize, SIZE);
  ok.dispose();
  // An output that is neither a vector nor a map: a rank-3 tensor.
  const r3 = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  r3.graph.node.push({ opType: 'Unsqueeze', input: ['y', 'ax'], output: ['tokens'], name: 'u' });
  r3.graph.initializer.push(i64('ax', [1]));
  r3.graph.output = [{ name: 'tokens', type: { tensorType: { elemType: 1 } } }];
  await expectBad(await write('tokens.onnx', onnx.ModelProto.encode(r3).finish()), /output 'tokens' has shape \[1, 1, 16\], neither a feature vector \[N, D\] nor a spatial map/);
  // A model ONNX Runtime cannot load: an operator that does not exist.
  const op = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  op.graph.node[0].opType = 'NoSuchOp';
  await expectBad(await write('noop.onnx', onnx.ModelProto.encode(op).finish()), /ONNX Runtime cannot load .*noop\.onnx: .*NoSuchOp/);
  // A bad sidecar and a named output that does not exist.
  const sc = await write('side.onnx', onnx.ModelProto.encode(model).finish());
  await writeFile(path.join(dir, 'headstart.json'), JSON.stringify({ meen: [0, 0, 0] }));
  await expectBad(sc, /headstart\.json has unknown key 'meen'/);
  await writeFile(path.join(dir, 'headstart.json'), JSON.stringify({ layout: 'NHWC' }));
  await expectBad(sc, /has no tensor 'nope' \(outputs: y\)/, { onnxInput: { output: 'nope' } });
  await expectBad(sc, /--mean has 2 values, but 'x' has 3 channels/, { onnxInput: { mean: [1, 2] } });
  // An ONNX model cannot be used with the TF.js engine.
  await expectBad(sc, /is an ONNX model: it runs in ONNX Runtime only/, { engine: 'tfjs' });
});

test('CLI: train on a .onnx with preprocessing flags, eval and predict agree, export --format onnx (float32 and int8) runs in a fresh ORT process like predict RUN; --format tfjs says why not', async (t) => {
  const dir = await tempDir(t);
  const cache = path.join(dir, 'cache');
  const { model } = await converted(dir);
  const file = path.join(dir, 'nchw.onnx');
  await writeFile(file, nchwMeanStd(model));
  const data = path.join(dir, 'data');
  const byClass = await colourDataset(data, { perClass: 10, seed: 3 });
  const run = path.join(dir, 'run');
  const tr = await runCli(['train', data, '--backbone', file, '--mean', MEAN.join(','), '--std', STD.join(','), '--range', '0-1', '--epochs', '3', '--head', 'linear', '--out', run, '--cache', cache, '--json', '--quiet']);
  assert.equal(tr.code, 0, tr.stderr);
  const record = JSON.parse(await readFile(path.join(run, 'run.json'), 'utf8'));
  assert.equal(record.backbone.format, 'onnx');
  assert.equal(record.backbone.id, `onnx:${file}`);
  assert.deepEqual(record.backbone.onnxInput.mean, MEAN);
  assert.equal(record.backbone.onnxInput.layout, 'NCHW');
  assert.equal(record.backbone.modelHash, core.sha256(await readFile(file)));

  const ev = await runCli(['eval', run, '--cache', cache, '--json', '--quiet']);
  assert.equal(ev.code, 0, ev.stderr);
  assert.equal(JSON.parse(ev.stdout).accuracy, JSON.parse(tr.stdout).test.accuracy);

  const images = [...byClass.red.slice(0, 2), ...byClass.blue.slice(0, 2)];
  const pr = await runCli(['predict', run, ...images, '--cache', cache, '--json', '--quiet']);
  assert.equal(pr.code, 0, pr.stderr);
  const predicted = pr.stdout.trim().split('\n').map((l) => JSON.parse(l));

  const tfjs = await runCli(['export', run, '--out', path.join(dir, 'tfjs-export'), '--cache', cache, '--quiet']);
  assert.equal(tfjs.code, 1);
  assert.match(tfjs.stderr.trim(), /runs the ONNX backbone .*nchw\.onnx, which has no TF\.js form .*; export it with --format onnx/);

  for (const q of ['none', 'int8']) {
    // The second export finds the cache without the wrapped model: it is rebuilt from the recorded source.
    if (q === 'int8') await rm(path.join(cache, 'onnx'), { recursive: true });
    const out = path.join(dir, `onnx-${q}`);
    const ex = await runCli(['export', run, '--out', out, '--format', 'onnx', '--quantize', q, '--cache', cache, '--json', '--quiet']);
    assert.equal(ex.code, 0, ex.stderr);
    // A fresh process: plain onnxruntime-node on the exported file, the pixels Headstart decodes (0..255 NHWC RGB).
    const script = `
      const ort = require('onnxruntime-node'); const core = require(${JSON.stringify(path.join(root, 'dist', 'core.js'))});
      (async () => {
        const s = await ort.InferenceSession.create(${JSON.stringify(path.join(out, 'model.onnx'))});
        const rows = [];
        for (const f of ${JSON.stringify(images)}) {
          const rgb = await core.readAndDecode(f, ${SIZE});
          const o = await s.run({ image: new ort.Tensor('float32', Float32Array.from(rgb), [1, ${SIZE}, ${SIZE}, 3]) });
          rows.push([...o.probabilities.data]);
        }
        console.log(JSON.stringify(rows));
      })();`;
    const { execFileSync } = await import('node:child_process');
    const rows = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' }));
    const labels = JSON.parse(await readFile(path.join(out, 'labels.json'), 'utf8'));
    rows.forEach((p, i) => {
      const best = p.indexOf(Math.max(...p));
      assert.equal(labels[best], predicted[i].label, `${q}: ${images[i]}`);
      if (q === 'none') assert.ok(Math.abs(p[best] - predicted[i].probability) < 1e-4, `${q}: probability ${p[best]} vs ${predicted[i].probability}`);
    });
  }
});

test('CLI: preprocessing flags are checked and apply only to ONNX backbones', async () => {
  const bad = async (args, re) => {
    const r = await runCli(['train', 'nowhere', ...args, '--quiet']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr.trim(), re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  };
  await bad(['--backbone', 'm.onnx', '--layout', 'NCWH'], /--layout must be NCHW or NHWC \(got "NCWH"\)/);
  await bad(['--backbone', 'm.onnx', '--range', '0-2'], /--range must be one of 0-1, 0-255, -1-1/);
  await bad(['--backbone', 'm.onnx', '--std', '0.2,0'], /--std must be 1 or 3 numbers greater than 0/);
  await bad(['--backbone', 'm.onnx', '--input-size', '4'], /--input-size must be a whole number from 8 to 2048 \(got 4\)/);
  await bad(['--mean', '0.5'], /apply to an ONNX backbone .*not to mobilenet-v2-140/);
});
