// Compression units: the float16 / uint16 / uint8 weight writer (checked by
// decoding through TF.js's own tf.io.decodeWeights, so the files mean to the
// stock loaders what we meant them to), per-role policies, and magnitude
// pruning of a head on separable synthetic vectors (sparsity, accuracy, no
// leaked tensors).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { core, tf } from './helpers.mjs';

await core.initBackend();

/** Decodes one stored entry with TF.js's manifest decoder; returns its float32 values. */
function decode(entry) {
  const bytes = entry.bytes;
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const map = tf.io.decodeWeights(buf, [entry.spec]);
  const t = map[entry.spec.name];
  const v = t.dataSync().slice();
  t.dispose();
  return v;
}

/** float16 bits → the float32 TF.js decodes them to. */
function f16(bits) {
  const arr = Uint16Array.from(Array.isArray(bits) ? bits : [bits]);
  return decode({ spec: { name: 'h', shape: [arr.length], dtype: 'float32', quantization: { dtype: 'float16' } }, bytes: new Uint8Array(arr.buffer) });
}

function gaussian(rng) {
  const u = 1 - rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

const entry = (values, extra = {}) => ({ name: 'w', shape: [values.length], values: Float32Array.from(values), role: 'conv', ...extra });

test('toFloat16: known bit patterns, subnormals, overflow, rounding to nearest even', () => {
  const cases = [
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff], // largest finite half
    [65519, 0x7bff], // below the midpoint to 65536: stays finite
    [65520, 0x7c00], // the midpoint rounds to even: infinity
    [1e5, 0x7c00],
    [-1e5, 0xfc00],
    [Infinity, 0x7c00],
    [0, 0x0000],
    [-0, 0x8000],
    [6e-8, 0x0001], // nearest to 2^-24 ≈ 5.96e-8, the smallest subnormal
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -14 - 2 ** -24, 0x03ff], // largest subnormal
    [2 ** -25, 0x0000], // half the smallest subnormal: ties to even (zero)
    [3 * 2 ** -25, 0x0002], // 1.5 ulps: ties to even (2)
    [2 ** -26, 0x0000], // underflow
    [1 + 2 ** -11, 0x3c00], // tie between 0x3c00 (even) and 0x3c01
    [1 + 3 * 2 ** -11, 0x3c02], // tie between 0x3c01 and 0x3c02 (even)
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
    [2047.9, 0x6800], // 2048 after rounding: carry into the exponent
  ];
  for (const [v, bits] of cases) assert.equal(core.toFloat16(v), bits, `toFloat16(${v}) = 0x${core.toFloat16(v).toString(16)}, want 0x${bits.toString(16)}`);
  const nan = core.toFloat16(NaN);
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x3ff, 0, 'NaN stays NaN');

  // What TF.js decodes them to.
  assert.deepEqual(Array.from(f16([0x3c00, 0xc000, 0x7bff, 0x0001, 0x8000])), [1, -2, 65504, Math.fround(2 ** -24), -0]);
  assert.equal(f16(0x7c00)[0], Infinity);
  assert.ok(Number.isNaN(f16(nan)[0]));

  // On random values over many magnitudes the stored half is the nearest one (ties aside).
  const rng = new core.Rng(5);
  const values = Array.from({ length: 2000 }, () => Math.fround((rng.next() < 0.5 ? -1 : 1) * 10 ** (rng.next() * 12 - 7)));
  const bits = values.map((v) => core.toFloat16(v));
  const here = f16(bits);
  const below = f16(bits.map((b) => ((b & 0x7fff) === 0 ? b : b - 1)));
  const above = f16(bits.map((b) => ((b & 0x7fff) >= 0x7c00 ? b : b + 1)));
  values.forEach((v, i) => {
    const d = Math.abs(here[i] - v);
    if (!Number.isFinite(here[i])) return assert.ok(Math.abs(v) >= 65520, `${v} overflowed`);
    assert.ok(d <= Math.abs(below[i] - v) && d <= Math.abs(above[i] - v), `${v} → ${here[i]} is not the nearest half (${below[i]}, ${above[i]})`);
  });
});

