// The head trainer on synthetic vectors (determinism, early stopping with
// the best weights restored, events with ETA, cancellation within one batch,
// class weights) and the evaluation metrics on hand-made probabilities.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { core, tf } from './helpers.mjs';

await core.initBackend();

/** Gaussian clusters: class c centred at `means[c]`, `counts[c]` points, std `std`. */
function clusters(means, counts, std, seed) {
  const rng = new core.Rng(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
  const dim = means[0].length;
  const n = counts.reduce((a, b) => a + b, 0);
  const x = new Float32Array(n * dim);
  const y = new Int32Array(n);
  let r = 0;
  counts.forEach((count, c) => {
    for (let i = 0; i < count; i++, r++) {
      y[r] = c;
      for (let d = 0; d < dim; d++) x[r * dim + d] = means[c][d] + std * gauss();
    }
  });
  return { x, y };
}

const onehotMeans = (k, dim, scale) => Array.from({ length: k }, (_, c) => Array.from({ length: dim }, (_, d) => (d === c ? scale : 0)));

/** Random vectors with random labels: nothing to learn, everything to overfit. */
function noise(n, dim, k, seed) {
  const rng = new core.Rng(seed);
  return { x: Float32Array.from({ length: n * dim }, () => rng.next() * 2 - 1), y: Int32Array.from({ length: n }, () => rng.int(k)) };
}

const strip = (history) => history.map(({ seconds, ...m }) => m);

test('trainHead: separable data is learnt; the same seed gives the same history, another seed another', async () => {
  const means = onehotMeans(3, 8, 3);
  const train = clusters(means, [30, 30, 30], 1, 1);
  const val = clusters(means, [10, 10, 10], 1, 2);
  const opts = { epochs: 8, batchSize: 16, hiddenUnits: 16, learningRate: 0.01, seed: 3, patience: 0 };
  const a = await core.trainHead(train, val, 8, 3, opts);
  const b = await core.trainHead(train, val, 8, 3, opts);
  const c = await core.trainHead(train, val, 8, 3, { ...opts, seed: 4 });
  try {
    assert.equal(a.history.length, 8);
    assert.deepEqual(strip(a.history), strip(b.history));
    assert.notDeepEqual(strip(a.history), strip(c.history));
    assert.ok(a.history.at(-1).valAccuracy >= 0.9, `val accuracy ${a.history.at(-1).valAccuracy}`);
    assert.ok(a.history.at(-1).loss < a.history[0].loss);
    assert.deepEqual(a.model.getWeights().map((w) => Array.from(w.dataSync())), b.model.getWeights().map((w) => Array.from(w.dataSync())));
  } finally {
    for (const r of [a, b, c]) r.model.dispose();
  }
});

test('trainHead: early stopping on overfitting data stops after `patience` epochs and restores the best weights', async () => {
  const train = noise(40, 32, 2, 5);
  const val = noise(40, 32, 2, 6);
  const res = await core.trainHead(train, val, 32, 2, { epochs: 200, batchSize: 8, hiddenUnits: 64, dropout: 0, learningRate: 0.01, patience: 2, seed: 1, balanceClasses: false });
  try {
    const losses = res.history.map((m) => m.valLoss);
    const best = losses.indexOf(Math.min(...losses)) + 1;
    assert.equal(res.stoppedEarly, true);
    assert.ok(res.history.length < 30, `ran ${res.history.length} epochs`);
    assert.equal(res.bestEpoch, best);
    assert.equal(res.history.length, best + 2, 'two epochs without improvement, then stop');
    const now = core.evaluateSet(res.model, val, 32, 2);
    assert.ok(Math.abs(now.loss - losses[best - 1]) < 1e-5, `restored weights give val loss ${now.loss}, best was ${losses[best - 1]}, last ${losses.at(-1)}`);
    assert.ok(losses.at(-1) > losses[best - 1]);
  } finally {
    res.model.dispose();
  }
});

test('trainHead: batch and epoch events with throughput and ETA', async () => {
  const means = onehotMeans(2, 4, 2);
  const train = clusters(means, [25, 25], 1, 7);
  const val = clusters(means, [5, 5], 1, 8);
  const events = [];
  const res = await core.trainHead(train, val, 4, 2, { epochs: 3, batchSize: 16, patience: 0 }, { onEvent: (e) => events.push(e) });
  res.model.dispose();
  const batches = events.filter((e) => e.type === 'batch');
  const epochs = events.filter((e) => e.type === 'epoch');
  assert.equal(batches.length, 3 * 4, '50 images in batches of 16: 4 per epoch');
  assert.deepEqual(batches.map((e) => [e.epoch, e.batch, e.batches]), [1, 2, 3].flatMap((ep) => [1, 2, 3, 4].map((b) => [ep, b, 4])));
  for (const e of batches) {
    assert.ok(Number.isFinite(e.loss) && e.loss > 0);
    assert.ok(e.accuracy >= 0 && e.accuracy <= 1);
    assert.ok(e.imagesPerSecond > 0);
    assert.ok(Number.isFinite(e.eta) && e.eta >= 0);
  }
  assert.equal(batches.at(-1).eta, 0, 'nothing left after the last batch');
  assert.ok(batches[0].eta > 0);
  assert.deepEqual(epochs.map((e) => [e.metrics.epoch, e.totalEpochs]), [[1, 3], [2, 3], [3, 3]]);
  assert.deepEqual(epochs.map((e) => e.metrics), res.history);
  // Each epoch event follows its epoch's last batch.
  assert.deepEqual(events.map((e) => e.type).slice(0, 5), ['batch', 'batch', 'batch', 'batch', 'epoch']);
});

test('trainHead: aborting from inside a batch event stops within one batch, with CancelledError and no leaked tensors', async () => {
  const means = onehotMeans(3, 8, 3);
  const train = clusters(means, [40, 40, 40], 1, 9);
  const val = clusters(means, [5, 5, 5], 1, 10);
  const controller = new AbortController();
  const seen = [];
  const tensors = tf.memory().numTensors;
  await assert.rejects(
    core.trainHead(train, val, 8, 3, { epochs: 50, batchSize: 8 }, {
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type !== 'batch') return;
        seen.push(e.batch);
        if (e.epoch === 1 && e.batch === 2) controller.abort();
      },
    }),
    (err) => err.name === 'CancelledError' && core.isCancelled(err),
  );
  assert.ok(seen.length <= 3, `batch events after the abort: ${seen.slice(2)}`);
  assert.deepEqual(seen.slice(0, 2), [1, 2]);
  assert.equal(tf.memory().numTensors, tensors, 'model, optimizer and kept weights are disposed');

  // Aborted before it starts: no batch at all.
  const pre = new AbortController();
  pre.abort();
  let n = 0;
  await assert.rejects(core.trainHead(train, val, 8, 3, {}, { signal: pre.signal, onEvent: () => n++ }), { name: 'CancelledError' });
  assert.equal(n, 0);
});

