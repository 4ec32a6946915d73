// Cross-validated head selection on generated feature vectors (folds grouped
// by source image, the grid, the choice, the refit) and the Wilson interval.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { core, tf } from './helpers.mjs';

await core.initBackend();

function gaussian(rng) {
  return Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
}

/** Originals only: every row its own source. */
function grouped(x, y) {
  return { x, y, group: Int32Array.from(y.keys()), original: new Uint8Array(y.length).fill(1) };
}

/** Linearly separable clusters in many dimensions, few points: the case for a linear head. */
function linearData(seed, perClass = 16, k = 4, dim = 48) {
  const rng = new core.Rng(seed);
  const n = perClass * k;
  const x = new Float32Array(n * dim);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % k;
    for (let d = 0; d < dim; d++) x[i * dim + d] = (d % k === y[i] ? 1.2 : 0) + gaussian(rng);
  }
  return { x, y, dim, k };
}

/** XOR of two coordinates (plus noise dimensions): no linear head can beat chance. */
function xorData(seed, n = 240, dim = 6) {
  const rng = new core.Rng(seed);
  const x = new Float32Array(n * dim);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const a = rng.next() < 0.5 ? -1 : 1;
    const b = rng.next() < 0.5 ? -1 : 1;
    y[i] = a * b > 0 ? 1 : 0;
    x[i * dim] = 2 * a + 0.4 * gaussian(rng);
    x[i * dim + 1] = 2 * b + 0.4 * gaussian(rng);
    for (let d = 2; d < dim; d++) x[i * dim + d] = gaussian(rng);
  }
  return { x, y, dim, k: 2 };
}

const HEAD = { ...core.HEAD_DEFAULTS, hiddenUnits: 32, learningRate: 0.01, epochs: 30, seed: 7 };
const strip = (sel) => ({ ...sel, seconds: 0 });

test('selection keeps the linear head on data that favours it, and the hidden layer on XOR', async () => {
  const lin = linearData(1);
  const a = await core.crossValidate(grouped(lin.x, lin.y), lin.y, lin.dim, lin.k, { grid: core.headGrid('auto', {}, 32), head: HEAD });
  assert.equal(a.chosen.head, 'linear', JSON.stringify(a.selection.results.map((r) => [r.name, r.meanAccuracy])));
  assert.equal(a.selection.method, 'stratified-k-fold');
  assert.equal(a.selection.folds, 5);
  assert.deepEqual(a.selection.results.map((r) => r.name), ['linear l2=0.0001', 'linear l2=0.01', 'mlp32 l2=0.0001'], 'linear at two L2 strengths, the MLP at one');
  assert.deepEqual(core.headGrid('mlp', {}, 32).map((g) => g.name), ['mlp32 l2=0.0001', 'mlp32 l2=0.01'], '--head mlp spends the budget on its L2');
  for (const r of a.selection.results) {
    assert.equal(r.foldAccuracies.length, 5);
    assert.ok(r.stdAccuracy >= 0 && r.meanAccuracy > 0);
  }
  const xor = xorData(2);
  const b = await core.crossValidate(grouped(xor.x, xor.y), xor.y, xor.dim, xor.k, { grid: core.headGrid('auto', {}, 32), head: HEAD });
  assert.equal(b.chosen.head, 'mlp', JSON.stringify(b.selection.results.map((r) => [r.name, r.meanAccuracy])));
  const best = (head) => Math.max(...b.selection.results.filter((r) => r.head === head).map((r) => r.meanAccuracy));
  assert.ok(best('mlp') > 0.9 && best('linear') < 0.7, `mlp ${best('mlp')} linear ${best('linear')}`);
  assert.match(b.selection.reason, /highest mean fold accuracy|simpler model is kept/);
});

test('selection: identical seeds give identical choices and fold scores; the refit trains on every non-test row, views included; no tensors leak', async () => {
  const lin = linearData(3, 12);
  // Two augmented views per source (noisy copies), grouped with their source.
  const n = lin.y.length;
  const x = new Float32Array(n * 3 * lin.dim);
  x.set(lin.x);
  const rng = new core.Rng(9);
  for (let v = 0; v < 2 * n; v++) for (let d = 0; d < lin.dim; d++) x[(n + v) * lin.dim + d] = lin.x[(v % n) * lin.dim + d] + 0.1 * gaussian(rng);
  const set = { x, y: Int32Array.from({ length: 3 * n }, (_, i) => lin.y[i % n]), group: Int32Array.from({ length: 3 * n }, (_, i) => i % n), original: Uint8Array.from({ length: 3 * n }, (_, i) => (i < n ? 1 : 0)) };
  const tensors = tf.memory().numTensors;
  const events = [];
  const opts = { grid: core.headGrid('auto', { l2: 1e-3 }, 32), head: { ...HEAD, batchSize: 16 } };
  const a = await core.selectHead(set, lin.y, lin.dim, lin.k, opts, { onEvent: (e) => events.push(e) });
  const b = await core.selectHead(set, lin.y, lin.dim, lin.k, opts);
  try {
    assert.deepEqual(strip(a.selection), strip(b.selection));
    assert.equal(a.selection.results.length, 2, '--l2 fixes that part of the grid');
    const batches = events.filter((e) => e.type === 'batch');
    assert.ok(batches.length > 0);
    const bs = core.configHead(opts.head, a.chosen, true).batchSize;
    assert.ok(batches.every((e) => e.batches === Math.ceil((3 * n) / bs)), `refit batches of ${bs} cover all ${3 * n} originals and views`);
    assert.equal(a.res.history.length, a.selection.refitEpochs);
  } finally {
    a.res.model.dispose();
    b.res.model.dispose();
  }
  assert.equal(tf.memory().numTensors, tensors);
});

