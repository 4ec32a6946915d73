// Fine-tuning the top of a layers backbone (--unfreeze N): the wasm gradient
// kernels Headstart registers (checked against central finite differences and
// the CPU backend's analytic gradients), the boundary on the bundled
// MobileNetV2 1.0 (never inside a residual block; the top model reproduces
// the backbone's features), and a fine-tuned run end to end on a small
// convolutional backbone made by code (run.json, weights that moved while
// BatchNorm statistics did not, eval / predict / export through the top,
// boundary activations cached per boundary, cancellation).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { cacheDir as sharedCache, core, runCli, tempDir, tf } from './helpers.mjs';
import { colourDataset, fastTrain, tinyBackbone } from './fixtures.mjs';
import { maxAbsDiff, probsInChild } from './exportProbe.mjs';

// ---------------------------------------------------------------------------
// 1. Gradient kernels on wasm
// ---------------------------------------------------------------------------

function randArray(rng, n, scale = 1) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng.next() * 2 - 1) * scale;
  return a;
}

/** sum(y * r) in float64 over a float32 output (the loss whose gradients are checked). */
function lossOf(y, r) {
  const d = y.dataSync();
  let s = 0;
  for (let i = 0; i < d.length; i++) s += d[i] * r[i];
  y.dispose();
  return s;
}

/** Analytic gradients of sum(op(x, w) * r) w.r.t. x and w on the current backend, as plain arrays. */
function analytic(op, xData, xShape, wData, wShape, r, rShape) {
  return tf.tidy(() => {
    const x = tf.tensor(xData, xShape);
    const w = tf.tensor(wData, wShape);
    const rt = tf.tensor(r, rShape);
    const [gx, gw] = tf.grads((a, b) => tf.sum(tf.mul(op(a, b), rt)))([x, w]);
    return { gx: gx.dataSync().slice(), gw: gw.dataSync().slice() };
  });
}

/**
 * Central differences of the loss at `count` sampled entries of `which` ('x' or 'w').
 * The loss is linear in each argument, so the differences carry only float32
 * rounding of the output, no truncation error.
 */
function finiteDiffs(op, xData, xShape, wData, wShape, r, which, rng, count, eps) {
  const target = which === 'x' ? xData : wData;
  const idx = [...new Set(Array.from({ length: count }, () => rng.int(target.length)))];
  const at = (xd, wd) => lossOf(tf.tidy(() => op(tf.tensor(xd, xShape), tf.tensor(wd, wShape))), r);
  return idx.map((i) => {
    const plus = target.slice();
    const minus = target.slice();
    plus[i] += eps;
    minus[i] -= eps;
    const lp = which === 'x' ? at(plus, wData) : at(xData, plus);
    const lm = which === 'x' ? at(minus, wData) : at(xData, minus);
    return { i, fd: (lp - lm) / (2 * eps) };
  });
}

const FD_EPS = 1e-2;
const FD_REL = 1e-2; // |analytic - fd| / max(|analytic|, |fd|, FD_FLOOR)
const FD_FLOOR = 1e-2;
const CPU_REL = 1e-4; // max |wasm - cpu| / max |cpu|, per gradient

