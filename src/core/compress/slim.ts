import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import type * as tf from '@tensorflow/tfjs';
import { onnx } from 'onnx-proto';
import type * as shared from '../../shared/records';
import { ensureForeignWrapped } from '../onnx/foreign';
import { type OnnxBackboneMeta, ONNX_BACKBONE_FILE, writeOnnxBackbone } from '../onnx/backbone';
import { ensureOnnxBackbone, loadOrt, runImageBatches } from '../onnx/engine';
import type { ResolvedBackbone } from '../backbones/store';
import { DecodeError, readAndDecode } from '../data/decode';
import { type EngineOptions, openBackbone } from '../engine';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { headDense, writeFullModel } from '../export/fullModel';
import { calibrationItems } from '../onnx/calibrate';
import { convertTfjsModel } from '../onnx/convert';
import { type DenseLayer, type ProjectWeights, appendHead, findFeatureConv, findSlimBlocks, projectNorms, slimOnnx, withCrossGram, withHiddenGram, withHiddenStats } from '../onnx/slim';
import { CrossMoments, HiddenMoments, RECONSTRUCT_RIDGE, projectConvOf, reconstructProject, refitProject } from './reconstruct';
import { type BlockCurve, allocate, keptCount, planFigures, sensitivityCurves, topChannels } from './slimAllocate';
import { compareOnnxSpeed } from '../onnx/speed';
import { type LoadedRun, type RunRecord, openRunBackbone } from '../runFolder';
import { type DistillOptions, type HeadOptions, type VectorSet, HEAD_DEFAULTS, evaluateSet, predictRows, trainHead } from '../train/head';
import { FOLDS, stratifiedFolds } from '../train/select';

/**
 * Fractions of the slimmable cost `--slim auto` removes, tried in order
 * (each step removes more; 10% first, so the export's 1-point budget has a
 * step to take; 10 points apart from 40% on, where a step's agreement
 * falls fastest).
 */
export const SLIM_STEPS = [0.1, 0.25, 0.4, 0.5, 0.6, 0.7] as const;

/**
 * Fraction of the features a step removes: 1.5x the step's fraction, at
 * most 75%. A small task's head needs far fewer of the 1792 features than
 * ImageNet's classifier did: on the benchmark's data, removing 75% of them at
 * the 40% step agreed with the unslimmed model on 98.2% of the judged images
 * against 97.8% when removing 40% (the cut is measured up to 75%, no further).
 */
export function featureFraction(stepFraction: number): number {
  return Math.min(0.75, 1.5 * stepFraction);
}

/** Training images whose activations rank the channels, at most (balanced across classes). */
export const SLIM_RANK_IMAGES = 64;

/**
 * Folds of the out-of-fold judging: each training image is predicted by a
 * head fit on the other folds, so a step is judged on the validation images
 * plus every training image, none of them seen by the head that predicts it
 * (the head choice's stratified folds, select.ts).
 */
export const SLIM_FOLDS = FOLDS;

/**
 * How the hidden channels a step removes are spread over the blocks:
 * 'sensitivity' (default: per-block kept counts for the step's share of the
 * slimmable cost, least total held-out error; slimAllocate.ts) or 'uniform'
 * (the same fraction of every block). Kept counts are multiples of 8 (ONNX
 * Runtime's x86 kernels run convolutions on blocks of 8 channels, NCHWc) and
 * at least 8.
 */
export type SlimAllocation = 'sensitivity' | 'uniform';

/**
 * Steps over the budget in a row that end `--slim auto`'s search. One is not
 * enough: measured agreement is not monotone in the fraction removed (in the
 * benchmark, removing 10% disagreed with the unslimmed model on 2 of 272
 * judged images and removing 25% on none), so a noisy miss does not hide a
 * larger step within the budget; two misses in a row end it.
 */
export const SLIM_PATIENCE = 2;

/** Whether `--slim auto` tries the next step, given each tried step's withinBudget in order. */
export function slimSearchGoesOn(withinBudget: boolean[], patience = SLIM_PATIENCE): boolean {
  const tail = withinBudget.slice(-patience);
  return !(tail.length === patience && tail.every((ok) => !ok));
}

/** `--slim`: 'auto' (the largest of SLIM_STEPS within the accuracy budget) or one fraction of hidden channels to remove. */
export type SlimOption = 'auto' | number;

/** Checks a --slim value from the command line or the API. */
export function parseSlim(v: unknown): SlimOption {
  if (v === 'auto') return 'auto';
  const f = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!(f > 0 && f <= 0.9)) throw new HeadstartError('BAD_INPUT', `--slim must be auto or the fraction of hidden channels to remove, above 0 and at most 0.9 (got '${String(v)}')`);
  return f;
}

/** One row of the slimming table (report.json `slimming.steps`; plain data in src/shared/records.ts). */
export interface SlimStep extends shared.SlimStep {
  /** Fraction of the judged images (validation + out-of-fold training) whose top-1 class equals the unslimmed reference's (the budget rule). */
  agreement: number;
  oofAccuracy: number;
  judgedDropPoints: number;
  /** Blocks whose project conv got least-squares weights (reconstruct.ts); the rest were cut as they were. */
  reconstructed?: number;
  /** Seconds the reconstruction of this step took (normal equations, Cholesky, Float64 in JS). */
  reconstructSeconds?: number;
  /** Speed-up in process CPU time per image at batch 32 (compareOnnxSpeed): what other jobs on a shared machine move far less than the wall clock. */
  cpuSpeedup?: number;
  /** Hidden channels each block keeps (findSlimBlocks order). */
  keptPerBlock?: number[];
  /** Sensitivity allocation: share of the slimmable cost removed, and the total held-out relative error of this plan and of the uniform plan of the same fraction (slimAllocate.ts). */
  sensitivity?: { allocated: number; uniform: number; costRemoved: number };
  /** Features kept / before (the feature conv's output channels; absent: the features were not cut). */
  featuresKept?: number;
  featuresTotal?: number;
}

