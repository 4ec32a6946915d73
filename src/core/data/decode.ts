import * as fs from 'node:fs/promises';
import sharp from 'sharp';
// bmp-js: libvips (inside sharp) has no BMP loader.
import bmp from 'bmp-js';

/** Images with more pixels than this are refused from their header, before decoding. */
export const DEFAULT_MAX_PIXELS = 64_000_000;

/** Version of the preprocessing below; part of every cache key. Bump on any change. */
export const PREPROCESS_VERSION = 'p1-cover-centre-flatten-white';

export class DecodeError extends Error {}

function bmpDims(buf: Buffer): { width: number; height: number } | undefined {
  if (buf.length < 26 || buf[0] !== 0x42 || buf[1] !== 0x4d) return undefined;
  // Width unsigned, as bmp-js reads it (a negative height only means top-down rows).
  return { width: buf.readUInt32LE(18), height: Math.abs(buf.readInt32LE(22)) };
}

/** The container format from the file's first bytes, if it is one Headstart reads. */
function formatOf(buf: Buffer): 'jpeg' | 'png' | 'gif' | 'webp' | 'bmp' | undefined {
  if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) return 'jpeg';
  if (buf.length >= 8 && buf.readUInt32BE(0) === 0x89504e47 && buf.readUInt32BE(4) === 0x0d0a1a0a) return 'png';
  if (buf.length >= 6 && /^GIF8[79]a$/.test(buf.toString('latin1', 0, 6))) return 'gif';
  if (buf.length >= 12 && buf.toString('latin1', 0, 4) === 'RIFF' && buf.toString('latin1', 8, 12) === 'WEBP') return 'webp';
  if (buf.length >= 2 && buf[0] === 0x42 && buf[1] === 0x4d) return 'bmp';
  return undefined;
}

/** True when a file of a known format stops before its end marker. */
function endsEarly(buf: Buffer, format: string): boolean {
  let end = buf.length;
  while (end > 0 && buf[end - 1] === 0) end--; // some writers pad with zeros
  switch (format) {
    case 'jpeg':
      return !(end >= 2 && buf[end - 2] === 0xff && buf[end - 1] === 0xd9);
    case 'png':
      return buf.lastIndexOf('IEND', undefined, 'latin1') < 0;
    case 'gif':
      return buf[end - 1] !== 0x3b;
    case 'webp':
      return buf.readUInt32LE(4) + 8 > buf.length;
    default:
      return false;
  }
}

/**
 * A plain-words reason for a failed decode. The kind of failure comes from the
 * bytes themselves: libvips keeps one error buffer per process, so its message
 * can carry text from another image that failed at the same time.
 */
function reasonOf(err: unknown, buf: Buffer): string {
  const msg = String((err as Error)?.message ?? err).split('\n')[0] ?? '';
  if (/exceeds pixel limit/i.test(msg)) return msg;
  const format = formatOf(buf);
  if (!format) return 'not a readable image (unknown format)';
  if (endsEarly(buf, format)) return `truncated or damaged image (the ${format.toUpperCase()} data ends early)`;
  return `cannot decode (${msg})`;
}

/**
 * Decodes one image file to `size` x `size` RGB bytes (HWC): EXIF orientation
 * applied, alpha flattened onto white, grayscale expanded, centre-cropped to a
 * square and resized. Throws DecodeError with a reason a user can act on.
 */
export async function decodeImage(buf: Buffer, size: number, maxPixels = DEFAULT_MAX_PIXELS): Promise<Uint8Array> {
  if (buf.length === 0) throw new DecodeError('empty file (0 bytes)');
  let img: sharp.Sharp;
  const dims = bmpDims(buf);
  try {
    if (dims) {
      if (dims.width * dims.height > maxPixels) throw new DecodeError(`image is ${dims.width}x${dims.height}, over the ${maxPixels}-pixel limit`);
      const decoded = bmp.decode(buf);
      const abgr = decoded.data;
      const rgb = Buffer.alloc(decoded.width * decoded.height * 3);
      for (let i = 0, j = 0; i < abgr.length; i += 4, j += 3) {
        rgb[j] = abgr[i + 3]!;
        rgb[j + 1] = abgr[i + 2]!;
        rgb[j + 2] = abgr[i + 1]!;
      }
      img = sharp(rgb, { raw: { width: decoded.width, height: decoded.height, channels: 3 } });
    } else {
      const meta = await sharp(buf, { limitInputPixels: false }).metadata();
      if (!meta.width || !meta.height) throw new DecodeError('not a readable image (no dimensions)');
      if (meta.width * meta.height > maxPixels) throw new DecodeError(`image is ${meta.width}x${meta.height}, over the ${maxPixels}-pixel limit`);
      img = sharp(buf, { limitInputPixels: maxPixels, failOn: 'error' }).rotate();
    }
    const { data, info } = await img
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .toColourspace('srgb')
      .resize(size, size, { fit: 'cover', position: 'centre' })
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== size * size * 3) throw new DecodeError(`unexpected decoded shape ${info.width}x${info.height}x${info.channels}`);
    return new Uint8Array(data.buffer, data.byteOffset, data.length);
  } catch (err) {
    if (err instanceof DecodeError) throw err;
    throw new DecodeError(reasonOf(err, buf));
  }
}

/** Reads and decodes; read failures become DecodeError too. */
export async function readAndDecode(file: string, size: number, maxPixels?: number): Promise<Uint8Array> {
  let buf: Buffer;
  try {
    buf = await fs.readFile(file);
  } catch (err) {
    throw new DecodeError(`cannot read file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return decodeImage(buf, size, maxPixels);
}

/** Side of the raw-pixel thumbnail the baseline classifier sees. */
export const THUMB = 16;

/** Area-averages a size x size x 3 image down to THUMB x THUMB x 3, scaled to 0..1. */
export function thumbnail(rgb: Uint8Array, size: number): Float32Array {
  const out = new Float32Array(THUMB * THUMB * 3);
  for (let ty = 0; ty < THUMB; ty++) {
    const y0 = Math.floor((ty * size) / THUMB);
    const y1 = Math.floor(((ty + 1) * size) / THUMB);
    for (let tx = 0; tx < THUMB; tx++) {
      const x0 = Math.floor((tx * size) / THUMB);
      const x1 = Math.floor(((tx + 1) * size) / THUMB);
      let r = 0, g = 0, b = 0;
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) {
          const i = (y * size + x) * 3;
          r += rgb[i]!;
          g += rgb[i + 1]!;
          b += rgb[i + 2]!;
        }
      }
      const n = (y1 - y0) * (x1 - x0) * 255;
      const o = (ty * THUMB + tx) * 3;
      out[o] = r / n;
      out[o + 1] = g / n;
      out[o + 2] = b / n;
    }
  }
  return out;
}
