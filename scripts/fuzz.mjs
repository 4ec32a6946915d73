// npm run fuzz [-- --count N --seed S --timeout-ms MS --concurrency C --json --keep]
//
// Makes N hostile image files from a seed (valid JPEG / PNG / WebP / GIF / BMP
// written by sharp or by hand, then bit flips, truncation, forged headers and
// dimensions, decompression bombs, EXIF orientation tricks, zero bytes, other
// formats under image names, a huge sparse file, a FIFO, a device link) and
// runs them through the real data path of dist/core.js in a child process, as
// `train` does: scanDataset (discover + hash), then readAndDecode with 12
// decodes in flight (as extraction has with one engine thread). Prints tried / decoded / skipped-with-reason / crashed /
// hung and the child's peak resident memory; exits 1 on any crash, hang, skip
// without a usable reason, or a peak over 1 GB.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const self = fileURLToPath(import.meta.url);

/** Peak resident memory allowed to the process that decodes, in MB. */
const PEAK_LIMIT_MB = 1024;
/**
 * Decodes in flight at once by default: extractAll runs (engine threads + 2)
 * batches at once with 4 decodes each, so 12 with one engine thread.
 */
const DEFAULT_CONCURRENCY = 12;
/** A reason that only a developer could read is a skip without a reason. */
const OPAQUE_REASON = /unknown error|out of range|undefined|cannot read properties|internal|^\s*$|\[object/i;

// ---------------------------------------------------------------- child side

/** Child: scan DATA (or take a list of files), decode each, one JSON line per event on stdout. */
async function child(job) {
  const core = require(path.join(root, 'dist', 'core.js'));
  const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
  let files = job.files;
  if (!files) {
    out({ phase: 'scan' });
    const scan = await core.scanDataset(job.data);
    for (const s of scan.skipped) out({ file: s.path, result: 'skipped', reason: s.reason, at: 'scan' });
    files = scan.hashed.map((h) => h.path);
    out({ phase: 'decode', files });
  }
  let next = 0;
  const lane = async () => {
    while (next < files.length) {
      const file = files[next++];
      out({ file, start: true });
      try {
        await core.readAndDecode(file, job.size);
        out({ file, result: 'decoded' });
      } catch (err) {
        if (err instanceof core.DecodeError) out({ file, result: 'skipped', reason: err.message, at: 'decode' });
        else out({ file, result: 'crashed', reason: String(err?.stack ?? err) });
      }
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, lane));
  out({ done: true, maxRssMb: process.resourceUsage().maxRSS / 1024 });
}

// ---------------------------------------------------------------- generation

/** mulberry32: a small seeded generator, so a seed always makes the same files. */
function rngOf(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)), pick: (xs) => xs[Math.floor(next() * xs.length)] };
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A BMP written by hand (sharp writes none): 24-bit, 32-bit BGRA bit fields (V5 header), or 8-bit palette. */
function bmp(width, height, bpp, rnd) {
  const headerSize = bpp === 32 ? 124 : 40;
  const palette = bpp === 8 ? 256 * 4 : 0;
  const stride = Math.ceil((width * bpp) / 32) * 4;
  const offset = 14 + headerSize + palette;
  const buf = Buffer.alloc(offset + stride * height);
  buf.write('BM', 0, 'latin1');
  buf.writeUInt32LE(buf.length, 2);
  buf.writeUInt32LE(offset, 10);
  buf.writeUInt32LE(headerSize, 14);
  buf.writeInt32LE(width, 18);
  buf.writeInt32LE(rnd.next() < 0.5 ? height : -height, 22);
  buf.writeUInt16LE(1, 26);
  buf.writeUInt16LE(bpp, 28);
  buf.writeUInt32LE(bpp === 32 ? 3 : 0, 30);
  if (bpp === 32) {
    buf.writeUInt32LE(0xff0000, 54);
    buf.writeUInt32LE(0xff00, 58);
    buf.writeUInt32LE(0xff, 62);
    buf.writeUInt32LE(0xff000000, 66);
  }
  if (bpp === 8) for (let i = 0; i < 256; i++) buf.writeUInt32LE(((i * 7) & 0xff) | (((i * 13) & 0xff) << 8) | (i << 16), 54 + i * 4);
  for (let i = offset; i < buf.length; i++) buf[i] = rnd.int(0, 255);
  return buf;
}