/** report.json's `slimming`. */
export interface SlimReport extends Omit<shared.SlimReport, 'steps' | 'asked'> {
  asked: SlimOption;
  /** Training images the ranking ran on (never validation or test images). */
  rankSplit: 'train';
  /** How each step's removed channels were spread over the blocks, and the seconds the sensitivity curves took. */
  allocation: SlimAllocation;
  sensitivitySeconds: number;
  oofTrainImages: number;
  folds: number;
  steps: SlimStep[];
}

/**
 * Trains a head on feature vectors and reports its validation accuracy: the
 * one place slimming and distillation call the head trainer (swap it here).
 */
export async function fitHead(train: VectorSet, val: VectorSet, dim: number, k: number, config: RunRecord['config'], progress: Progress = {}, distill?: DistillOptions): Promise<{ model: tf.Sequential; valAccuracy: number; valProbs: Float32Array; history: Awaited<ReturnType<typeof trainHead>>['history']; bestEpoch: number; stoppedEarly: boolean; seconds: number }> {
  const head: Required<HeadOptions> = { ...HEAD_DEFAULTS, epochs: config.epochs, batchSize: config.batchSize, learningRate: config.learningRate, hiddenUnits: config.hiddenUnits, dropout: config.dropout, l2: config.l2, patience: config.patience, seed: config.seed, balanceClasses: config.balanceClasses };
  // Quiet: a refit per slimming step would flood the epoch chart of the run it came from.
  const res = await trainHead(train, val, dim, k, head, { signal: progress.signal }, distill);
  const ev = val.y.length ? evaluateSet(res.model, val, dim, k) : undefined;
  return { ...res, valAccuracy: ev?.accuracy ?? NaN, valProbs: ev?.probs ?? new Float32Array(0) };
}

/** A head's dense layers as plain arrays (for an ONNX model). */
export function headLayers(head: tf.LayersModel): DenseLayer[] {
  return headDense(head).map((d) => ({ kernel: Float32Array.from(d.kernel.dataSync()), shape: d.kernel.shape as [number, number], bias: Float32Array.from(d.bias.dataSync()), activation: d.activation }));
}

/**
 * A run as one float32 ONNX model (0..255 NHWC pixels in, `probabilities`
 * out): an ONNX backbone (a slimmed one) gets the head appended; a TF.js
 * backbone goes through the full TF.js model and the converter. `work` is a
 * scratch folder.
 */
export async function runAsOnnx(run: LoadedRun, work: string): Promise<Uint8Array> {
  await fs.mkdir(work, { recursive: true });
  const b = run.record.backbone;
  // A foreign ONNX backbone's wrapped model lives in the cache (rebuilt from its source if the cache lost it).
  const file = b.onnxInput ? await ensureForeignWrapped({ ...b, onnxInput: b.onnxInput }) : path.join(runBackboneDir(run), ONNX_BACKBONE_FILE);
  if (b.format === 'onnx') return appendHead(new Uint8Array(await fs.readFile(file)), headLayers(run.head));
  await writeFullModel(run, path.join(work, 'tfjs'));
  const conv = await convertTfjsModel(path.join(work, 'tfjs'), { inputName: 'image', outputName: 'probabilities' });
  await fs.rm(path.join(work, 'tfjs'), { recursive: true, force: true });
  return conv.bytes;
}

/** Folder of a run's ONNX backbone: stored inside the run (relative), so the run folder can move. */
export function runBackboneDir(run: LoadedRun): string {
  return path.resolve(run.dir, run.record.backbone.dir);
}

/** What one forward pass over the ranking images gives per block. */
export interface HiddenStatistics {
  /** Rank of each hidden channel (higher matters more). */
  scores: Float32Array[];
  /** Second moments of each block's hidden layer (for reconstruct.ts). */
  moments: HiddenMoments[];
  /** The same moments over two disjoint halves of the images (alternate batches), for held-out sensitivity (slimAllocate.ts), and each half's image count. */
  halves: [HiddenMoments[], HiddenMoments[]];
  halfImages: [number, number];
}

/**
 * One forward pass in ONNX Runtime over the given (training) images, per
 * block: each hidden channel's score (mean |activation| of the activated
 * depthwise output times the L2 norm of the project conv's weights reading
 * it: a channel that is quiet on the user's data or barely read by the next
 * layer matters least) and the hidden layer's second moments (for the
 * least-squares reconstruction of the project conv).
 */
export async function hiddenStatistics(bytes: Uint8Array, images: Uint8Array[], size: number, progress: Progress = {}): Promise<HiddenStatistics> {
  const ort = loadOrt();
  if (!ort) throw new HeadstartError('BACKEND', 'slimming ranks channels in ONNX Runtime, which is not available here (onnxruntime-node did not load)');
  const graph = onnx.ModelProto.decode(bytes).graph!;
  const blocks = findSlimBlocks(graph);
  if (!blocks.length) throw new HeadstartError('BAD_MODEL', 'the backbone has no slimmable blocks (expand conv → activation → depthwise conv → activation → project conv, as in MobileNetV2)');
  const stats = withHiddenStats(bytes, blocks);
  const gram = withHiddenGram(stats.bytes, blocks);
  const sums = blocks.map((b) => new Float64Array(b.channels));
  const moments = blocks.map((b) => new HiddenMoments(b.channels));
  const halves: HiddenStatistics['halves'] = [blocks.map((b) => new HiddenMoments(b.channels)), blocks.map((b) => new HiddenMoments(b.channels))];
  const halfImages: [number, number] = [0, 0];
  const fetch = [...stats.outputs, ...gram.outputs.flatMap((o) => [o.gram, o.sum, o.shape])];
  await runImageBatches(gram.bytes, images, size, STAT_BATCH, fetch, (out, i, n) => {
    stats.outputs.forEach((o, b) => {
      const v = out[o]!.data as Float32Array;
      for (let c = 0; c < v.length; c++) sums[b]![c]! += v[c]! * n;
    });
    const half = (i / STAT_BATCH) % 2;
    halfImages[half]! += n;
    gram.outputs.forEach((o, b) => {
      const shape = Array.from(out[o.shape]!.data as BigInt64Array, Number);
      for (const m of [moments[b]!, halves[half]![b]!]) m.add(out[o.gram]!.data as Float32Array, out[o.sum]!.data as Float32Array, shape[0]! * shape[2]! * shape[3]!);
    });
    progress.onEvent?.({ type: 'progress', phase: 'export', done: Math.min(i + n, images.length), total: images.length, unit: 'ranking images (training split)' });
  }, progress.signal);
  const norms = projectNorms(graph, blocks);
  return { scores: sums.map((s, b) => Float32Array.from(s, (v, c) => (v / images.length) * norms[b]![c]!)), moments, halves, halfImages };
}