test('affineRange: zero exactly representable when the range straddles it; a range without zero is not widened', () => {
  for (const [lo, hi, levels] of [[-0.37, 1.91, 255], [-3, 0.001, 255], [-1e-3, 7, 65535], [-0.5, 0.5, 255], [0, 2, 255], [-2, 0, 255]]) {
    const { min, scale } = core.affineRange(lo, hi, levels);
    const zero = Math.round(-min / scale);
    assert.ok(zero >= 0 && zero <= levels, `zero level ${zero} of [${lo}, ${hi}]`);
    assert.equal(zero * scale + min, 0, `[${lo}, ${hi}]: level ${zero} decodes to exactly 0`);
    assert.ok(Math.abs(min - lo) <= scale / 2 + 1e-12, 'nudged by at most half a step');
    assert.ok(Math.abs(scale - (hi - lo) / levels) < 1e-12, 'scale spans the range');
  }
  // BatchNorm variances: [0.5, 2] stays [0.5, 2] (widening to 0 would waste a quarter of the levels).
  const bn = core.affineRange(0.5, 2, 255);
  assert.equal(bn.min, 0.5);
  assert.equal(bn.scale, 1.5 / 255);
  const neg = core.affineRange(-3, -1, 255);
  assert.equal(neg.min, -3);
  assert.equal(neg.scale, 2 / 255);
  // A constant tensor: any scale works, min is the value.
  assert.equal(core.affineRange(0.7, 0.7, 255).min, 0.7);
});

test('quantizeEntry: uint8 / uint16 round trip through tf.io.decodeWeights within half a step; exact zeros stay zero', () => {
  const rng = new core.Rng(11);
  const values = Float32Array.from({ length: 5000 }, (_, i) => (i % 7 === 0 ? 0 : rng.next() * 4 - 1)); // [-1, 3) with zeros
  for (const dtype of ['uint8', 'uint16']) {
    // clip=false: every value is inside the range, so the bound holds for all of them.
    const { entry: e, mse } = core.quantizeEntry(entry(values), dtype, false);
    assert.equal(e.spec.dtype, 'float32');
    assert.equal(e.spec.quantization.dtype, dtype);
    assert.equal(e.bytes.byteLength, values.length * (dtype === 'uint8' ? 1 : 2));
    const { scale, min } = e.spec.quantization;
    assert.ok(scale > 0 && min <= 0);
    const back = decode(e);
    let maxErr = 0;
    let sq = 0;
    values.forEach((v, i) => {
      maxErr = Math.max(maxErr, Math.abs(back[i] - v));
      sq += (back[i] - v) ** 2;
      if (v === 0) assert.equal(back[i], 0, `zero at ${i} decodes to ${back[i]}`);
    });
    // eps: the decoded value is rounded to float32 (|v| ≤ 3, so ≤ 3 * 2^-24).
    assert.ok(maxErr <= scale / 2 + 3 * 2 ** -23, `${dtype}: max error ${maxErr} > scale/2 = ${scale / 2}`);
    assert.ok(Math.abs(mse - sq / values.length) <= 1e-3 * mse + 1e-12, `${dtype}: reported mse ${mse} vs measured ${sq / values.length}`);
    assert.ok(dtype === 'uint8' ? scale < 4 / 250 : scale < 4 / 65000);
  }
  // With clipping allowed (the default) on data without outliers, values inside the chosen range keep the bound.
  const { entry: e8 } = core.quantizeEntry(entry(values), 'uint8');
  const { scale, min } = e8.spec.quantization;
  const back = decode(e8);
  values.forEach((v, i) => {
    if (v === 0) assert.equal(back[i], 0);
    if (v >= min && v <= min + 255 * scale) assert.ok(Math.abs(back[i] - v) <= scale / 2 + 3 * 2 ** -23);
  });
  // float16: relative error at most 2^-11 for normal values.
  const { entry: h } = core.quantizeEntry(entry(values), 'float16');
  assert.deepEqual(h.spec.quantization, { dtype: 'float16' });
  const hb = decode(h);
  values.forEach((v, i) => {
    if (v === 0) assert.equal(hb[i], 0);
    else if (Math.abs(v) >= 2 ** -14) assert.ok(Math.abs(hb[i] - v) <= Math.abs(v) * 2 ** -11, `float16 ${v} → ${hb[i]}`);
  });
  // A constant weight is stored exactly; a range that excludes zero keeps its own min.
  const c = decode(core.quantizeEntry(entry(new Float32Array(300).fill(0.7)), 'uint8').entry);
  assert.ok(c.every((x) => x === Math.fround(0.7)));
  const variances = Float32Array.from({ length: 300 }, () => 0.5 + rng.next() * 1.5);
  const bn = core.quantizeEntry(entry(variances, { role: 'vector' }), 'uint8', false).entry.spec.quantization;
  assert.ok(bn.min >= 0.5 - 1e-7, `variance range starts at ${bn.min}`);
});

