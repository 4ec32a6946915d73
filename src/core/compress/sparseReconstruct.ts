/**
 * Pruning with reconstruction (the optimal-brain-surgeon update of SparseGPT,
 * Frantar & Alistarh 2023, with a magnitude mask): a pointwise convolution's
 * kernel W [O, C] loses its masked weights one input column at a time, and
 * each removal's error is spread over the weights of the later columns that
 * stay, through the inverse of the input's second moments H = E[x x^T]
 * (measured on training images). The kept weights then reproduce the dense
 * layer's output on those inputs as closely as the mask allows, where plain
 * magnitude pruning just drops the removed weights' share. Pure functions;
 * Float64 arithmetic.
 */
import { HeadstartError } from '../errors';
import { cholesky, choleskySolve } from './reconstruct';

/** Dampening of H: this fraction of its mean diagonal is added to the diagonal (SparseGPT's default). */
export const OBS_DAMPING = 0.01;

/**
 * The upper Cholesky factor U of H^-1 (H^-1 = U^T U, row-major [C, C]) for
 * a C x C second-moment matrix `h` (summed or averaged; the scale does not
 * matter), dampened by OBS_DAMPING. Dead inputs (zero diagonal) get the
 * mean diagonal, so the factor always exists.
 */
export function inverseHessianFactor(h: Float64Array, c: number): Float64Array {
  const a = Float64Array.from(h);
  let mean = 0;
  for (let i = 0; i < c; i++) mean += a[i * c + i]! / c;
  if (!(mean > 0)) mean = 1; // an all-zero input: any factor does, the weights read nothing
  for (let i = 0; i < c; i++) a[i * c + i]! += a[i * c + i]! > 0 ? OBS_DAMPING * mean : mean;
  const l = cholesky(a, c);
  if (!l) throw new HeadstartError('INTERNAL', 'pruning reconstruction: the input second moments are not positive definite');
  const eye = new Float64Array(c * c);
  for (let i = 0; i < c; i++) eye[i * c + i] = 1;
  const inv = choleskySolve(l, c, eye, c);
  const l2 = cholesky(inv, c);
  if (!l2) throw new HeadstartError('INTERNAL', 'pruning reconstruction: the inverse second moments are not positive definite');
  const u = new Float64Array(c * c); // U = L2^T
  for (let i = 0; i < c; i++) for (let j = 0; j <= i; j++) u[j * c + i] = l2[i * c + j]!;
  return u;
}

/**
 * A kernel [O, C] with the positions where `pruned` is zero (and `dense` is
 * not) removed by the OBS update (inverse-Hessian factor `u` from
 * inverseHessianFactor): exact zeros where pruned, the kept weights adjusted.
 */
export function obsPrune(dense: Float32Array, pruned: Float32Array, o: number, c: number, u: Float64Array): Float32Array {
  if (dense.length !== o * c || pruned.length !== o * c || u.length !== c * c) throw new HeadstartError('INTERNAL', `pruning reconstruction: a ${o} x ${c} kernel with ${dense.length} weights and a ${Math.sqrt(u.length)}-input factor`);
  const w = Float64Array.from(dense);
  for (let j = 0; j < c; j++) {
    const d = u[j * c + j]!;
    const uj = u.subarray(j * c, (j + 1) * c);
    for (let r = 0; r < o; r++) {
      if (pruned[r * c + j] !== 0) continue;
      const row = w.subarray(r * c, (r + 1) * c);
      const err = row[j]! / d;
      if (err === 0) continue;
      for (let k = j + 1; k < c; k++) row[k]! -= err * uj[k]!;
      row[j] = 0;
    }
  }
  const out = Float32Array.from(w);
  for (let i = 0; i < out.length; i++) if (pruned[i] === 0) out[i] = 0; // the mask holds exactly
  return out;
}

/** Most distinct values a kernel may take for snapToLevels to keep them (a uint8-quantized source takes at most 256). */
export const SNAP_MAX_LEVELS = 256;

/**
 * Reconstructed weights put back on the dense kernel's own values (its
 * codebook: the bundled backbones' weights came uint8-quantized, so each
 * kernel takes at most 256 distinct float32 values), each to the nearest one
 * (past the range: the end value), exact zeros kept. The weights stay as
 * compressible as the source's (a float32 export gzips a few distinct values
 * well; the update's values would gzip like noise), at a rounding error of
 * half a level; a kept weight never becomes zero. `values` unchanged when `dense` takes more than
 * SNAP_MAX_LEVELS values.
 */
export function snapToLevels(values: Float32Array, dense: Float32Array): Float32Array {
  // Zero is no level for a kept weight: the mask alone decides which weights are zero.
  const levels = Float32Array.from(new Set(dense)).filter((v) => v !== 0).sort();
  if (levels.length > SNAP_MAX_LEVELS || !levels.length) return values;
  return values.map((v) => {
    if (v === 0) return 0;
    let lo = 0;
    let hi = levels.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (levels[mid]! <= v) lo = mid;
      else hi = mid;
    }
    return Math.abs(v - levels[lo]!) <= Math.abs(levels[hi]! - v) ? levels[lo]! : levels[hi]!;
  });
}
