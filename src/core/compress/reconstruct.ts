/**
 * Least-squares reconstruction of a slimmed block's project conv (channel
 * pruning with reconstruction: He et al. 2017, ThiNet): after some hidden
 * channels go, the kept ones get new project weights that best reproduce the
 * unslimmed conv's output on the training images, instead of the original
 * weights with columns cut out. Everything comes from the second moments of
 * the hidden layer (onnx/slim.ts withHiddenGram), so one forward pass serves
 * every step and every kept set: for z = [h; 1] and G = sum z z^T over
 * positions, the best weights for kept channels K, pulled toward the
 * original ones W_K by a ridge, solve
 * (G_KK + lambda I) Theta'^T = G_K: Theta^T + lambda W_K^T, where
 * Theta = [W, b] is the unslimmed conv (1x1, so a matrix). Float64
 * throughout; Cholesky.
 */
import { onnx } from 'onnx-proto';
import { HeadstartError } from '../errors';
import { type ProjectWeights, type SlimBlock, floatValues } from '../onnx/slim';

/**
 * Ridge strength relative to the mean of the kept channels' second moments.
 * The ridge pulls toward the original weights (not toward zero): a large one
 * gives back plain cutting, so a block whose removed channels were silent
 * loses nothing, and the wide late blocks (1344 channels at 7x7 positions)
 * do not fit noise of a few dozen images.
 */
export const RECONSTRUCT_RIDGE = 0.01;

/**
 * Extra ridge per unknown per data row (kept channels / positions seen): the
 * late blocks have few positions (7x7 per image) for many channels, where a
 * least-squares fit follows the sample; measured on held-out images of the
 * bundled MobileNetV2 1.4, 0.01 suits the early blocks and about 0.1-0.3 the
 * late ones.
 */
export const RECONSTRUCT_RIDGE_PER_UNKNOWN = 0.3;

/** Second moments of one block's hidden layer, summed over images and spatial positions. */
export class HiddenMoments {
  /** [C+1, C+1] row-major: sum of z z^T for z = [h; 1] (last row / column: channel sums, then the count). */
  readonly gram: Float64Array;
  /** G Theta^T of the unslimmed project conv, [C+1, O], computed once on first use. */
  private target?: { theta: Float64Array; gt: Float64Array; outputs: number };

  constructor(readonly channels: number) {
    this.gram = new Float64Array((channels + 1) ** 2);
  }

  /** Adds one batch: `gram` [C, C], `sum` [C], `count` positions. */
  add(gram: Float32Array, sum: Float32Array, count: number): void {
    const c = this.channels;
    if (gram.length !== c * c || sum.length !== c) throw new HeadstartError('INTERNAL', `hidden moments: expected ${c} channels, got a ${gram.length}-value gram and ${sum.length} sums`);
    const g = this.gram;
    for (let i = 0; i < c; i++) {
      for (let j = 0; j < c; j++) g[i * (c + 1) + j]! += gram[i * c + j]!;
      g[i * (c + 1) + c]! += sum[i]!;
      g[c * (c + 1) + i]! += sum[i]!;
    }
    g[(c + 1) ** 2 - 1]! += count;
  }

  /** Positions summed so far. */
  get positions(): number {
    return this.gram[(this.channels + 1) ** 2 - 1]!;
  }

  /** G Theta^T for Theta = [W, b] ([O, C] and [O]); cached for the same weights. */
  gTheta(w: Float32Array, bias: Float32Array | undefined, outputs: number): Float64Array {
    if (this.target && this.target.outputs === outputs) return this.target.gt;
    const n = this.channels + 1;
    const theta = new Float64Array(outputs * n); // [O, C+1]
    for (let o = 0; o < outputs; o++) {
      for (let c = 0; c < n - 1; c++) theta[o * n + c] = w[o * (n - 1) + c]!;
      theta[o * n + n - 1] = bias?.[o] ?? 0;
    }
    const gt = new Float64Array(n * outputs);
    for (let i = 0; i < n; i++) {
      const gi = this.gram.subarray(i * n, (i + 1) * n);
      for (let o = 0; o < outputs; o++) {
        const t = theta.subarray(o * n, (o + 1) * n);
        let s = 0;
        for (let k = 0; k < n; k++) s += gi[k]! * t[k]!;
        gt[i * outputs + o] = s;
      }
    }
    this.target = { theta, gt, outputs };
    return gt;
  }
}

