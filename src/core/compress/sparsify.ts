/**
 * Unstructured magnitude pruning of a whole model's kernels (backbone and
 * head): layer by layer, the smallest-magnitude fraction of each kernel is
 * set to exactly zero. Zeros are stored densely, so the raw file keeps its
 * size; what shrinks is the file a server sends (gzip codes a run of equal
 * bytes in a few bits) and, after int8 quantization, the entropy of the
 * weight bytes. No fine-tuning of the backbone here (it needs gradients the
 * engine does not have); the accuracy budget of the export judges the result.
 */
import { onnx } from 'onnx-proto';
import { HeadstartError } from '../errors';
import type { RoledEntry } from './quantize';

const T = onnx.TensorProto.DataType;

/**
 * Kernels below this many weights are left dense. Small layers carry more of
 * the network's function per weight (each weight of a 3x3x3x32 stem filter
 * sees the raw image) and hold a negligible share of the bytes: pruning them
 * costs accuracy and saves almost nothing.
 */
export const SPARSIFY_MIN_WEIGHTS = 4096;

export interface SparsifyOptions {
  /** Kernels with fewer weights stay dense; default SPARSIFY_MIN_WEIGHTS. */
  minWeights?: number;
  /**
   * Replaces a pruned kernel's values (ONNX layout) given its dense values and
   * the magnitude-pruned ones, keeping the zeros (sparseReconstruct.ts: the
   * kept weights refit to reproduce the layer's output); absent: zeros only.
   */
  reconstruct?: (layer: string, dense: Float32Array, pruned: Float32Array) => Float32Array;
}

/** What sparsifying did: per pruned layer its fraction of exact zeros, and overall. */
export interface SparsityReport {
  /** Fraction of exact zeros of each pruned kernel, by layer (ONNX node name, or TF.js weight name). */
  perLayer: Record<string, number>;
  /** Exact zeros over every convolution / dense kernel weight of the model (pruned or not, depthwise included). */
  overall: number;
  /** Kernel weights in the model (the denominator of `overall`). */
  kernelWeights: number;
}

/** Checks a target sparsity: [0, 1). */
function checkSparsity(sparsity: number): void {
  if (!(sparsity >= 0 && sparsity < 1)) throw new HeadstartError('BAD_INPUT', `sparsity must be in [0, 1) (got ${sparsity})`);
}

/**
 * A copy of `values` with its `floor(sparsity * n)` smallest-magnitude
 * entries set to exactly zero (ties at the threshold broken by position, so
 * the count is exact). Layer-wise: the threshold is this tensor's own.
 */
export function magnitudePrune(values: Float32Array, sparsity: number): Float32Array {
  checkSparsity(sparsity);
  const out = Float32Array.from(values);
  const k = Math.floor(sparsity * values.length);
  if (k <= 0) return out;
  const abs = out.map(Math.abs).sort();
  const thr = abs[k - 1]!;
  let below = 0;
  for (const a of abs) if (a < thr) below++;
  let tiesLeft = k - below; // entries equal to the threshold that still go
  for (let i = 0; i < out.length; i++) {
    const a = Math.abs(out[i]!);
    if (a < thr) out[i] = 0;
    else if (a === thr && tiesLeft > 0) {
      out[i] = 0;
      tiesLeft--;
    }
  }
  return out;
}

/** Fraction of exact zeros. */
export function zeroFraction(values: ArrayLike<number>): number {
  let z = 0;
  for (let i = 0; i < values.length; i++) if (values[i] === 0) z++;
  return values.length ? z / values.length : 0;
}

const attrInt = (n: onnx.INodeProto, name: string, dflt: number): number => Number(n.attribute?.find((a) => a.name === name)?.i ?? dflt);

function floats(t: onnx.ITensorProto): Float32Array {
  if (t.rawData && t.rawData.length) return new Float32Array(Uint8Array.from(t.rawData).buffer); // decoded bytes may view the whole file
  return Float32Array.from(t.floatData ?? []);
}

/** A kernel of the model: its initializer, its node, and whether it is pruned. */
interface Kernel {
  init: onnx.ITensorProto;
  layer: string;
  prune: boolean;
}

/**
 * Every convolution and dense kernel of a model, in graph order: Conv weights
 * (rank 4) and MatMul / Gemm weights (rank 2) stored as float32
 * initializers. Pruned: group-1 convolutions other than the first one, and
 * MatMul / Gemm kernels, each with at least `minWeights` weights. Depthwise
 * kernels (group > 1) stay dense: 9 weights per channel, each one a whole
 * filter tap, and a few percent of the bytes. The first convolution reads the
 * raw pixels: a few thousand weights that everything downstream depends on.
 */
