import * as path from 'node:path';
import sharp from 'sharp';
// bmp-js: libvips (inside sharp) has no BMP loader.
import bmp from 'bmp-js';
import { MAX_FILE_BYTES, UnreadableFileError, readRegularFile } from './files';

export { MAX_FILE_BYTES };

/** Images with more pixels than this are refused from their header, before decoding. */
export const DEFAULT_MAX_PIXELS = 64_000_000;

/**
 * Longest side an image may have, in pixels, after its EXIF orientation is
 * applied. Refused from the header, before decoding.
 */
export const MAX_SIDE = 32_768;

/**
 * Largest ratio of the longer side to the shorter one. The centre crop is
 * resized so that the shorter side fits the model's input; the longer side is
 * scaled by the same factor, so a 1x16960 strip would grow to 224x3.8 million
 * pixels (gigabytes) before the crop. At 32:1 the working image stays under
 * 32 times the input size (7168x224 for a 224 model).
 */
export const MAX_ASPECT = 32;

/**
 * Wall-clock limit of one decode in seconds (sharp's own timeout): a backstop
 * against decoder paths the limits above do not foresee.
 */
export const DECODE_TIMEOUT_S = 20;

/** Version of the preprocessing below; part of every cache key. Bump on any change. */
// p2: BMP headers normalised before bmp-js (32-bit BMPs with bit fields used to decode with the wrong channels).
export const PREPROCESS_VERSION = 'p2-cover-centre-flatten-white';

/** The formats Headstart decodes, as their content says (not their name). */
export type ImageFormat = 'jpeg' | 'png' | 'gif' | 'webp' | 'bmp';

/** What to tell a user the supported formats are. */
export const READABLE_FORMATS = 'JPEG, PNG, WebP, GIF and BMP';

export class DecodeError extends Error {
  /** The container format the content turned out to be (for "named .png but is a TIFF"). */
  constructor(
    message: string,
    readonly content?: string,
  ) {
    super(message);
  }
}

/** The container format from the file's first bytes, if it is one Headstart reads. */
export function formatOf(buf: Buffer): ImageFormat | undefined {
  if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) return 'jpeg';
  if (buf.length >= 8 && buf.readUInt32BE(0) === 0x89504e47 && buf.readUInt32BE(4) === 0x0d0a1a0a) return 'png';
  if (buf.length >= 6 && /^GIF8[79]a$/.test(buf.toString('latin1', 0, 6))) return 'gif';
  if (buf.length >= 12 && buf.toString('latin1', 0, 4) === 'RIFF' && buf.toString('latin1', 8, 12) === 'WEBP') return 'webp';
  if (buf.length >= 2 && buf[0] === 0x42 && buf[1] === 0x4d) return 'bmp';
  return undefined;
}

/**
 * The name of a format Headstart does not read, from the file's first bytes
 * (libvips would decode several of these: they are refused by content).
 */
function foreignFormatOf(buf: Buffer): string | undefined {
  const head = buf.toString('latin1', 0, Math.min(buf.length, 4096));
  if (head.startsWith('II*\0') || head.startsWith('MM\0*') || head.startsWith('II+\0') || head.startsWith('MM\0+')) return 'TIFF';
  if (head.slice(4, 8) === 'ftyp') {
    const brand = head.slice(8, 12);
    if (/^avi[fs]$/.test(brand)) return 'AVIF';
    if (/^(hei[cfmsx]|hev[cmsx]|mif1|msf1)$/.test(brand)) return 'HEIF';
    return undefined;
  }
  if (/^\s*(\uFEFF|\xEF\xBB\xBF)?\s*</.test(head) && /<svg[\s>]/i.test(head)) return 'SVG';
  if (head.startsWith('%PDF')) return 'PDF';
  if (head.startsWith('\xFF\x0A') || head.startsWith('\0\0\0\x0CJXL ')) return 'JPEG XL';
  if (head.startsWith('\0\0\0\x0CjP  ') || head.startsWith('\xFF\x4F\xFF\x51')) return 'JPEG 2000';
  if (head.startsWith('8BPS')) return 'Photoshop (PSD)';
  if (head.startsWith('\0\0\x01\0')) return 'ICO';
  if (/^P[1-7]\s/.test(head)) return 'PNM';
  return undefined;
}