test('quantizeEntry: a weight already stored as uint8 keeps its source grid bit for bit', () => {
  const rng = new core.Rng(3);
  const scale = 0.0123;
  const min = -127 * scale; // a source grid with zero on it, as the TF.js converter writes
  const q = Uint8Array.from({ length: 1000 }, () => rng.int(256));
  const source = { name: 'src', shape: [q.length], dtype: 'float32', quantization: { dtype: 'uint8', scale, min } };
  const sourceBytes = new Uint8Array(q);
  const values = decode({ spec: source, bytes: sourceBytes }); // what the engine reads from the source model
  const { entry: e, mse } = core.quantizeEntry(entry(values, { source: source.quantization }), 'uint8');
  assert.deepEqual(e.spec.quantization, { dtype: 'uint8', scale, min });
  assert.deepEqual(Buffer.from(e.bytes), Buffer.from(sourceBytes), 'the same levels');
  assert.deepEqual(decode(e), values, 'the same float32 values');
  assert.ok(mse < 1e-12);
  // A pruned (zeroed) value on that grid lands on the zero level.
  const pruned = Float32Array.from(values);
  pruned[0] = 0;
  const p = core.quantizeEntry(entry(pruned, { source: source.quantization }), 'uint8').entry;
  assert.equal(p.bytes[0], 127);
  assert.equal(decode(p)[0], 0);
  // Another precision asked for: the source grid is not forced on it.
  const u16 = core.quantizeEntry(entry(values, { source: source.quantization }), 'uint16').entry.spec.quantization;
  assert.notEqual(u16.scale, scale);
});

test('quantizeEntry: clipping lowers the uint8 error on heavy-tailed weights', () => {
  const rng = new core.Rng(9);
  // Gaussian weights plus 20 outliers at 5 to 9 sigmas. (Far fewer or far larger outliers make
  // clipping them cost more than the finer grid saves: the full range then wins, rightly.)
  const sigma = 0.05;
  const values = Float32Array.from({ length: 16384 }, () => gaussian(rng) * sigma);
  for (let i = 0; i < 20; i++) values[i * 7] = (i % 2 ? -1 : 1) * (5 + i * 0.2) * sigma;
  // Unclipped: the full [min, max] range on 255 levels, zero on the grid.
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  const full = core.affineRange(lo, hi, 255);
  let unclipped = 0;
  for (const v of values) {
    const qv = Math.min(255, Math.max(0, Math.round((v - full.min) / full.scale)));
    unclipped += (Math.fround(qv * full.scale + full.min) - v) ** 2;
  }
  unclipped /= values.length;

  const { entry: e, mse } = core.quantizeEntry(entry(values), 'uint8');
  const back = decode(e);
  let measured = 0;
  values.forEach((v, i) => (measured += (back[i] - v) ** 2));
  measured /= values.length;
  assert.ok(e.spec.quantization.scale < full.scale, 'a clipped range was chosen');
  assert.ok(measured < unclipped, `clipped mse ${measured} vs unclipped ${unclipped}`);
  assert.ok(Math.abs(measured - mse) <= 1e-3 * mse, `reported ${mse} vs measured ${measured}`);
  // Zero stays on the grid of the clipped range too.
  const { scale, min } = e.spec.quantization;
  assert.equal(Math.round(-min / scale) * scale + min, 0);
  // The unclipped writer (clip=false) reproduces the full-range error.
  assert.ok(Math.abs(core.quantizeEntry(entry(values), 'uint8', false).mse - unclipped) <= 1e-3 * unclipped);
});

test('applyPolicy: tensors under 64 values stay at float16; roles pick their dtype; raw entries pass through', () => {
  const rng = new core.Rng(1);
  const w = (name, n, role) => ({ name, shape: [n], values: Float32Array.from({ length: n }, () => rng.next() - 0.5), role });
  const raw = { spec: { name: 'axes', shape: [2], dtype: 'int32' }, bytes: new Uint8Array(new Int32Array([1, 2]).buffer) };
  const entries = [w('small', 63, 'conv'), w('big', 64, 'conv'), w('dw', 500, 'depthwise'), w('head', 500, 'head'), w('bias', 10, 'vector'), { name: 'axes', shape: [2], values: new Float32Array(0), role: 'other', raw }];
  const dtypeOf = (e) => e.spec.quantization?.dtype ?? e.spec.dtype;

  const u8 = core.applyPolicy(entries, core.POLICIES.uint8);
  assert.deepEqual(u8.entries.map(dtypeOf), ['float16', 'uint8', 'uint8', 'uint8', 'float16', 'int32']);
  assert.equal(u8.choices.small.dtype, 'float16');
  assert.equal(u8.choices.big.dtype, 'uint8');
  assert.equal(u8.entries[5], raw);

  const u16 = core.applyPolicy(entries, core.POLICIES.uint16);
  assert.deepEqual(u16.entries.map(dtypeOf), ['float16', 'uint16', 'uint16', 'uint16', 'float16', 'int32']);

  const mixed = core.applyPolicy(entries, core.POLICIES.mixed);
  assert.deepEqual(mixed.entries.map(dtypeOf), ['float16', 'uint8', 'uint16', 'float16', 'float16', 'int32']);

  const f32 = core.applyPolicy(entries, core.POLICIES.float32);
  assert.deepEqual(f32.entries.map(dtypeOf), ['float32', 'float32', 'float32', 'float32', 'float32', 'int32']);
  assert.deepEqual(decode(f32.entries[1]), entries[1].values, 'float32 is stored as is');
  for (const name of Object.keys(core.POLICIES)) assert.deepEqual(Object.keys(core.POLICIES[name]).sort(), ['conv', 'dense', 'depthwise', 'first', 'head', 'other', 'vector'], `${name} covers every role`);
});

