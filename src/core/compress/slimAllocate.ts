/**
 * Non-uniform slimming: how many hidden channels each inverted-residual
 * block keeps for a global target, chosen by each block's measured
 * sensitivity instead of the same fraction everywhere. Sensitivity is a
 * forward-pass proxy: the relative error of the block's project conv output
 * (least-squares reconstructed, reconstruct.ts) on held-out ranking images
 * when a fraction of its channels goes. The target is a share of the
 * slimmable cost, an equal blend of parameters (model size) and
 * multiply-adds (latency), so neither is bought with the other.
 */
import { onnx } from 'onnx-proto';
import { throwIfAborted } from '../errors';
import { type SlimBlock, findSlimBlocks } from '../onnx/slim';
import { type HiddenMoments, type ProjectConv, projectConvOf, projectOutputError, reconstructProject } from './reconstruct';

/** Removed fractions of a block's channels at which its sensitivity is measured (interpolated between, anchored at 0 → 0 and all removed → 1). */
export const SENSITIVITY_FRACTIONS = [0.25, 0.5, 0.75] as const;

/**
 * Output channels of a project conv the sensitivity is measured on, at most
 * (evenly spaced): the error is a sum over output channels, so a subset
 * estimates the relative error without bias, and the cost of the fit and of
 * the error (channels^2 x outputs) drops by outputs / this on the wide blocks.
 */
export const SENSITIVITY_OUTPUTS = 64;

/** The conv restricted to at most `max` evenly spaced output channels. */
export function someOutputs(conv: ProjectConv, channels: number, max = SENSITIVITY_OUTPUTS): ProjectConv {
  if (conv.outputs <= max) return conv;
  const rows = Array.from({ length: max }, (_, j) => Math.floor((j * conv.outputs) / max));
  const w = new Float32Array(max * channels);
  rows.forEach((r, j) => w.set(conv.w.subarray(r * channels, (r + 1) * channels), j * channels));
  return { w, bias: conv.bias && Float32Array.from(rows, (r) => conv.bias![r]!), outputs: max };
}

/** Kept counts are multiples of this (ONNX Runtime's NCHWc blocks of 8), and at least this. */
export const ALLOC_MULTIPLE = 8;

/** One block's slimming cost and sensitivity. */
export interface BlockCurve {
  channels: number;
  /** Share of the total slimmable cost one hidden channel carries (sum over all channels of all blocks: 1). */
  costPerChannel: number;
  /** Parameters and multiply-adds per image of one hidden channel (expand row, depthwise filter, project column). */
  params: number;
  macs: number;
  /** Measured points (kept channels, relative output error), kept descending, from (channels, 0) to (0, 1). */
  points: Array<{ kept: number; error: number }>;
}

const attrInts = (n: onnx.INodeProto, name: string): number[] => (n.attribute?.find((a) => a.name === name)?.ints ?? []).map(Number);

/** Parameters and multiply-adds per image of one hidden channel of each block; `positions[b]`: spatial positions per image of the block's hidden layer. */
export function channelCosts(graph: onnx.IGraphProto, blocks: SlimBlock[], positions: number[]): Array<{ params: number; macs: number }> {
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const dims = (n: number) => (inits.get(graph.node![n]!.input![1]!)?.dims ?? []).map(Number);
  return blocks.map((b, i) => {
    const [, cin = 0, ekh = 1, ekw = 1] = dims(b.expand);
    const [, , dkh = 3, dkw = 3] = dims(b.depthwise);
    const [cout = 0] = dims(b.project);
    const stride = attrInts(graph.node![b.depthwise]!, 'strides');
    const p = positions[i]!;
    const pIn = p * (stride[0] ?? 1) * (stride[1] ?? 1); // the expand conv runs before the depthwise stride
    const expand = cin * ekh * ekw;
    const dw = dkh * dkw;
    const project = cout * b.projectTaps;
    return { params: expand + dw + project, macs: expand * pIn + dw * p + project * p };
  });
}

/** The `want` highest-scored channels of a block, in index order. */
export function topChannels(s: ArrayLike<number>, want: number): number[] {
  return Array.from({ length: s.length }, (_, i) => i)
    .sort((a, b) => s[b]! - s[a]! || a - b)
    .slice(0, want)
    .sort((a, b) => a - b);
}

/** Kept count when `fraction` of n channels go: rounded up to a multiple of 8, at least 8 (at most n). */
export function keptCount(n: number, fraction: number): number {
  return Math.min(n, Math.max(ALLOC_MULTIPLE, Math.ceil((n * (1 - fraction)) / ALLOC_MULTIPLE) * ALLOC_MULTIPLE));
}