/** Valid seed images of every readable format, made by sharp (and by hand for BMP). */
async function seeds(sharp, rnd) {
  const out = [];
  for (let i = 0; i < 24; i++) {
    const width = rnd.int(1, 160);
    const height = rnd.int(1, 160);
    const channels = rnd.pick([3, 4]);
    // Noise from the seeded generator (sharp's own noise is not seeded): the same seed makes the same bytes.
    const px = Buffer.alloc(width * height * channels);
    const base = [rnd.int(0, 255), rnd.int(0, 255), rnd.int(0, 255), rnd.int(0, 255)];
    for (let k = 0; k < px.length; k++) px[k] = Math.max(0, Math.min(255, base[k % channels] + rnd.int(-60, 60)));
    let img = sharp(px, { raw: { width, height, channels } });
    if (rnd.next() < 0.3) img = img.withMetadata({ orientation: rnd.int(1, 8) });
    const kind = i % 5;
    if (kind === 0) out.push({ ext: '.jpg', buf: await img.jpeg({ quality: rnd.int(20, 95), progressive: rnd.next() < 0.5 }).toBuffer() });
    else if (kind === 1) out.push({ ext: '.png', buf: await img.png({ palette: rnd.next() < 0.3, progressive: rnd.next() < 0.3 }).toBuffer() });
    else if (kind === 2) out.push({ ext: '.webp', buf: await img.webp({ lossless: rnd.next() < 0.3 }).toBuffer() });
    else if (kind === 3) out.push({ ext: '.gif', buf: await img.gif().toBuffer() });
    else out.push({ ext: '.bmp', buf: bmp(width, height, rnd.pick([8, 24, 32]), rnd) });
  }
  return out;
}

/** Decompression bombs that pass the pixel limit, and strips that grow under the centre crop. */
async function bombs(sharp) {
  const solid = (width, height) => sharp({ create: { width, height, channels: 3, background: { r: 200, g: 40, b: 40 } } });
  return [
    { name: 'png-1x16960-orient6', ext: '.png', buf: await solid(1, 16960).png().withMetadata({ orientation: 6 }).toBuffer() },
    { name: 'jpg-1x30000-orient6', ext: '.jpg', buf: await solid(1, 30000).jpeg().withMetadata({ orientation: 6 }).toBuffer() },
    { name: 'jpg-30000x1-orient8', ext: '.jpg', buf: await solid(30000, 1).jpeg().withMetadata({ orientation: 8 }).toBuffer() },
    { name: 'png-16960x1', ext: '.png', buf: await solid(16960, 1).png().toBuffer() },
    { name: 'webp-16000x1-orient5', ext: '.webp', buf: await solid(16000, 1).webp().withMetadata({ orientation: 5 }).toBuffer() },
    { name: 'png-8000x8000', ext: '.png', buf: await solid(8000, 8000).png().toBuffer() },
    { name: 'png-8000x8000-orient6', ext: '.png', buf: await solid(8000, 8000).png().withMetadata({ orientation: 6 }).toBuffer() },
    { name: 'jpg-8000x8000-orient7', ext: '.jpg', buf: await solid(8000, 8000).jpeg().withMetadata({ orientation: 7 }).toBuffer() },
    { name: 'png-32768x1024', ext: '.png', buf: await solid(32768, 1024).png().toBuffer() },
    { name: 'gif-1500x1500', ext: '.gif', buf: await solid(1500, 1500).gif().toBuffer() },
    { name: 'jpg-256x8192-orient6', ext: '.jpg', buf: await solid(256, 8192).jpeg().withMetadata({ orientation: 6 }).toBuffer() },
  ];
}

