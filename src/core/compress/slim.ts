import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import type * as tf from '@tensorflow/tfjs';
import { onnx } from 'onnx-proto';
import type * as shared from '../../shared/records';
import { ensureForeignWrapped } from '../onnx/foreign';
import { type OnnxBackboneMeta, ONNX_BACKBONE_FILE, writeOnnxBackbone } from '../onnx/backbone';
import { ensureOnnxBackbone, loadOrt } from '../onnx/engine';
import type { ResolvedBackbone } from '../backbones/store';
import { DecodeError, readAndDecode } from '../data/decode';
import { type EngineOptions, openBackbone } from '../engine';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { headDense, writeFullModel } from '../export/fullModel';
import { calibrationItems } from '../onnx/calibrate';
import { convertTfjsModel } from '../onnx/convert';
import { type DenseLayer, appendHead, findSlimBlocks, projectNorms, slimOnnx, withHiddenStats } from '../onnx/slim';
import { compareOnnxSpeed } from '../onnx/speed';
import { type LoadedRun, type RunRecord, openRunBackbone, runProbs } from '../runFolder';
import { type DistillOptions, type HeadOptions, type VectorSet, HEAD_DEFAULTS, evaluateSet, trainHead } from '../train/head';
import { agreementOf } from '../train/metrics';

/** Fractions of hidden channels `--slim auto` removes, tried in order (each step removes more). */
export const SLIM_STEPS = [0.25, 0.4, 0.55, 0.7] as const;

/** Training images whose activations rank the channels, at most (balanced across classes). */
export const SLIM_RANK_IMAGES = 64;

/**
 * ONNX Runtime's x86 kernels run convolutions on blocks of 8 channels
 * (NCHWc): kept channel counts are rounded up to a multiple of 8, so a
 * slimmed block never pays for a partial block.
 */
const CHANNEL_MULTIPLE = 8;

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
  /** Fraction of the choice images whose top-1 class equals the unslimmed model's (the budget rule). */
  agreement: number;
}

