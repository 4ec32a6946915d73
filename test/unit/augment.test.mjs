// Augmentation (--augment K, --aug ops): views drawn deterministically per
// (content hash, k, seed) and cached under their own keys; what applyView does
// to pixels; option parsing and ranges; and in a run: views only of training
// images, each extracted once, new views when the options change.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { core, runCli, tempDir } from './helpers.mjs';
import { colourDataset, fastTrain, tinyBackbone } from './fixtures.mjs';

const ALL_ON = core.normaliseAugment({ views: 4 });
const hashes = ['abc', 'abd', 'some image'].map((s) => core.sha256(s));

test('drawView is deterministic for (hash, k, seed), and differs across k, hashes and seeds', () => {
  for (const h of hashes) {
    const seen = new Set();
    for (let k = 0; k < 8; k++) {
      const v = core.drawView(h, k, 42, ALL_ON);
      assert.deepEqual(core.drawView(h, k, 42, ALL_ON), v, 'same inputs, same view');
      seen.add(JSON.stringify(v));
      // Within the configured ranges.
      assert.ok(Math.abs(v.angle) <= ALL_ON.rotate && Math.abs(v.brightness) <= ALL_ON.brightness && Math.abs(v.contrast) <= ALL_ON.contrast);
      const [left, top, side] = v.crop;
      assert.ok(side >= 1 - ALL_ON.crop && side <= 1 && left >= 0 && top >= 0 && left + side <= 1 + 1e-12 && top + side <= 1 + 1e-12, JSON.stringify(v.crop));
      assert.equal(typeof v.flip, 'boolean');
    }
    assert.equal(seen.size, 8, 'each k draws its own view');
  }
  assert.notDeepEqual(core.drawView(hashes[0], 0, 42, ALL_ON), core.drawView(hashes[1], 0, 42, ALL_ON));
  assert.notDeepEqual(core.drawView(hashes[0], 0, 42, ALL_ON), core.drawView(hashes[0], 0, 43, ALL_ON));
  // Flip is drawn both ways over many views; off when the option is off.
  const flips = Array.from({ length: 64 }, (_, k) => core.drawView(hashes[2], k, 1, ALL_ON).flip);
  assert.ok(flips.includes(true) && flips.includes(false));
  const noFlip = core.normaliseAugment({ views: 4, flip: false });
  assert.ok(Array.from({ length: 64 }, (_, k) => core.drawView(hashes[2], k, 1, noFlip).flip).every((f) => f === false));
  // All ops off: the identity view.
  const off = core.normaliseAugment(core.parseAugmentSpec('', 1));
  assert.deepEqual(JSON.parse(JSON.stringify(core.drawView(hashes[0], 3, 1, off))), { flip: false, angle: 0, crop: [0, 0, 1], brightness: 0, contrast: 0 });
});

test('viewKey never equals the content hash and differs per view', () => {
  const keys = new Set();
  for (const h of hashes) {
    for (let k = 0; k < 6; k++) {
      const v = core.drawView(h, k, 7, ALL_ON);
      const key = core.viewKey(h, v);
      assert.match(key, /^[0-9a-f]{64}$/);
      assert.notEqual(key, h);
      assert.ok(!hashes.includes(key));
      assert.equal(core.viewKey(h, v), key);
      keys.add(key);
    }
  }
  assert.equal(keys.size, hashes.length * 6);
  // The identity view still gets its own key: it is not served the plain image's vector by accident of naming.
  const id = { flip: false, angle: 0, crop: [0, 0, 1], brightness: 0, contrast: 0 };
  assert.notEqual(core.viewKey(hashes[0], id), hashes[0]);
});

test('applyView: size x size x 3 out, differs from the input; a flip-only view is an exact mirror', async () => {
  const size = 32;
  const rng = new core.Rng(5);
  const rgb = new Uint8Array(size * size * 3).map(() => 30 + Math.floor(rng.next() * 190));
  const mirror = new Uint8Array(rgb.length);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) for (let c = 0; c < 3; c++) mirror[(y * size + x) * 3 + c] = rgb[(y * size + (size - 1 - x)) * 3 + c];

  const flipOnly = await core.applyView(rgb, size, { flip: true, angle: 0, crop: [0, 0, 1], brightness: 0, contrast: 0 });
  assert.equal(flipOnly.length, size * size * 3);
  assert.deepEqual(Buffer.from(flipOnly), Buffer.from(mirror), 'flip-only view is the mirror image, bit for bit');
  const identity = await core.applyView(rgb, size, { flip: false, angle: 0, crop: [0, 0, 1], brightness: 0, contrast: 0 });
  assert.deepEqual(Buffer.from(identity), Buffer.from(rgb), 'the identity view leaves pixels alone');
  const input = Buffer.from(rgb);

  for (let k = 0; k < 4; k++) {
    const v = core.drawView(hashes[0], k, 3, ALL_ON);
    const out = await core.applyView(rgb, size, v);
    assert.ok(out instanceof Uint8Array);
    assert.equal(out.length, size * size * 3);
    assert.ok(!Buffer.from(out).equals(input), `view ${k} changes the image`);
    assert.deepEqual(Buffer.from(await core.applyView(rgb, size, v)), Buffer.from(out), 'deterministic');
  }
  // Each op on its own changes the pixels; brightness raises the mean.
  const mean = (a) => a.reduce((s, x) => s + x, 0) / a.length;
  for (const op of [{ angle: 10 }, { crop: [0.1, 0.1, 0.8] }, { brightness: 0.2 }, { contrast: 0.3 }]) {
    const out = await core.applyView(rgb, size, { flip: false, angle: 0, crop: [0, 0, 1], brightness: 0, contrast: 0, ...op });
    assert.equal(out.length, size * size * 3);
    assert.ok(!Buffer.from(out).equals(input), JSON.stringify(op));
  }
  const brighter = await core.applyView(rgb, size, { flip: false, angle: 0, crop: [0, 0, 1], brightness: 0.1, contrast: 0 });
  assert.ok(Math.abs(mean(brighter) - mean(rgb) - 25.5) < 1, `brightness 0.1 adds ~25.5 (got ${mean(brighter) - mean(rgb)})`);
});