/** Images per forward pass of hiddenStatistics (its Gram outputs grow with the batch's positions). */
const STAT_BATCH = 8;

/**
 * Least-squares project weights for every block that loses channels under
 * `plan` (reconstruct.ts; undefined where a block is cut without it), with
 * an output shift wherever the conv has a bias or a BatchNorm after it.
 */
export function reconstructPlan(bytes: Uint8Array, moments: HiddenMoments[], plan: number[][], signal?: AbortSignal): Array<ProjectWeights | undefined> {
  const graph = onnx.ModelProto.decode(bytes).graph!;
  return findSlimBlocks(graph).map((b, i) => {
    throwIfAborted(signal); // a wide block takes about a second: cancellation is honoured between blocks
    const conv = projectConvOf(graph, b);
    return conv && reconstructProject(moments[i]!, conv, plan[i]!, b.projectBias || b.projectBn !== undefined);
  });
}

/**
 * Whether each slimmed block's project conv is refit, block after block, on
 * the slimmed network's own hidden layer after the first reconstruction
 * (which fits every block on the unslimmed network's hidden layer).
 */
export const SLIM_REFIT = true;

/**
 * Refits the project conv of each slimmed block (plan[i] shorter than the
 * block), in network order, on what the slimmed network really feeds it:
 * for block i, one ONNX Runtime pass of the unslimmed model and the slimmed
 * one (slimOnnx with the weights so far: blocks before i already refit) side
 * by side over the (training) images gives the moments between the two
 * hidden layers (onnx/slim.ts withCrossGram), and reconstruct.ts
 * refitProject solves for weights that map the slimmed input to the
 * unslimmed output. In order, not all at once: refitting every block on the
 * same pass would have each one make up for an upstream error that the
 * upstream refit removes too (measured: agreement fell). A block whose refit
 * is singular keeps its `project` weights.
 */
export async function refitPlan(bytes: Uint8Array, images: Uint8Array[], size: number, plan: number[][], project: Array<ProjectWeights | undefined>, progress: Progress = {}): Promise<Array<ProjectWeights | undefined>> {
  const graph = onnx.ModelProto.decode(bytes).graph!;
  const blocks = findSlimBlocks(graph);
  const { signal } = progress;
  const out = [...project];
  for (const [i, b] of blocks.entries()) {
    const conv = plan[i]!.length < b.channels ? projectConvOf(graph, b) : undefined;
    if (!conv) continue;
    throwIfAborted(signal);
    // A block takes about a second on MobileNetV2 1.4: the panel and the CLI show the count.
    progress.onEvent?.({ type: 'progress', phase: 'export', done: i, total: blocks.length, unit: 'blocks refit on the slimmed network' });
    const both = withCrossGram(bytes, slimOnnx(bytes, plan, out), [i]);
    const o = both.outputs[i]!;
    const m = new CrossMoments(plan[i]!.length, b.channels);
    await runImageBatches(both.bytes, images, size, STAT_BATCH, [o.gram, o.cross, o.slimSum, o.sum, o.shape], (r) => {
      const [n = 0, , h = 0, w = 0] = Array.from(r[o.shape]!.data as BigInt64Array, Number);
      const f = (name: string) => r[name]!.data as Float32Array;
      m.add(f(o.gram), f(o.cross), f(o.slimSum), f(o.sum), n * h * w);
    }, signal);
    out[i] = refitProject(m, conv, plan[i]!, b.projectBias || b.projectBn !== undefined) ?? out[i];
  }
  return out;
}

/** Channels each block keeps when `fraction` of them go: the highest-ranked, rounded up to a multiple of 8, in index order. */
export function keepPlan(scores: Float32Array[], fraction: number): number[][] {
  return scores.map((s) => topChannels(s, keptCount(s.length, fraction)));
}

/** The highest-ranked channels of each block, `kept[b]` of them (slimAllocate.ts's allocation), in index order. */
export function keepCounts(scores: Float32Array[], kept: number[]): number[][] {
  return scores.map((s, b) => topChannels(s, kept[b]!));
}

/**
 * One step's kept channels: 'sensitivity' removes `fraction` of the
 * slimmable cost where the held-out error grows least, 'uniform' the same
 * fraction of every block. With the curves, also both plans' total
 * sensitivity (the uniform one for comparison).
 */
function stepPlan(scores: Float32Array[], curves: BlockCurve[] | undefined, fraction: number): { plan: number[][]; sensitivity?: { allocated: number; uniform: number; costRemoved: number } } {
  const uniform = keepPlan(scores, fraction);
  if (!curves) return { plan: uniform };
  const kept = allocate(curves, fraction);
  const a = planFigures(curves, kept);
  return { plan: keepCounts(scores, kept), sensitivity: { allocated: a.sensitivity, uniform: planFigures(curves, uniform.map((k) => k.length)).sensitivity, costRemoved: a.costRemoved } };
}

/**
 * Feature channels kept when `fraction` of them go (the feature conv's
 * output channels, findFeatureConv): the highest-scored, rounded up to a
 * multiple of 8, in index order.
 */
export function keepFeatures(scores: Float32Array, fraction: number): number[] {
  return topChannels(scores, keptCount(scores.length, fraction));
}

/**
 * Score of each feature (what the head reads): its standard deviation over
 * the training images times the L2 norm of the head's first-layer weights
 * reading it. A feature that barely varies on the user's data carries
 * nothing a refit head can use (a constant one folds into the bias), and one
 * the head barely reads matters little to it.
 */