/**
 * Cholesky factor L (lower, row-major) of a symmetric positive definite
 * n x n matrix (a new array); undefined when a pivot is not positive.
 */
export function cholesky(a: Float64Array, n: number): Float64Array | undefined {
  const l = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const lj = l.subarray(j * n, j * n + j);
    let d = a[j * n + j]!;
    for (let k = 0; k < j; k++) d -= lj[k]! ** 2;
    if (!(d > 0)) return undefined;
    const piv = Math.sqrt(d);
    l[j * n + j] = piv;
    for (let i = j + 1; i < n; i++) {
      const li = l.subarray(i * n, i * n + j);
      let s = a[i * n + j]!;
      for (let k = 0; k < j; k++) s -= li[k]! * lj[k]!;
      l[i * n + j] = s / piv;
    }
  }
  return l;
}

/** Solves L L^T X = R in place of R ([n, m] row-major). */
export function choleskySolve(l: Float64Array, n: number, r: Float64Array, m: number): Float64Array {
  for (let i = 0; i < n; i++) {
    const ri = r.subarray(i * m, (i + 1) * m);
    for (let k = 0; k < i; k++) {
      const f = l[i * n + k]!;
      if (f === 0) continue;
      const rk = r.subarray(k * m, (k + 1) * m);
      for (let o = 0; o < m; o++) ri[o]! -= f * rk[o]!;
    }
    const d = l[i * n + i]!;
    for (let o = 0; o < m; o++) ri[o]! /= d;
  }
  for (let i = n - 1; i >= 0; i--) {
    const ri = r.subarray(i * m, (i + 1) * m);
    for (let k = i + 1; k < n; k++) {
      const f = l[k * n + i]!;
      if (f === 0) continue;
      const rk = r.subarray(k * m, (k + 1) * m);
      for (let o = 0; o < m; o++) ri[o]! -= f * rk[o]!;
    }
    const d = l[i * n + i]!;
    for (let o = 0; o < m; o++) ri[o]! /= d;
  }
  return r;
}

/** A block's unslimmed project conv as a matrix: weights [O, C] and bias [O] (undefined: none). */
export interface ProjectConv {
  w: Float32Array;
  bias?: Float32Array;
  outputs: number;
}

/** The project conv of a block of findSlimBlocks (1x1 kernels only; undefined otherwise). */
export function projectConvOf(graph: onnx.IGraphProto, b: SlimBlock): ProjectConv | undefined {
  if (b.projectTaps !== 1) return undefined; // MobileNetV2's project convs are 1x1; a wider one is cut, not reconstructed
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const node = graph.node![b.project]!;
  const w = floatValues(inits.get(node.input![1]!)!);
  const bias = b.projectBias ? floatValues(inits.get(node.input![2]!)!) : undefined;
  return { w, bias, outputs: w.length / b.channels };
}

/**
 * New project weights for the kept channels `keep` (sorted): the ridge
 * least-squares fit of the unslimmed conv's output from the kept channels
 * (and a constant, when `intercept`: the output shift then absorbs the
 * removed channels' mean contribution). Undefined when nothing was removed,
 * no positions were seen, or the system is singular (the block is then cut
 * without reconstruction).
 */