test('trainHead: class weights lift the recall of a rare class', async () => {
  const means = [[0, 0], [1.5, 1.5]];
  const train = clusters(means, [200, 16], 1, 11);
  const val = clusters(means, [20, 20], 1, 12);
  const test = clusters(means, [200, 200], 1, 13);
  const recallOfRare = async (balanceClasses) => {
    const res = await core.trainHead(train, val, 2, 2, { epochs: 40, batchSize: 32, hiddenUnits: 0, learningRate: 0.05, patience: 0, seed: 2, balanceClasses });
    const { probs } = core.evaluateSet(res.model, test, 2, 2);
    res.model.dispose();
    return core.evaluatePredictions(['common', 'rare'], test.y, probs).perClass[1].recall;
  };
  const plain = await recallOfRare(false);
  const weighted = await recallOfRare(true);
  assert.ok(weighted > plain + 0.2, `rare-class recall ${weighted} with class weights vs ${plain} without`);
  assert.ok(weighted > 0.6, `rare-class recall ${weighted}`);
});

test('evaluatePredictions: accuracy, confusion, per-class precision / recall / F1, mistakes by confidence', () => {
  const labels = ['cat', 'dog', 'fox'];
  const y = [0, 0, 0, 1, 1, 2];
  const probs = Float32Array.from([
    [0.7, 0.2, 0.1], // cat → cat
    [0.2, 0.5, 0.3], // cat → dog (0.5)
    [0.1, 0.1, 0.8], // cat → fox (0.8)
    [0.1, 0.8, 0.1], // dog → dog
    [0.6, 0.3, 0.1], // dog → cat (0.6)
    [0.2, 0.2, 0.6], // fox → fox
  ].flat());
  const paths = ['c1', 'c2', 'c3', 'd1', 'd2', 'f1'];
  const r = core.evaluatePredictions(labels, y, probs, paths);
  assert.equal(r.accuracy, 0.5);
  assert.equal(r.count, 6);
  assert.deepEqual(r.labels, labels);
  assert.deepEqual(r.confusion, [[1, 1, 1], [1, 1, 0], [0, 0, 1]]);
  const close = (a, b) => Math.abs(a - b) < 1e-12;
  const want = { cat: [1 / 2, 1 / 3, 0.4, 3], dog: [0.5, 0.5, 0.5, 2], fox: [0.5, 1, 2 / 3, 1] };
  for (const c of r.perClass) {
    const [p, rec, f1, support] = want[c.label];
    assert.ok(close(c.precision, p) && close(c.recall, rec) && close(c.f1, f1), `${c.label}: ${JSON.stringify(c)}`);
    assert.equal(c.support, support);
  }
  assert.ok(close(r.macroF1, (0.4 + 0.5 + 2 / 3) / 3));
  assert.deepEqual(r.mistakes.map((m) => [m.path, m.label, m.predicted]), [['c3', 'cat', 'fox'], ['d2', 'dog', 'cat'], ['c2', 'cat', 'dog']]);
  assert.deepEqual(r.mistakes.map((m) => Math.round(m.probability * 1e6) / 1e6), [0.8, 0.6, 0.5]);
  assert.equal(core.evaluatePredictions(labels, y, probs, paths, 2).mistakes.length, 2);

  // A class never predicted and a class never present: zeros, not NaN.
  const z = core.evaluatePredictions(['a', 'b', 'c'], [0, 0, 1], Float32Array.from([0.9, 0.1, 0, 0.8, 0.2, 0, 0.6, 0.4, 0]));
  assert.deepEqual(z.confusion, [[2, 0, 0], [1, 0, 0], [0, 0, 0]]);
  assert.deepEqual(z.perClass.map((c) => [c.precision, c.recall, c.f1, c.support]), [[2 / 3, 1, 0.8, 2], [0, 0, 0, 1], [0, 0, 0, 0]]);
  assert.ok(!Number.isNaN(z.macroF1));
  assert.equal(core.evaluatePredictions(['a', 'b'], [], new Float32Array(0)).accuracy, 0);
});

