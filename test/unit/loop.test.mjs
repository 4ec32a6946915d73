// The one training loop (src/core/train/loop.ts) behind every trainer: head
// training on both engines' TF.js path, distillation (soft targets),
// fine-tuning of a backbone's top with the head, and pruning. Each emits the
// same batch and epoch events, and an AbortSignal aborted from the first
// batch event stops it after that batch (CancelledError, no second batch
// event, no tensor left behind).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { core, tf } from './helpers.mjs';

await core.initBackend('wasm');

const K = 3;
const DIM = 8;

/** n rows of `per` values; class c lifts every third value from c on, so the classes are learnable. */
function rows(n, per, seed) {
  const rng = new core.Rng(seed);
  const x = new Float32Array(n * per);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % K;
    for (let j = 0; j < per; j++) x[i * per + j] = rng.next() + (j % K === y[i] ? 0.5 : 0);
  }
  return { x, y };
}

/** A small convolutional backbone's top (one conv above the boundary, pooled), as fine-tuning gets it. */
function convTop() {
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 6, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'c1', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
  m.add(tf.layers.conv2d({ filters: DIM, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c2', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
  m.add(tf.layers.globalAveragePooling2d({ name: 'gap' }));
  const boundary = core.findBoundary(m, 'gap', 1);
  return { backbone: m, boundary, top: core.buildTop(m, boundary, true) };
}

/** Softmax rows of a fixed "teacher" for distillation. */
function softTargets(y) {
  const s = new Float32Array(y.length * K).fill(0.1);
  y.forEach((c, i) => (s[i * K + c] = 0.8));
  return s;
}

/**
 * The trainers under test, each a function of `progress` that trains and
 * returns something to dispose. Batches of 8 over 24 rows: 3 batches an epoch.
 */
async function trainers() {
  const train = rows(24, DIM, 1);
  const val = rows(9, DIM, 2);
  const headOpts = { epochs: 2, batchSize: 8, hiddenUnits: 4, patience: 0, seed: 3 };
  const ft = convTop();
  const per = ft.boundary.shape.reduce((a, b) => a * b, 1);
  const ftTrain = rows(24, per, 4);
  const ftVal = rows(9, per, 5);
  const base = await core.trainHead(train, val, DIM, K, { ...headOpts, epochs: 1 }, {}, undefined, 'tfjs');
  const list = [
    ['head (tfjs)', async (p) => (await core.trainHead(train, val, DIM, K, headOpts, p, undefined, 'tfjs')).model],
    ['distillation', async (p) => (await core.trainHead({ ...train, soft: softTargets(train.y) }, val, DIM, K, headOpts, p, { temperature: 4, alpha: 0.7 })).model],
    ['fine-tuning', async (p) => (await core.fineTune(ft.top, base.model, ft.boundary, ftTrain, ftVal, K, { batchSize: 8, patience: 0 }, { epochs: 2 }, p), undefined)],
    ['pruning', async (p) => (await core.pruneHead(base.model, train, val, DIM, K, 0.5, { steps: 2, epochsPerStep: 2, batchSize: 8, seed: 1 }, p)).head],
  ];
  const dispose = () => {
    base.model.dispose();
    ft.top.dispose();
    ft.backbone.dispose();
  };
  return { list, dispose };
}

const BATCH_KEYS = ['accuracy', 'batch', 'batches', 'epoch', 'eta', 'imagesPerSecond', 'loss', 'type'];
const EPOCH_KEYS = ['metrics', 'totalEpochs', 'type'];
const METRIC_KEYS = ['accuracy', 'epoch', 'loss', 'seconds', 'valAccuracy', 'valLoss'];

test('every trainer emits the same batch and epoch events through the shared loop', async () => {
  const { list, dispose } = await trainers();
  try {
    for (const [name, run] of list) {
      const events = [];
      const out = await run({ onEvent: (e) => events.push(e) });
      out?.dispose();
      const batches = events.filter((e) => e.type === 'batch');
      const epochs = events.filter((e) => e.type === 'epoch');
      assert.ok(batches.length >= 6, `${name}: ${batches.length} batch events (2 epochs of 3 batches at least)`);
      assert.ok(epochs.length >= 2, `${name}: ${epochs.length} epoch events`);
      for (const e of batches) {
        assert.deepEqual(Object.keys(e).sort(), BATCH_KEYS, `${name}: batch event keys`);
        assert.equal(e.batches, 3, `${name}: 24 rows in batches of 8`);
        assert.ok(e.batch >= 1 && e.batch <= 3 && Number.isFinite(e.loss) && e.accuracy >= 0 && e.accuracy <= 1 && e.eta >= 0, `${name}: ${JSON.stringify(e)}`);
      }
      for (const e of epochs) {
        assert.deepEqual(Object.keys(e).sort(), EPOCH_KEYS, `${name}: epoch event keys`);
        assert.deepEqual(Object.keys(e.metrics).filter((k) => k !== 'stage').sort(), METRIC_KEYS, `${name}: epoch metrics keys`);
        assert.ok(Number.isFinite(e.metrics.valLoss) && e.metrics.valAccuracy >= 0 && e.metrics.valAccuracy <= 1, `${name}: ${JSON.stringify(e.metrics)}`);
      }
      // Batches count 1..3 within each epoch, and each epoch ends after its third batch.
      const seq = events.filter((e) => e.type === 'batch' || e.type === 'epoch').map((e) => (e.type === 'batch' ? e.batch : 'E'));
      assert.deepEqual(seq, Array.from({ length: epochs.length }, () => [1, 2, 3, 'E']).flat(), `${name}: batch / epoch order`);
      const stages = new Set(epochs.map((e) => e.metrics.stage));
      assert.deepEqual([...stages], [{ 'fine-tuning': 'fine-tune', pruning: 'prune' }[name]], `${name}: stage tag`);
    }
  } finally {
    dispose();
  }
});

test('every trainer stops after the batch whose event aborted the signal: CancelledError, no further batch, no tensor left', async () => {
  const { list, dispose } = await trainers();
  try {
    for (const [name, run] of list) {
      const n0 = tf.memory().numTensors;
      const ac = new AbortController();
      const batches = [];
      const onEvent = (e) => {
        if (e.type !== 'batch') return;
        batches.push(e);
        ac.abort();
      };
      await assert.rejects(run({ onEvent, signal: ac.signal }), (e) => e instanceof core.CancelledError, `${name}: cancelled`);
      assert.deepEqual(batches.map((e) => [e.epoch, e.batch]), [[1, 1]], `${name}: stopped after the first batch`);
      assert.equal(tf.memory().numTensors, n0, `${name}: tensors left after cancelling`);
    }
  } finally {
    dispose();
  }
});
