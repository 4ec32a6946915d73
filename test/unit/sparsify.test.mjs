// Magnitude pruning of a whole ONNX model (src/core/compress/sparsify.ts), on
// a small MobileNetV2-shaped model made by code: every pruned kernel has the
// asked sparsity; depthwise kernels, the first convolution and small kernels
// are untouched; and the pruned model's outputs equal those of the TF.js
// model with the same weights zeroed there (chosen independently here, by
// magnitude, per layer), converted and run in ONNX Runtime.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { core, tf } from './helpers.mjs';
import { mobileNetV2Like } from './slimFixture.mjs';

const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');
const { onnx } = require('onnx-proto');

const dir = await mkdtemp(path.join(os.tmpdir(), 'headstart-sparsify-'));
after(() => rm(dir, { recursive: true, force: true }));
const SIZE = 32;
const MIN = 1000; // the fixture's kernels hold 384..2304 weights: some pruned, some left as "small"
const bbFile = await mobileNetV2Like(path.join(dir, 'bb'), { size: SIZE });
const convert = async (d) => (await core.convertTfjsModel(d, { pool: true, outputName: 'features' })).bytes;
const original = await convert(path.dirname(bbFile));

const floatsOf = (t) => new Float32Array(Uint8Array.from(t.rawData).buffer);
function kernelsByNode(bytes) {
  const g = onnx.ModelProto.decode(bytes).graph;
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  return g.node.filter((n) => (n.opType === 'Conv' || n.opType === 'MatMul') && inits.has(n.input[1])).map((n) => ({ node: n.name, op: n.opType, group: Number(n.attribute.find((a) => a.name === 'group')?.i ?? 1), values: floatsOf(inits.get(n.input[1])) }));
}

async function features(bytes, x) {
  const s = await ort.InferenceSession.create(bytes);
  try {
    const out = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x, [2, SIZE, SIZE, 3]) });
    return out.features.data;
  } finally {
    await s.release();
  }
}

test('sparsifyOnnx: each group-1 conv (not the first) and dense kernel of at least minWeights at the asked sparsity; depthwise, first and small kernels untouched', () => {
  const res = core.sparsifyOnnx(original, 0.5, { minWeights: MIN });
  const before = kernelsByNode(original);
  const after = kernelsByNode(res.bytes);
  assert.equal(after.length, before.length);
  let pruned = 0;
  let zeros = 0;
  let total = 0;
  before.forEach((b, i) => {
    const a = after[i];
    const expected = b.op === 'Conv' && b.group === 1 && i > 0 && b.values.length >= MIN;
    if (expected) {
      pruned++;
      const z = a.values.filter((v) => v === 0).length;
      assert.equal(z, Math.floor(0.5 * b.values.length), `${b.node}: exactly half zeros`);
      assert.equal(res.perLayer[b.node], z / b.values.length);
      // The zeros are the smallest magnitudes; the rest is the original, bit for bit.
      let maxZeroed = 0;
      let minKept = Infinity;
      a.values.forEach((v, j) => (v === 0 ? (maxZeroed = Math.max(maxZeroed, Math.abs(b.values[j]))) : ((minKept = Math.min(minKept, Math.abs(v))), assert.equal(v, b.values[j]))));
      assert.ok(maxZeroed <= minKept, `${b.node}: pruned by magnitude`);
    } else {
      assert.deepEqual(a.values, b.values, `${b.node} (${b.group > 1 ? 'depthwise' : i === 0 ? 'first conv' : 'small'}) untouched`);
      assert.equal(res.perLayer[b.node], undefined);
    }
    zeros += a.values.filter((v) => v === 0).length;
    total += a.values.length;
  });
  assert.ok(pruned >= 3, `${pruned} kernels pruned`);
  assert.ok(before.some((b) => b.group > 1), 'the fixture has depthwise kernels');
  assert.equal(Object.keys(res.perLayer).length, pruned);
  assert.equal(res.kernelWeights, total);
  assert.ok(Math.abs(res.overall - zeros / total) < 1e-12);
});

test('sparsifyOnnx: outputs equal the TF.js model with the same weights zeroed by magnitude, converted, in ONNX Runtime', async () => {
  const sparsity = 0.4;
  const res = core.sparsifyOnnx(original, sparsity, { minWeights: MIN });
  // Zero the same kernels independently on the TF.js side (HWIO layout: magnitude order does not depend on it).
  const model = await tf.loadLayersModel(core.dirLoader(path.join(dir, 'bb')));
  const convs = model.layers.filter((l) => l.getClassName() === 'Conv2D');
  convs.forEach((l, i) => {
    const [k, ...rest] = l.getWeights();
    if (i === 0 || k.size < MIN) return;
    const v = k.dataSync().slice();
    const order = Array.from(v.keys()).sort((a, b) => Math.abs(v[a]) - Math.abs(v[b]));
    for (const j of order.slice(0, Math.floor(sparsity * v.length))) v[j] = 0;
    l.setWeights([tf.tensor(v, k.shape), ...rest]);
  });
  await model.save(core.dirSaver(path.join(dir, 'zeroed')));
  model.dispose();
  const zeroed = await convert(path.join(dir, 'zeroed'));
  const x = Float32Array.from({ length: 2 * SIZE * SIZE * 3 }, (_, i) => (i * 37) % 256);
  const [a, b, o] = [await features(res.bytes, x), await features(zeroed, x), await features(original, x)];
  let d = 0;
  let moved = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    moved = Math.max(moved, Math.abs(a[i] - o[i]));
  }
  assert.ok(d < 1e-5, `sparsified vs zeroed in TF.js: max |diff| ${d}`);
  assert.ok(moved > 1e-3, `pruning changed the features (max |diff| ${moved}): the comparison can fail`);
});

test('magnitudePrune: exact count with ties; sparsity 0 keeps everything; bad sparsity is a one-line error', () => {
  assert.deepEqual(Array.from(core.magnitudePrune(new Float32Array([1, -1, 1, 1]), 0.5)), [0, 0, 1, 1]);
  assert.deepEqual(Array.from(core.magnitudePrune(new Float32Array([3, -0.5, 2, 0.1]), 0.5)), [3, 0, 2, 0]);
  assert.deepEqual(Array.from(core.magnitudePrune(new Float32Array([3, -0.5]), 0)), [3, -0.5]);
  for (const s of [1, -0.1, Number.NaN]) assert.throws(() => core.sparsifyOnnx(original, s), /sparsity must be in \[0, 1\)/);
  const same = core.sparsifyOnnx(original, 0);
  assert.deepEqual(same.perLayer, {});
});