export function reconstructProject(m: HiddenMoments, conv: ProjectConv, keep: number[], intercept: boolean, ridge = defaultRidge(keep.length, m.positions)): ProjectWeights | undefined {
  const c = m.channels;
  if (keep.length === c || !(m.positions > 0)) return undefined;
  const n = c + 1;
  const idx = intercept ? [...keep, c] : keep;
  const k = idx.length;
  const out = conv.outputs;
  const a = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) a[i * k + j] = m.gram[idx[i]! * n + idx[j]!]!;
  const gt = m.gTheta(conv.w, conv.bias, out);
  const r = new Float64Array(k * out);
  // Without an intercept the bias stays as it is, so the target is W h alone: drop the bias column's share.
  for (let i = 0; i < k; i++) for (let o = 0; o < out; o++) r[i * out + o] = gt[idx[i]! * out + o]! - (intercept ? 0 : m.gram[idx[i]! * n + c]! * (conv.bias?.[o] ?? 0));
  return solveProject(a, r, conv, keep, intercept, ridge);
}

/** The ridge of a fit of `unknowns` kept channels from `positions` data rows. */
function defaultRidge(unknowns: number, positions: number): number {
  return RECONSTRUCT_RIDGE + (RECONSTRUCT_RIDGE_PER_UNKNOWN * unknowns) / positions;
}

/**
 * Solves (A + lambda I_kept) Theta'^T = R + lambda W_K^T for the kept
 * channels' project weights, A and R in place: A [k, k] the second moments
 * of the inputs (kept channels, then the constant when `intercept`), R
 * [k, O] their cross moments with the target output. lambda is `ridge` x the
 * mean of A's kept diagonal; the intercept is not shrunk.
 */
function solveProject(a: Float64Array, r: Float64Array, conv: ProjectConv, keep: number[], intercept: boolean, ridge: number): ProjectWeights | undefined {
  const k = keep.length + (intercept ? 1 : 0);
  const c = conv.w.length / conv.outputs;
  const out = conv.outputs;
  let trace = 0;
  for (let i = 0; i < keep.length; i++) trace += a[i * k + i]!;
  const lambda = (ridge * trace) / keep.length;
  if (!(lambda > 0)) return undefined; // every kept channel is silent on the training images: nothing to fit
  for (let i = 0; i < keep.length; i++) a[i * k + i]! += lambda;
  const l = cholesky(a, k);
  if (!l) return undefined;
  for (let i = 0; i < keep.length; i++) for (let o = 0; o < out; o++) r[i * out + o]! += lambda * conv.w[o * c + keep[i]!]!;
  choleskySolve(l, k, r, out);
  const kernel = new Float32Array(out * keep.length);
  for (let o = 0; o < out; o++) for (let j = 0; j < keep.length; j++) kernel[o * keep.length + j] = r[j * out + o]!;
  const shift = intercept ? Float32Array.from({ length: out }, (_, o) => r[keep.length * out + o]! - (conv.bias?.[o] ?? 0)) : undefined;
  return { kernel, shift };
}

/**
 * Moments between a slimmed model's hidden layer in one block (K kept
 * channels, z~ = [h~; 1]) and the unslimmed model's (C channels, z = [h; 1])
 * at the same positions of the same images (onnx/slim.ts withCrossGram):
 * what a refit needs to reproduce the unslimmed output from the inputs the
 * slimmed network really gives the block, after every slimmed block before it.
 */
export class CrossMoments {
  /** [K+1, K+1] row-major: sum of z~ z~^T. */
  readonly gram: Float64Array;
  /** [K+1, C+1] row-major: sum of z~ z^T. */
  readonly cross: Float64Array;

  constructor(
    readonly kept: number,
    readonly channels: number,
  ) {
    this.gram = new Float64Array((kept + 1) ** 2);
    this.cross = new Float64Array((kept + 1) * (channels + 1));
  }