const CASES = [
  // conv2d: gradient w.r.t. the filter (Conv2DBackpropFilter); 1x1 stride 1 takes the BatchMatMul path.
  { name: 'conv2d 1x1 stride 1', kind: 'conv', x: [2, 5, 5, 6], f: [1, 1, 6, 4], stride: 1, pad: 'same', wrt: ['w'] },
  { name: 'conv2d 1x1 stride 1 VALID', kind: 'conv', x: [1, 4, 3, 5], f: [1, 1, 5, 7], stride: 1, pad: 'valid', wrt: ['w'] },
  { name: 'conv2d 3x3 stride 1 SAME', kind: 'conv', x: [2, 6, 6, 3], f: [3, 3, 3, 4], stride: 1, pad: 'same', wrt: ['w'] },
  { name: 'conv2d 3x3 stride 2 SAME odd', kind: 'conv', x: [2, 7, 7, 3], f: [3, 3, 3, 5], stride: 2, pad: 'same', wrt: ['w'] },
  { name: 'conv2d 3x3 stride 2 VALID odd', kind: 'conv', x: [2, 7, 9, 3], f: [3, 3, 3, 5], stride: 2, pad: 'valid', wrt: ['w'] },
  { name: 'conv2d 1x1 stride 2', kind: 'conv', x: [1, 7, 7, 4], f: [1, 1, 4, 3], stride: 2, pad: 'same', wrt: ['w'] },
  // depthwiseConv2d: gradients w.r.t. filter and input.
  { name: 'depthwise 3x3 stride 1 SAME m1', kind: 'dw', x: [2, 6, 6, 4], f: [3, 3, 4, 1], stride: 1, pad: 'same', wrt: ['w', 'x'] },
  { name: 'depthwise 3x3 stride 1 VALID m2', kind: 'dw', x: [2, 6, 5, 3], f: [3, 3, 3, 2], stride: 1, pad: 'valid', wrt: ['w', 'x'] },
  { name: 'depthwise 3x3 stride 2 SAME odd m1', kind: 'dw', x: [2, 7, 7, 4], f: [3, 3, 4, 1], stride: 2, pad: 'same', wrt: ['w', 'x'] },
  { name: 'depthwise 3x3 stride 2 SAME odd m2', kind: 'dw', x: [1, 9, 7, 3], f: [3, 3, 3, 2], stride: 2, pad: 'same', wrt: ['w', 'x'] },
  { name: 'depthwise 3x3 stride 2 VALID odd m2', kind: 'dw', x: [2, 7, 7, 3], f: [3, 3, 3, 2], stride: 2, pad: 'valid', wrt: ['w', 'x'] },
  { name: 'depthwise 3x3 stride 2 VALID odd m1', kind: 'dw', x: [1, 9, 9, 5], f: [3, 3, 5, 1], stride: 2, pad: 'valid', wrt: ['w', 'x'] },
];