export function featureScores(train: VectorSet, dim: number, head: DenseLayer): Float32Array {
  const n = train.y.length;
  const mean = new Float64Array(dim);
  const sq = new Float64Array(dim);
  for (let r = 0; r < n; r++)
    for (let c = 0; c < dim; c++) {
      const v = train.x[r * dim + c]!;
      mean[c]! += v;
      sq[c]! += v * v;
    }
  const [rowsIn, units] = head.shape;
  if (rowsIn !== dim) throw new HeadstartError('INTERNAL', `feature scores: the head reads ${rowsIn} features, the rows have ${dim}`);
  return Float32Array.from({ length: dim }, (_, c) => {
    const m = n ? mean[c]! / n : 0;
    const sd = Math.sqrt(Math.max(0, (n ? sq[c]! / n : 0) - m * m));
    let w = 0;
    for (let u = 0; u < units; u++) w += head.kernel[c * units + u]! ** 2;
    return sd * Math.sqrt(w);
  });
}

/** Decoded training images for ranking and timing (never validation or test images). */
export async function rankingImages(record: RunRecord, progress: Progress): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const it of calibrationItems(record, SLIM_RANK_IMAGES)) {
    throwIfAborted(progress.signal);
    try {
      out.push(await readAndDecode(it.path, record.backbone.inputSize));
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err; // an unreadable training image is one ranking image fewer
    }
  }
  if (!out.length) throw new HeadstartError('NO_DATA', 'slimming ranks channels on training images; none of the run\'s training images could be decoded');
  return out;
}

/** Labelled feature rows with the content hash of each row's image. */
export interface HashedSet extends VectorSet {
  hashes: string[];
}

/** Feature rows of the train / validation splits for one backbone, labelled by class index; soft targets for the training rows. */
export function splitRows(record: RunRecord, features: Map<string, Float32Array>, split: 'train' | 'val', dim: number, soft?: Map<string, Float32Array>): HashedSet {
  const sel = record.samples.filter((s) => s.split === split && features.has(s.hash) && (!soft || split !== 'train' || soft.has(s.hash)));
  const x = new Float32Array(sel.length * dim);
  sel.forEach((s, i) => x.set(features.get(s.hash)!, i * dim));
  const k = record.labels.length;
  const softRows = soft && split === 'train' ? new Float32Array(sel.length * k) : undefined;
  if (softRows) sel.forEach((s, i) => softRows.set(soft!.get(s.hash)!, i * k));
  return { x, y: Int32Array.from(sel.map((s) => record.labels.indexOf(s.label))), soft: softRows, hashes: sel.map((s) => s.hash) };
}

/** The rows of `set` at `at`, in that order. */
function pick(set: HashedSet, at: number[], dim: number, k: number): HashedSet {
  const x = new Float32Array(at.length * dim);
  at.forEach((r, i) => x.set(set.x.subarray(r * dim, (r + 1) * dim), i * dim));
  const soft = set.soft && new Float32Array(at.length * k);
  if (soft) at.forEach((r, i) => soft.set(set.soft!.subarray(r * k, (r + 1) * k), i * k));
  return { x, y: Int32Array.from(at, (r) => set.y[r]!), soft, hashes: at.map((r) => set.hashes[r]!) };
}

/** Fold of each training image (by content hash): stratified by label, seeded by the run's seed, the same for every step. */
export function trainFolds(record: RunRecord): Map<string, number> {
  const train = record.samples.filter((s) => s.split === 'train');
  const fold = stratifiedFolds(Int32Array.from(train, (s) => record.labels.indexOf(s.label)), SLIM_FOLDS, record.config.seed);
  return new Map(train.map((s, i) => [s.hash, fold[i]!]));
}

/**
 * Out-of-fold top-1 class of each row of `train`: for each fold, a head fit
 * (fitHead, early stopping on `earlyStop`) on the rows of the other folds
 * predicts the fold's rows, so no row is predicted by a head that trained on
 * it. `fold[r]` is row r's fold (0..SLIM_FOLDS-1). Cancellation is checked
 * between fits (and inside each, per batch).
 */
export async function outOfFoldTop1(train: HashedSet, fold: ArrayLike<number>, earlyStop: VectorSet, dim: number, k: number, config: RunRecord['config'], progress: Progress = {}, distill?: DistillOptions): Promise<Int32Array> {
  const top1 = new Int32Array(train.y.length).fill(-1);
  const all = Array.from(train.y.keys());
  for (let f = 0; f < SLIM_FOLDS; f++) {
    throwIfAborted(progress.signal);
    const held = all.filter((r) => fold[r] === f);
    if (!held.length) continue; // fewer training images than folds
    const fit = await fitHead(pick(train, all.filter((r) => fold[r] !== f), dim, k), earlyStop, dim, k, config, progress, distill);
    try {
      const pred = argmaxRows(predictRows(fit.model, pick(train, held, dim, k).x, dim, k), k);
      held.forEach((r, i) => (top1[r] = pred[i]!));
    } finally {
      fit.model.dispose();
    }
  }
  return top1;
}

/** One backbone's features judged the slimming way. */
interface Judgement {
  /** The head fit on the whole training split (early stopping on validation): a step's own head (the caller disposes it). */
  head: tf.Sequential;
  /** Top-1 class of each judged image, by content hash: validation images from `head`, training images out of fold. */
  top1: Map<string, number>;
  /** True class of each judged image, by content hash. */
  truth: Map<string, number>;
  valImages: number;
  oofImages: number;
  valAccuracy: number;
  oofAccuracy: number;
}

/**
 * Judges one backbone's features: a head on the training split scored on the
 * validation split (as the export judges), and out-of-fold heads on the
 * training images, so one validation image is not several points of the
 * budget. Test images are never part of it.
 */