/** Refuses an image whose size after orientation is over the limits; returns nothing when it is fine. */
function checkSize(width: number, height: number, maxPixels: number): void {
  if (!(width > 0 && height > 0)) throw new DecodeError(`image has no pixels (${width}x${height} in its header)`);
  const dims = `${width}x${height}`;
  if (width * height > maxPixels) throw new DecodeError(`image is ${dims}, over the ${maxPixels}-pixel limit`);
  if (Math.max(width, height) > MAX_SIDE) throw new DecodeError(`image is ${dims}, over the ${MAX_SIDE}-pixel limit for a side`);
  const aspect = Math.max(width, height) / Math.min(width, height);
  if (aspect > MAX_ASPECT) throw new DecodeError(`image is ${dims}, a ${Math.round(aspect)}:1 strip (over the ${MAX_ASPECT}:1 limit); crop it`);
}

/** True when a file of a known format stops before its end marker. */
function endsEarly(buf: Buffer, format: ImageFormat): boolean {
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

const NAMES: Record<ImageFormat, string> = { jpeg: 'JPEG', png: 'PNG', gif: 'GIF', webp: 'WebP', bmp: 'BMP' };

/**
 * A plain-words reason for a failed decode of a file whose first bytes name a
 * format Headstart reads. The kind of failure comes from the bytes and from
 * sharp's own limits: libvips keeps one error buffer per process, so its
 * message can carry text from another image that failed at the same time, and
 * is often just "Unknown error".
 */
function reasonOf(err: unknown, buf: Buffer, format: ImageFormat, stage: 'header' | 'data'): string {
  const msg = String((err as Error)?.message ?? err).split('\n')[0] ?? '';
  if (/exceeds pixel limit/i.test(msg)) return `image is over the pixel limit (${msg})`;
  if (/timeout/i.test(msg)) return `image took over ${DECODE_TIMEOUT_S} s to decode (damaged or hostile); re-save or remove it`;
  if (endsEarly(buf, format)) return `truncated or damaged image (the ${NAMES[format]} data ends early)`;
  // Where it failed is known from our own call, not from libvips' shared message.
  return stage === 'header'
    ? `damaged ${NAMES[format]} image (its header does not decode); re-save or remove it`
    : `damaged ${NAMES[format]} image (its pixel data does not decode); re-save or remove it`;
}

/** Offsets of the BMP file header and DIB header fields (BITMAPINFOHEADER and later). */
const BMP = { offset: 10, headerSize: 14, width: 18, height: 22, planes: 26, bpp: 28, compression: 30, colours: 46 } as const;
const BMP_COMPRESSION: Record<number, string> = { 4: 'JPEG-compressed', 5: 'PNG-compressed', 6: 'alpha bit fields', 11: 'CMYK', 12: 'CMYK RLE-8', 13: 'CMYK RLE-4' };

/**
 * Checks a BMP header against what bmp-js decodes correctly and rewrites it to
 * the plain 40-byte header bmp-js expects (it ignores the pixel-data offset and
 * the header size). Throws DecodeError naming the variant or the damage;
 * returns the buffer to decode and its size.
 */
/** Largest run-length-encoded BMP decoded (bmp-js holds it in memory: about 7 bytes a pixel). */
export const BMP_RLE_MAX_PIXELS = 16_000_000;

function normaliseBmp(buf: Buffer, maxPixels: number): { data: Buffer; width: number; height: number } {
  if (buf.length < 54) throw new DecodeError('truncated or damaged image (the BMP header ends early)', 'bmp');
  const headerSize = buf.readUInt32LE(BMP.headerSize);
  if (headerSize === 12 || headerSize === 64) throw new DecodeError('unsupported BMP variant (OS/2 bitmap); re-save it as PNG or JPEG', 'bmp');
  if (![40, 52, 56, 108, 124].includes(headerSize)) throw new DecodeError(`damaged BMP image (header size ${headerSize})`, 'bmp');
  const width = buf.readUInt32LE(BMP.width); // unsigned, as bmp-js reads it
  const height = Math.abs(buf.readInt32LE(BMP.height)); // negative: rows stored top-down
  checkSize(width, height, maxPixels);
  const bpp = buf.readUInt16LE(BMP.bpp);
  let compression = buf.readUInt32LE(BMP.compression);
  if (buf.readUInt16LE(BMP.planes) !== 1) throw new DecodeError('damaged BMP image (its header says more than one plane)', 'bmp');
  if (![1, 4, 8, 16, 24, 32].includes(bpp)) throw new DecodeError(`unsupported BMP variant (${bpp} bits per pixel); re-save it as PNG or JPEG`, 'bmp');
  const rle = (compression === 1 && bpp === 8) || (compression === 2 && bpp === 4);
  // RLE data can claim any size in a few bytes (runs of 255 pixels, delta escapes that skip rows), and bmp-js
  // decodes it synchronously in memory, beyond sharp's timeout: cap it well below the general limit.
  if (rle && width * height > BMP_RLE_MAX_PIXELS) throw new DecodeError(`run-length-encoded BMP of ${width}x${height} is over the ${BMP_RLE_MAX_PIXELS / 1e6}-megapixel limit for that variant; re-save it as PNG or JPEG`, 'bmp');
  let masks: Buffer | undefined;
  if (compression === 3 && (bpp === 16 || bpp === 32)) {
    // Bit fields: right after the first 40 bytes of the DIB header (inside it from V2 on).
    const at = 54;
    if (buf.length < at + 12) throw new DecodeError('truncated or damaged image (the BMP header ends early)', 'bmp');
    const [r, g, b] = [buf.readUInt32LE(at), buf.readUInt32LE(at + 4), buf.readUInt32LE(at + 8)];
    if (bpp === 32 && r === 0xff0000 && g === 0xff00 && b === 0xff) compression = 0; // plain BGRA: the uncompressed layout
    else if (bpp === 16 && ((r === 0xf800 && g === 0x7e0 && b === 0x1f) || (r === 0x7c00 && g === 0x3e0 && b === 0x1f))) masks = Buffer.alloc(16);
    else throw new DecodeError('unsupported BMP variant (unusual colour bit fields); re-save it as PNG or JPEG', 'bmp');
    masks?.writeUInt32LE(r, 0);
    masks?.writeUInt32LE(g, 4);
    masks?.writeUInt32LE(b, 8);
  } else if (compression !== 0 && !rle) {
    throw new DecodeError(`unsupported BMP variant (${BMP_COMPRESSION[compression] ?? `compression ${compression}`} with ${bpp} bits per pixel); re-save it as PNG or JPEG`, 'bmp');
  }
  const colours = buf.readUInt32LE(BMP.colours);
  const paletteLen = bpp <= 8 ? (colours === 0 ? 1 << bpp : colours) : 0;
  if (bpp <= 8 && colours > 1 << bpp) throw new DecodeError(`damaged BMP image (its header says ${colours} palette colours)`, 'bmp');
  const paletteAt = 14 + headerSize;
  const offset = buf.readUInt32LE(BMP.offset);
  const stride = Math.ceil((width * bpp) / 32) * 4;
  const need = rle ? 1 : stride * height;
  if (paletteAt + paletteLen * 4 > buf.length || offset > buf.length || offset < paletteAt || offset + need > buf.length) {
    throw new DecodeError('truncated or damaged image (the BMP data ends early)', 'bmp');
  }
  const header = Buffer.from(buf.subarray(0, 54));
  header.writeUInt32LE(40, BMP.headerSize);
  header.writeUInt32LE(compression === 3 ? 3 : compression, BMP.compression);
  const palette = buf.subarray(paletteAt, paletteAt + paletteLen * 4);
  const data = Buffer.concat([header, palette, masks ?? Buffer.alloc(0), buf.subarray(offset)]);
  return { data, width, height };
}

/** Decodes a BMP through bmp-js into a sharp pipeline of raw RGB. */
function bmpPipeline(buf: Buffer, maxPixels: number): sharp.Sharp {
  const { data, width, height } = normaliseBmp(buf, maxPixels);
  let decoded: { data: Buffer; width: number; height: number };
  try {
    decoded = bmp.decode(data);
  } catch (err) {
    // bmp-js reads with Buffer.readUInt8 and a palette lookup: a RangeError or TypeError
    // here means the (RLE) data runs past the end or names a colour the palette lacks.
    if (err instanceof RangeError || err instanceof TypeError) throw new DecodeError('truncated or damaged image (the BMP data ends early or names missing colours)', 'bmp');
    throw err;
  }
  if (decoded.width !== width || decoded.height !== height) throw new DecodeError('damaged BMP image (decoded size differs from its header)', 'bmp');
  const abgr = decoded.data;
  const rgb = Buffer.alloc(width * height * 3);
  for (let i = 0, j = 0; i < abgr.length; i += 4, j += 3) {
    rgb[j] = abgr[i + 3]!;
    rgb[j + 1] = abgr[i + 2]!;
    rgb[j + 2] = abgr[i + 1]!;
  }
  return sharp(rgb, { raw: { width, height, channels: 3 } });
}

/**
 * Reads the header through sharp, refuses what is over the limits (after EXIF
 * orientation) or is another format than the bytes said, and returns the
 * oriented pipeline. JPEG and WebP shrink on load inside the later resize.
 */
async function sharpPipeline(buf: Buffer, format: ImageFormat, maxPixels: number): Promise<sharp.Sharp> {
  let meta: sharp.Metadata;
  try {
    meta = await sharp(buf, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new DecodeError(reasonOf(err, buf, format, 'header'), format);
  }
  if (meta.format !== format) {
    throw new DecodeError(`header says ${NAMES[format]} but the decoder reads ${String(meta.format).toUpperCase()}; Headstart reads ${READABLE_FORMATS}`, format);
  }
  const swap = (meta.orientation ?? 1) >= 5; // orientations 5-8 turn the image on its side
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  checkSize(swap ? h : w, swap ? w : h, maxPixels);
  return sharp(buf, { limitInputPixels: maxPixels, failOn: 'error', sequentialRead: true }).timeout({ seconds: DECODE_TIMEOUT_S }).rotate();
}

/**
 * Decodes one image to `size` x `size` RGB bytes (HWC): EXIF orientation
 * applied, alpha flattened onto white, grayscale expanded, centre-cropped to a
 * square and resized. Only JPEG, PNG, WebP, GIF and BMP content is decoded
 * (whatever the name); images over `maxPixels`, MAX_SIDE or MAX_ASPECT after
 * orientation are refused from their header. Throws DecodeError with a reason
 * a user can act on.
 */
export async function decodeImage(buf: Buffer, size: number, maxPixels = DEFAULT_MAX_PIXELS): Promise<Uint8Array> {
  if (buf.length === 0) throw new DecodeError('empty file (0 bytes)');
  const format = formatOf(buf);
  if (!format) {
    const other = foreignFormatOf(buf);
    if (other) throw new DecodeError(`the content is ${other}, not a format Headstart reads (${READABLE_FORMATS}); convert it`, other);
    if (!buf.some((b) => b !== 0)) throw new DecodeError('not a readable image (the file holds only zero bytes)');
    throw new DecodeError('not a readable image (unknown format)');
  }
  try {
    const img = format === 'bmp' ? bmpPipeline(buf, maxPixels) : await sharpPipeline(buf, format, maxPixels);
    const { data, info } = await img
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .toColourspace('srgb')
      .resize(size, size, { fit: 'cover', position: 'centre', fastShrinkOnLoad: true })
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== size * size * 3) throw new DecodeError(`unexpected decoded shape ${info.width}x${info.height}x${info.channels}`, format);
    return new Uint8Array(data.buffer, data.byteOffset, data.length);
  } catch (err) {
    if (err instanceof DecodeError) throw new DecodeError(err.message, err.content ?? format);
    throw new DecodeError(reasonOf(err, buf, format, 'data'), format);
  }
}

/** The format a file name promises, or undefined for an extension Headstart does not know. */
function formatOfName(file: string): ImageFormat | undefined {
  const ext = path.extname(file).toLowerCase();
  return ({ '.jpg': 'jpeg', '.jpeg': 'jpeg', '.png': 'png', '.webp': 'webp', '.gif': 'gif', '.bmp': 'bmp' } as const)[ext as '.jpg'];
}

/**
 * Reads and decodes one file. Only a regular file within MAX_FILE_BYTES is
 * read (checked by fstat on the opened handle, so a FIFO or a 2 GB file of
 * zeros is refused without reading it). Read failures become DecodeError too;
 * when the content is not what the name says, the reason says both.
 */
export async function readAndDecode(file: string, size: number, maxPixels?: number, maxBytes = MAX_FILE_BYTES): Promise<Uint8Array> {
  let buf: Buffer;
  try {
    buf = await readRegularFile(file, maxBytes);
  } catch (err) {
    if (err instanceof UnreadableFileError) throw new DecodeError(err.message);
    throw err;
  }
  try {
    return await decodeImage(buf, size, maxPixels);
  } catch (err) {
    const named = formatOfName(file);
    if (!(err instanceof DecodeError) || !named || !err.content || err.content === named) throw err;
    const ext = path.extname(file);
    const known = NAMES[err.content as ImageFormat];
    throw new DecodeError(known ? `${err.message} (named ${ext}, but the content is ${known})` : `named ${ext}, but ${err.message}`, err.content);
  }
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