  /** Adds one batch: `gram` [K, K], `cross` [K, C], the slimmed and unslimmed channel sums, `count` positions. */
  add(gram: Float32Array, cross: Float32Array, slimSum: Float32Array, sum: Float32Array, count: number): void {
    const [k, c] = [this.kept, this.channels];
    if (gram.length !== k * k || cross.length !== k * c || slimSum.length !== k || sum.length !== c) throw new HeadstartError('INTERNAL', `cross moments: expected ${k} kept of ${c} channels`);
    const [g, x] = [this.gram, this.cross];
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < k; j++) g[i * (k + 1) + j]! += gram[i * k + j]!;
      for (let j = 0; j < c; j++) x[i * (c + 1) + j]! += cross[i * c + j]!;
      g[i * (k + 1) + k]! += slimSum[i]!;
      g[k * (k + 1) + i]! += slimSum[i]!;
      x[i * (c + 1) + c]! += slimSum[i]!;
    }
    for (let j = 0; j < c; j++) x[k * (c + 1) + j]! += sum[j]!;
    g[(k + 1) ** 2 - 1]! += count;
    x[(k + 1) * (c + 1) - 1]! += count;
  }

  get positions(): number {
    return this.gram[(this.kept + 1) ** 2 - 1]!;
  }
}

/**
 * Project weights for the kept channels `keep` fit on the slimmed network's
 * own hidden layer (`m`): the ridge least-squares map from what the block now
 * receives to the unslimmed conv's output on the unslimmed network, so each
 * block also corrects the error the slimmed blocks before it left in its
 * input (ThiNet and He et al. fit on the pruned network's inputs for this
 * reason). Same ridge and intercept rules as reconstructProject.
 */
export function refitProject(m: CrossMoments, conv: ProjectConv, keep: number[], intercept: boolean, ridge = defaultRidge(keep.length, m.positions)): ProjectWeights | undefined {
  const [kk, c] = [m.kept, m.channels];
  if (keep.length !== kk || !(m.positions > 0)) throw new HeadstartError('INTERNAL', `refit: ${keep.length} kept channels for ${kk} slimmed ones, or no positions`);
  const k = keep.length + (intercept ? 1 : 0);
  const idx = intercept ? [...keep.keys(), kk] : [...keep.keys()];
  const out = conv.outputs;
  const a = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) a[i * k + j] = m.gram[idx[i]! * (kk + 1) + idx[j]!]!;
  const r = new Float64Array(k * out);
  for (let i = 0; i < k; i++) {
    const row = m.cross.subarray(idx[i]! * (c + 1), (idx[i]! + 1) * (c + 1));
    for (let o = 0; o < out; o++) {
      const w = conv.w.subarray(o * c, (o + 1) * c);
      let s = 0;
      for (let j = 0; j < c; j++) s += row[j]! * w[j]!;
      // With an intercept the target is the whole output W h + b; without, the bias stays and the target is W h.
      r[i * out + o] = s + (intercept ? row[c]! * (conv.bias?.[o] ?? 0) : 0);
    }
  }
  return solveProject(a, r, conv, keep, intercept, ridge);
}

/**
 * Mean squared error per position of a block's project conv output, slimmed
 * (kept channels `keep`, with `pw` or else the original columns) against
 * unslimmed, under the moments `m` (e.g. of held-out images): exact, from
 * the second moments, summed over output channels.
 */
export function projectOutputError(m: HiddenMoments, conv: ProjectConv, keep: number[], pw?: ProjectWeights): number {
  const c = m.channels;
  const n = c + 1;
  const kept = new Map(keep.map((ch, j) => [ch, j]));
  let total = 0;
  const d = new Float64Array(n);
  for (let o = 0; o < conv.outputs; o++) {
    // d = Theta_full - Theta_slim over z = [h; 1].
    for (let ch = 0; ch < c; ch++) {
      const j = kept.get(ch);
      const slim = j === undefined ? 0 : pw ? pw.kernel[o * keep.length + j]! : conv.w[o * c + ch]!;
      d[ch] = conv.w[o * c + ch]! - slim;
    }
    d[c] = -(pw?.shift?.[o] ?? 0);
    for (let i = 0; i < n; i++) {
      if (d[i] === 0) continue;
      let s = 0;
      for (let j = 0; j < n; j++) s += m.gram[i * n + j]! * d[j]!;
      total += d[i]! * s;
    }
  }
  return total / m.positions;
}