test('parseAugmentSpec and normaliseAugment: listed ops on, others off; unknown ops and out-of-range values rejected', () => {
  assert.deepEqual(core.parseAugmentSpec('flip,crop=0.1,rotate=5', 3), { views: 3, flip: true, crop: 0.1, rotate: 5, brightness: 0, contrast: 0 });
  assert.deepEqual(core.parseAugmentSpec(' brightness , contrast=0.3 ', 2), { views: 2, flip: false, crop: 0, rotate: 0, brightness: 0.2, contrast: 0.3 });
  assert.equal(core.parseAugmentSpec('flip=0', 1).flip, false);
  const bad = (fn, re) => assert.throws(fn, (e) => e instanceof core.HeadstartError && e.code === 'BAD_INPUT' && re.test(e.message));
  bad(() => core.parseAugmentSpec('flip,blur=2', 2), /unknown augmentation 'blur'/);
  bad(() => core.parseAugmentSpec('rotate=lots', 2), /--aug rotate must be a number from 0 to 45 \(got lots\)/);

  assert.deepEqual(core.normaliseAugment({ views: 2 }), { views: 2, flip: true, crop: 0.15, rotate: 10, brightness: 0.2, contrast: 0.2 });
  assert.equal(core.normaliseAugment({ views: 32 }).views, 32);
  assert.equal(core.normaliseAugment({ views: 0 }).views, 0);
  bad(() => core.normaliseAugment({ views: 33 }), /--augment must be a whole number from 0 to 32 \(got 33\)/);
  bad(() => core.normaliseAugment({ views: 1.5 }), /--augment must be a whole number/);
  bad(() => core.normaliseAugment({ views: -1 }), /--augment must be a whole number/);
  bad(() => core.normaliseAugment({ views: 2, crop: 0.6 }), /--aug crop must be a number from 0 to 0.5 \(got 0.6\)/);
  bad(() => core.normaliseAugment({ views: 2, rotate: 46 }), /--aug rotate must be a number from 0 to 45 \(got 46\)/);
  bad(() => core.normaliseAugment({ views: 2, brightness: 1.5 }), /--aug brightness must be a number from 0 to 1 \(got 1.5\)/);
  bad(() => core.normaliseAugment({ views: 2, contrast: -0.1 }), /--aug contrast must be a number from 0 to 1 \(got -0.1\)/);
  bad(() => core.normaliseAugment({ views: 2, rotate: NaN }), /rotate/);
});

/** Cached vectors per key under cacheDir/embeddings/<key>/ (thumbnails under thumb* keys). */
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

const featureCount = (counts) => {
  const keys = Object.keys(counts).filter((k) => !k.startsWith('thumb'));
  assert.equal(keys.length, 1, `one feature cache key (${keys})`);
  return counts[keys[0]];
};