/** Separable vectors: class c has mean +mu on feature dims [c*block, (c+1)*block), noise elsewhere. */
function separable(n, k, dim, rng, mu = 1.5) {
  const x = new Float32Array(n * dim);
  const y = new Int32Array(n);
  const block = Math.floor(dim / k);
  for (let i = 0; i < n; i++) {
    y[i] = i % k;
    for (let d = 0; d < dim; d++) x[i * dim + d] = gaussian(rng) * 0.7 + (Math.floor(d / block) === y[i] ? mu : 0);
  }
  return { x, y };
}

test('pruneHead: every dense kernel reaches the target sparsity, validation accuracy stays high, no tensors leak', async () => {
  const rng = new core.Rng(4);
  const dim = 32;
  const k = 3;
  const train = separable(240, k, dim, rng);
  const val = separable(90, k, dim, rng);
  const { model: head } = await core.trainHead(train, val, dim, k, { epochs: 15, hiddenUnits: 16, seed: 2 });
  const before = core.evaluateSet(head, val, dim, k).accuracy;
  assert.ok(before >= 0.9, `the unpruned head is good (${before})`);

  for (const target of [0.5, 0.8]) {
    const n0 = tf.memory().numTensors;
    const res = await core.pruneHead(head, train, val, dim, k, target, { steps: 3, epochsPerStep: 2, seed: 1 });
    // The pruned head is the only new thing alive: its kernels and biases.
    assert.equal(tf.memory().numTensors, n0 + res.head.weights.length, `target ${target}: tensors besides the new head leaked`);
    assert.deepEqual(Object.keys(res.sparsity), ['head_hidden', 'head_output']);
    for (const [name, s] of Object.entries(res.sparsity)) assert.ok(Math.abs(s - target) <= 0.02, `${name}: sparsity ${s}, target ${target}`);
    // Measured independently of the report: exact zeros in the kernels, biases untouched by the mask.
    for (const l of res.head.layers) {
      const kv = l.getWeights()[0].dataSync();
      const zeros = kv.reduce((a, v) => a + (v === 0 ? 1 : 0), 0) / kv.length;
      assert.ok(Math.abs(zeros - target) <= 0.02, `${l.name}: ${zeros} zeros`);
    }
    assert.ok(res.valAccuracy >= before - 0.1, `target ${target}: val accuracy ${res.valAccuracy} vs ${before} unpruned`);
    assert.ok(Math.abs(res.valAccuracy - core.evaluateSet(res.head, val, dim, k).accuracy) < 1e-9);
    assert.ok(!res.head.layers.some((l) => l.getClassName() === 'Dropout'));
    res.head.dispose();
    assert.equal(tf.memory().numTensors, n0);
  }
  // The source head is left as it was.
  assert.equal(core.evaluateSet(head, val, dim, k).accuracy, before);
  head.dispose();
});

test('pruneHead: bad sparsity is refused; sparsity 0 copies the head; cancelling leaks nothing', async () => {
  const rng = new core.Rng(8);
  const train = separable(60, 2, 8, rng);
  const { model: head } = await core.trainHead(train, { x: new Float32Array(0), y: new Int32Array(0) }, 8, 2, { epochs: 2, hiddenUnits: 0 });
  for (const bad of [1, -0.1, NaN, 1.5]) await assert.rejects(core.pruneHead(head, train, train, 8, 2, bad), /sparsity must be in \[0, 1\)/);
  const same = await core.pruneHead(head, train, train, 8, 2, 0);
  assert.deepEqual(same.head.layers[0].getWeights()[0].dataSync(), head.layers.find((l) => l.getClassName() === 'Dense').getWeights()[0].dataSync());
  same.head.dispose();
  const n0 = tf.memory().numTensors;
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(core.pruneHead(head, train, train, 8, 2, 0.5, {}, { signal: controller.signal }), { name: 'CancelledError' });
  assert.equal(tf.memory().numTensors, n0, 'a cancelled prune frees its model, masks and optimizer');
  head.dispose();
});
