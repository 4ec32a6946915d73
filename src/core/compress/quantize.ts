import { HeadstartError } from '../errors';
import type { WeightEntry } from '../tfjsio';

/** Storage of one weight tensor. */
export type WeightDtype = 'float32' | 'float16' | 'uint16' | 'uint8';

/** What a weight does in the network; decides how much precision it needs. */
export type WeightRole = 'conv' | 'depthwise' | 'dense' | 'head' | 'vector' | 'first' | 'other';

/** A float32 weight with its role, and the source quantization it came with (if any). */
export interface RoledEntry {
  name: string;
  shape: number[];
  values: Float32Array;
  role: WeightRole;
  /** The quantization the source model stored this weight with (e.g. nsfwjs's uint8). */
  source?: { dtype: string; scale?: number; min?: number };
  /** Non-float weights (int32 axes) pass through untouched. */
  raw?: WeightEntry;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE float32 → float16 bits, rounding to nearest even; overflow to ±inf. */
export function toFloat16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // underflow to zero
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // may carry into the exponent: still correct
  return sign | half;
}

/**
 * Affine range for `levels` steps, following the TF.js converter: where zero
 * lies in [min, max] the range is nudged so that zero is exactly
 * representable (pruned zeros stay zero, ReLU thresholds stay put). A range
 * that does not contain zero (BatchNorm variances, say) is never widened to it.
 */
export function affineRange(min: number, max: number, levels: number): { min: number; scale: number } {
  if (!(max > min)) return { min, scale: 1 };
  const scale = (max - min) / levels;
  if (min <= 0 && max >= 0) {
    const zero = Math.round(-min / scale);
    return { min: -zero * scale, scale };
  }
  return { min, scale };
}

function quantizeWith(values: Float32Array, min: number, scale: number, levels: number, out: Uint8Array | Uint16Array): number {
  let sq = 0;
  for (let i = 0; i < values.length; i++) {
    const q = Math.min(levels, Math.max(0, Math.round((values[i]! - min) / scale)));
    out[i] = q;
    const d = q * scale + min - values[i]!;
    sq += d * d;
  }
  return sq / Math.max(1, values.length);
}

/** Range candidates: the full range, and ranges clipped at symmetric quantiles (MSE decides). */
function clipCandidates(values: Float32Array, clip: boolean): Array<[number, number]> {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const out: Array<[number, number]> = [[lo, hi]];
  if (!clip || values.length < 256) return out;
  const sorted = Float32Array.from(values).sort();
  for (const q of [1e-4, 1e-3, 5e-3]) {
    const a = sorted[Math.floor(q * (sorted.length - 1))]!;
    const b = sorted[Math.ceil((1 - q) * (sorted.length - 1))]!;
    if (b > a) out.push([Math.min(a, lo < 0 && hi > 0 ? 0 : a), Math.max(b, lo < 0 && hi > 0 ? 0 : b)]);
  }
  return out;
}

/**
 * Stores a float32 weight as `dtype` in TF.js's weights-manifest format.
 * uint8 / uint16: affine `q * scale + min`, with the range clipped where that
 * lowers the mean squared error (`clip`). A weight whose source was already
 * stored at this integer precision keeps its source grid, bit for bit, as
 * long as its values still lie on that grid's range.
 * Returns the entry and its reconstruction MSE.
 */