test('trainRun --augment 2: views of non-test images only (the head is refit on all of them), each extracted once and cached; new options draw new views', async (t) => {
  const dir = await tempDir(t);
  const cache = path.join(dir, 'cache');
  const backbone = await tinyBackbone(path.join(dir, 'tiny'));
  const data = path.join(dir, 'data');
  await colourDataset(data, { classes: { red: 'red', green: 'green', blue: 'blue' }, perClass: 8, seed: 13 });
  // The view pass's extraction line, from the events after the 'augmenting' phase.
  const train = async (name, augment) => {
    const events = [];
    await core.trainRun(fastTrain(backbone, data, path.join(dir, name), cache, { seed: 4, augment }), { onEvent: (e) => e.type === 'phase' && events.push(e.message) });
    const record = JSON.parse(await readFile(path.join(dir, name, 'run.json'), 'utf8'));
    const i = events.findIndex((m) => /^augmenting: /.test(m));
    return { record, events, augmenting: events[i], viewLine: i >= 0 ? events[i + 1] : undefined };
  };

  const a = await train('a', { views: 2 });
  // The head is chosen by cross-validation on every non-test image and refit on them: each gets views.
  const nTrain = a.record.samples.filter((s) => s.split !== 'test').length;
  assert.ok(nTrain >= 12 && nTrain < 24, `non-test images ${nTrain}`);
  assert.deepEqual(a.record.augmentation, { views: 2, flip: true, crop: 0.15, rotate: 10, brightness: 0.2, contrast: 0.2, vectors: 2 * nTrain });
  assert.equal(a.augmenting, `augmenting: 2 views of each of ${nTrain} training images`);
  assert.equal(a.viewLine, `extracting features of ${2 * nTrain} images (0 cached)`);
  assert.ok(a.events.some((m) => new RegExp(`^refitting .* on all ${3 * nTrain} non-test vectors`).test(m)), a.events.join('\n'));
  // timings count the plain images and the views.
  assert.deepEqual([a.record.timings.extracted, a.record.timings.cached], [24 + 2 * nTrain, 0]);
  // 24 plain images + exactly 2 views per non-test image: test images get none.
  assert.equal(featureCount(await cacheCounts(cache)), 24 + 2 * nTrain);
  assert.equal(a.record.test.count + nTrain, 24);

  // The same run again: every view comes from the cache, same result.
  const b = await train('b', { views: 2 });
  assert.equal(b.viewLine, `all ${2 * nTrain} images cached; no backbone pass needed`);
  assert.deepEqual([b.record.timings.extracted, b.record.timings.cached], [0, 24 + 2 * nTrain]);
  assert.equal(featureCount(await cacheCounts(cache)), 24 + 2 * nTrain);
  assert.deepEqual(b.record.test, a.record.test);
  assert.deepEqual(b.record.history.map((h) => h.loss), a.record.history.map((h) => h.loss));

  // Other options (a smaller rotation): new views, none served from the old ones.
  const c = await train('c', { views: 2, rotate: 3 });
  assert.equal(c.record.augmentation.rotate, 3);
  assert.equal(c.viewLine, `extracting features of ${2 * nTrain} images (0 cached)`);
  assert.equal(featureCount(await cacheCounts(cache)), 24 + 4 * nTrain);

  // One more view (k = 2) reuses views 0 and 1: only the new one is extracted.
  const d = await train('d', { views: 3, rotate: 3 });
  assert.equal(d.viewLine, `extracting features of ${nTrain} images (${2 * nTrain} cached)`);
  assert.equal(d.record.augmentation.vectors, 3 * nTrain);

  // views 0: no augmentation at all.
  const e = await train('e', { views: 0 });
  assert.equal(e.record.augmentation, undefined);
  assert.equal(e.augmenting, undefined);
});

test('--augment with --unfreeze: views are boundary activations; CLI --augment / --aug reach run.json', async (t) => {
  const dir = await tempDir(t);
  const cache = path.join(dir, 'cache');
  const backbone = await tinyBackbone(path.join(dir, 'tiny'));
  const data = path.join(dir, 'data');
  await colourDataset(data, { perClass: 8, seed: 17 });

  await core.trainRun(fastTrain(backbone, data, path.join(dir, 'ft'), cache, { seed: 4, unfreeze: 1, epochs: 3, augment: { views: 2 } }));
  const ft = JSON.parse(await readFile(path.join(dir, 'ft', 'run.json'), 'utf8'));
  const nTrain = ft.samples.filter((s) => s.split === 'train').length;
  assert.equal(ft.augmentation.vectors, 2 * nTrain);
  assert.ok(ft.unfreeze && ft.unfreeze.trainable.length === 1, JSON.stringify(ft.unfreeze));
  assert.equal(featureCount(await cacheCounts(cache)), 16 + 2 * nTrain, 'views cached at the boundary, under its key');
  assert.ok(existsSync(path.join(dir, 'ft', 'top', 'model.json')));

  const env = { HEADSTART_CACHE_DIR: cache };
  const tr = await runCli(['train', data, '--backbone', backbone, '--out', path.join(dir, 'cli'), '--epochs', '2', '--workers', '1', '--augment', '1', '--aug', 'flip,rotate=5', '--json'], { env });
  assert.equal(tr.code, 0, tr.stderr);
  const cli = JSON.parse(await readFile(path.join(dir, 'cli', 'run.json'), 'utf8'));
  // Without --unfreeze the head is refit on every non-test image: each gets its view.
  const nonTest = cli.samples.filter((s) => s.split !== 'test').length;
  assert.deepEqual(cli.augmentation, { views: 1, flip: true, crop: 0, rotate: 5, brightness: 0, contrast: 0, vectors: nonTest });

  const bad = await runCli(['train', data, '--backbone', backbone, '--out', path.join(dir, 'bad'), '--augment', '2', '--aug', 'flip,sharpen'], { env });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr.trim().split('\n').at(-1), /^headstart: .*unknown augmentation 'sharpen'/);
  const many = await runCli(['train', data, '--backbone', backbone, '--out', path.join(dir, 'bad'), '--augment', '33'], { env });
  assert.equal(many.code, 1);
  assert.match(many.stderr.trim().split('\n').at(-1), /--augment must be a whole number from 0 to 32/);
  assert.ok(!existsSync(path.join(dir, 'bad')));
});
