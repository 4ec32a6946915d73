// Data: discovery (class folders, CSV and JSONL manifests), decoding of every
// supported format and its quirks (grayscale, alpha, EXIF orientation, BMP by
// hand, pixel limit), the seeded stratified split and the summary warnings.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { core, sharp, solidImage, tempDir } from './helpers.mjs';
import { bmp24, noisyImage, pixelAt, pngWithHeader, writeText } from './fixtures.mjs';

const near = (actual, expected, tol, what) =>
  assert.ok(actual.every((v, i) => Math.abs(v - expected[i]) <= tol), `${what}: ${JSON.stringify(actual)} not within ${tol} of ${JSON.stringify(expected)}`);

test('class folders: any depth, sorted, hidden files ignored, stray files reported', async (t) => {
  const dir = await tempDir(t);
  const rng = new core.Rng(1);
  await noisyImage(path.join(dir, 'cats', 'a.png'), { r: 200, g: 0, b: 0 }, rng);
  await noisyImage(path.join(dir, 'cats', 'deep', 'er', 'b.JPG'), { r: 200, g: 0, b: 0 }, rng);
  await noisyImage(path.join(dir, 'dogs', 'c.webp'), { r: 0, g: 0, b: 200 }, rng);
  await writeText(path.join(dir, 'dogs', '.DS_Store'), 'x');
  await writeText(path.join(dir, '.hidden', 'x.png'), 'x');
  await writeText(path.join(dir, 'dogs', 'notes.txt'), 'not an image');
  await writeText(path.join(dir, 'loose.png'), 'x');
  const d = await core.discoverDataset(dir);
  assert.equal(d.kind, 'folders');
  assert.deepEqual(d.samples.map((s) => [s.rel, s.label]), [
    [path.join('cats', 'a.png'), 'cats'],
    [path.join('cats', 'deep', 'er', 'b.JPG'), 'cats'],
    [path.join('dogs', 'c.webp'), 'dogs'],
  ]);
  const reasons = Object.fromEntries(d.skipped.map((s) => [path.basename(s.path), s.reason]));
  assert.deepEqual(Object.keys(reasons).sort(), ['loose.png', 'notes.txt']);
  assert.match(reasons['notes.txt'], /not an image type/);
  assert.match(reasons['loose.png'], /not inside a class folder/);
});

test('CSV manifest: BOM, CRLF, header row (any column order), quoted fields with commas and quotes', async (t) => {
  const dir = await tempDir(t);
  const rng = new core.Rng(2);
  for (const f of ['imgs/a.png', 'imgs/b, c.png', 'imgs/d "e".png', 'imgs/f.png']) await noisyImage(path.join(dir, f), { r: 9, g: 9, b: 9 }, rng);
  const csv = '\uFEFFlabel,path\r\n"red, dark",imgs/a.png\r\n"blue ""sky""","imgs/b, c.png"\r\n  green  ,"imgs/d ""e"".png"\r\n\r\n,imgs/f.png\r\n';
  await writeFile(path.join(dir, 'data.csv'), csv);
  const d = await core.discoverDataset(path.join(dir, 'data.csv'));
  assert.equal(d.kind, 'csv');
  assert.deepEqual(d.samples.map((s) => [s.rel, s.label]), [
    [path.join('imgs', 'a.png'), 'red, dark'],
    [path.join('imgs', 'b, c.png'), 'blue "sky"'],
    [path.join('imgs', 'd "e".png'), 'green'],
  ]);
  assert.equal(d.samples[0].path, path.join(dir, 'imgs', 'a.png'));
  assert.equal(d.skipped.length, 1);
  assert.match(d.skipped[0].reason, /no label/);

  // Without a header row: path,label.
  await writeFile(path.join(dir, 'plain.csv'), 'imgs/a.png,red\nimgs/f.png,blue\n');
  const p = await core.discoverDataset(path.join(dir, 'plain.csv'));
  assert.deepEqual(p.samples.map((s) => s.label), ['red', 'blue']);

  // A broken CSV is a clear error.
  await writeFile(path.join(dir, 'broken.csv'), 'path,label\n"imgs/a.png,red\n');
  await assert.rejects(core.discoverDataset(path.join(dir, 'broken.csv')), { code: 'BAD_INPUT', message: /broken\.csv is not a valid CSV manifest/ });
});