/** report.json's `slimming`. */
export interface SlimReport extends Omit<shared.SlimReport, 'steps' | 'asked'> {
  asked: SlimOption;
  /** Training images the ranking ran on (never validation or test images). */
  rankSplit: 'train';
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

/**
 * Ranks every block's hidden channels: mean |activation| of the activated
 * depthwise output over the given (training) images, times the L2 norm of the
 * project conv's weights reading that channel: a channel that is quiet on the
 * user's data or barely read by the next layer matters least. Forward passes
 * only, in ONNX Runtime.
 */
export async function rankHidden(bytes: Uint8Array, images: Uint8Array[], size: number, progress: Progress = {}): Promise<Float32Array[]> {
  const ort = loadOrt();
  if (!ort) throw new HeadstartError('BACKEND', 'slimming ranks channels in ONNX Runtime, which is not available here (onnxruntime-node did not load)');
  const graph = onnx.ModelProto.decode(bytes).graph!;
  const blocks = findSlimBlocks(graph);
  if (!blocks.length) throw new HeadstartError('BAD_MODEL', 'the backbone has no slimmable blocks (expand conv → activation → depthwise conv → activation → project conv, as in MobileNetV2)');
  const stats = withHiddenStats(bytes, blocks);
  const session = await ort.InferenceSession.create(stats.bytes, { intraOpNumThreads: 2, interOpNumThreads: 1 });
  const sums = blocks.map((b) => new Float64Array(b.channels));
  try {
    const px = size * size * 3;
    for (let i = 0; i < images.length; i += 8) {
      throwIfAborted(progress.signal);
      const batch = images.slice(i, i + 8);
      const x = new Float32Array(batch.length * px);
      batch.forEach((im, j) => x.set(im, j * px));
      const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', x, [batch.length, size, size, 3]) }, stats.outputs);
      stats.outputs.forEach((o, b) => {
        const v = out[o]!.data as Float32Array;
        for (let c = 0; c < v.length; c++) sums[b]![c]! += v[c]! * batch.length;
      });
      progress.onEvent?.({ type: 'progress', phase: 'export', done: Math.min(i + 8, images.length), total: images.length, unit: 'ranking images (training split)' });
    }
  } finally {
    await session.release();
  }
  const norms = projectNorms(graph, blocks);
  return sums.map((s, b) => Float32Array.from(s, (v, c) => (v / images.length) * norms[b]![c]!));
}

/** Channels each block keeps when `fraction` of them go: the highest-ranked, rounded up to a multiple of 8, in index order. */
export function keepPlan(scores: Float32Array[], fraction: number): number[][] {
  return scores.map((s) => {
    const n = s.length;
    const want = Math.min(n, Math.max(CHANNEL_MULTIPLE, Math.ceil((n * (1 - fraction)) / CHANNEL_MULTIPLE) * CHANNEL_MULTIPLE));
    return Array.from(s.keys())
      .sort((a, b) => s[b]! - s[a]! || a - b)
      .slice(0, want)
      .sort((a, b) => a - b);
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

/** Feature rows of the train / validation splits for one backbone, labelled by class index; soft targets for the training rows. */
function rows(record: RunRecord, features: Map<string, Float32Array>, split: 'train' | 'val', dim: number, soft?: Map<string, Float32Array>): VectorSet {
  const sel = record.samples.filter((s) => s.split === split && features.has(s.hash) && (!soft || split !== 'train' || soft.has(s.hash)));
  const x = new Float32Array(sel.length * dim);
  sel.forEach((s, i) => x.set(features.get(s.hash)!, i * dim));
  const k = record.labels.length;
  const softRows = soft && split === 'train' ? new Float32Array(sel.length * k) : undefined;
  if (softRows) sel.forEach((s, i) => softRows.set(soft!.get(s.hash)!, i * k));
  return { x, y: Int32Array.from(sel.map((s) => record.labels.indexOf(s.label))), soft: softRows };
}

export interface SlimSearchOptions extends EngineOptions {
  slim: SlimOption;
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
  /** Hidden channels before slimming. */
  channels: number;
  /** Kept hidden channel indices, sorted. */
  keep: number[];
}

/** The TF.js node or Keras layer an ONNX node was converted from: the converter names it `SOURCE/OpType` (plus `_N` when taken). */
function sourceName(onnxName: string | null | undefined): string {
  const m = /^(.*)\/(Conv|BatchNormalization)(_\d+)?$/.exec(onnxName ?? '');
  if (!m) throw new HeadstartError('INTERNAL', `slimming cannot tell which TF.js node the ONNX node '${onnxName ?? ''}' came from`);
  return m[1]!;
}

/** A keep plan (per block of findSlimBlocks on `bytes`) by source node names. */
export function slimPlanOf(bytes: Uint8Array, keep: number[][]): SlimPlanBlock[] {
  const graph = onnx.ModelProto.decode(bytes).graph!;
  const nodes = graph.node ?? [];
  const blocks = findSlimBlocks(graph);
  if (blocks.length !== keep.length) throw new HeadstartError('INTERNAL', `slimming plan has ${keep.length} blocks, the model ${blocks.length}`);
  const name = (i: number | undefined) => (i === undefined ? undefined : sourceName(nodes[i]!.name));
  return blocks.map((b, i) => ({ expand: name(b.expand)!, expandBn: name(b.expandBn), depthwise: name(b.depthwise)!, depthwiseBn: name(b.depthwiseBn), project: name(b.project)!, channels: b.channels, keep: keep[i]! }));
}

export interface SlimResult {
  report: SlimReport;
  /** The chosen step's kept hidden channels per block of findSlimBlocks on `baseFile` (undefined: no step chosen); slimPlanOf names them. */
  keep?: number[][];
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
}

/**
 * Task-specific slimming of a run's backbone: rank hidden channels on
 * training images, then per step remove a fraction of each block's hidden
 * channels, re-extract the train / validation features with the slimmed
 * backbone (through the engine and its cache), refit the head on the training
 * split, and judge it on the validation split. `auto` keeps going while the
 * validation accuracy stays within `maxDrop` points of the unslimmed model
 * and stops at the first step past it.
 */
export async function slimSearch(run: LoadedRun, opts: SlimSearchOptions, progress: Progress = {}): Promise<SlimResult> {
  const rec = run.record;
  if (rec.unfreeze) throw new HeadstartError('BAD_INPUT', `${run.dir} fine-tuned its backbone's top layers (--unfreeze); slimming applies to frozen backbones: train without --unfreeze`);
  if (!loadOrt()) throw new HeadstartError('BACKEND', '--slim runs the backbone in ONNX Runtime, which is not available here (onnxruntime-node did not load)');
  const emit = progress.onEvent ?? (() => undefined);
  const k = rec.labels.length;
  const steps: SlimStep[] = [];
  const fractions = opts.slim === 'auto' ? [...SLIM_STEPS] : [opts.slim];
  const items = rec.samples.filter((s) => s.split === 'train' || s.split === 'val').map((s) => ({ path: path.join(rec.dataset.root, s.rel), hash: s.hash }));
  // The unslimmed model: the run's own head on its own validation features.
  const opened = await openRunBackbone(run, opts, progress);
  let parent: ResolvedBackbone;
  let baseVal: VectorSet;
  try {
    parent = opened.backbone;
    const ex = await opened.extract(items, progress);
    baseVal = rows(rec, ex.features, 'val', rec.backbone.featureSize);
  } finally {
    opened.dispose();
  }
  if (!baseVal.y.length) throw new HeadstartError('NO_DATA', `${run.dir} has no validation images: slimming judges each step on the validation split (train with --val above 0)`);
  const baseProbs = runProbs(run, baseVal.x);
  const baseAcc = accuracyOf(baseProbs, baseVal.y, k);
  const basePred = argmaxRows(baseProbs, k);
  const baseFile = await ensureOnnxBackbone(parent, opts.cacheDir ?? opened.cacheDir);
  const baseBytes = new Uint8Array(await fs.readFile(baseFile));
  emit({ type: 'phase', phase: 'export', message: `slimming: ranking hidden channels on up to ${SLIM_RANK_IMAGES} training images` });
  const images = await rankingImages(rec, progress);
  const scores = await rankHidden(baseBytes, images, rec.backbone.inputSize, progress);
  const hiddenTotal = scores.reduce((a, s) => a + s.length, 0);
  const baseModel = appendHead(baseBytes, headLayers(run.head));
  const baseGz = gzipSync(baseModel, { level: 9 }).length;
  let chosen: { fraction: number; dir: string; head: tf.Sequential; bytes: Uint8Array; keep: number[][] } | undefined;
  let baseMs = NaN;
  try {
    for (const fraction of fractions) {
      throwIfAborted(progress.signal);
      const pct = Math.round(fraction * 100);
      emit({ type: 'phase', phase: 'export', message: `slimming: removing ${pct}% of each block's hidden channels, re-extracting and refitting the head` });
      const plan = keepPlan(scores, fraction);
      const slimBytes = slimOnnx(baseBytes, plan);
      const dir = path.join(opts.work, `slim-${pct}`);
      const meta: OnnxBackboneMeta = {
        entry: { ...parent.entry, id: `${parent.entry.id.replace(/^local:.*[\\/]/, 'local-')}-slim${pct}`, title: `${parent.entry.title}, slimmed for this task (${pct}% of hidden channels removed)`, format: 'onnx', featureNode: 'features', pool: false, bundled: false, approxBytes: slimBytes.length },
        slim: { parent: parent.entry.id, parentHash: parent.modelHash, fraction, hiddenChannels: scores.map((s) => s.length), keptChannels: plan.map((p) => p.length) },
      };
      await writeOnnxBackbone(dir, slimBytes, meta);
      const sOpened = await openBackbone(dir, { ...opts, engine: 'onnx' }, progress);
      let fit: Awaited<ReturnType<typeof fitHead>>;
      try {
        const ex = await sOpened.extract(items, progress);
        const dim = sOpened.backbone.entry.featureSize;
        fit = await fitHead(rows(rec, ex.features, 'train', dim, opts.distill?.soft), rows(rec, ex.features, 'val', dim), dim, k, rec.config, progress, opts.distill?.options);
      } finally {
        sOpened.dispose();
      }
      const model = appendHead(slimBytes, headLayers(fit.model));
      const speed = await compareOnnxSpeed(baseFile, path.join(dir, ONNX_BACKBONE_FILE), images.slice(0, 8), rec.backbone.inputSize, { threads: 2, repetitions: 3 }, progress);
      baseMs = Math.min(Number.isNaN(baseMs) ? Infinity : baseMs, speed.base.batch1Ms);
      const dropPoints = (baseAcc - fit.valAccuracy) * 100;
      const agreement = agreementOf(basePred, argmaxRows(fit.valProbs, k), baseVal.y).agreement;
      const withinBudget = opts.slim !== 'auto' || slimWithinBudget(agreement, opts.maxDrop);
      steps.push({ fraction, hiddenKept: plan.reduce((a, p) => a + p.length, 0), hiddenTotal, bytes: model.length, gzipBytes: gzipSync(model, { level: 9 }).length, msPerImage: speed.other.batch1Ms, speedup: speed.batch1Speedup, valAccuracy: fit.valAccuracy, dropPoints, agreement, withinBudget });
      if (!withinBudget) {
        fit.model.dispose();
        break; // each step removes more: past the budget, the next would be too
      }
      chosen?.head.dispose();
      chosen = { fraction, dir, head: fit.model, bytes: model, keep: plan };
    }
  } catch (err) {
    chosen?.head.dispose();
    throw err;
  }
  steps.unshift({ fraction: 0, hiddenKept: hiddenTotal, hiddenTotal, bytes: baseModel.length, gzipBytes: baseGz, msPerImage: baseMs, speedup: 1, valAccuracy: baseAcc, dropPoints: 0, agreement: 1, withinBudget: true });
  if (!chosen) emit({ type: 'warning', message: `no slimming step kept the unslimmed model's predictions on at least ${100 - opts.maxDrop}% of the ${baseVal.y.length} validation images; the backbone stays unslimmed` });
  return {
    report: {
      method: 'structured: hidden channels of inverted-residual blocks, ranked by mean |activation| on training images x L2 norm of the project conv weights reading them; head refit per step',
      asked: opts.slim,
      rankImages: images.length,
      rankSplit: 'train',
      blocks: scores.length,
      budgetPoints: opts.maxDrop,
      validationImages: baseVal.y.length,
      threads: 2,
      steps,
      chosen: chosen?.fraction ?? 0,
    },
    backboneDir: chosen?.dir,
    keep: chosen?.keep,
    head: chosen?.head,
    modelBytes: chosen?.bytes,
    baseFile,
    images,
  };
}

/**
 * The export's budget rule (export/report BUDGET_RULE) applied to a slimming
 * step: within --max-drop P when its top-1 class differs from the unslimmed
 * model's on at most P% of the validation images. It bounds the accuracy
 * drop on those images by P points, and it is the rule --quantize auto uses,
 * so slimming and quantization are judged alike.
 */
export function slimWithinBudget(agreement: number, maxDrop: number): boolean {
  return (1 - agreement) * 100 <= maxDrop + 1e-9;
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

function accuracyOf(probs: Float32Array, y: Int32Array, k: number): number {
  let ok = 0;
  for (let i = 0; i < y.length; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (probs[i * k + j]! > probs[i * k + best]!) best = j;
    if (best === y[i]) ok++;
  }
  return y.length ? ok / y.length : NaN;
}

/** The slimming table for the CLI and the model card. */
export function slimTable(r: SlimReport): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  return [
    `Slimming (${r.asked === 'auto' ? `auto, top-1 kept on at least ${100 - r.budgetPoints}% of the validation images` : `asked ${Math.round(r.asked * 100)}%`}; ranked on ${r.rankImages} training images, judged on ${r.validationImages} validation images; ONNX Runtime ${r.threads} threads, batch 1):`,
    '  removed   hidden kept        bytes    gzipped   ms/image  speed-up  val acc   drop',
    ...r.steps.map((s) => `  ${`${Math.round(s.fraction * 100)}%`.padStart(7)}   ${`${s.hiddenKept}/${s.hiddenTotal}`.padEnd(12)} ${String(s.bytes).padStart(10)} ${String(s.gzipBytes).padStart(10)} ${s.msPerImage.toFixed(1).padStart(10)} ${`${s.speedup.toFixed(2)}x`.padStart(9)} ${pct(s.valAccuracy).padStart(8)} ${s.dropPoints.toFixed(1).padStart(6)}${s.fraction === r.chosen ? '  ← chosen' : s.withinBudget ? '' : '  (over budget)'}`),
  ];
}