function kernels(graph: onnx.IGraphProto, minWeights: number): Kernel[] {
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const seen = new Set<string>();
  const out: Kernel[] = [];
  let firstConv = true;
  for (const n of graph.node ?? []) {
    const w = n.input?.[1];
    const t = w ? inits.get(w) : undefined;
    const rank = (t?.dims ?? []).length;
    const isConv = n.opType === 'Conv' && rank === 4;
    const isDense = (n.opType === 'MatMul' || n.opType === 'Gemm') && rank === 2;
    if (!t || t.dataType !== T.FLOAT || !(isConv || isDense)) continue;
    const first = isConv && firstConv;
    if (isConv) firstConv = false;
    if (seen.has(w!)) continue; // a shared kernel is pruned (and counted) once
    seen.add(w!);
    const size = (t.dims ?? []).reduce((a: number, d) => a * Number(d), 1);
    const depthwise = isConv && attrInt(n, 'group', 1) !== 1;
    out.push({ init: t, layer: n.name || w!, prune: !first && !depthwise && size >= minWeights });
  }
  return out;
}

/**
 * Magnitude-prunes an ONNX model's convolution and dense kernels to
 * `sparsity` each (layer-wise threshold; see `kernels` for which are pruned
 * and why). A pure function on the model's bytes: returns the new bytes and
 * the sparsity achieved per pruned layer and overall. Biases, BatchNorm
 * vectors and every other initializer are unchanged.
 */
export function sparsifyOnnx(bytes: Uint8Array, sparsity: number, opts: SparsifyOptions = {}): SparsityReport & { bytes: Uint8Array } {
  checkSparsity(sparsity);
  const model = onnx.ModelProto.decode(bytes);
  const perLayer: Record<string, number> = {};
  let zeros = 0;
  let total = 0;
  for (const k of kernels(model.graph!, opts.minWeights ?? SPARSIFY_MIN_WEIGHTS)) {
    let v = floats(k.init);
    if (k.prune && sparsity > 0) {
      v = opts.reconstruct ? opts.reconstruct(k.layer, v, magnitudePrune(v, sparsity)) : magnitudePrune(v, sparsity);
      k.init.rawData = new Uint8Array(v.buffer);
      k.init.floatData = [];
      perLayer[k.layer] = zeroFraction(v);
    }
    zeros += zeroFraction(v) * v.length;
    total += v.length;
  }
  return { bytes: onnx.ModelProto.encode(model).finish(), perLayer, overall: total ? zeros / total : 0, kernelWeights: total };
}

/** The kernels sparsifyOnnx prunes: ONNX node name, the convolution's input tensor and its kernel's dims. */
export function prunableKernels(bytes: Uint8Array, opts: SparsifyOptions = {}): Array<{ layer: string; input: string; dims: number[] }> {
  const graph = onnx.ModelProto.decode(bytes).graph!;
  const inputOf = new Map((graph.node ?? []).map((n) => [n.input?.[1] ?? '', n.input?.[0] ?? '']));
  return kernels(graph, opts.minWeights ?? SPARSIFY_MIN_WEIGHTS)
    .filter((k) => k.prune)
    .map((k) => ({ layer: k.layer, input: inputOf.get(k.init.name!)!, dims: (k.init.dims ?? []).map(Number) }));
}

/**
 * Magnitude-prunes the TF.js weights of a full model in place: the
 * backbone's convolution kernels (role 'conv': group-1 convolutions other
 * than the first; 'dense': a backbone's own dense kernels) with at least
 * `minWeights` weights, to `sparsity` each, for the reasons `kernels` gives.
 * The head ('head' role) is pruned apart, with fine-tuning (prune.ts).
 * Returns the zero fraction of each pruned weight by name, and of every
 * kernel weight (convolutions, depthwise, dense, head) overall.
 */
export function sparsifyEntries(entries: RoledEntry[], sparsity: number, opts: SparsifyOptions = {}): SparsityReport {
  checkSparsity(sparsity);
  const perLayer: Record<string, number> = {};
  let zeros = 0;
  let total = 0;
  for (const e of entries) {
    if (e.raw || !KERNEL_ROLES.has(e.role)) continue;
    if (sparsity > 0 && (e.role === 'conv' || e.role === 'dense') && e.values.length >= (opts.minWeights ?? SPARSIFY_MIN_WEIGHTS)) {
      e.values = magnitudePrune(e.values, sparsity);
      perLayer[e.name] = zeroFraction(e.values);
    }
    zeros += zeroFraction(e.values) * e.values.length;
    total += e.values.length;
  }
  return { perLayer, overall: total ? zeros / total : 0, kernelWeights: total };
}

/** TF.js weight roles that are kernels (the denominator of `overall`). */
const KERNEL_ROLES = new Set<RoledEntry['role']>(['conv', 'depthwise', 'dense', 'head', 'first']);