/** Other formats under image names: libvips reads several of them, Headstart must refuse them by content. */
async function foreign(sharp) {
  const small = () => sharp({ create: { width: 20, height: 20, channels: 3, background: 'blue' } });
  const list = [
    { name: 'svg', buf: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20"><rect width="20" height="20" fill="red"/></svg>') },
    { name: 'svg-huge', buf: Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"><rect width="100%" height="100%"/></svg>') },
    { name: 'tiff', buf: await small().tiff().toBuffer() },
    { name: 'tiff-big-endian', buf: Buffer.concat([Buffer.from('MM\0*\0\0\0\x08', 'latin1'), Buffer.alloc(64, 1)]) },
    { name: 'pdf', buf: Buffer.from('%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n') },
    { name: 'html', buf: Buffer.from('<!doctype html><html><body>not an image</body></html>') },
    { name: 'text', buf: Buffer.from('just some text\n') },
    { name: 'heic-brand', buf: Buffer.concat([Buffer.from('\0\0\0\x18ftypheic\0\0\0\0mif1heic', 'latin1'), Buffer.alloc(40)]) },
    { name: 'ppm', buf: Buffer.from('P6\n2 2\n255\n\xff\0\0\0\xff\0\0\0\xff\xff\xff\xff', 'latin1') },
  ];
  try {
    list.push({ name: 'avif', buf: await small().avif().toBuffer() });
  } catch (err) {
    process.stderr.write(`fuzz: sharp writes no AVIF here (${err.message}); left out\n`);
  }
  return list;
}

function flipBits(buf, rnd, n, within = buf.length) {
  const b = Buffer.from(buf);
  for (let i = 0; i < n; i++) {
    const at = rnd.int(0, Math.max(0, Math.min(within, b.length) - 1));
    b[at] ^= 1 << rnd.int(0, 7);
  }
  return b;
}

/** Rewrites width and height where the header keeps them (fixing the PNG CRC half of the time). */
function forgeDims(buf, ext, rnd) {
  const b = Buffer.from(buf);
  const dim = () => rnd.pick([0, 1, 2, rnd.int(3, 70000), 65535, 0x7fffffff, rnd.int(16000, 40000), 8001]);
  if (ext === '.png' && b.length >= 33) {
    b.writeUInt32BE(dim() >>> 0, 16);
    b.writeUInt32BE(dim() >>> 0, 20);
    if (rnd.next() < 0.5) b.writeUInt32BE(crc32(b.subarray(12, 29)), 29);
  } else if (ext === '.jpg') {
    for (let i = 2; i + 9 < b.length; i++) {
      if (b[i] === 0xff && b[i + 1] >= 0xc0 && b[i + 1] <= 0xc2) {
        b.writeUInt16BE(dim() & 0xffff, i + 5);
        b.writeUInt16BE(dim() & 0xffff, i + 7);
        break;
      }
    }
  } else if (ext === '.gif' && b.length >= 10) {
    b.writeUInt16LE(dim() & 0xffff, 6);
    b.writeUInt16LE(dim() & 0xffff, 8);
    const desc = b.indexOf(0x2c, 13);
    if (desc > 0 && desc + 9 < b.length && rnd.next() < 0.7) {
      b.writeUInt16LE(dim() & 0xffff, desc + 5);
      b.writeUInt16LE(dim() & 0xffff, desc + 7);
    }
  } else if (ext === '.webp' && b.length >= 30) {
    if (b.toString('latin1', 12, 16) === 'VP8X') {
      b.writeUIntLE(dim() & 0xffffff, 24, 3);
      b.writeUIntLE(dim() & 0xffffff, 27, 3);
    } else b.writeUInt16LE(dim() & 0x3fff, 26);
  } else if (ext === '.bmp' && b.length >= 54) {
    const field = rnd.int(0, 5);
    if (field === 0) b.writeUInt32LE(dim() >>> 0, 18);
    else if (field === 1) b.writeInt32LE(rnd.next() < 0.5 ? -dim() | 0 : dim() | 0, 22);
    else if (field === 2) b.writeUInt16LE(rnd.pick([0, 2, 3, 5, 15, 48, 64]), 28);
    else if (field === 3) b.writeUInt32LE(rnd.pick([1, 2, 3, 4, 5, 6, 99]), 30);
    else if (field === 4) b.writeUInt32LE(rnd.pick([0, 1, 53, b.length, 0xffffffff]), 10);
    else b.writeUInt32LE(rnd.pick([12, 64, 0, 1000]), 14);
  }
  return b;
}

/** Sets the EXIF orientation value (tag 0x0112) to anything, 0..255, where the EXIF block has one. */
function forgeOrientation(buf, rnd) {
  const b = Buffer.from(buf);
  const le = b.indexOf(Buffer.from([0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00]));
  const be = b.indexOf(Buffer.from([0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01]));
  if (le >= 0) b[le + 8] = rnd.int(0, 255);
  else if (be >= 0) b[be + 9] = rnd.int(0, 255);
  return b;
}

/** One mutated file: [name, extension, bytes]. */
function mutate(i, rnd, pool) {
  const s = rnd.pick(pool.seeds);
  const kind = rnd.int(0, 99);
  if (kind < 8) return [`valid`, s.ext, s.buf];
  if (kind < 26) return [`flip-${s.ext.slice(1)}`, s.ext, flipBits(s.buf, rnd, rnd.int(1, 40))];
  if (kind < 36) return [`flip-header-${s.ext.slice(1)}`, s.ext, flipBits(s.buf, rnd, rnd.int(1, 6), 64)];
  if (kind < 48) return [`truncate-${s.ext.slice(1)}`, s.ext, s.buf.subarray(0, rnd.int(0, s.buf.length - 1))];
  if (kind < 62) return [`forge-dims-${s.ext.slice(1)}`, s.ext, forgeDims(s.buf, s.ext, rnd)];
  if (kind < 68) return [`forge-orientation-${s.ext.slice(1)}`, s.ext, forgeOrientation(s.buf, rnd)];
  if (kind < 74) {
    const b = rnd.pick(pool.bombs);
    return [`bomb-${b.name}`, b.ext, b.buf];
  }
  if (kind < 77) {
    const b = rnd.pick(pool.bombs);
    return [`bomb-truncated-${b.name}`, b.ext, b.buf.subarray(0, rnd.int(1, b.buf.length - 1))];
  }
  if (kind < 82) {
    const f = rnd.pick(pool.foreign);
    return [`foreign-${f.name}`, rnd.pick(['.png', '.jpg', '.webp', '.gif', '.bmp']), f.buf];
  }
  if (kind < 85) return ['zeros', rnd.pick(['.jpg', '.png']), Buffer.alloc(rnd.pick([0, 1, 54, 1000, rnd.int(2, 100000)]))];
  if (kind < 90) {
    // Another format's body under this one's signature (header says X, content is Y).
    const o = rnd.pick(pool.seeds);
    const head = Math.min(s.buf.length, rnd.int(2, 40));
    return [`splice-${s.ext.slice(1)}-${o.ext.slice(1)}`, s.ext, Buffer.concat([s.buf.subarray(0, head), o.buf.subarray(Math.min(head, o.buf.length))])];
  }
  if (kind < 95) {
    const b = Buffer.from(s.buf);
    const at = rnd.int(0, b.length);
    const junk = Buffer.alloc(rnd.int(1, 4000));
    for (let k = 0; k < junk.length; k++) junk[k] = rnd.int(0, 255);
    return [`insert-${s.ext.slice(1)}`, s.ext, Buffer.concat([b.subarray(0, at), junk, b.subarray(at)])];
  }
  // Random bytes after a valid signature.
  const sig = s.buf.subarray(0, Math.min(16, s.buf.length));
  const body = Buffer.alloc(rnd.int(0, 3000));
  for (let k = 0; k < body.length; k++) body[k] = rnd.int(0, 255);
  return [`signature-${s.ext.slice(1)}`, s.ext, Buffer.concat([sig, body])];
}

/** Writes N hostile files into DATA/fuzz/; returns {file: kind}. */
async function generate(data, count, seed) {
  const sharp = require('sharp');
  const rnd = rngOf(seed);
  const pool = { seeds: await seeds(sharp, rnd), bombs: await bombs(sharp), foreign: await foreign(sharp) };
  const dir = path.join(data, 'fuzz');
  mkdirSync(dir, { recursive: true });
  const kinds = {};
  const add = (name, fill) => {
    const file = path.join(dir, name);
    fill(file);
    kinds[file] = name.replace(/^\d+-/, '').replace(/\.[a-z]+$/, '');
  };
  // Fixed hostile entries first: a sparse 1.9 GB file of zeros, a FIFO, a link to a device.
  add('0000-sparse-zeros.jpg', (f) => {
    writeFileSync(f, '');
    truncateSync(f, Math.floor(1.9 * 1024 ** 3));
  });
  let special = 1;
  try {
    execFileSync('mkfifo', [path.join(dir, '0001-fifo.jpg')]);
    kinds[path.join(dir, '0001-fifo.jpg')] = 'fifo';
    special++;
  } catch (err) {
    process.stderr.write(`fuzz: no mkfifo here (${err.message}); FIFO case left out\n`);
  }
  if (process.platform !== 'win32') {
    add('0002-dev-zero.png', (f) => symlinkSync('/dev/zero', f));
    special++;
  }
  for (let i = special; i < count; i++) {
    const [name, ext, buf] = mutate(i, rnd, pool);
    add(`${String(i).padStart(4, '0')}-${name}${ext}`, (f) => writeFileSync(f, buf));
  }
  return kinds;
}

// ---------------------------------------------------------------- parent side

function vmHwmMb(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0; // the process is gone or /proc is absent: its own report counts
  }
}

/**
 * Runs one child on `job` until it finishes or a file outlives `timeoutMs`
 * (then the child is killed). Resolves with the results seen, the files still
 * in flight, whether it hung or died, and its peak RSS.
 */
function runChild(job, timeoutMs, onResult) {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [self, '--child', JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const inFlight = new Map(); // file -> start time
    const scanStart = Date.now();
    let scanning = !job.files;
    let files = job.files ?? [];
    let peak = 0;
    let hung = [];
    let stderr = '';
    let buffered = '';
    proc.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
    proc.stdout.on('data', (d) => {
      buffered += d;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
        if (msg.phase === 'decode') {
          scanning = false;
          files = msg.files;
        } else if (msg.start) inFlight.set(msg.file, Date.now());
        else if (msg.result) {
          inFlight.delete(msg.file);
          onResult(msg);
        } else if (msg.done) peak = Math.max(peak, msg.maxRssMb);
      }
    });
    const timer = setInterval(() => {
      peak = Math.max(peak, vmHwmMb(proc.pid));
      const now = Date.now();
      const late = [...inFlight].filter(([, t]) => now - t > timeoutMs).map(([f]) => f);
      // The scan has no per-file events: it gets the per-file limit plus 20 ms a file.
      if (scanning && now - scanStart > timeoutMs + 20 * job.count) late.push('(scan)');
      if (late.length) {
        hung = late;
        proc.kill('SIGKILL');
      }
    }, 250);
    proc.on('exit', (code, signal) => {
      clearInterval(timer);
      resolve({ code, signal, hung, stillInFlight: [...inFlight.keys()].filter((f) => !hung.includes(f)), files, scanned: !scanning, peak, stderr });
    });
  });
}