async function judgeFeatures(record: RunRecord, features: Map<string, Float32Array>, dim: number, folds: Map<string, number>, progress: Progress, distill?: SlimSearchOptions['distill']): Promise<Judgement> {
  const k = record.labels.length;
  const train = splitRows(record, features, 'train', dim, distill?.soft);
  const val = splitRows(record, features, 'val', dim);
  const fit = await fitHead(train, val, dim, k, record.config, progress, distill?.options);
  try {
    const oof = await outOfFoldTop1(train, train.hashes.map((h) => folds.get(h)!), val, dim, k, record.config, progress, distill?.options);
    const valTop1 = argmaxRows(fit.valProbs, k);
    const top1 = new Map<string, number>([...val.hashes.map((h, i): [string, number] => [h, valTop1[i]!]), ...train.hashes.map((h, i): [string, number] => [h, oof[i]!])]);
    const truth = new Map<string, number>([...val.hashes.map((h, i): [string, number] => [h, val.y[i]!]), ...train.hashes.map((h, i): [string, number] => [h, train.y[i]!])]);
    return { head: fit.model, top1, truth, valImages: val.y.length, oofImages: train.y.length, valAccuracy: fit.valAccuracy, oofAccuracy: shareEqual(oof, train.y) };
  } catch (err) {
    fit.model.dispose();
    throw err;
  }
}

/** Share of positions where `a` and `b` hold the same class (NaN when empty). */
function shareEqual(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return a.length ? same / a.length : NaN;
}

/**
 * A step against the unslimmed reference over the images both judged:
 * agreement of top-1 classes (the budget rule) and the accuracy drop in
 * points (which the disagreements bound).
 */
function compareJudged(ref: Judgement, step: Judgement): { agreement: number; dropPoints: number; images: number } {
  let same = 0;
  let refRight = 0;
  let right = 0;
  let n = 0;
  for (const [h, c] of step.top1) {
    const r = ref.top1.get(h);
    if (r === undefined) continue; // an image only one backbone could read is not judged
    const t = step.truth.get(h)!;
    n++;
    if (c === r) same++;
    if (c === t) right++;
    if (r === t) refRight++;
  }
  return { agreement: n ? same / n : 1, dropPoints: n ? ((refRight - right) / n) * 100 : 0, images: n };
}

export interface SlimSearchOptions extends EngineOptions {
  slim: SlimOption;
  /** How a step's removed channels are spread over the blocks; default 'sensitivity'. */
  allocation?: SlimAllocation;
  /** Fraction of the features (the final conv's output channels) every step removes; default featureFraction(step). */
  featureCut?: number;
  /** Refit each slimmed block on the slimmed network's own hidden layer (refitPlan); default SLIM_REFIT. */
  refit?: boolean;
  /** Accuracy budget in validation points below the unslimmed model. */
  maxDrop: number;
  /** Scratch folder: one ONNX backbone folder per step is written here. */
  work: string;
  /** Distillation: the teacher's class probabilities per content hash, and how to mix them in. */
  distill?: { soft: Map<string, Float32Array>; options: DistillOptions };
}

/**
 * One slimmed block by the names of its nodes in the source TF.js model
 * (graph node names, or Keras layer names), with the hidden channels it keeps:
 * the ONNX search's choice, applicable to the TF.js model it was converted from.
 */
export interface SlimPlanBlock {
  expand: string;
  expandBn?: string;
  depthwise: string;
  depthwiseBn?: string;
  project: string;
  /** The BatchNormalization layer after the project conv (Keras' unfused form), which takes a reconstruction's output shift when the conv has no bias. */
  projectBn?: string;
  /** Hidden channels before slimming. */
  channels: number;
  /** Kept hidden channel indices, sorted. */
  keep: number[];
  /** Least-squares project weights for the kept channels (ONNX layout: kernel [O, K]); absent: the original columns are cut. */
  weights?: ProjectWeights;
}

/** The TF.js node or Keras layer an ONNX node was converted from: the converter names it `SOURCE/OpType` (plus `_N` when taken). */
function sourceName(onnxName: string | null | undefined): string {
  const m = /^(.*)\/(Conv|BatchNormalization)(_\d+)?$/.exec(onnxName ?? '');
  if (!m) throw new HeadstartError('INTERNAL', `slimming cannot tell which TF.js node the ONNX node '${onnxName ?? ''}' came from`);
  return m[1]!;
}

/** The feature conv's kept output channels by the names of its source TF.js node / Keras layers (findFeatureConv). */
export interface SlimPlanFeatures {
  conv: string;
  /** Its BatchNormalization layer (Keras' unfused form). */
  bn?: string;
  /** Output channels before slimming. */
  channels: number;
  /** Kept output channels, sorted. */
  keep: number[];
}

/** What slimming cuts out of a TF.js backbone: each block's hidden channels, and the features. */
export interface SlimPlan {
  blocks: SlimPlanBlock[];
  features?: SlimPlanFeatures;
}

/** A keep plan (per block of findSlimBlocks on `bytes`, and the kept features of findFeatureConv) by source node names. */
export function slimPlanOf(bytes: Uint8Array, keep: number[][], project: Array<ProjectWeights | undefined> = [], features?: number[]): SlimPlan {
  const graph = onnx.ModelProto.decode(bytes).graph!;
  const nodes = graph.node ?? [];
  const blocks = findSlimBlocks(graph);
  if (blocks.length !== keep.length) throw new HeadstartError('INTERNAL', `slimming plan has ${keep.length} blocks, the model ${blocks.length}`);
  const name = (i: number | undefined) => (i === undefined ? undefined : sourceName(nodes[i]!.name));
  const fc = features && findFeatureConv(graph);
  if (features && !fc) throw new HeadstartError('INTERNAL', 'slimming plan cuts features, but the model\'s features are not read off one conv');
  return {
    blocks: blocks.map((b, i) => ({ expand: name(b.expand)!, expandBn: name(b.expandBn), depthwise: name(b.depthwise)!, depthwiseBn: name(b.depthwiseBn), project: name(b.project)!, projectBn: name(b.projectBn), channels: b.channels, keep: keep[i]!, weights: project[i] })),
    features: fc && { conv: name(fc.conv)!, bn: name(fc.bn), channels: fc.channels, keep: features! },
  };
}