/**
 * Each block's sensitivity curve: at each of SENSITIVITY_FRACTIONS, the
 * top-scored channels are kept, the project conv is reconstructed from the
 * `fit` moments, and its output error is measured on the `test` moments
 * (other images), relative to the output's energy there, over up to
 * SENSITIVITY_OUTPUTS of its output channels. Blocks whose
 * project conv is not 1x1 are measured cut without reconstruction.
 */
export function sensitivityCurves(bytes: Uint8Array, scores: Float32Array[], fit: HiddenMoments[], test: HiddenMoments[], imagesPerHalf: number, signal?: AbortSignal): BlockCurve[] {
  const graph = onnx.ModelProto.decode(bytes).graph!;
  const blocks = findSlimBlocks(graph);
  const costs = channelCosts(graph, blocks, test.map((m) => m.positions / Math.max(1, imagesPerHalf)));
  const totalParams = blocks.reduce((a, b, i) => a + b.channels * costs[i]!.params, 0);
  const totalMacs = blocks.reduce((a, b, i) => a + b.channels * costs[i]!.macs, 0);
  return blocks.map((b, i) => {
    throwIfAborted(signal); // a wide block takes seconds: cancellation is honoured between blocks
    const full = projectConvOf(graph, b);
    const conv = full && someOutputs(full, b.channels);
    const points = [{ kept: b.channels, error: 0 }];
    if (conv && test[i]!.positions > 0) {
      const energy = projectOutputError(test[i]!, conv, []);
      for (const f of SENSITIVITY_FRACTIONS) {
        const kept = keptCount(b.channels, f);
        if (kept >= points.at(-1)!.kept) continue;
        const keep = topChannels(scores[i]!, kept);
        const pw = reconstructProject(fit[i]!, conv, keep, b.projectBias || b.projectBn !== undefined);
        points.push({ kept, error: energy > 0 ? projectOutputError(test[i]!, conv, keep, pw) / energy : 0 });
      }
    }
    points.push({ kept: 0, error: 1 });
    const c = costs[i]!;
    return { channels: b.channels, params: c.params, macs: c.macs, costPerChannel: 0.5 * (c.params / totalParams) + 0.5 * (c.macs / totalMacs), points };
  });
}

/** A block's relative error with `kept` channels: linear between its measured points. */
export function curveError(c: BlockCurve, kept: number): number {
  const p = c.points;
  for (let j = 1; j < p.length; j++) {
    const [hi, lo] = [p[j - 1]!, p[j]!];
    if (kept <= hi.kept && kept >= lo.kept) return hi.kept === lo.kept ? lo.error : lo.error + ((hi.error - lo.error) * (kept - lo.kept)) / (hi.kept - lo.kept);
  }
  return 1;
}

/** The next smaller kept count of a block: the multiple of 8 below it (never under 8); undefined at 8. */
function nextKept(c: BlockCurve, kept: number): number | undefined {
  const next = kept % ALLOC_MULTIPLE ? Math.floor(kept / ALLOC_MULTIPLE) * ALLOC_MULTIPLE : kept - ALLOC_MULTIPLE;
  return next >= ALLOC_MULTIPLE && next < c.channels ? next : undefined;
}

/**
 * Kept channels per block removing at least `fraction` of the slimmable
 * cost with the least total sensitivity: greedily, the next 8 channels to
 * go are the ones with the least added error per unit of cost removed.
 */
export function allocate(curves: BlockCurve[], fraction: number): number[] {
  const kept = curves.map((c) => c.channels);
  let removed = 0;
  while (removed < fraction - 1e-12) {
    let best = -1;
    let bestRatio = Infinity;
    let bestNext = 0;
    curves.forEach((c, b) => {
      const next = nextKept(c, kept[b]!);
      if (next === undefined) return;
      const ratio = (curveError(c, next) - curveError(c, kept[b]!)) / ((kept[b]! - next) * c.costPerChannel);
      if (ratio < bestRatio) [best, bestRatio, bestNext] = [b, ratio, next];
    });
    if (best < 0) break; // every block is down to 8 channels
    removed += (kept[best]! - bestNext) * curves[best]!.costPerChannel;
    kept[best] = bestNext;
  }
  return kept;
}

/** Share of the slimmable cost a plan of kept counts removes, and its total sensitivity (sum of the blocks' relative errors). */
export function planFigures(curves: BlockCurve[], kept: number[]): { costRemoved: number; sensitivity: number } {
  return {
    costRemoved: curves.reduce((a, c, b) => a + (c.channels - kept[b]!) * c.costPerChannel, 0),
    sensitivity: curves.reduce((a, c, b) => a + curveError(c, kept[b]!), 0),
  };
}
