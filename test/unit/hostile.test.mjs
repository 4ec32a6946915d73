// Hostile files on the data path (issue 9, items 4-8 and the JSONL label of
// item 11): decompression bombs that pass the pixel limit, files too large to
// read, FIFOs and devices, class folders linked into each other, reasons a
// user can act on (BMP, other formats under image names), and a scan that
// stops within a second of a cancel. Every file is made by code here.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, open, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { core, root, sharp, tempDir } from './helpers.mjs';
import { bmp24, noisyImage, pixelAt, pngWithHeader } from './fixtures.mjs';

const near = (actual, expected, tol, what) =>
  assert.ok(actual.every((v, i) => Math.abs(v - expected[i]) <= tol), `${what}: ${JSON.stringify(actual)} not within ${tol} of ${JSON.stringify(expected)}`);

/** Runs `code` (an ES module body with `core` and `sharp` in scope) in a fresh node; resolves its JSON output. */
function inChild(code, timeout = 60_000) {
  const prelude = `import { createRequire } from 'node:module'; const require = createRequire(${JSON.stringify(path.join(root, 'x.js'))});
const core = require('./dist/core.js'); const sharp = require('sharp');\n`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', prelude + code], { cwd: root, timeout }, (err, stdout, stderr) => {
      if (err) reject(new Error(`child failed (${err.signal ?? err.code}): ${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

function hasMkfifo() {
  try {
    execFileSync('mkfifo', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false; // no coreutils mkfifo (not Linux): the FIFO tests are skipped
  }
}

test('item 4: strip bombs with EXIF orientation (1x16960 PNG, 1x30000 JPEG) are refused at once, with little memory', async () => {
  // Measured in a child: its peak RSS is the decoder's, not the test runner's.
  const res = await inChild(`
    const solid = (w, h) => sharp({ create: { width: w, height: h, channels: 3, background: 'red' } });
    const png = await solid(1, 16960).png().withMetadata({ orientation: 6 }).toBuffer();
    const jpg = await solid(1, 30000).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const before = process.resourceUsage().maxRSS / 1024;
    const out = { sizes: [png.length, jpg.length], reasons: [] };
    const t0 = Date.now();
    for (const b of [png, jpg]) out.reasons.push(await core.decodeImage(b, 224).then(() => 'decoded', (e) => e.message));
    out.ms = Date.now() - t0;
    out.growthMb = process.resourceUsage().maxRSS / 1024 - before;
    console.log(JSON.stringify(out));`);
  assert.ok(res.sizes[0] < 2000 && res.sizes[1] < 5000, `small files: ${res.sizes}`);
  assert.match(res.reasons[0], /^image is 16960x1, a 16960:1 strip \(over the 32:1 limit\); crop it$/);
  assert.match(res.reasons[1], /^image is 30000x1, a 30000:1 strip \(over the 32:1 limit\)/);
  assert.ok(res.ms < 2000, `refused from the header in ${res.ms} ms`);
  assert.ok(res.growthMb < 100, `peak RSS grew by ${res.growthMb} MB`);
});

test('item 4: the limits apply after orientation; a 32:1 strip still decodes, rotated', async () => {
  assert.equal(core.MAX_ASPECT, 32);
  assert.ok(core.MAX_SIDE >= 16384);
  // 320x10 (32:1), left half red, right half blue, stored with orientation 6: upright it is 10x320, red on top.
  const raw = Buffer.alloc(320 * 10 * 3);
  for (let y = 0; y < 10; y++) for (let x = 0; x < 320; x++) raw.set(x < 160 ? [255, 0, 0] : [0, 0, 255], (y * 320 + x) * 3);
  const jpg = await sharp(raw, { raw: { width: 320, height: 10, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
  const rgb = await core.decodeImage(jpg, 32);
  assert.equal(rgb.length, 32 * 32 * 3);
  // The centre square of an upright 10x320 strip lies on the red/blue border: red above, blue below.
  near(pixelAt(rgb, 32, 16, 2), [255, 0, 0], 40, 'top of the centre crop is red');
  near(pixelAt(rgb, 32, 16, 29), [0, 0, 255], 40, 'bottom is blue');
  // 33:1 is refused, whichever way round.
  const strip = await sharp({ create: { width: 330, height: 10, channels: 3, background: 'red' } }).png().withMetadata({ orientation: 8 }).toBuffer();
  await assert.rejects(core.decodeImage(strip, 32), { message: /image is 10x330, a 33:1 strip/ });
  // A side over MAX_SIDE is refused from the header, even within the pixel and aspect limits.
  const long = pngWithHeader(core.MAX_SIDE + 1, 1100);
  await assert.rejects(core.decodeImage(long, 32), { message: `image is ${core.MAX_SIDE + 1}x1100, over the ${core.MAX_SIDE}-pixel limit for a side` });
});

test('item 4: a 1.9 GB sparse file of zeros named .jpg is refused by its size, never read', async (t) => {
  const dir = await tempDir(t);
  const data = path.join(dir, 'data');
  const good = path.join(data, 'a');
  for (let i = 0; i < 3; i++) await noisyImage(path.join(good, `${i}.png`), { r: 200, g: 0, b: 0 }, new core.Rng(i));
  const big = path.join(good, 'zeros.jpg');
  await writeFile(big, '');
  await truncate(big, Math.floor(1.9 * 1024 ** 3));
  const t0 = Date.now();
  await assert.rejects(core.readAndDecode(big, 32), { message: /^file is 1946 MB, over the 256 MB limit for an image$/ });
  const scan = await core.scanDataset(data);
  const ms = Date.now() - t0;
  assert.deepEqual(scan.skipped, [{ path: big, reason: 'file is 1946 MB, over the 256 MB limit for an image' }]);
  assert.equal(scan.hashed.length, 3);
  // Hashing or reading 1.9 GB takes seconds; a refusal by fstat takes milliseconds.
  assert.ok(ms < 1500, `refused in ${ms} ms`);
});

test('item 5: FIFOs and devices are skipped with a reason, in class folders and in manifests, without hanging', { skip: !hasMkfifo() && 'no mkfifo' }, async (t) => {
  const dir = await tempDir(t);
  const data = path.join(dir, 'data');
  const rng = new core.Rng(5);
  for (let i = 0; i < 3; i++) await noisyImage(path.join(data, 'a', `${i}.png`), { r: 200, g: 0, b: 0 }, rng);
  execFileSync('mkfifo', [path.join(data, 'a', 'pipe.jpg')]);
  await symlink('/dev/zero', path.join(data, 'a', 'zero.png'));
  const folders = await core.scanDataset(data);
  const byName = Object.fromEntries(folders.skipped.map((s) => [path.basename(s.path), s.reason]));
  assert.match(byName['pipe.jpg'], /^not a regular file \(a FIFO \(named pipe\)\); only regular files are read$/);
  assert.match(byName['zero.png'], /^not a regular file \(a character device\)/);
  assert.equal(folders.hashed.length, 3);

  const manifest = path.join(data, 'labels.jsonl');
  const lines = ['{"path":"a/0.png","label":"x"}', '{"path":"a/pipe.jpg","label":"x"}', '{"path":"a/zero.png","label":"y"}'];
  await writeFile(manifest, lines.join('\n'));
  const listed = await core.scanDataset(manifest);
  const reasons = Object.fromEntries(listed.skipped.map((s) => [s.path, s.reason]));
  assert.match(reasons['a/pipe.jpg'], /^line 2: not a regular file \(a FIFO/);
  assert.match(reasons['a/zero.png'], /^line 3: path links outside the manifest's folder/);
  assert.equal(listed.hashed.length, 1);

  // DATA itself a FIFO named like a manifest: refused in one line, not read for ever.
  const fifoManifest = path.join(dir, 'fifo.csv');
  execFileSync('mkfifo', [fifoManifest]);
  await assert.rejects(core.scanDataset(fifoManifest), { code: 'BAD_INPUT', message: `manifest ${fifoManifest}: not a regular file (a FIFO (named pipe)); only regular files are read` });

  // A path that passed discovery and was then swapped for a FIFO: the open handle is checked too.
  const swapped = path.join(data, 'a', '1.png');
  await rm(swapped);
  execFileSync('mkfifo', [swapped]);
  await assert.rejects(core.readAndDecode(swapped, 32), { message: /not a regular file \(a FIFO/ });
});

test('item 5: train on a manifest that lists a FIFO finishes (no hang), the FIFO skipped', { skip: !hasMkfifo() && 'no mkfifo' }, async (t) => {
  const dir = await tempDir(t);
  const data = path.join(dir, 'data');
  const rng = new core.Rng(9);
  const rows = ['path,label'];
  for (const [label, colour] of [['red', { r: 220, g: 30, b: 30 }], ['blue', { r: 30, g: 30, b: 220 }]]) {
    for (let i = 0; i < 4; i++) {
      await noisyImage(path.join(data, label, `${i}.png`), colour, rng);
      rows.push(`${label}/${i}.png,${label}`);
    }
  }
  execFileSync('mkfifo', [path.join(data, 'pipe.png')]);
  rows.push('pipe.png,red');
  await writeFile(path.join(data, 'm.csv'), rows.join('\n'));
  const { tinyBackbone, fastTrain } = await import('./fixtures.mjs');
  const backbone = await tinyBackbone(path.join(dir, 'tiny'));
  const res = await core.trainRun(fastTrain(backbone, path.join(data, 'm.csv'), path.join(dir, 'run'), path.join(dir, 'cache')));
  assert.deepEqual(res.dataset.skipped, [{ path: 'pipe.png', reason: 'line 10: not a regular file (a FIFO (named pipe)); only regular files are read' }]);
  assert.equal(res.dataset.total, 8);
});

/** Class folders a (red) and b (blue) and z (green) with 3 images each; returns DATA. */
async function threeClasses(dir) {
  const data = path.join(dir, 'data');
  const rng = new core.Rng(2);
  const colours = { a: { r: 220, g: 0, b: 0 }, b: { r: 0, g: 0, b: 220 }, z: { r: 0, g: 200, b: 0 } };
  for (const [label, c] of Object.entries(colours)) for (let i = 0; i < 3; i++) await noisyImage(path.join(data, label, `${label}${i}.png`), c, rng);
  return data;
}

/** Every sample's file name starts with its label (the images of class x are named x0.png...). */
function assertLabelsRight(found) {
  for (const s of found.samples) assert.ok(path.basename(s.path).startsWith(s.label), `${s.rel} labelled '${s.label}'`);
}

test('item 6: a link from one class folder into another is skipped with a reason, in either order of traversal', async (t) => {
  const dir = await tempDir(t);
  const data = await threeClasses(dir);
  await symlink('../b', path.join(data, 'a', 'tob')); // walked before b
  await symlink('../a', path.join(data, 'z', 'toa')); // walked after a
  await mkdir(path.join(data, 'b', 'sub'));
  await symlink('../b/sub', path.join(data, 'a', 'deeper')); // into a folder inside b
  await symlink('../../z', path.join(data, 'b', 'sub', 'toz'));
  const found = await core.discoverDataset(data);
  assertLabelsRight(found);
  const count = (l) => found.samples.filter((s) => s.label === l).length;
  assert.deepEqual([count('a'), count('b'), count('z')], [3, 3, 3]);
  const reasons = Object.fromEntries(found.skipped.map((s) => [path.relative(data, s.path), s.reason]));
  assert.deepEqual(reasons, {
    [path.join('a', 'deeper')]: "links into class folder 'b': its images are read once, as 'b', not as 'a'",
    [path.join('a', 'tob')]: "links into class folder 'b': its images are read once, as 'b', not as 'a'",
    [path.join('b', 'sub', 'toz')]: "links into class folder 'z': its images are read once, as 'z', not as 'b'",
    [path.join('z', 'toa')]: "links into class folder 'a': its images are read once, as 'a', not as 'z'",
  });
});

test('item 6: a top-level link is a class of its own unless it points at another class folder', async (t) => {
  const dir = await tempDir(t);
  const data = await threeClasses(dir);
  const outside = path.join(dir, 'elsewhere');
  for (let i = 0; i < 3; i++) await noisyImage(path.join(outside, `c${i}.png`), { r: 200, g: 200, b: 0 }, new core.Rng(40 + i));
  await symlink(outside, path.join(data, 'c')); // a class kept in another folder
  await symlink('b', path.join(data, '0-b-again')); // sorts before b
  await symlink('z', path.join(data, 'zz-z-again')); // sorts after z
  await symlink(outside, path.join(data, 'c-again'));
  const found = await core.discoverDataset(data);
  assertLabelsRight(found);
  assert.deepEqual([...new Set(found.samples.map((s) => s.label))], ['a', 'b', 'c', 'z']);
  assert.equal(found.samples.length, 12);
  const reasons = Object.fromEntries(found.skipped.map((s) => [path.basename(s.path), s.reason]));
  assert.match(reasons['0-b-again'], /links to the folder of class 'b'.*read once, as 'b'/);
  assert.match(reasons['zz-z-again'], /links to the folder of class 'z'/);
  assert.match(reasons['c-again'], /links to the folder of class 'c'/);
  assert.equal(found.skipped.length, 3);
});

test('item 7: BMP files get reasons a user can act on, and BMP variants decode right', async () => {
  const quad = (x, y) => (y < 5 ? (x < 5 ? [255, 0, 0] : [0, 255, 0]) : x < 5 ? [0, 0, 255] : [255, 255, 255]);
  const good = bmp24(10, 10, quad);
  // Truncated pixel data: bmp-js used to throw Node's own 'The value of "offset" is out of range'.
  await assert.rejects(core.decodeImage(good.subarray(0, 200), 16), { message: 'truncated or damaged image (the BMP data ends early)' });
  await assert.rejects(core.decodeImage(good.subarray(0, 30), 16), { message: 'truncated or damaged image (the BMP header ends early)' });
  const jpegBmp = Buffer.from(good);
  jpegBmp.writeUInt32LE(4, 30);
  await assert.rejects(core.decodeImage(jpegBmp, 16), { message: /^unsupported BMP variant \(JPEG-compressed with 24 bits per pixel\); re-save it as PNG or JPEG$/ });
  const os2 = Buffer.from(good);
  os2.writeUInt32LE(12, 14);
  await assert.rejects(core.decodeImage(os2, 16), { message: /unsupported BMP variant \(OS\/2 bitmap\)/ });
  const bpp = Buffer.from(good);
  bpp.writeUInt16LE(48, 28);
  await assert.rejects(core.decodeImage(bpp, 16), { message: /unsupported BMP variant \(48 bits per pixel\)/ });

  // An RLE8 bomb: 1,086 bytes claiming 8000x8000 (bmp-js would allocate ~450 MB and decode synchronously).
  const rle = Buffer.alloc(14 + 40 + 1024 + 2);
  rle.write('BM', 0);
  rle.writeUInt32LE(rle.length, 2);
  rle.writeUInt32LE(14 + 40 + 1024, 10);
  rle.writeUInt32LE(40, 14);
  rle.writeUInt32LE(8000, 18);
  rle.writeInt32LE(8000, 22);
  rle.writeUInt16LE(1, 26);
  rle.writeUInt16LE(8, 28);
  rle.writeUInt32LE(1, 30); // BI_RLE8
  rle.writeUInt8(1, rle.length - 1); // 0,1: end of bitmap
  const t0 = Date.now();
  await assert.rejects(core.decodeImage(rle, 16), { message: /^run-length-encoded BMP of 8000x8000 is over the 16-megapixel limit for that variant; re-save it as PNG or JPEG$/ });
  assert.ok(Date.now() - t0 < 2000, 'refused from the header');
  // A 32-bit BMP with a V5 header and BGRA bit fields (what most tools write): bmp-js alone misreads its channels.
  const w = 10;
  const h = 10;
  const v5 = Buffer.alloc(14 + 124 + w * h * 4);
  v5.write('BM', 0, 'latin1');
  v5.writeUInt32LE(v5.length, 2);
  v5.writeUInt32LE(138, 10);
  v5.writeUInt32LE(124, 14);
  v5.writeInt32LE(w, 18);
  v5.writeInt32LE(-h, 22); // top-down
  v5.writeUInt16LE(1, 26);
  v5.writeUInt16LE(32, 28);
  v5.writeUInt32LE(3, 30);
  v5.writeUInt32LE(0xff0000, 54);
  v5.writeUInt32LE(0xff00, 58);
  v5.writeUInt32LE(0xff, 62);
  v5.writeUInt32LE(0xff000000, 66);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const [r, g, b] = quad(x, y);
    v5.set([b, g, r, 255], 138 + (y * w + x) * 4);
  }
  const rgb = await core.decodeImage(v5, 10);
  near(pixelAt(rgb, 10, 1, 1), [255, 0, 0], 2, 'v5 top-left red');
  near(pixelAt(rgb, 10, 8, 1), [0, 255, 0], 2, 'v5 top-right green');
  near(pixelAt(rgb, 10, 1, 8), [0, 0, 255], 2, 'v5 bottom-left blue');
});

test("item 7: damaged images say which format and what to do, never 'Unknown error'", async () => {
  const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: 'red', noise: { type: 'gaussian', mean: 128, sigma: 50 } } }).png().toBuffer();
  // Damage inside the compressed pixel data: the file still ends with IEND.
  const idat = png.indexOf('IDAT', 0, 'latin1');
  const broken = Buffer.from(png);
  for (let i = idat + 20; i < idat + 60; i++) broken[i] ^= 0x5a;
  const reason = await core.decodeImage(broken, 32).then(() => 'decoded', (e) => e.message);
  assert.doesNotMatch(reason, /unknown error/i);
  assert.match(reason, /^damaged PNG image \(its pixel data does not decode\); re-save or remove it$/);
  // Damage in the header (a bad chunk checksum in IHDR).
  const header = Buffer.from(png);
  header[20] ^= 0x01;
  await assert.rejects(core.decodeImage(header, 32), { message: 'damaged PNG image (its header does not decode); re-save or remove it' });
  // Zero bytes only.
  await assert.rejects(core.decodeImage(Buffer.alloc(5000), 32), { message: 'not a readable image (the file holds only zero bytes)' });
});

test('item 7: SVG, TIFF and AVIF named .png / .jpg / .webp are refused by content, with the real format named', async (t) => {
  const dir = await tempDir(t);
  const small = () => sharp({ create: { width: 20, height: 20, channels: 3, background: 'blue' } });
  const cases = [
    ['svg.png', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20"><rect width="20" height="20" fill="red"/></svg>'), 'SVG'],
    ['tiff.png', await small().tiff().toBuffer(), 'TIFF'],
    ['tiff.jpg', await small().tiff().toBuffer(), 'TIFF'],
    ['avif.webp', await small().avif().toBuffer(), 'AVIF'],
  ];
  for (const [name, buf, format] of cases) {
    const file = path.join(dir, name);
    await writeFile(file, buf);
    await assert.rejects(core.readAndDecode(file, 32), {
      message: `named ${path.extname(name)}, but the content is ${format}, not a format Headstart reads (JPEG, PNG, WebP, GIF and BMP); convert it`,
    });
  }
  // A JPEG named .png still decodes (names do not decide; content does).
  const jpgAsPng = path.join(dir, 'photo.png');
  await small().jpeg().toFile(jpgAsPng);
  assert.equal((await core.readAndDecode(jpgAsPng, 16)).length, 16 * 16 * 3);
  // And when it fails, the reason names both.
  const cut = path.join(dir, 'cut.png');
  const jpg = await small().jpeg().toBuffer();
  await writeFile(cut, jpg.subarray(0, jpg.length - 40));
  await assert.rejects(core.readAndDecode(cut, 16), { message: /^truncated or damaged image \(the JPEG data ends early\) \(named \.png, but the content is JPEG\)$/ });
});

test('item 8: a cancel during the scan takes effect within a second, even inside large files', async (t) => {
  const dir = await tempDir(t);
  const folder = path.join(dir, 'data', 'a');
  await mkdir(folder, { recursive: true });
  // Eight sparse 250 MB files (no disk used): hashing them all takes seconds.
  for (let i = 0; i < 8; i++) {
    const fh = await open(path.join(folder, `${i}.jpg`), 'w');
    await fh.truncate(250 * 1024 * 1024);
    await fh.close();
  }
  const ac = new AbortController();
  let abortedAt = 0;
  const run = core.scanDataset(path.join(dir, 'data'), {
    signal: ac.signal,
    onEvent: (e) => {
      if (e.type === 'phase' && e.phase === 'scan') {
        setTimeout(() => {
          abortedAt = Date.now();
          ac.abort();
        }, 100);
      }
    },
  });
  await assert.rejects(run, (err) => core.isCancelled(err));
  const ms = Date.now() - abortedAt;
  assert.ok(ms < 1000, `stopped ${ms} ms after the cancel`);
});

test('item 11: a JSONL label must be a string or a number; others are skipped naming the line', async (t) => {
  const dir = await tempDir(t);
  const rng = new core.Rng(1);
  for (const n of ['a', 'b', 'c', 'd', 'e', 'f']) await noisyImage(path.join(dir, `${n}.png`), { r: 9, g: 9, b: 9 }, rng);
  const lines = ['{"path":"a.png","label":{"a":1}}', '{"path":"b.png","label":["x"]}', '{"path":"c.png","label":true}', '{"path":"d.png","label":null}', '{"path":"e.png","label":3}', '{"path":"f.png","label":"cat"}'];
  await writeFile(path.join(dir, 'm.jsonl'), lines.join('\n'));
  const d = await core.discoverDataset(path.join(dir, 'm.jsonl'));
  assert.deepEqual(d.samples.map((s) => [s.rel, s.label]), [['e.png', '3'], ['f.png', 'cat']]);
  assert.deepEqual(d.skipped.map((s) => s.reason), [
    'line 1: label must be a string or a number (got an object)',
    'line 2: label must be a string or a number (got a list)',
    'line 3: label must be a string or a number (got a boolean)',
    'line 4: label must be a string or a number (got null)',
  ]);
  assert.ok(!d.samples.some((s) => s.label === '[object Object]'));
});

test('item 5: hashing a file for eval or predict refuses a FIFO at once instead of waiting for a writer', { skip: !hasMkfifo() && 'no mkfifo' }, async (t) => {
  const dir = await tempDir(t);
  const fifo = path.join(dir, 'photo.jpg');
  execFileSync('mkfifo', [fifo]);
  const t0 = Date.now();
  await assert.rejects(core.sha256File(fifo), /FIFO|pipe/i);
  assert.ok(Date.now() - t0 < 2000, 'refused without blocking');
  assert.match(core.readFailure(await core.sha256File(fifo).catch((e) => e)), /FIFO|pipe/i);
});