export interface SlimResult {
  report: SlimReport;
  /** The chosen step's kept hidden channels per block of findSlimBlocks on `baseFile` (undefined: no step chosen); slimPlanOf names them. */
  keep?: number[][];
  /** The chosen step's reconstructed project weights per block (undefined entries: cut without reconstruction); slimPlanOf carries them to TF.js. */
  project?: Array<ProjectWeights | undefined>;
  /** The chosen step's kept features (output channels of the feature conv, findFeatureConv on `baseFile`; undefined: all kept); slimPlanOf carries them to TF.js. */
  features?: number[];
  /** The chosen step's ONNX backbone folder (undefined: no step chosen, the backbone stays as it was). */
  backboneDir?: string;
  /** The chosen step's refit head (the caller disposes it). */
  head?: tf.Sequential;
  /** The chosen step's backbone + head as one float32 ONNX model. */
  modelBytes?: Uint8Array;
  /** The unslimmed backbone's ONNX file (for speed comparisons). */
  baseFile: string;
  /** Training images used for ranking and timing. */
  images: Uint8Array[];
  /** Content hashes of the images every step was judged on (validation + out-of-fold training). */
  judged: string[];
}

/** Scratch state of one slimming step. */
interface StepResult {
  step: SlimStep;
  dir: string;
  head: tf.Sequential;
  bytes: Uint8Array;
  keep: number[][];
  project: Array<ProjectWeights | undefined>;
  features?: number[];
  batch1BaseMs: number;
}

/** Context shared by the steps of one search. */
interface SearchContext {
  run: LoadedRun;
  opts: SlimSearchOptions;
  parent: ResolvedBackbone;
  baseFile: string;
  baseBytes: Uint8Array;
  scores: Float32Array[];
  /** Sensitivity curves of the blocks (undefined: uniform allocation). */
  curves?: BlockCurve[];
  /** Scores of the features (featureScores); undefined: the features are not cut (no feature conv found). */
  featureScores?: Float32Array;
  moments: HiddenMoments[];
  images: Uint8Array[];
  items: Array<{ path: string; hash: string }>;
  folds: Map<string, number>;
  ref: Judgement;
}

/**
 * One step: remove `fraction` of each block's hidden channels, re-extract the
 * train / validation features with the slimmed backbone, refit and judge the
 * head, and time the backbone against the unslimmed one.
 */
async function slimStep(c: SearchContext, fraction: number, progress: Progress): Promise<StepResult> {
  const rec = c.run.record;
  const pct = Math.round(fraction * 100);
  const { plan, sensitivity } = stepPlan(c.scores, c.curves, fraction);
  const t0 = performance.now();
  let project = reconstructPlan(c.baseBytes, c.moments, plan, progress.signal);
  if (c.opts.refit ?? SLIM_REFIT) project = await refitPlan(c.baseBytes, c.images, rec.backbone.inputSize, plan, project, progress);
  const reconstructSeconds = (performance.now() - t0) / 1000;
  const features = c.featureScores && keepFeatures(c.featureScores, c.opts.featureCut ?? featureFraction(fraction));
  const slimBytes = slimOnnx(c.baseBytes, plan, project, features);
  const dir = path.join(c.opts.work, `slim-${pct}`);
  const hiddenTotal = c.scores.reduce((a, s) => a + s.length, 0);
  const featureSize = features?.length ?? c.parent.entry.featureSize;
  const meta: OnnxBackboneMeta = {
    entry: { ...c.parent.entry, id: `${c.parent.entry.id.replace(/^local:.*[\\/]/, 'local-')}-slim${pct}`, title: `${c.parent.entry.title}, slimmed for this task (${pct}% of hidden channels removed${features ? `, ${featureSize} of ${c.featureScores!.length} features kept` : ''})`, format: 'onnx', featureNode: 'features', featureSize, pool: false, bundled: false, approxBytes: slimBytes.length },
    slim: { parent: c.parent.entry.id, parentHash: c.parent.modelHash, fraction, hiddenChannels: c.scores.map((s) => s.length), keptChannels: plan.map((p) => p.length), ...(features && { features: { total: c.featureScores!.length, kept: features.length } }) },
  };
  await writeOnnxBackbone(dir, slimBytes, meta);
  const sOpened = await openBackbone(dir, { ...c.opts, engine: 'onnx' }, progress);
  let judged: Judgement;
  try {
    const ex = await sOpened.extract(c.items, progress);
    judged = await judgeFeatures(rec, ex.features, sOpened.backbone.entry.featureSize, c.folds, progress, c.opts.distill);
  } finally {
    sOpened.dispose();
  }
  try {
    const model = appendHead(slimBytes, headLayers(judged.head));
    const speed = await compareOnnxSpeed(c.baseFile, path.join(dir, ONNX_BACKBONE_FILE), c.images.slice(0, 8), rec.backbone.inputSize, { threads: 2, repetitions: 3 }, progress);
    const cmp = compareJudged(c.ref, judged);
    const withinBudget = c.opts.slim !== 'auto' || slimWithinBudget(cmp.agreement, c.opts.maxDrop);
    const step: SlimStep = { fraction, hiddenKept: plan.reduce((a, p) => a + p.length, 0), hiddenTotal, bytes: model.length, gzipBytes: gzipSync(model, { level: 9 }).length, msPerImage: speed.other.batch1Ms, speedup: speed.batch1Speedup, valAccuracy: judged.valAccuracy, dropPoints: (c.ref.valAccuracy - judged.valAccuracy) * 100, oofAccuracy: judged.oofAccuracy, judgedDropPoints: cmp.dropPoints, agreement: cmp.agreement, withinBudget, reconstructed: project.filter(Boolean).length, reconstructSeconds, cpuSpeedup: speed.batch32CpuSpeedup, keptPerBlock: plan.map((p) => p.length), ...(sensitivity && { sensitivity }), ...(features && { featuresKept: features.length, featuresTotal: c.featureScores!.length }) };
    return { step, dir, head: judged.head, bytes: model, keep: plan, project, features, batch1BaseMs: speed.base.batch1Ms };
  } catch (err) {
    judged.head.dispose();
    throw err;
  }
}