test('selection: views stay in their source image\'s fold (random labels with duplicated views score near chance, not near 100%)', async () => {
  const rng = new core.Rng(4);
  const n = 60;
  const dim = 32;
  const views = 4;
  const src = Float32Array.from({ length: n * dim }, () => gaussian(rng));
  const labels = Int32Array.from({ length: n }, () => rng.int(2));
  const rows = n * (1 + views);
  const x = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) x.set(src.subarray((r % n) * dim, ((r % n) + 1) * dim), r * dim);
  const set = { x, y: Int32Array.from({ length: rows }, (_, r) => labels[r % n]), group: Int32Array.from({ length: rows }, (_, r) => r % n), original: Uint8Array.from({ length: rows }, (_, r) => (r < n ? 1 : 0)) };
  const res = await core.crossValidate(set, labels, dim, 2, { grid: core.headGrid('mlp', { l2: 1e-4 }, 64), head: { ...HEAD, epochs: 40, patience: 0, dropout: 0 } });
  const acc = res.selection.results[0].meanAccuracy;
  assert.ok(acc < 0.75, `memorised views leaked into validation folds: ${acc}`);
  // Stratified: each class spread evenly over the folds.
  const folds = core.stratifiedFolds(labels, 5, 1);
  for (const c of [0, 1]) {
    const counts = [0, 1, 2, 3, 4].map((f) => [...labels.keys()].filter((i) => labels[i] === c && folds[i] === f).length);
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `class ${c} per fold ${counts}`);
  }
});

test('selection: above the threshold a single validation split; flags fix their part of the grid; contradictions are one-line errors', () => {
  const many = new Int32Array(core.HOLDOUT_THRESHOLD + 1);
  const plan = core.foldPlan(many, 1);
  assert.equal(plan.method, 'holdout');
  assert.deepEqual(plan.evalFolds, [0]);
  assert.equal(core.foldPlan(new Int32Array(50), 1).method, 'stratified-k-fold');
  assert.deepEqual(core.headGrid('linear', {}, 128).map((g) => g.name), ['linear l2=0.0001', 'linear l2=0.01']);
  assert.deepEqual(core.headGrid('auto', { hiddenUnits: 64, l2: 0.001 }, 128).map((g) => g.name), ['mlp64 l2=0.001']);
  assert.deepEqual(core.headGrid('auto', { hiddenUnits: 0 }, 128).map((g) => g.head), ['linear', 'linear']);
  assert.throws(() => core.headGrid('linear', { hiddenUnits: 64 }, 128), /contradicts/);
  assert.throws(() => core.headGrid('deep', {}, 128), /--head must be one of auto, linear, mlp/);
  // Ties go to the simpler model.
  const row = (name, head, l2, m) => ({ name, head, hiddenUnits: head === 'mlp' ? 8 : 0, l2, meanAccuracy: m, stdAccuracy: 0, foldAccuracies: [m], meanBestEpoch: 1 });
  assert.equal(core.choose([row('m', 'mlp', 1e-4, 0.9), row('l', 'linear', 1e-4, 0.898)]).chosen.name, 'l');
  assert.equal(core.choose([row('m', 'mlp', 1e-4, 0.9), row('l', 'linear', 1e-4, 0.89)]).chosen.name, 'm');
});

test('wilson: 95% intervals against known values; evaluatePredictions carries one, and warns under 30 images per class', () => {
  const close = (iv, lo, hi) => Math.abs(iv.low - lo) < 5e-4 && Math.abs(iv.high - hi) < 5e-4;
  assert.ok(close(core.wilson(8, 10), 0.49, 0.943), JSON.stringify(core.wilson(8, 10)));
  assert.ok(close(core.wilson(0, 10), 0, 0.2775), JSON.stringify(core.wilson(0, 10)));
  assert.ok(close(core.wilson(10, 10), 0.7225, 1), JSON.stringify(core.wilson(10, 10)));
  assert.ok(close(core.wilson(50, 100), 0.4038, 0.5962), JSON.stringify(core.wilson(50, 100)));
  assert.equal(core.wilson(8, 10).n, 10);
  const small = core.evaluatePredictions(['a', 'b'], [0, 1, 1], Float32Array.from([0.9, 0.1, 0.2, 0.8, 0.7, 0.3]));
  assert.equal(small.interval.n, 3);
  assert.match(small.warning, /only 1 evaluation image in class 'a'.*95% interval is/);
  const y = Array.from({ length: 60 }, (_, i) => i % 2);
  const big = core.evaluatePredictions(['a', 'b'], y, Float32Array.from(y.flatMap((c) => (c ? [0.2, 0.8] : [0.8, 0.2]))));
  assert.equal(big.warning, undefined);
  assert.equal(core.formatAccuracy(0.8, core.wilson(8, 10)), '80.0% (95% CI 49.0–94.3%, n=10)');
});
