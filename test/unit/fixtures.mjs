// Small models and datasets made by code for the engine tests: a tiny
// convolutional backbone (fast stand-in for MobileNet), noisy colour images
// (distinct content per file), and hand-written image files (BMP, a PNG
// header with chosen dimensions). Seeded throughout; nothing binary committed.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { core, sharp, tf } from './helpers.mjs';

/**
 * A tiny layers backbone (two strided convolutions + global average pooling),
 * saved as model.json + weights.bin under `dir`. Returns the model.json path.
 */
export async function tinyBackbone(dir, { size = 32, seed = 1, filters = [8, 16] } = {}) {
  await core.initBackend();
  const model = tf.sequential();
  filters.forEach((f, i) => {
    model.add(tf.layers.conv2d({
      ...(i === 0 ? { inputShape: [size, size, 3] } : {}),
      filters: f,
      kernelSize: 3,
      strides: 2,
      activation: 'relu',
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed + i }),
      biasInitializer: tf.initializers.constant({ value: 0.01 }),
    }));
  });
  model.add(tf.layers.globalAveragePooling2d({}));
  await model.save(core.dirSaver(dir));
  model.dispose();
  return path.join(dir, 'model.json');
}

/** RGB bytes of a w x h image of `color` with seeded noise of +-`noise` (so every file differs). */
export function noisyPixels(w, h, color, rng, noise = 40) {
  const buf = Buffer.alloc(w * h * 3);
  const c = [color.r, color.g, color.b];
  for (let i = 0; i < buf.length; i++) buf[i] = Math.max(0, Math.min(255, c[i % 3] + Math.round((rng.next() * 2 - 1) * noise)));
  return buf;
}

/** Writes one noisy colour image in the format of its extension (png, jpg, webp, gif). */
export async function noisyImage(file, color, rng, { width = 40, height = 40, noise = 40 } = {}) {
  const img = sharp(noisyPixels(width, height, color, rng, noise), { raw: { width, height, channels: 3 } });
  const ext = path.extname(file).toLowerCase();
  const out = ext === '.jpg' || ext === '.jpeg' ? img.jpeg({ quality: 90 }) : ext === '.webp' ? img.webp() : ext === '.gif' ? img.gif() : img.png();
  await mkdir(path.dirname(file), { recursive: true });
  await out.toFile(file);
}

export const COLOURS = {
  red: { r: 220, g: 40, b: 40 },
  green: { r: 40, g: 200, b: 60 },
  blue: { r: 40, g: 60, b: 220 },
  yellow: { r: 230, g: 220, b: 40 },
};

/**
 * Class folders of noisy colour images: `classes` maps a folder name to a
 * colour (or to a colour name of COLOURS). Returns the files by class.
 */
export async function colourDataset(dir, { classes = { red: 'red', blue: 'blue' }, perClass = 8, seed = 1, ext = 'png', width = 40, height = 40 } = {}) {
  const rng = new core.Rng(seed);
  const out = {};
  for (const [name, colour] of Object.entries(classes)) {
    const c = typeof colour === 'string' ? COLOURS[colour] : colour;
    out[name] = [];
    for (let i = 0; i < perClass; i++) {
      const file = path.join(dir, name, `${name.replace(/[^\w]/g, '_')}-${i}.${ext}`);
      await noisyImage(file, c, rng, { width, height });
      out[name].push(file);
    }
  }
  return out;
}

/** A 24-bit uncompressed BMP (BITMAPINFOHEADER, bottom-up rows) of `pixel(x, y) -> [r, g, b]`. */
export function bmp24(width, height, pixel) {
  const rowBytes = Math.ceil((width * 3) / 4) * 4;
  const buf = Buffer.alloc(54 + rowBytes * height);
  buf.write('BM', 0, 'latin1');
  buf.writeUInt32LE(buf.length, 2);
  buf.writeUInt32LE(54, 10);
  buf.writeUInt32LE(40, 14);
  buf.writeInt32LE(width, 18);
  buf.writeInt32LE(height, 22);
  buf.writeUInt16LE(1, 26);
  buf.writeUInt16LE(24, 28);
  buf.writeUInt32LE(0, 30);
  buf.writeUInt32LE(rowBytes * height, 34);
  buf.writeInt32LE(2835, 38);
  buf.writeInt32LE(2835, 42);
  for (let y = 0; y < height; y++) {
    const row = 54 + (height - 1 - y) * rowBytes; // bottom-up
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y);
      buf[row + x * 3] = b;
      buf[row + x * 3 + 1] = g;
      buf[row + x * 3 + 2] = r;
    }
  }
  return buf;
}

function pngChunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(td));
  return Buffer.concat([len, td, crc]);
}

/**
 * A PNG whose header declares width x height (RGB, 8 bit) with valid CRCs but
 * only a tiny IDAT: decoding it would need width*height*3 bytes.
 */
export function pngWithHeader(width, height) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(64))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Pixel [r, g, b] at (x, y) of a size x size x 3 decoded image. */
export function pixelAt(rgb, size, x, y) {
  const i = (y * size + x) * 3;
  return [rgb[i], rgb[i + 1], rgb[i + 2]];
}

/** Writes a text file, creating its folder. */
export async function writeText(file, text) {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
}

/** trainRun options for fast tests: the tiny backbone, in-process extraction, few epochs. */
export function fastTrain(backbone, data, out, cacheDir, extra = {}) {
  return { data, out, backbone, cacheDir, workers: 1, epochs: 4, batchSize: 8, hiddenUnits: 16, ...extra };
}
