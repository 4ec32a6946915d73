// A training run end to end on the tiny backbone: what run.json records
// (backend, config, history, metrics, baseline, timings), the embedding
// cache (reuse, and recompute of exactly the changed file), and the worker
// pool giving the same features as in-process extraction.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { core, tempDir, tf } from './helpers.mjs';
import { colourDataset, fastTrain, noisyImage, tinyBackbone } from './fixtures.mjs';

test('trainRun writes run.json with the backend, config, history, test metrics, baseline and timings', async (t) => {
  const dir = await tempDir(t);
  const backbone = await tinyBackbone(path.join(dir, 'tiny'));
  const data = path.join(dir, 'data');
  await colourDataset(data, { classes: { red: 'red', green: 'green', blue: 'blue' }, perClass: 8 });
  const out = path.join(dir, 'run');
  const events = [];
  const res = await core.trainRun(fastTrain(backbone, data, out, path.join(dir, 'cache'), { epochs: 6, seed: 9 }), { onEvent: (e) => events.push(e) });
  const backend = await core.initBackend();
  assert.equal(res.backend, backend.name);
  // engine auto: ONNX Runtime where it loads (it does here), else TF.js on the backend.
  assert.equal(res.engine, core.loadOrt() ? 'onnxruntime' : `tfjs-${backend.name}`);
  assert.equal(res.runDir, out);

  const record = JSON.parse(await readFile(path.join(out, 'run.json'), 'utf8'));
  assert.equal(record.version, core.RUN_VERSION);
  assert.equal(record.backend, backend.name);
  assert.equal(record.backbone.id, `local:${backbone}`);
  assert.equal(record.backbone.featureSize, 16);
  assert.equal(record.backbone.inputSize, 32);
  assert.deepEqual(record.labels, ['blue', 'green', 'red']);
  assert.equal(record.config.epochs, 6);
  assert.equal(record.config.seed, 9);
  assert.equal(record.config.data, data);
  assert.equal(record.config.val, 0.15);
  assert.ok(!('cacheDir' in record.config) && !('out' in record.config));
  assert.equal(record.history.length, res.epochs);
  assert.ok(record.bestEpoch >= 1 && record.bestEpoch <= record.history.length);
  assert.equal(record.dataset.total, 24);
  for (const c of record.labels) assert.deepEqual(Object.keys(record.dataset.counts[c]), ['train', 'val', 'test', 'total']);
  assert.equal(record.samples.length, 24);
  assert.equal(record.samples.filter((s) => s.split === 'test').length, record.test.count);
  assert.deepEqual(record.test, res.test);
  assert.equal(record.test.confusion.length, 3);
  assert.equal(record.test.confusion.flat().reduce((a, b) => a + b, 0), record.test.count);

  // Baseline: raw pixels on the same split, with a verdict.
  const b = res.baseline;
  assert.ok(b.accuracy >= 0 && b.accuracy <= 1);
  assert.ok(Math.abs(b.gainPoints - (res.test.accuracy - b.accuracy) * 100) < 1e-9);
  assert.ok(typeof b.verdict === 'string' && b.verdict.length > 20);
  assert.match(b.description, /raw pixels/);
  assert.deepEqual(record.baseline, b);
  assert.equal(b.interval.n, record.test.count);
  assert.ok(b.interval.low <= b.accuracy && b.accuracy <= b.interval.high);
  assert.equal(typeof b.cvAccuracy, 'number', 'the baseline ran on the same folds');
  assert.equal(b.wins, b.cvAccuracy > record.selection.results.find((r) => r.name === record.selection.chosen).meanAccuracy);

  // Cross-validated selection on every non-test image, then a refit on all of them.
  const sel = record.selection;
  const nonTest = record.samples.filter((s) => s.split !== 'test').length;
  assert.equal(sel.sources, nonTest);
  assert.equal(sel.method, 'stratified-k-fold');
  assert.equal(sel.folds, 5);
  assert.ok(sel.results.length >= 2 && sel.results.every((r) => r.foldAccuracies.length === 5 && typeof r.stdAccuracy === 'number'));
  assert.ok(sel.results.some((r) => r.name === sel.chosen) && sel.reason.length > 10);
  assert.equal(sel.refitEpochs, 6, '--epochs fixes the epochs');
  assert.equal(record.history.length, 6);
  const refit = events.filter((e) => e.type === 'batch');
  assert.ok(refit.length > 0 && refit.every((e) => e.batches === Math.ceil(nonTest / core.configHead({ ...core.HEAD_DEFAULTS, ...fastTrain(backbone, data, out, '', {}) }, sel.results.find((r) => r.name === sel.chosen), true).batchSize)), 'the refit trains on every non-test image');
  assert.deepEqual(res.selection.chosen, sel.chosen);
  assert.equal(record.test.interval.n, record.test.count);
  assert.match(record.test.warning, /under 30 per class/);

  const tm = record.timings;
  assert.equal(tm.extracted, 24);
  assert.equal(tm.cached, 0);
  assert.equal(tm.workers, 1);
  assert.ok(tm.totalSeconds >= tm.trainSeconds && tm.trainSeconds > 0);

  // Events: phases in order, an epoch event per epoch.
  const phases = events.filter((e) => e.type === 'phase').map((e) => e.phase);
  assert.deepEqual(phases, ['scan', 'backend', 'extract', 'train', 'train', 'evaluate'], 'train: cross-validation, then the refit');
  assert.equal(events.filter((e) => e.type === 'epoch').length, res.epochs);
  assert.ok(events.some((e) => e.type === 'warning' && /few images/.test(e.message)));

  // The head is saved and reloads; eval on the test split repeats the figure.
  const ev = await core.evalRun(out, undefined, { cacheDir: path.join(dir, 'cache'), workers: 1 });
  assert.equal(ev.accuracy, res.test.accuracy);
  assert.deepEqual(ev.confusion, res.test.confusion);
  assert.equal(ev.source, 'test-split');
});