/** The unslimmed backbone: its ONNX file and its features judged the way every step is (the reference of the budget rule). */
async function unslimmedReference(run: LoadedRun, opts: SlimSearchOptions, items: SearchContext['items'], folds: Map<string, number>, progress: Progress): Promise<{ parent: ResolvedBackbone; baseFile: string; ref: Judgement; featureScores: Float32Array }> {
  const rec = run.record;
  const opened = await openRunBackbone(run, opts, progress);
  try {
    const ex = await opened.extract(items, progress);
    if (!rec.samples.some((s) => s.split === 'val' && ex.features.has(s.hash))) throw new HeadstartError('NO_DATA', `${run.dir} has no validation images: slimming judges each step on the validation split (train with --val above 0)`);
    progress.onEvent?.({ type: 'phase', phase: 'export', message: `slimming: judging the unslimmed backbone (a head on the training split, and ${SLIM_FOLDS} out-of-fold heads on the training images)` });
    // The run's own head saw the validation images when it was cross-validated: the reference is refit exactly as each step will be.
    const ref = await judgeFeatures(rec, ex.features, rec.backbone.featureSize, folds, progress, opts.distill);
    let scores: Float32Array;
    try {
      // Ranked by the reference head (fit on the training split) over the training images only.
      scores = featureScores(splitRows(rec, ex.features, 'train', rec.backbone.featureSize), rec.backbone.featureSize, headLayers(ref.head)[0]!);
    } finally {
      ref.head.dispose();
    }
    const baseFile = await ensureOnnxBackbone(opened.backbone, opts.cacheDir ?? opened.cacheDir);
    return { parent: opened.backbone, baseFile, ref, featureScores: scores };
  } finally {
    opened.dispose();
  }
}

/**
 * Task-specific slimming of a run's backbone: rank hidden channels on
 * training images, then per step remove a fraction of each block's hidden
 * channels, re-extract the train / validation features with the slimmed
 * backbone (through the engine and its cache), refit the head on the training
 * split, and judge it on the validation images plus every training image
 * predicted out of fold (SLIM_FOLDS heads, each fit on the other folds), never
 * on test images. The unslimmed backbone is judged the same way and is the
 * reference. `auto` takes the largest step whose top-1 agrees with the
 * reference on at least 100 - maxDrop % of the judged images, and stops after
 * SLIM_PATIENCE steps in a row past it.
 */
export async function slimSearch(run: LoadedRun, opts: SlimSearchOptions, progress: Progress = {}): Promise<SlimResult> {
  const rec = run.record;
  if (rec.unfreeze) throw new HeadstartError('BAD_INPUT', `${run.dir} fine-tuned its backbone's top layers (--unfreeze); slimming applies to frozen backbones: train without --unfreeze`);
  if (!loadOrt()) throw new HeadstartError('BACKEND', '--slim runs the backbone in ONNX Runtime, which is not available here (onnxruntime-node did not load)');
  const emit = progress.onEvent ?? (() => undefined);
  const items = rec.samples.filter((s) => s.split === 'train' || s.split === 'val').map((s) => ({ path: path.join(rec.dataset.root, s.rel), hash: s.hash }));
  const folds = trainFolds(rec);
  const reference = await unslimmedReference(run, opts, items, folds, progress);
  const { parent, baseFile, ref } = reference;
  const baseBytes = new Uint8Array(await fs.readFile(baseFile));
  // The features the head reads are cut too when they come off one conv (MobileNetV2's final 1x1 conv) and the reference extraction saw them all.
  const featureConv = findFeatureConv(onnx.ModelProto.decode(baseBytes).graph!);
  const featureScores = featureConv?.channels === reference.featureScores.length ? reference.featureScores : undefined;
  emit({ type: 'phase', phase: 'export', message: `slimming: ranking hidden channels on up to ${SLIM_RANK_IMAGES} training images` });
  const images = await rankingImages(rec, progress);
  const { scores, moments, halves, halfImages } = await hiddenStatistics(baseBytes, images, rec.backbone.inputSize, progress);
  const allocation = opts.allocation ?? 'sensitivity';
  let curves: BlockCurve[] | undefined;
  const s0 = performance.now();
  if (allocation === 'sensitivity' && halfImages[1] > 0) {
    emit({ type: 'phase', phase: 'export', message: `slimming: measuring each block's sensitivity (reconstructed on half of the ranking images, measured on the other half)` });
    curves = sensitivityCurves(baseBytes, scores, halves[0], halves[1], halfImages[1], progress.signal);
  }
  const sensitivitySeconds = (performance.now() - s0) / 1000;
  const ctx: SearchContext = { run, opts, parent, baseFile, baseBytes, scores, curves, featureScores, moments, images, items, folds, ref };
  const steps: SlimStep[] = [];
  let chosen: StepResult | undefined;
  let baseMs = NaN;
  try {
    for (const fraction of opts.slim === 'auto' ? [...SLIM_STEPS] : [opts.slim]) {
      throwIfAborted(progress.signal);
      emit({ type: 'phase', phase: 'export', message: `slimming: removing ${Math.round(fraction * 100)}% of ${curves ? 'the slimmable cost (hidden channels where they matter least)' : "each block's hidden channels"}, re-extracting, refitting the head and ${SLIM_FOLDS} out-of-fold heads` });
      const r = await slimStep(ctx, fraction, progress);
      baseMs = Math.min(Number.isNaN(baseMs) ? Infinity : baseMs, r.batch1BaseMs);
      steps.push(r.step);
      if (!r.step.withinBudget) {
        r.head.dispose();
        if (!slimSearchGoesOn(steps.map((st) => st.withinBudget))) break;
        continue;
      }
      chosen?.head.dispose();
      chosen = r;
    }
  } catch (err) {
    chosen?.head.dispose();
    throw err;
  }
  const hiddenTotal = scores.reduce((a, s) => a + s.length, 0);
  const baseModel = appendHead(baseBytes, headLayers(run.head));
  steps.unshift({ fraction: 0, hiddenKept: hiddenTotal, hiddenTotal, bytes: baseModel.length, gzipBytes: gzipSync(baseModel, { level: 9 }).length, msPerImage: baseMs, speedup: 1, valAccuracy: ref.valAccuracy, dropPoints: 0, oofAccuracy: ref.oofAccuracy, judgedDropPoints: 0, agreement: 1, withinBudget: true });
  if (!chosen) emit({ type: 'warning', message: `no slimming step kept the unslimmed model's predictions on at least ${100 - opts.maxDrop}% of the ${ref.top1.size} judged images (${ref.valImages} validation, ${ref.oofImages} training out of fold); the backbone stays unslimmed` });
  return {
    report: {
      method: `structured: hidden channels of inverted-residual blocks, ranked by mean |activation| on training images x L2 norm of the project conv weights reading them; ${curves ? "each step removes its fraction of the slimmable cost (an equal blend of parameters and multiply-adds), spread over the blocks greedily where each block's project output error, reconstructed on half of the ranking images and measured on the other half, grows least" : "each step removes its fraction of every block's hidden channels"}; the project conv of each slimmed block refit by least squares (ridge ${RECONSTRUCT_RIDGE} x mean second moment, with an output shift) to reproduce the unslimmed block's output on the same training images${(opts.refit ?? SLIM_REFIT) ? ', then refit block after block on the hidden layer the slimmed network itself feeds it (so errors do not add up along the network)' : ''}; ${featureScores ? `the features (output channels of the final ${featureScores.length}-channel conv) cut by ${opts.featureCut === undefined ? '1.5x the step\'s fraction (at most 75%)' : `${Math.round(opts.featureCut * 100)}%`}, ranked by their standard deviation on training images x L2 norm of the reference head's weights reading them; ` : ''}head refit per step, judged on the validation images and on the training images out of fold (${SLIM_FOLDS} folds), against the unslimmed backbone judged the same way`,
      asked: opts.slim,
      rankImages: images.length,
      rankSplit: 'train',
      blocks: scores.length,
      budgetPoints: opts.maxDrop,
      validationImages: ref.valImages,
      oofTrainImages: ref.oofImages,
      folds: SLIM_FOLDS,
      threads: 2,
      allocation: curves ? 'sensitivity' : 'uniform',
      sensitivitySeconds,
      steps,
      chosen: chosen?.step.fraction ?? 0,
    },
    backboneDir: chosen?.dir,
    keep: chosen?.keep,
    project: chosen?.project,
    features: chosen?.features,
    head: chosen?.head,
    modelBytes: chosen?.bytes,
    baseFile,
    images,
    judged: [...ref.top1.keys()],
  };
}