test('JSONL manifest: BOM, CRLF, bad lines and missing labels reported by line', async (t) => {
  const dir = await tempDir(t);
  const rng = new core.Rng(3);
  await noisyImage(path.join(dir, 'x', 'a.png'), { r: 9, g: 9, b: 9 }, rng);
  await noisyImage(path.join(dir, 'x', 'b.gif'), { r: 9, g: 9, b: 9 }, rng);
  const lines = ['\uFEFF{"path":"x/a.png","label":"café ☕"}', '{"path":"x/b.gif","label":7}', 'not json', '{"path":"x/a.png"}', '', '{"path":"x/missing.png","label":"q"}'];
  await writeFile(path.join(dir, 'm.jsonl'), lines.join('\r\n'));
  const d = await core.discoverDataset(path.join(dir, 'm.jsonl'));
  assert.equal(d.kind, 'jsonl');
  assert.deepEqual(d.samples.map((s) => [s.rel, s.label]), [[path.join('x', 'a.png'), 'café ☕'], [path.join('x', 'b.gif'), '7']]);
  const reasons = d.skipped.map((s) => s.reason);
  assert.equal(reasons.length, 3);
  assert.match(reasons[0], /not valid JSON/);
  assert.ok(d.skipped[0].path.endsWith('m.jsonl:3'));
  assert.match(reasons[1], /line 4: no label/);
  assert.match(reasons[2], /line 6: file not found/);
});

test('decodeImage: JPEG, PNG, WebP, GIF and BMP all give size*size*3 bytes of the right colour', async (t) => {
  const dir = await tempDir(t);
  const color = { r: 30, g: 160, b: 220 };
  for (const format of ['jpg', 'png', 'webp', 'gif']) {
    const file = path.join(dir, `x.${format}`);
    await solidImage(file, { width: 50, height: 30, color, format });
    const rgb = await core.readAndDecode(file, 24);
    assert.ok(rgb instanceof Uint8Array);
    assert.equal(rgb.length, 24 * 24 * 3, format);
    near(pixelAt(rgb, 24, 12, 12), [color.r, color.g, color.b], 8, format);
  }
  // BMP, 24-bit, written by hand: quadrants red / green over blue / white. Width 10 pads rows to 32 bytes.
  const quad = (x, y) => (y < 5 ? (x < 5 ? [255, 0, 0] : [0, 255, 0]) : x < 5 ? [0, 0, 255] : [255, 255, 255]);
  const bmp = bmp24(10, 10, quad);
  assert.equal(bmp.length, 54 + 32 * 10);
  const rgb = await core.decodeImage(bmp, 10);
  assert.equal(rgb.length, 10 * 10 * 3);
  near(pixelAt(rgb, 10, 1, 1), [255, 0, 0], 2, 'bmp top-left');
  near(pixelAt(rgb, 10, 8, 1), [0, 255, 0], 2, 'bmp top-right');
  near(pixelAt(rgb, 10, 1, 8), [0, 0, 255], 2, 'bmp bottom-left');
  near(pixelAt(rgb, 10, 8, 8), [255, 255, 255], 2, 'bmp bottom-right');
  assert.equal((await core.decodeImage(bmp, 32)).length, 32 * 32 * 3);
});