function parse() {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '1000' },
      seed: { type: 'string', default: '1' },
      'timeout-ms': { type: 'string', default: '30000' },
      size: { type: 'string', default: '224' },
      concurrency: { type: 'string', default: String(DEFAULT_CONCURRENCY) },
      json: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      child: { type: 'string' },
    },
  });
  return values;
}

async function main() {
  const opts = parse();
  if (opts.child) return child(JSON.parse(opts.child));
  const count = Number(opts.count);
  const seed = Number(opts.seed);
  const timeoutMs = Number(opts['timeout-ms']);
  if (!Number.isInteger(count) || count < 10) throw new Error(`--count must be an integer of at least 10 (got ${opts.count})`);
  if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer (got ${opts.seed})`);
  const started = Date.now();
  const data = mkdtempSync(path.join(os.tmpdir(), 'headstart-fuzz-'));
  try {
    const kinds = await generate(data, count, seed);
    const genSeconds = (Date.now() - started) / 1000;
    const results = new Map(); // file -> {result, reason}
    const problems = [];
    const onResult = (m) => results.set(m.file, m);
    let peak = 0;
    let job = { data, size: Number(opts.size), count, concurrency: Number(opts.concurrency) };
    for (let restarts = 0; restarts < 50; restarts++) {
      const r = await runChild(job, timeoutMs, onResult);
      peak = Math.max(peak, r.peak);
      for (const f of r.hung) results.set(f, { file: f, result: 'hung' });
      const died = r.code !== 0 && !r.hung.length;
      if (died) {
        for (const f of r.stillInFlight) results.set(f, { file: f, result: 'crashed', reason: `decoder process died (${r.signal ?? r.code}): ${r.stderr.slice(-300)}` });
        if (!r.scanned) results.set('(scan)', { file: '(scan)', result: 'crashed', reason: `scan died (${r.signal ?? r.code}): ${r.stderr.slice(-300)}` });
      }
      if (!r.scanned) break; // the scan itself hung or died: nothing more to decode
      const left = r.files.filter((f) => !results.has(f) && !r.stillInFlight.includes(f)).concat(died ? [] : r.stillInFlight);
      if (r.code === 0 || !left.length) break;
      job = { ...job, data: undefined, files: left };
    }
    const tally = { tried: Object.keys(kinds).length, decoded: 0, skipped: 0, crashed: 0, hung: 0, unexplained: 0 };
    const reasons = new Map();
    for (const file of Object.keys(kinds).concat(results.has('(scan)') ? ['(scan)'] : [])) {
      const r = results.get(file) ?? { result: 'lost', reason: '' };
      if (r.result === 'decoded') tally.decoded++;
      else if (r.result === 'skipped' && !OPAQUE_REASON.test(r.reason)) {
        tally.skipped++;
        const key = r.reason.replace(/\d+/g, 'N').replace(/\(named .*$/, '').slice(0, 90);
        reasons.set(key, (reasons.get(key) ?? 0) + 1);
      } else {
        if (r.result === 'crashed') tally.crashed++;
        else if (r.result === 'hung') tally.hung++;
        else tally.unexplained++;
        problems.push({ file: path.basename(file), kind: kinds[file], result: r.result, reason: r.reason });
      }
    }
    const seconds = (Date.now() - started) / 1000;
    const ok = tally.crashed + tally.hung + tally.unexplained === 0 && peak <= PEAK_LIMIT_MB;
    const summary = { ...tally, peakRssMb: Math.round(peak), seconds: Math.round(seconds * 10) / 10, generateSeconds: Math.round(genSeconds * 10) / 10, seed, ok };
    if (opts.json) process.stdout.write(`${JSON.stringify({ ...summary, problems, reasons: Object.fromEntries([...reasons].sort((a, b) => b[1] - a[1])) })}\n`);
    else {
      for (const [reason, n] of [...reasons].sort((a, b) => b[1] - a[1])) process.stdout.write(`${String(n).padStart(5)}  ${reason}\n`);
      for (const p of problems.slice(0, 40)) process.stdout.write(`PROBLEM ${p.result} ${p.file} (${p.kind}): ${p.reason ?? ''}\n`);
      process.stdout.write(
        `fuzz: tried ${tally.tried}, decoded ${tally.decoded}, skipped with a reason ${tally.skipped}, crashed ${tally.crashed}, hung ${tally.hung}, skipped without a reason ${tally.unexplained}; ` +
          `peak RSS ${summary.peakRssMb} MB (limit ${PEAK_LIMIT_MB}); ${summary.seconds} s (seed ${seed})\n`,
      );
    }
    if (peak > PEAK_LIMIT_MB) process.stderr.write(`fuzz: peak resident memory ${Math.round(peak)} MB is over ${PEAK_LIMIT_MB} MB\n`);
    process.exitCode = ok ? 0 : 1;
  } finally {
    if (opts.keep) process.stderr.write(`fuzz: files kept in ${data}\n`);
    else rmSync(data, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`fuzz: ${err.stack ?? err}\n`);
  process.exit(2);
});
