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
import { colourDataset } from './fixtures.mjs';
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
