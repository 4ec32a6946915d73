// ONNX Runtime as the frozen-backbone engine (core.openBackbone({engine})):
// features of the bundled graph backbone agree with TF.js; the converted
// backbone is written into the cache once and reused; the embedding caches of
// the two engines are kept apart; run.json records the engine; eval of an
// ONNX run repeats its test accuracy; a bad --engine is a one-line exit 1.
import assert from 'node:assert/strict';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { tinyBackbone } from './fixtures.mjs';
import { core, runCli, tempDir } from './helpers.mjs';

// Features: max |onnx - tfjs| ≤ 1e-4 × max |tfjs feature| (float32 in a different order).
const REL_TOL = 1e-4;

test('openBackbone engine onnx vs tfjs: same features within 1e-4 x max; the .onnx is converted once into cacheDir/onnx and reused', async (t) => {
  const dir = await tempDir(t);
  const cacheDir = path.join(dir, 'cache');
  const files = Object.values(await core.makeSampleDataset(path.join(dir, 'data'), { classes: 3, perClass: 2, size: 96, seed: 11 })).flat();
  assert.equal(files.length, 6);
  const items = await Promise.all(files.map(async (f) => ({ path: f, hash: await core.sha256File(f) })));

  const onnx = await core.openBackbone('mobilenet-v2-140', { engine: 'onnx', cacheDir, workers: 1 });
  let fromOnnx;
  try {
    assert.equal(onnx.engine, 'onnxruntime');
    assert.equal(onnx.engineNote, undefined);
    fromOnnx = await onnx.extract(items);
    assert.equal(fromOnnx.computed, 6);
  } finally {
    onnx.dispose();
  }
  const onnxDir = path.join(cacheDir, 'onnx');
  const converted = (await readdir(onnxDir)).filter((f) => f.endsWith('.onnx'));
  assert.equal(converted.length, 1, `one converted backbone: ${converted}`);
  assert.match(converted[0], /^mobilenet-v2-140-[0-9a-f]{16}-[0-9a-f]{8}-c\d+\.onnx$/);
  const file = path.join(onnxDir, converted[0]);
  const before = await stat(file);

  const tfjs = await core.openBackbone('mobilenet-v2-140', { engine: 'tfjs', cacheDir, workers: 1 });
  let fromTfjs;
  try {
    assert.equal(tfjs.engine, 'tfjs-wasm');
    fromTfjs = await tfjs.extract(items);
    assert.equal(fromTfjs.computed, 6, 'the TF.js engine does not read the ONNX engine\'s cache');
  } finally {
    tfjs.dispose();
  }
  assert.equal(fromOnnx.features.size, 6);
  assert.equal(fromTfjs.features.size, 6);
  let maxDiff = 0;
  let maxAbs = 0;
  for (const it of items) {
    const a = fromOnnx.features.get(it.hash);
    const b = fromTfjs.features.get(it.hash);
    assert.equal(a.length, 1792);
    assert.equal(b.length, 1792);
    for (let i = 0; i < b.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
      maxAbs = Math.max(maxAbs, Math.abs(b[i]));
    }
  }
  t.diagnostic(`mobilenet-v2-140 features, 6 images: max |onnx - tfjs| = ${maxDiff.toExponential(2)}, max |tfjs| = ${maxAbs.toPrecision(3)} (tolerance ${REL_TOL} x max)`);
  assert.ok(maxDiff <= REL_TOL * maxAbs, `${maxDiff} > ${REL_TOL} x ${maxAbs}`);

  // A second ONNX open reuses the converted file (not rewritten) and serves the features from its cache.
  const again = await core.openBackbone('mobilenet-v2-140', { engine: 'onnx', cacheDir, workers: 1 });
  try {
    const res = await again.extract(items);
    assert.equal(res.features.size, 6);
    assert.equal(res.computed, 0);
    assert.equal(res.cached, 6);
    for (const it of items) assert.deepEqual(res.features.get(it.hash), fromOnnx.features.get(it.hash));
  } finally {
    again.dispose();
  }
  const after = await stat(file);
  assert.equal(after.mtimeMs, before.mtimeMs, 'the converted backbone was not written again');
  assert.equal(after.ino, before.ino);
  assert.deepEqual((await readdir(onnxDir)).filter((f) => f.endsWith('.onnx')), converted);

  await assert.rejects(core.openBackbone('mobilenet-v2-140', { engine: 'bogus', cacheDir }), (err) => err instanceof core.HeadstartError && err.code === 'BAD_INPUT' && /--engine/.test(err.message));
});