test('embedding cache: a second run extracts nothing; changing one file recomputes exactly that one', async (t) => {
  const dir = await tempDir(t);
  const backbone = await tinyBackbone(path.join(dir, 'tiny'));
  const data = path.join(dir, 'data');
  const files = await colourDataset(data, { classes: { red: 'red', blue: 'blue' }, perClass: 6, seed: 2 });
  const cache = path.join(dir, 'cache');
  const run = (name, extra) => core.trainRun(fastTrain(backbone, data, path.join(dir, name), cache, extra));

  const first = await run('r1');
  assert.equal(first.timings.extracted, 12);
  assert.equal(first.timings.cached, 0);
  const second = await run('r2', { epochs: 2, learningRate: 0.01 });
  assert.equal(second.timings.extracted, 0, 'nothing recomputed');
  assert.equal(second.timings.cached, 12);

  // Same name, new content.
  const changed = files.red[3];
  const before = await core.sha256File(changed);
  await noisyImage(changed, { r: 250, g: 250, b: 250 }, new core.Rng(77));
  assert.notEqual(await core.sha256File(changed), before);
  const third = await run('r3');
  assert.equal(third.timings.extracted, 1, 'exactly the changed file');
  assert.equal(third.timings.cached, 11);
  const rec = JSON.parse(await readFile(path.join(dir, 'r3', 'run.json'), 'utf8'));
  assert.equal(rec.samples.find((s) => changed.endsWith(s.rel)).hash, await core.sha256File(changed));

  // Another backbone never reads these features.
  const other = await tinyBackbone(path.join(dir, 'tiny2'), { seed: 5 });
  const fourth = await core.trainRun(fastTrain(other, data, path.join(dir, 'r4'), cache));
  assert.equal(fourth.timings.extracted, 12);
  assert.equal(fourth.timings.cached, 0);
});

test('extraction: a pool of 2 worker threads gives the same features as in-process extraction', async (t) => {
  const dir = await tempDir(t);
  const backbone = await tinyBackbone(path.join(dir, 'tiny'), { size: 48 });
  const files = await colourDataset(path.join(dir, 'data'), { classes: { a: 'red', b: 'yellow', c: 'blue' }, perClass: 7, seed: 3, ext: 'jpg' });
  const items = await Promise.all(Object.values(files).flat().map(async (p) => ({ path: p, hash: await core.sha256File(p) })));
  const pooled = await core.openBackbone(backbone, { workers: 2, cacheDir: path.join(dir, 'c2'), batchSize: 4 });
  t.after(() => pooled.dispose());
  if (pooled.backend.multiThreaded) {
    t.skip(`backend ${pooled.backend.name} is multi-threaded itself; no pool is used`);
    return;
  }
  const tensors = tf.memory().numTensors;
  const single = await core.openBackbone(backbone, { workers: 1, cacheDir: path.join(dir, 'c1'), batchSize: 4 });
  const a = await pooled.extract(items);
  const b = await single.extract(items);
  single.dispose();
  assert.equal(tf.memory().numTensors, tensors, 'in-process extraction frees every tensor it made');
  assert.equal(a.computed, 21);
  assert.equal(b.computed, 21);
  assert.equal(a.cached + b.cached, 0, 'separate caches: both computed');
  for (const it of items) {
    const fa = a.features.get(it.hash);
    const fb = b.features.get(it.hash);
    assert.equal(fa.length, 16);
    assert.deepEqual(Array.from(fa), Array.from(fb), path.basename(it.path));
    assert.deepEqual(Array.from(a.thumbs.get(it.hash)), Array.from(b.thumbs.get(it.hash)));
  }
  // And the run records the pool size it used.
  const res = await core.trainRun({ ...fastTrain(backbone, path.join(dir, 'data'), path.join(dir, 'run'), path.join(dir, 'c3')), workers: undefined });
  assert.equal(res.timings.workers, core.defaultWorkers());
});