test('wasm gradient kernels: conv2d (filter) and depthwiseConv2d (filter, input) match finite differences and the CPU backend', async (t) => {
  await core.initBackend('wasm');
  assert.equal(tf.getBackend(), 'wasm');
  core.registerWasmGradients();
  core.registerWasmGradients(); // idempotent
  const have = new Set(tf.getKernelsForBackend('wasm').map((k) => k.kernelName));
  for (const k of ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput']) assert.ok(have.has(k), `${k} registered on wasm`);

  const rng = new core.Rng(12345);
  const worst = { fd: 0, cpu: 0 };
  try {
    for (const c of CASES) {
      const op = c.kind === 'conv' ? (a, b) => tf.conv2d(a, b, c.stride, c.pad) : (a, b) => tf.depthwiseConv2d(a, b, c.stride, c.pad);
      const xData = randArray(rng, c.x.reduce((a, b) => a * b, 1));
      const wData = randArray(rng, c.f.reduce((a, b) => a * b, 1), 0.5);
      const outShape = tf.tidy(() => op(tf.zeros(c.x), tf.zeros(c.f)).shape);
      const r = randArray(rng, outShape.reduce((a, b) => a * b, 1));

      await tf.setBackend('wasm');
      const gWasm = analytic(op, xData, c.x, wData, c.f, r, outShape);
      for (const which of c.wrt) {
        const g = which === 'x' ? gWasm.gx : gWasm.gw;
        assert.ok(g.some((v) => v !== 0), `${c.name}: gradient w.r.t. ${which} is not all zero`);
        for (const { i, fd } of finiteDiffs(op, xData, c.x, wData, c.f, r, which, rng, 16, FD_EPS)) {
          const rel = Math.abs(g[i] - fd) / Math.max(Math.abs(g[i]), Math.abs(fd), FD_FLOOR);
          worst.fd = Math.max(worst.fd, rel);
          assert.ok(rel <= FD_REL, `${c.name} d/d${which}[${i}]: wasm ${g[i]} vs finite difference ${fd} (relative ${rel.toExponential(2)})`);
        }
      }

      await tf.setBackend('cpu');
      const gCpu = analytic(op, xData, c.x, wData, c.f, r, outShape);
      for (const which of c.wrt) {
        const a = which === 'x' ? gWasm.gx : gWasm.gw;
        const b = which === 'x' ? gCpu.gx : gCpu.gw;
        assert.equal(a.length, b.length);
        let diff = 0;
        let scale = 0;
        for (let i = 0; i < a.length; i++) {
          diff = Math.max(diff, Math.abs(a[i] - b[i]));
          scale = Math.max(scale, Math.abs(b[i]));
        }
        worst.cpu = Math.max(worst.cpu, diff / scale);
        assert.ok(diff <= CPU_REL * scale, `${c.name} d/d${which}: wasm vs cpu max difference ${diff} (scale ${scale})`);
      }
    }
  } finally {
    await tf.setBackend('wasm');
  }
  assert.equal(tf.getBackend(), 'wasm');
  t.diagnostic(`gradient check: worst relative error vs finite differences ${worst.fd.toExponential(2)}, vs cpu ${worst.cpu.toExponential(2)}`);
});

// ---------------------------------------------------------------------------
// 2. The boundary on the bundled MobileNetV2 1.0 (layers)
// ---------------------------------------------------------------------------

/** Every layer of the top reads only layers of the top or the boundary: no residual block is split. */
function assertClosed(model, b) {
  const inside = new Set([b.layer, ...b.top]);
  for (const name of b.top) {
    for (const src of model.getLayer(name).inboundNodes[0].inboundLayers) assert.ok(inside.has(src.name), `${name} reads ${src.name}, below the boundary ${b.layer}`);
  }
}

test('findBoundary on mobilenet-v2-100: cuts at single tensors, never inside a residual block; the top model reproduces the features', async (t) => {
  await core.initBackend('wasm');
  const rb = await core.resolveBackbone('mobilenet-v2-100', sharedCache);
  assert.equal(rb.entry.format, 'layers');
  const model = await tf.loadLayersModel(core.dirLoader(rb.dir));
  t.after(() => model.dispose());
  const feature = rb.entry.featureNode;
  assert.equal(feature, 'flatten_1');

  const b1 = core.findBoundary(model, feature, 1);
  assert.equal(b1.layer, 'block_16_project_BN');
  assert.deepEqual(b1.trainable, ['Conv_1']);
  assert.deepEqual(b1.shape, [7, 7, 320]);
  assert.equal(b1.top.at(-1), feature);

  const b4 = core.findBoundary(model, feature, 4);
  assert.equal(b4.layer, 'block_15_add');
  assert.deepEqual(b4.trainable, ['block_16_expand', 'block_16_depthwise', 'block_16_project', 'Conv_1']);
  assert.deepEqual(b4.shape, [7, 7, 160]);

  // 5: the fifth weighted layer (block_15_project) sits inside residual block 15, whose Add also reads
  // block_14_add; the cut moves down to block_14_add and takes the whole block (7 trainable layers).
  const b5 = core.findBoundary(model, feature, 5);
  assert.equal(b5.layer, 'block_14_add');
  assert.equal(b5.trainable.length, 7);
  assert.ok(b5.top.includes('block_15_add'));
  const add15 = model.getLayer('block_15_add').inboundNodes[0].inboundLayers.map((l) => l.name).sort();
  assert.deepEqual(add15, ['block_14_add', 'block_15_project_BN']);
  assert.deepEqual(core.findBoundary(model, feature, 7), b5);

  for (let n = 1; n <= 12; n++) {
    const b = core.findBoundary(model, feature, n);
    assert.ok(b.trainable.length >= n, `n=${n}: ${b.trainable.length} trainable`);
    assertClosed(model, b);
    assert.ok(!b.top.includes(b.layer));
    for (const name of b.trainable) {
      const l = model.getLayer(name);
      assert.notEqual(l.getClassName(), 'BatchNormalization', `n=${n}: ${name} is BatchNorm`);
      assert.ok(l.getWeights().length > 0, `n=${n}: ${name} has weights`);
    }
    // Every weighted non-BatchNorm layer of the top is trainable; BatchNorm layers of the top are not.
    const bnInTop = b.top.filter((name) => model.getLayer(name).getClassName() === 'BatchNormalization');
    assert.ok(bnInTop.length > 0 && bnInTop.every((name) => !b.trainable.includes(name)));
  }

  // The top model (the backbone's own layers above block_15_add) on the boundary's activations
  // gives the backbone's features at flatten_1.
  const probe = tf.model({ inputs: model.inputs, outputs: [model.getLayer(b4.layer).output, model.getLayer(feature).output] });
  const rng = new core.Rng(4);
  const x = tf.tensor4d(randArray(rng, 2 * 224 * 224 * 3, 0.5).map((v) => v + 0.5), [2, 224, 224, 3]);
  const [act, feat] = probe.predict(x);
  const top = core.buildTop(model, b4, !!rb.entry.pool);
  assert.deepEqual(top.inputs[0].shape, [null, 7, 7, 160]);
  assert.deepEqual(top.outputs[0].shape, [null, 1280]);
  const viaTop = core.topFeatures(top, act.dataSync(), b4.shape, 1);
  const want = feat.dataSync();
  assert.equal(viaTop.length, want.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(viaTop[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  t.diagnostic(`top(block_15_add activations) vs flatten_1: max |diff| ${diff.toExponential(2)} (max |feature| ${scale.toFixed(3)})`);
  assert.ok(scale > 0 && diff <= 1e-4 * scale, `top model features differ by ${diff} (scale ${scale})`);
  tf.dispose([x, act, feat]);

  // Too many layers, or not a whole number: clear errors.
  // (52 weighted layers up to flatten_1: all of them can be unfrozen, the cut then falls on Conv1_pad.)
  assert.equal(core.findBoundary(model, feature, 52).layer, 'Conv1_pad');
  assert.throws(() => core.findBoundary(model, feature, 53), (e) => e.code === 'BAD_INPUT' && /cannot unfreeze 53 layers.*only 52 weighted layers/.test(e.message));
  assert.throws(() => core.findBoundary(model, feature, 1000), (e) => e.code === 'BAD_INPUT' && /smaller --unfreeze/.test(e.message));
  for (const n of [0, -1, 1.5]) assert.throws(() => core.findBoundary(model, feature, n), (e) => e.code === 'BAD_INPUT' && /--unfreeze must be a whole number/.test(e.message));
  assert.throws(() => core.findBoundary(model, 'no_such_layer', 1), (e) => e.code === 'BAD_MODEL');
});

test('findBoundary on a Sequential backbone (no InputLayer in model.layers): the first layer can be the boundary', async (t) => {
  const dir = await tempDir(t);
  const file = await tinyBackbone(path.join(dir, 'tiny'));
  const model = await tf.loadLayersModel(core.dirLoader(path.dirname(file)));
  t.after(() => model.dispose());
  const [c1, c2, gap] = model.layers.map((l) => l.name);
  const b = core.findBoundary(model, gap, 1);
  assert.equal(b.layer, c1);
  assert.deepEqual(b.trainable, [c2]);
  assert.deepEqual(b.top, [c2, gap]);
  assert.deepEqual(b.shape, model.layers[0].outputShape.slice(1));
  // Both convolutions: the cut would have to be the (implicit) input.
  assert.throws(() => core.findBoundary(model, gap, 2), (e) => e.code === 'BAD_INPUT' && /no single-tensor boundary/.test(e.message));
  assert.throws(() => core.findBoundary(model, gap, 3), (e) => e.code === 'BAD_INPUT' && /only 2 weighted layers/.test(e.message));
  const top = core.buildTop(model, b, true);
  assert.deepEqual(top.outputs[0].shape, [null, 16]);
});

test('--unfreeze on a graph backbone (mobilenet-v2-140) is BAD_INPUT: it cannot be unfrozen', async (t) => {
  const dir = await tempDir(t);
  const data = path.join(dir, 'data');
  await colourDataset(data, { perClass: 2 });
  await assert.rejects(
    core.trainRun({ data, out: path.join(dir, 'run'), backbone: 'mobilenet-v2-140', cacheDir: sharedCache, workers: 1, unfreeze: 2 }),
    (e) => e instanceof core.HeadstartError && e.code === 'BAD_INPUT' && /mobilenet-v2-140 is a frozen graph model and cannot be unfrozen/.test(e.message),
  );
  assert.ok(!existsSync(path.join(dir, 'run')));
});

// ---------------------------------------------------------------------------
// 3. A fine-tuned run end to end on a small MobileNetV2-like backbone
// ---------------------------------------------------------------------------

/**
 * A MobileNetV2-shaped layers backbone made by code (32x32 input): a strided stem
 * convolution + BatchNorm + ReLU6, one inverted residual block (1x1 expand,
 * 3x3 depthwise, 1x1 project, Add), a 1x1 top convolution + BatchNorm, and a
 * 4-D ReLU6 output (pooled by the engine). BatchNorm statistics are random.
 */
async function convBackbone(dir, { size = 32, seed = 3 } = {}) {
  await core.initBackend();
  const rng = new core.Rng(seed);
  const init = (i) => tf.initializers.glorotUniform({ seed: seed * 10 + i });
  const bn = (name) => tf.layers.batchNormalization({ name });
  const relu6 = (name) => tf.layers.reLU({ maxValue: 6, name });
  const input = tf.input({ shape: [size, size, 3], name: 'image' });
  let x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', useBias: false, kernelInitializer: init(1), name: 'stem' }).apply(input);
  const s = relu6('stem_relu').apply(bn('stem_bn').apply(x));
  let y = tf.layers.conv2d({ filters: 16, kernelSize: 1, useBias: false, kernelInitializer: init(2), name: 'b1_expand' }).apply(s);
  y = relu6('b1_expand_relu').apply(bn('b1_expand_bn').apply(y));
  y = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false, depthwiseInitializer: init(3), name: 'b1_depthwise' }).apply(y);
  y = relu6('b1_depthwise_relu').apply(bn('b1_depthwise_bn').apply(y));
  y = tf.layers.conv2d({ filters: 8, kernelSize: 1, useBias: false, kernelInitializer: init(4), name: 'b1_project' }).apply(y);
  y = bn('b1_project_bn').apply(y);
  x = tf.layers.add({ name: 'b1_add' }).apply([s, y]);
  x = tf.layers.conv2d({ filters: 16, kernelSize: 1, kernelInitializer: init(5), name: 'top_conv' }).apply(x);
  x = relu6('out_relu').apply(bn('top_bn').apply(x));
  const model = tf.model({ inputs: input, outputs: x, name: 'convbb' });
  for (const l of model.layers) {
    if (l.getClassName() !== 'BatchNormalization') continue;
    const c = l.getWeights()[0].shape[0];
    const v = (lo, hi) => tf.tensor1d(Array.from({ length: c }, () => lo + rng.next() * (hi - lo)));
    l.setWeights([v(0.8, 1.2), v(-0.1, 0.1), v(-0.2, 0.2), v(0.5, 1.5)]); // gamma, beta, moving mean, moving variance
  }
  await model.save(core.dirSaver(dir));
  model.dispose();
  return path.join(dir, 'model.json');
}

const TRAINABLE_2 = ['b1_expand', 'b1_depthwise', 'b1_project', 'top_conv'];

/** The number of cached vectors under cacheDir/embeddings/<key>/, per key. */
async function cacheCounts(cache) {
  const out = {};
  const root = path.join(cache, 'embeddings');
  if (!existsSync(root)) return out;
  for (const key of await readdir(root)) {
    let n = 0;
    for (const sub of await readdir(path.join(root, key))) n += (await readdir(path.join(root, key, sub))).filter((f) => f.endsWith('.f32')).length;
    out[key] = n;
  }
  return out;
}

function maxDiff(a, b) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('--unfreeze 2 end to end: run.json, tuned top (BatchNorm statistics kept), eval / predict / export through the top', async (t) => {
  const dir = await tempDir(t);
  const cache = path.join(dir, 'cache');
  const env = { HEADSTART_CACHE_DIR: cache };
  const backbone = await convBackbone(path.join(dir, 'bb'));
  const data = path.join(dir, 'data');
  const files = await colourDataset(data, { classes: { red: 'red', green: 'green', blue: 'blue' }, perClass: 8, seed: 5 });
  const out = path.join(dir, 'run');
  const events = [];
  const res = await core.trainRun(fastTrain(backbone, data, out, cache, { unfreeze: 2, seed: 3, epochs: 6, learningRate: 0.01 }), { onEvent: (e) => e.type !== 'batch' && events.push(e) });
  const record = JSON.parse(await readFile(path.join(out, 'run.json'), 'utf8'));

  // The cut: project is inside the residual block, so the boundary moves below the whole block.
  const u = record.unfreeze;
  assert.equal(u.layers, 2);
  assert.equal(u.boundary, 'stem_relu');
  assert.deepEqual(u.boundaryShape, [16, 16, 8]);
  assert.deepEqual(u.trainable, TRAINABLE_2);
  assert.equal(u.headEpochs + u.fineTuneEpochs, record.history.length);
  assert.ok(u.headEpochs >= 1 && u.fineTuneEpochs >= 1 && u.fineTuneEpochs <= 3, JSON.stringify(u));
  assert.equal(u.fineTuneBackend, (await core.initBackend()).name);
  assert.ok(u.fineTuneSeconds > 0);
  assert.deepEqual(record.history.slice(u.headEpochs).map((m) => m.stage), Array(u.fineTuneEpochs).fill('fine-tune'));
  assert.equal(record.backbone.featureNode, 'out_relu');
  assert.equal(record.backbone.featureSize, 16);
  assert.equal(record.timings.extracted, 24);
  assert.equal(res.epochs, record.history.length);
  assert.ok(events.some((e) => e.type === 'log' && /fine-tuning 4 layers above stem_relu/.test(e.message)));
  assert.ok(events.some((e) => e.type === 'phase' && /fine-tuning the top 4 layers/.test(e.message)));

  // RUN_DIR/top: the backbone's layers above the boundary, trained ones moved, BatchNorm untouched.
  assert.ok(existsSync(path.join(out, 'top', 'model.json')));
  const top = await core.loadTop(path.join(out, 'top'));
  const base = await tf.loadLayersModel(core.dirLoader(path.dirname(backbone)));
  t.after(() => {
    top.dispose();
    base.dispose();
  });
  assert.ok(!top.layers.some((l) => ['stem', 'stem_bn', 'stem_relu'].includes(l.name)), 'nothing below the boundary');
  let bnLayers = 0;
  for (const l of top.layers) {
    const w = l.getWeights();
    if (!w.length || l.name.startsWith('headstart_')) continue;
    const orig = base.getLayer(l.name).getWeights();
    const moved = w.map((v, i) => maxDiff(v.dataSync(), orig[i].dataSync()));
    if (l.getClassName() === 'BatchNormalization') {
      bnLayers++;
      assert.deepEqual(moved, moved.map(() => 0), `${l.name}: gamma, beta and moving statistics unchanged`);
    } else {
      assert.ok(TRAINABLE_2.includes(l.name));
      assert.ok(moved[0] > 1e-6, `${l.name}: kernel changed by fine-tuning (max ${moved[0]})`);
    }
  }
  assert.equal(bnLayers, 4);

  // eval repeats the recorded test accuracy; predict and the exported full model agree.
  const ev = await runCli(['eval', out, '--json'], { env });
  assert.equal(ev.code, 0, ev.stderr);
  const evRes = JSON.parse(ev.stdout);
  assert.equal(evRes.accuracy, record.test.accuracy);
  assert.deepEqual(evRes.confusion, record.test.confusion);

  const images = [files.red[0], files.green[1], files.blue[2], files.red[7]];
  const pr = await runCli(['predict', out, ...images], { env });
  assert.equal(pr.code, 0, pr.stderr);
  const fromRun = pr.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const rows = fromRun.map((l) => record.labels.map((lab) => l.top.find((x) => x.label === lab).probability));

  const model = path.join(dir, 'model');
  const ex = await runCli(['export', out, '--out', model, '--json'], { env });
  assert.equal(ex.code, 0, ex.stderr);
  assert.equal(JSON.parse(ex.stdout).exported.accuracy, record.test.accuracy);
  const fromExport = (await probsInChild([model], images)).get(model);
  const d = maxAbsDiff(fromExport, rows);
  t.diagnostic(`export (fresh process, stock loader) vs predict RUN: max |Δp| ${d.toExponential(2)}`);
  assert.ok(d <= 1e-4, `export vs predict: ${d}`);

  // The exported full model carries the tuned top weights, not the backbone's originals.
  const exported = await tf.loadLayersModel(core.dirLoader(model));
  t.after(() => exported.dispose());
  for (const name of TRAINABLE_2) assert.equal(maxDiff(exported.getLayer(name).getWeights()[0].dataSync(), top.getLayer(name).getWeights()[0].dataSync()), 0, `${name} carries the tuned weights`);
});

test('--unfreeze: boundary activations are cached per boundary (rerun extracts 0, another boundary extracts again)', async (t) => {
  const dir = await tempDir(t);
  const cache = path.join(dir, 'cache');
  const backbone = await convBackbone(path.join(dir, 'bb'));
  const data = path.join(dir, 'data');
  await colourDataset(data, { perClass: 6, seed: 8 });
  const train = async (name, extra) => JSON.parse(await readFile(path.join((await core.trainRun(fastTrain(backbone, data, path.join(dir, name), cache, { epochs: 3, seed: 2, ...extra }))).runDir, 'run.json'), 'utf8'));

  const a = await train('a', { unfreeze: 2 });
  assert.deepEqual([a.timings.extracted, a.timings.cached], [12, 0]);
  const afterA = await cacheCounts(cache);
  const boundaryKeys = Object.keys(afterA).filter((k) => !k.startsWith('thumb'));
  assert.equal(boundaryKeys.length, 1);
  assert.equal(afterA[boundaryKeys[0]], 12);

  const again = await train('a2', { unfreeze: 2 });
  assert.deepEqual([again.timings.extracted, again.timings.cached], [0, 12]);
  assert.deepEqual(again.unfreeze.trainable, a.unfreeze.trainable);
  assert.deepEqual(again.test, a.test, 'same data, same seed: same result from the cache');

  const b = await train('b', { unfreeze: 1 });
  assert.equal(b.unfreeze.boundary, 'b1_add');
  assert.deepEqual(b.unfreeze.trainable, ['top_conv']);
  assert.deepEqual([b.timings.extracted, b.timings.cached], [12, 0], 'another boundary does not reuse the first one\'s activations');
  const afterB = await cacheCounts(cache);
  assert.equal(Object.keys(afterB).filter((k) => !k.startsWith('thumb')).length, 2);

  const plain = await train('plain', {});
  assert.equal(plain.unfreeze, undefined);
  assert.equal(plain.timings.extracted, 12, 'frozen features are not boundary activations');
  assert.ok(!existsSync(path.join(dir, 'plain', 'top')));
});

test('--unfreeze: cancelled during fine-tuning → CancelledError and no RUN_DIR', async (t) => {
  const dir = await tempDir(t);
  const backbone = await convBackbone(path.join(dir, 'bb'));
  const data = path.join(dir, 'data');
  await colourDataset(data, { perClass: 6, seed: 9 });
  const out = path.join(dir, 'run');
  const ac = new AbortController();
  let fineTuning = false;
  let abortedAt;
  const onEvent = (e) => {
    if (e.type === 'phase' && /fine-tuning the top/.test(e.message)) fineTuning = true;
    if (fineTuning && e.type === 'batch' && !ac.signal.aborted) {
      abortedAt = e;
      ac.abort();
    }
  };
  await assert.rejects(core.trainRun(fastTrain(backbone, data, out, path.join(dir, 'cache'), { unfreeze: 2, epochs: 3 }), { onEvent, signal: ac.signal }), (e) => e instanceof core.CancelledError);
  assert.ok(abortedAt && abortedAt.epoch === 1 && abortedAt.batch === 1, 'aborted on the first fine-tuning batch');
  assert.ok(!existsSync(out));
  assert.deepEqual((await readdir(dir)).filter((n) => n.includes('.tmp-')), [], 'no temp folder left');
  // The engine is usable afterwards: the next run trains.
  const ok = await core.trainRun(fastTrain(backbone, data, out, path.join(dir, 'cache'), { unfreeze: 2, epochs: 2 }));
  assert.ok(existsSync(path.join(ok.runDir, 'top', 'model.json')));
});