test('CLI --engine: tfjs then onnx runs keep separate embedding caches; run.json engine; eval of an onnx run repeats its accuracy; --engine bogus exits 1', async (t) => {
  const dir = await tempDir(t);
  const cacheDir = path.join(dir, 'cache');
  const data = path.join(dir, 'data');
  await core.makeSampleDataset(data, { classes: 3, perClass: 6, size: 96, seed: 4 });
  const train = async (engine, name) => {
    const r = await runCli(['train', data, '--backbone', 'mobilenet-v2-140', '--engine', engine, '--workers', '1', '--epochs', '6', '--seed', '3', '--out', path.join(dir, name), '--cache', cacheDir, '--json', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    const record = JSON.parse(await readFile(path.join(dir, name, 'run.json'), 'utf8'));
    return { res, record };
  };
  const tf1 = await train('tfjs', 'run-tfjs');
  assert.equal(tf1.record.engine, 'tfjs-wasm');
  assert.equal(tf1.res.engine, 'tfjs-wasm');
  assert.equal(tf1.res.timings.extracted, 18);
  const on1 = await train('onnx', 'run-onnx');
  assert.equal(on1.record.engine, 'onnxruntime');
  assert.equal(on1.res.engine, 'onnxruntime');
  // Nothing served from the TF.js engine's cache: the ONNX run extracts every image itself.
  assert.equal(on1.res.timings.extracted, 18, `onnx run after a tfjs run: ${JSON.stringify(on1.res.timings)}`);
  assert.equal(on1.res.timings.cached, 0);
  const on2 = await train('onnx', 'run-onnx-2');
  assert.equal(on2.res.timings.extracted, 0, 'a second onnx run is served from its own cache');
  assert.equal(on2.res.timings.cached, 18);
  t.diagnostic(`extraction: tfjs ${tf1.res.timings.imagesPerSecond.toFixed(1)} images/s, onnxruntime ${on1.res.timings.imagesPerSecond.toFixed(1)} images/s (1 thread)`);

  const ev = await runCli(['eval', path.join(dir, 'run-onnx'), '--cache', cacheDir, '--json', '--quiet']);
  assert.equal(ev.code, 0, ev.stderr);
  const evRes = JSON.parse(ev.stdout);
  assert.equal(evRes.accuracy, on1.record.test.accuracy, 'eval repeats the test accuracy of the run');
  assert.deepEqual(evRes.confusion, on1.record.test.confusion);

  const bad = await runCli(['train', data, '--engine', 'bogus', '--out', path.join(dir, 'never'), '--cache', cacheDir]);
  assert.equal(bad.code, 1);
  const lines = bad.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${bad.stderr}`);
  assert.match(lines[0], /--engine/);
  assert.match(lines[0], /bogus/);
  assert.equal(bad.stdout, '');
  await assert.rejects(stat(path.join(dir, 'never')));
});

test('a local model retrained in place (same model.json, new weights): the ONNX engine converts it again and extracts fresh features', async (t) => {
  const dir = await tempDir(t);
  const cacheDir = path.join(dir, 'cache');
  const modelJson = await tinyBackbone(path.join(dir, 'bb'), { size: 32 });
  const files = Object.values(await core.makeSampleDataset(path.join(dir, 'data'), { classes: 2, perClass: 2, size: 48, seed: 2 })).flat();
  const items = await Promise.all(files.map(async (f) => ({ path: f, hash: await core.sha256File(f) })));
  const extract = async (engine) => {
    const opened = await core.openBackbone(modelJson, { engine, cacheDir, workers: 1 });
    try {
      assert.equal(opened.backbone.entry.featureSize, 16, 'a local model: feature size measured');
      const res = await opened.extract(items);
      return { res, hash: opened.backbone.modelHash };
    } finally {
      opened.dispose();
    }
  };
  const first = await extract('onnx');
  const ref = await extract('tfjs');
  const maxOf = (res) => Math.max(...items.flatMap((it) => Array.from(res.features.get(it.hash), Math.abs)));
  const diff = (a, b) => Math.max(...items.flatMap((it) => Array.from(a.features.get(it.hash), (v, i) => Math.abs(v - b.features.get(it.hash)[i]))));
  assert.ok(diff(first.res, ref.res) <= REL_TOL * maxOf(ref.res), 'local model: onnx and tfjs features agree');

  // Retrain in place: same architecture and layer names (model.json byte for byte), other weights.
  const json = await readFile(modelJson);
  const weights = await readFile(path.join(dir, 'bb', 'weights.bin'));
  const w = new Float32Array(weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.length));
  for (let i = 0; i < w.length; i++) w[i] = w[i] * 1.5 + 0.01;
  await writeFile(path.join(dir, 'bb', 'weights.bin'), Buffer.from(w.buffer));
  assert.ok((await readFile(modelJson)).equals(json));

  const second = await extract('onnx');
  assert.notEqual(second.hash, first.hash, 'the model hash covers the weights');
  assert.equal(second.res.computed, items.length, 'no stale features from the cache');
  assert.equal((await readdir(path.join(cacheDir, 'onnx'))).filter((f) => f.endsWith('.onnx')).length, 2, 'converted again');
  const ref2 = await extract('tfjs');
  assert.equal(ref2.res.computed, items.length);
  assert.ok(diff(second.res, ref2.res) <= REL_TOL * maxOf(ref2.res), 'the new ONNX conversion has the new weights');
  assert.ok(diff(second.res, first.res) > 1e-3, 'features changed with the weights');
});

test('a backbone the converter cannot take: engine auto falls back to TF.js with a note, engine onnx is a BAD_MODEL error', async (t) => {
  const dir = await tempDir(t);
  const cacheDir = path.join(dir, 'cache');
  const { tf } = await import('./helpers.mjs');
  await core.initBackend();
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [16, 16, 3], filters: 4, kernelSize: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.leakyReLU({ alpha: 0.1, name: 'leaky' }),
      tf.layers.globalAveragePooling2d({}),
    ],
  });
  await model.save(core.dirSaver(path.join(dir, 'bb')));
  model.dispose();
  const modelJson = path.join(dir, 'bb', 'model.json');
  const files = Object.values(await core.makeSampleDataset(path.join(dir, 'data'), { classes: 1, perClass: 2, size: 32, seed: 3 })).flat();
  const items = await Promise.all(files.map(async (f) => ({ path: f, hash: await core.sha256File(f) })));

  const warnings = [];
  const auto = await core.openBackbone(modelJson, { engine: 'auto', cacheDir, workers: 1 }, { onEvent: (e) => e.type === 'warning' && warnings.push(e.message) });
  try {
    assert.equal(auto.engine, 'tfjs-wasm');
    assert.match(auto.engineNote, /LeakyReLU/);
    assert.deepEqual(warnings, [auto.engineNote]);
    const res = await auto.extract(items);
    assert.equal(res.features.size, 2);
  } finally {
    auto.dispose();
  }
  await assert.rejects(core.openBackbone(modelJson, { engine: 'onnx', cacheDir, workers: 1 }), (err) => err instanceof core.HeadstartError && err.code === 'BAD_MODEL' && /LeakyReLU/.test(err.message) && /leaky/.test(err.message));
  const left = await readdir(path.join(cacheDir, 'onnx')).catch(() => []);
  assert.deepEqual(left, [], 'no half-written conversion left in the cache');
});

test('the vector cache writes atomically, reads back, and makes its folder again when it was removed mid-run', async (t) => {
  const dir = await tempDir(t);
  const { rm } = await import('node:fs/promises');
  const cache = new core.VectorCache(dir, 'k', 3);
  const hash = 'ab' + '0'.repeat(62);
  await cache.put(hash, Float32Array.of(1, 2, 3));
  assert.deepEqual([...(await cache.get(hash))], [1, 2, 3]);
  // The cache folder is cleared while the same VectorCache keeps writing (it remembers made folders).
  await rm(path.join(dir, 'embeddings'), { recursive: true, force: true });
  await cache.put(hash, Float32Array.of(4, 5, 6));
  assert.deepEqual([...(await cache.get(hash))], [4, 5, 6]);
  const files = await readdir(path.join(cache.dir, 'ab'));
  assert.deepEqual(files, [`${hash}.f32`], 'no temp file is left beside the vector');
});
