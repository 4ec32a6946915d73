import sharp from 'sharp';
import { HeadstartError } from '../errors';
import { sha256 } from '../fsutil';
import { NUMERIC_OPTIONS, checkOption, parseOption } from '../options';
import { Rng } from '../rng';

/** Which random transforms augmentation draws from, and how strong they are. */
export interface AugmentOptions {
  /** Augmented views drawn per training image (0: off). Range 0..32. */
  views: number;
  /** Mirror left-right half of the time. Default true. */
  flip?: boolean;
  /** Largest fraction of the side cropped away (random position). Default 0.15, range [0, 0.5]. */
  crop?: number;
  /** Largest rotation in degrees, either way. Default 10, range [0, 45]. */
  rotate?: number;
  /** Largest brightness change as a fraction (±). Default 0.2, range [0, 1]. */
  brightness?: number;
  /** Largest contrast change as a fraction (±). Default 0.2, range [0, 1]. */
  contrast?: number;
}

/** One augmented view: every random choice, drawn once and stored with the cache key. */
export interface AugmentView {
  flip: boolean;
  angle: number;
  /** Crop window as fractions of the side: left, top, size. */
  crop: [number, number, number];
  brightness: number;
  contrast: number;
}

export const AUGMENT_VERSION = 'a1';

const TRANSFORMS = ['crop', 'rotate', 'brightness', 'contrast'] as const;

/** Defaults filled in and ranges checked (ranges: the shared option table, src/core/options.ts). */
export function normaliseAugment(o: AugmentOptions): Required<AugmentOptions> {
  const d = NUMERIC_OPTIONS;
  const r: Required<AugmentOptions> = { flip: true, crop: d.crop.default, rotate: d.rotate.default, brightness: d.brightness.default, contrast: d.contrast.default, ...o };
  checkOption('augment', r.views);
  for (const k of TRANSFORMS) checkOption(k, r[k]);
  if (typeof r.flip !== 'boolean') throw new HeadstartError('BAD_INPUT', `--aug flip must be true or false (got ${String(r.flip)})`);
  return r;
}

/**
 * Parses `flip,crop=0.1,rotate=15,brightness=0.2,contrast=0` (listed ops on,
 * others off; a bare name takes its default strength). Values are decimal
 * numbers in the option table's ranges; `flip` takes true / false / 1 / 0.
 */
export function parseAugmentSpec(spec: string, views: number): AugmentOptions {
  const o: AugmentOptions = { views: checkOption('augment', views), flip: false, crop: 0, rotate: 0, brightness: 0, contrast: 0 };
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    const k = eq < 0 ? part : part.slice(0, eq);
    const v = eq < 0 ? undefined : part.slice(eq + 1);
    if (k === 'flip') {
      if (v !== undefined && !['true', 'false', '1', '0'].includes(v)) throw new HeadstartError('BAD_INPUT', `--aug flip must be true, false, 1 or 0 (got ${JSON.stringify(v)})`);
      o.flip = v === undefined || v === 'true' || v === '1';
    } else if ((TRANSFORMS as readonly string[]).includes(k)) {
      const name = k as (typeof TRANSFORMS)[number];
      o[name] = v === undefined ? NUMERIC_OPTIONS[name].default : parseOption(name, v)!;
    } else throw new HeadstartError('BAD_INPUT', `unknown augmentation '${k}'; use flip, crop, rotate, brightness, contrast`);
  }
  return o;
}

/** The k-th view of an image: drawn from a seed of (content hash, k, run seed), so reruns draw the same views. */
export function drawView(contentHash: string, k: number, seed: number, o: Required<AugmentOptions>): AugmentView {
  const rng = new Rng((parseInt(contentHash.slice(0, 8), 16) ^ Math.imul(k + 1, 0x9e3779b1) ^ seed) >>> 0);
  const side = 1 - rng.next() * o.crop;
  return {
    flip: o.flip && rng.next() < 0.5,
    angle: (rng.next() * 2 - 1) * o.rotate,
    crop: [rng.next() * (1 - side), rng.next() * (1 - side), side],
    brightness: (rng.next() * 2 - 1) * o.brightness,
    contrast: (rng.next() * 2 - 1) * o.contrast,
  };
}

/** Cache key of a view: never equal to any plain image's key. */
export function viewKey(contentHash: string, v: AugmentView): string {
  return sha256(`${contentHash}|${AUGMENT_VERSION}|${JSON.stringify(v)}`);
}

/** Applies a view to a decoded size x size RGB image; returns size x size RGB. */
export async function applyView(rgb: Uint8Array, size: number, v: AugmentView): Promise<Uint8Array> {
  let img = sharp(rgb, { raw: { width: size, height: size, channels: 3 } });
  if (v.flip) img = img.flop();
  if (v.angle) img = img.rotate(v.angle, { background: { r: 255, g: 255, b: 255 } });
  const turned = await img.raw().toBuffer({ resolveWithObject: true });
  // Rotation grows the canvas; crop within the original square's footprint.
  const W = turned.info.width;
  const H = turned.info.height;
  const side = Math.max(8, Math.round(v.crop[2] * size));
  const left = Math.round((W - size) / 2 + v.crop[0] * size);
  const top = Math.round((H - size) / 2 + v.crop[1] * size);
  const contrast = 1 + v.contrast;
  const out = await sharp(turned.data, { raw: { width: W, height: H, channels: 3 } })
    .extract({ left: Math.max(0, Math.min(W - side, left)), top: Math.max(0, Math.min(H - side, top)), width: Math.min(side, W), height: Math.min(side, H) })
    .resize(size, size, { fit: 'fill' })
    // contrast about mid-grey, then brightness: y = c * (x - 128) + 128 + b * 255
    .linear(contrast, 128 * (1 - contrast) + v.brightness * 255)
    .raw()
    .toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}