test('trainHead: the ONNX Runtime trainer matches the TF.js trainer within a point on held-out data, MLP and linear, without leaking tensors', async () => {
  // 6 classes in 64-d, overlapping: accuracy well below 100%, so a point means something.
  const means = Array.from({ length: 6 }, (_, c) => Array.from({ length: 64 }, (_, d) => ((c * 7 + d * 3) % 11 === 0 ? 1.8 : 0)));
  const train = clusters(means, [60, 60, 60, 60, 60, 60], 1, 21);
  const val = clusters(means, [15, 15, 15, 15, 15, 15], 1, 22);
  const test = clusters(means, [300, 300, 300, 300, 300, 300], 1, 23);
  const tensors = tf.memory().numTensors;
  for (const hiddenUnits of [32, 0]) {
    const acc = {};
    for (const trainer of ['tfjs', 'onnx']) {
      const res = await core.trainHead(train, val, 64, 6, { epochs: 15, hiddenUnits, seed: 5 }, {}, undefined, trainer);
      assert.equal(res.trainer, trainer === 'onnx' ? 'onnxruntime' : 'tfjs');
      assert.equal(res.model.layers.at(-1).getConfig().activation, 'softmax', 'a stock layers model either way');
      acc[trainer] = core.evaluatePredictions(['a', 'b', 'c', 'd', 'e', 'f'], test.y, core.evaluateSet(res.model, test, 64, 6).probs).accuracy;
      res.model.dispose();
    }
    assert.ok(acc.tfjs > 0.5 && acc.tfjs < 0.99, `a problem with room for error (tfjs ${acc.tfjs})`);
    assert.ok(Math.abs(acc.onnx - acc.tfjs) <= 0.01, `hidden ${hiddenUnits}: onnx ${acc.onnx} vs tfjs ${acc.tfjs}`);
  }
  assert.equal(tf.memory().numTensors, tensors);
});

test('trainHead: the TF.js trainer keeps its determinism and early stopping (the fallback where ONNX Runtime is missing)', async () => {
  const means = onehotMeans(3, 8, 3);
  const train = clusters(means, [30, 30, 30], 1, 1);
  const val = clusters(means, [10, 10, 10], 1, 2);
  const opts = { epochs: 6, batchSize: 16, hiddenUnits: 16, learningRate: 0.01, seed: 3, patience: 0 };
  const a = await core.trainHead(train, val, 8, 3, opts, {}, undefined, 'tfjs');
  const b = await core.trainHead(train, val, 8, 3, opts, {}, undefined, 'tfjs');
  try {
    assert.deepEqual(strip(a.history), strip(b.history));
    assert.ok(a.history.at(-1).valAccuracy >= 0.9);
  } finally {
    a.model.dispose();
    b.model.dispose();
  }
});