/**
 * The export's budget rule (export/report BUDGET_RULE) applied to a slimming
 * step: within --max-drop P when its top-1 class differs from the unslimmed
 * reference's on at most P% of the judged images (validation + out-of-fold
 * training). It bounds the accuracy drop on those images by P points, and it
 * is the rule --quantize auto uses, so slimming and quantization are judged
 * alike.
 */
export function slimWithinBudget(agreement: number, maxDrop: number): boolean {
  return (1 - agreement) * 100 <= maxDrop + 1e-9;
}

/**
 * Points of the budget a slimming result used: the chosen step's
 * disagreement with the unslimmed model on the judged images (0 when no step
 * was chosen). Disagreements of two steps add up at most, so the export's
 * later candidates are judged against what is left of --max-drop.
 */
export function slimBudgetSpent(r: SlimReport | undefined): number {
  const step = r?.chosen ? r.steps.find((s) => s.fraction === r.chosen) : undefined;
  return step ? (1 - step.agreement) * 100 : 0;
}

/** Top-1 class of each row of probabilities. */
function argmaxRows(probs: Float32Array, k: number): Int32Array {
  const out = new Int32Array(probs.length / k);
  for (let i = 0; i < out.length; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (probs[i * k + j]! > probs[i * k + best]!) best = j;
    out[i] = best;
  }
  return out;
}

/** The slimming table for the CLI and the model card. */
export function slimTable(r: SlimReport): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  return [
    `Slimming (${r.asked === 'auto' ? `auto, top-1 kept on at least ${100 - r.budgetPoints}% of the judged images` : `asked ${Math.round(r.asked * 100)}%`}; ranked on ${r.rankImages} training images, judged on ${r.validationImages} validation images and ${r.oofTrainImages} training images out of fold (${r.folds} folds); ONNX Runtime ${r.threads} threads, batch 1):`,
    '  removed   hidden kept        bytes    gzipped   ms/image  speed-up  val acc   drop  oof acc  agree',
    ...r.steps.map((s) => `  ${`${Math.round(s.fraction * 100)}%`.padStart(7)}   ${`${s.hiddenKept}/${s.hiddenTotal}`.padEnd(12)} ${String(s.bytes).padStart(10)} ${String(s.gzipBytes).padStart(10)} ${s.msPerImage.toFixed(1).padStart(10)} ${`${s.speedup.toFixed(2)}x`.padStart(9)} ${pct(s.valAccuracy).padStart(8)} ${s.dropPoints.toFixed(1).padStart(6)} ${pct(s.oofAccuracy).padStart(8)} ${pct(s.agreement).padStart(6)}${s.fraction === r.chosen ? '  ← chosen' : s.withinBudget ? '' : '  (over budget)'}`),
    ...chosenShape(r),
  ];
}

/** The chosen step's kept channels per block and features (one line; none without a chosen step). */
function chosenShape(r: SlimReport): string[] {
  const s = r.chosen ? r.steps.find((x) => x.fraction === r.chosen) : undefined;
  if (!s?.keptPerBlock) return [];
  return [`  chosen step keeps hidden channels per block ${s.keptPerBlock.join(', ')} (${r.allocation === 'sensitivity' ? 'spread by sensitivity' : 'uniform'})${s.featuresKept ? `; ${s.featuresKept} of ${s.featuresTotal} features` : ''}`];
}