export function quantizeEntry(e: RoledEntry, dtype: WeightDtype, clip = true): { entry: WeightEntry; mse: number } {
  if (e.raw) return { entry: e.raw, mse: 0 };
  const n = e.values.length;
  if (dtype === 'float32') {
    const v = Float32Array.from(e.values);
    return { entry: { spec: { name: e.name, shape: e.shape, dtype: 'float32' }, bytes: new Uint8Array(v.buffer) }, mse: 0 };
  }
  if (dtype === 'float16') {
    const out = new Uint16Array(n);
    for (let i = 0; i < n; i++) out[i] = toFloat16(e.values[i]!);
    return { entry: { spec: { name: e.name, shape: e.shape, dtype: 'float32', quantization: { dtype: 'float16' } }, bytes: new Uint8Array(out.buffer) }, mse: 0 };
  }
  if (dtype !== 'uint8' && dtype !== 'uint16') throw new HeadstartError('BAD_INPUT', `unknown weight dtype ${String(dtype)}`);
  const levels = dtype === 'uint8' ? 255 : 65535;
  const make = () => (dtype === 'uint8' ? new Uint8Array(n) : new Uint16Array(n));
  const src = e.source;
  // Reuse the source grid only while every value still lies on its range (fine-tuned weights may have left it).
  const onSourceRange = (() => {
    if (src?.dtype !== dtype || src.scale === undefined || src.min === undefined) return false;
    const lo = src.min - src.scale / 2;
    const hi = src.min + levels * src.scale + src.scale / 2;
    for (const v of e.values) if (v < lo || v > hi) return false;
    return true;
  })();
  if (onSourceRange && src?.scale !== undefined && src.min !== undefined) {
    const out = make();
    const mse = quantizeWith(e.values, src.min, src.scale, levels, out);
    return { entry: { spec: { name: e.name, shape: e.shape, dtype: 'float32', quantization: { dtype, scale: src.scale, min: src.min } }, bytes: new Uint8Array(out.buffer) }, mse };
  }
  let best: { out: Uint8Array | Uint16Array; min: number; scale: number; mse: number } | undefined;
  for (const [lo, hi] of clipCandidates(e.values, clip && dtype === 'uint8')) {
    const { min, scale } = affineRange(lo, hi, levels);
    const out = make();
    const mse = quantizeWith(e.values, min, scale, levels, out);
    if (!best || mse < best.mse) best = { out, min, scale, mse };
  }
  const b = best!;
  return { entry: { spec: { name: e.name, shape: e.shape, dtype: 'float32', quantization: { dtype, scale: b.scale, min: b.min } }, bytes: new Uint8Array(b.out.buffer, b.out.byteOffset, b.out.byteLength) }, mse: b.mse };
}

/** Per-role precision: which dtype each kind of weight is stored in. */
export type Policy = Record<WeightRole, WeightDtype>;

export const POLICIES = {
  float32: { conv: 'float32', depthwise: 'float32', dense: 'float32', head: 'float32', vector: 'float32', first: 'float32', other: 'float32' },
  float16: { conv: 'float16', depthwise: 'float16', dense: 'float16', head: 'float16', vector: 'float16', first: 'float16', other: 'float16' },
  uint16: { conv: 'uint16', depthwise: 'uint16', dense: 'uint16', head: 'uint16', vector: 'uint16', first: 'uint16', other: 'uint16' },
  uint8: { conv: 'uint8', depthwise: 'uint8', dense: 'uint8', head: 'uint8', vector: 'uint8', first: 'uint8', other: 'uint8' },
  /** uint8 for the bulk (pointwise convolutions), 16 bits where errors hurt most. */
  mixed: { conv: 'uint8', depthwise: 'uint16', dense: 'uint8', head: 'float16', vector: 'float16', first: 'float16', other: 'uint8' },
  /** uint8 everywhere but the head and the vectors (biases, BatchNorm). */
  mixedLight: { conv: 'uint8', depthwise: 'uint8', dense: 'uint8', head: 'float16', vector: 'float16', first: 'uint8', other: 'uint8' },
} satisfies Record<string, Policy>;

export type PolicyName = keyof typeof POLICIES;

/** Applies a policy to every weight; returns the entries and what each got. */
export function applyPolicy(entries: RoledEntry[], policy: Policy): { entries: WeightEntry[]; choices: Record<string, { role: WeightRole; dtype: WeightDtype; mse: number }> } {
  const out: WeightEntry[] = [];
  const choices: Record<string, { role: WeightRole; dtype: WeightDtype; mse: number }> = {};
  for (const e of entries) {
    // Tiny tensors are not worth the error: keep them at 16 bits at least.
    let dtype = policy[e.role];
    if (e.values.length < 64 && (dtype === 'uint8' || dtype === 'uint16')) dtype = 'float16';
    const q = quantizeEntry(e, dtype);
    out.push(q.entry);
    choices[e.name] = { role: e.role, dtype: e.raw ? 'float32' : dtype, mse: q.mse };
  }
  return { entries: out, choices };
}