test('decodeImage: grayscale expands to RGB, alpha flattens onto white, EXIF orientation is applied', async () => {
  const gray = await sharp({ create: { width: 20, height: 20, channels: 3, background: { r: 90, g: 90, b: 90 } } }).toColourspace('b-w').png().toBuffer();
  assert.equal((await sharp(gray).metadata()).channels, 1);
  const g = await core.decodeImage(gray, 16);
  assert.equal(g.length, 16 * 16 * 3);
  near(pixelAt(g, 16, 8, 8), [90, 90, 90], 2, 'grayscale');

  // RGBA: left half opaque red, right half fully transparent black.
  const rgba = Buffer.alloc(20 * 20 * 4);
  for (let y = 0; y < 20; y++) for (let x = 0; x < 20; x++) if (x < 10) rgba.set([255, 0, 0, 255], (y * 20 + x) * 4);
  const png = await sharp(rgba, { raw: { width: 20, height: 20, channels: 4 } }).png().toBuffer();
  assert.equal((await sharp(png).metadata()).channels, 4);
  const a = await core.decodeImage(png, 20);
  assert.equal(a.length, 20 * 20 * 3);
  near(pixelAt(a, 20, 2, 10), [255, 0, 0], 2, 'opaque half');
  near(pixelAt(a, 20, 17, 10), [255, 255, 255], 2, 'transparent half is white');

  // 40x20, left half red, right half blue, stored with EXIF orientation 6 (display rotated 90° clockwise):
  // shown upright it is 20x40 with red on top.
  const raw = Buffer.alloc(40 * 20 * 3);
  for (let y = 0; y < 20; y++) for (let x = 0; x < 40; x++) raw.set(x < 20 ? [255, 0, 0] : [0, 0, 255], (y * 40 + x) * 3);
  const jpg = await sharp(raw, { raw: { width: 40, height: 20, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
  assert.equal((await sharp(jpg).metadata()).orientation, 6);
  const o = await core.decodeImage(jpg, 32);
  near(pixelAt(o, 32, 16, 2), [255, 0, 0], 20, 'top is red');
  near(pixelAt(o, 32, 16, 29), [0, 0, 255], 20, 'bottom is blue');
  // Unrotated it would be red on the left and blue on the right.
  assert.ok(Math.abs(pixelAt(o, 32, 2, 16)[0] - pixelAt(o, 32, 29, 16)[0]) < 30, 'left and right alike');
});

test('decodeImage refuses images over the pixel limit from their header', async () => {
  const huge = pngWithHeader(100_000, 100_000);
  assert.ok(huge.length < 200);
  const t0 = Date.now();
  await assert.rejects(core.decodeImage(huge, 32), (err) => {
    assert.equal(err.constructor, core.DecodeError);
    assert.match(err.message, /100000x100000, over the 64000000-pixel limit/);
    return true;
  });
  assert.ok(Date.now() - t0 < 2000, 'refused without decoding');
  const bigBmp = bmp24(1, 1, () => [0, 0, 0]);
  bigBmp.writeInt32LE(100_000, 18);
  bigBmp.writeInt32LE(-100_000, 22); // top-down rows
  await assert.rejects(core.decodeImage(bigBmp, 32), { message: /100000x100000, over the 64000000-pixel limit/ });
  // A width with the top bit set is huge to the BMP decoder, not negative.
  bigBmp.writeUInt32LE(0xffffff00, 18);
  bigBmp.writeInt32LE(1000, 22);
  await assert.rejects(core.decodeImage(bigBmp, 32), { message: /4294967040x1000, over the 64000000-pixel limit/ });
  const small = await sharp({ create: { width: 40, height: 40, channels: 3, background: 'red' } }).png().toBuffer();
  await assert.rejects(core.decodeImage(small, 32, 1000), /40x40, over the 1000-pixel limit/);
});

test('decodeImage: empty, truncated and non-image input give reasons a user can act on', async () => {
  await assert.rejects(core.decodeImage(Buffer.alloc(0), 32), { message: 'empty file (0 bytes)' });
  await assert.rejects(core.decodeImage(Buffer.from('just some text, named photo.jpg'), 32), { message: /not a readable image/ });
  const jpg = await sharp({ create: { width: 120, height: 90, channels: 3, background: 'green' } }).jpeg().toBuffer();
  await assert.rejects(core.decodeImage(jpg.subarray(0, Math.floor(jpg.length * 0.7)), 32), { message: /truncated or damaged/ });
  const png = await sharp({ create: { width: 120, height: 90, channels: 3, background: 'green' } }).png().toBuffer();
  await assert.rejects(core.decodeImage(png.subarray(0, png.length - 20), 32), { message: /truncated or damaged/ });
});

test('decodeImage: reasons stay right when broken files decode at the same time', async () => {
  // libvips has one error buffer per process: messages of concurrent failures mix.
  const jpg = await sharp({ create: { width: 80, height: 60, channels: 3, background: 'orange' } }).jpeg().toBuffer();
  const png = await sharp({ create: { width: 80, height: 60, channels: 3, background: 'orange' } }).png().toBuffer();
  const inputs = [jpg.subarray(0, Math.floor(jpg.length * 0.6)), png.subarray(0, png.length - 30), Buffer.from('plain text named .jpg'), Buffer.alloc(0)];
  const want = [/^truncated or damaged image/, /^truncated or damaged image/, /^not a readable image \(unknown format\)$/, /^empty file/];
  for (let round = 0; round < 60; round++) {
    const res = await Promise.allSettled(inputs.map((b) => core.decodeImage(Buffer.from(b), 32)));
    res.forEach((r, i) => assert.match(r.reason?.message ?? 'decoded', want[i], `round ${round}, input ${i}`));
  }
});

/** Samples of `counts` (label -> n) with distinct hashes. */
function samples(counts) {
  const out = [];
  for (const [label, n] of Object.entries(counts)) for (let i = 0; i < n; i++) out.push({ path: `/d/${label}/${i}.png`, rel: `${label}/${i}.png`, label, hash: core.sha256(`${label}-${i}`) });
  return out;
}

const splitOf = (res) => Object.fromEntries(res.samples.map((s) => [s.rel, s.split]));

test('splitDataset: seeded, stratified, every class in every split', () => {
  const all = samples({ a: 20, b: 11, c: 3 });
  const one = core.splitDataset(all, { seed: 5 });
  assert.deepEqual(splitOf(core.splitDataset([...all].reverse(), { seed: 5 })), splitOf(one), 'same seed, same split (input order does not matter)');
  assert.notDeepEqual(splitOf(core.splitDataset(all, { seed: 6 })), splitOf(one), 'another seed, another split');
  assert.equal(one.samples.length, all.length);
  for (const label of ['a', 'b', 'c']) {
    for (const split of ['train', 'val', 'test']) assert.ok(one.samples.some((s) => s.label === label && s.split === split), `${label} has ${split}`);
  }
  const count = (label, split) => one.samples.filter((s) => s.label === label && s.split === split).length;
  assert.deepEqual([count('a', 'train'), count('a', 'val'), count('a', 'test')], [14, 3, 3]);
  const noVal = core.splitDataset(all, { seed: 5, val: 0, test: 0.5 });
  assert.ok(!noVal.samples.some((s) => s.split === 'val'));
  assert.throws(() => core.splitDataset(all, { val: 0.6 }), { code: 'BAD_INPUT', message: /--val and --test/ });
  assert.throws(() => core.splitDataset(samples({ a: 5, b: 2 })), { code: 'NO_DATA', message: /'b' \(2 distinct images\)/ });
});

test('splitDataset: identical files stay in one split; identical content under two labels is left out with a reason', () => {
  const all = samples({ a: 9, b: 9 });
  const dupHash = core.sha256('dup');
  for (let i = 0; i < 4; i++) all.push({ path: `/d/a/dup${i}.png`, rel: `a/dup${i}.png`, label: 'a', hash: dupHash });
  const clash = core.sha256('clash');
  all.push({ path: '/d/a/clash.png', rel: 'a/clash.png', label: 'a', hash: clash }, { path: '/d/b/clash.png', rel: 'b/clash.png', label: 'b', hash: clash });
  for (const seed of [1, 2, 3, 4, 5]) {
    const res = core.splitDataset(all, { seed });
    const dupSplits = new Set(res.samples.filter((s) => s.hash === dupHash).map((s) => s.split));
    assert.equal(dupSplits.size, 1, `seed ${seed}: duplicates split apart`);
    assert.ok(!res.samples.some((s) => s.hash === clash));
    assert.deepEqual(res.conflicts.map((c) => c.path).sort(), ['/d/a/clash.png', '/d/b/clash.png']);
    for (const c of res.conflicts) assert.match(c.reason, /labelled 'a' and 'b'.*conflicting labels/);
    assert.deepEqual(res.duplicates, [['a/dup0.png', 'a/dup1.png', 'a/dup2.png', 'a/dup3.png']]);
    const summary = core.summarise('/d', 'folders', res.samples, res.conflicts, res.duplicates);
    assert.ok(summary.warnings.some((w) => /1 group of identical files/.test(w)));
    assert.ok(summary.warnings.some((w) => /2 files have identical content under two labels/.test(w)));
  }
});

test('splitDataset stays linear on large classes (60,000 images)', () => {
  const big = samples({ a: 40_000, b: 20_000 });
  const t0 = Date.now();
  const res = core.splitDataset(big, { seed: 1 });
  const ms = Date.now() - t0;
  assert.equal(res.samples.length, 60_000);
  assert.ok(ms < 3000, `split took ${ms} ms (quadratic list copies took over 10 s here)`);
});

test('summarise: counts per class and split, warnings for imbalance and small classes', () => {
  const res = core.splitDataset(samples({ big: 30, small: 5 }), { seed: 1 });
  const s = core.summarise('/d', 'folders', res.samples, [], []);
  assert.deepEqual(s.classes, ['big', 'small']);
  assert.equal(s.total, 35);
  assert.equal(s.counts.big.total, 30);
  assert.equal(s.counts.big.train + s.counts.big.val + s.counts.big.test, 30);
  assert.ok(s.warnings.some((w) => /imbalanced \(5 to 30 images\)/.test(w)), s.warnings.join('; '));
  assert.ok(s.warnings.some((w) => /few images in 'small'/.test(w)));
  const even = core.summarise('/d', 'folders', core.splitDataset(samples({ x: 12, y: 12 })).samples, [], []);
  assert.deepEqual(even.warnings, []);
});

test('scanDataset hashes file content (the cache key), not names', async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, 'a'), { recursive: true });
  await solidImage(path.join(dir, 'a', 'one.png'));
  await solidImage(path.join(dir, 'a', 'two.png'));
  await solidImage(path.join(dir, 'a', 'three.png'), { color: { r: 0, g: 0, b: 0 } });
  const s = await core.scanDataset(dir);
  const h = Object.fromEntries(s.hashed.map((x) => [path.basename(x.path), x.hash]));
  assert.equal(h['one.png'], h['two.png']);
  assert.notEqual(h['one.png'], h['three.png']);
  assert.equal(h['three.png'], await core.sha256File(path.join(dir, 'a', 'three.png')));
});
