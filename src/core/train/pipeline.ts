/**
 * The training pipeline as named steps: scan → guard → open backbone →
 * extract (queue or local) → split → augment → select head
 * (cross-validation) → fit / fine-tune → evaluate + baseline → write run.
 * `trainRun` composes them; each step is a small function over the state the
 * earlier ones produced.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend';
import { DEFAULT_BACKBONE, type OnnxInputSpec } from '../backbones/catalogue';
import { type OpenedBackbone, openBackbone } from '../engine';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { type Sample, type Skipped } from '../data/dataset';
import { THUMB } from '../data/decode';
import { type ScannedDataset, scanDataset } from '../data/scan';
import { drawView, normaliseAugment, viewKey } from '../data/augment';
import { type DatasetSummary, type SplitName, type SplitSample, splitDataset, summarise } from '../data/split';
import { type OutGuard, outGuard, prepareOutDir, writeOutDir } from '../fsutil';
import { checkOption, checkSplit } from '../options';
import { type HeadOptions, type HeadResult, type VectorSet, HEAD_DEFAULTS, evaluateSet, trainHead } from './head';
import { type GroupedSet, type HeadConfig, type Selection, MIN_SOURCES, baselineAdvice, configHead, headGrid, scoreConfig, selectHead, standardiseColumns } from './select';
import { type Boundary, buildTop, fineTune, findBoundary, topFeatures } from './finetune';
import { defaultCacheDir, resolveBackbone } from '../backbones/store';
import { type EvalResult, evaluatePredictions } from './metrics';
import { dirLoader } from '../tfjsio';
import { queuedBackbone } from '../queue/coordinator';
import { redactQueueUrl } from '../queue/connection';
import { type BaselineResult, type RunRecord, type TrainConfig, RUN_VERSION, writeRunFiles } from '../runFolder';
import type * as shared from '../../shared/records';

/** The reply of `train`: the shared shape with core's fuller dataset, metrics and baseline, and the cross-validated estimate. */
export interface TrainReport extends shared.TrainReport {
  dataset: DatasetSummary;
  test: EvalResult;
  baseline: BaselineResult;
  /** The cross-validated estimate beside the test figure: chosen config, mean and spread across folds. */
  selection?: { chosen: string; meanAccuracy: number; stdAccuracy: number; folds: number; method: Selection['method']; configurations: number; reason: string };
  timings: RunRecord['timings'];
}

export function gather(samples: SplitSample[], split: SplitName | undefined, vectors: Map<string, Float32Array>, labels: string[], size: number): VectorSet & { paths: string[] } {
  const sel = split ? samples.filter((s) => s.split === split) : samples;
  const x = new Float32Array(sel.length * size);
  const y = new Int32Array(sel.length);
  sel.forEach((s, i) => {
    x.set(vectors.get(s.hash)!, i * size);
    y[i] = labels.indexOf(s.label);
  });
  return { x, y, paths: sel.map((s) => s.path) };
}

const BASELINE_HEAD = { hiddenUnits: 0, l2: 1e-3 };

/**
 * The trivial baseline's features: raw-pixel thumbnails for images, TF-IDF
 * words for text (src/core/text/run.ts). `vectors` is keyed by sample hash.
 */
export interface BaselineFeatures {
  vectors: Map<string, Float32Array>;
  dim: number;
  /** Standardise columns on the training rows (raw pixels need it). */
  standardise: boolean;
  /** What the baseline reads, in the verdict: 'raw pixels', 'TF-IDF words'. */
  name: string;
  /** Its adjective in progress messages: 'raw-pixel', 'TF-IDF'. */
  short: string;
  description: string;
  /** Why a backbone may buy little over it. */
  easyHint: string;
  /** Advice when it beats the backbone in cross-validation. */
  advice: (baseline: number, chosen: number) => string;
}

/** The image baseline: THUMB x THUMB raw pixels. */
export function pixelBaseline(thumbs: Map<string, Float32Array>): BaselineFeatures {
  return { vectors: thumbs, dim: THUMB * THUMB * 3, standardise: true, name: 'raw pixels', short: 'raw-pixel', description: `logistic regression on ${THUMB}x${THUMB} raw pixels`, easyHint: 'this data may be easy from colour and layout alone, or too small to tell', advice: baselineAdvice };
}

/** The user's --epochs, else the mean epoch early stopping kept across folds. */
const fixedOr = (epochs: number | undefined, meanBest: number): number => epochs ?? Math.max(1, Math.round(meanBest));

/**
 * The "no backbone" baseline: logistic regression on `base` (raw pixels, TF-IDF),
 * trained on every non-test example (or the train split for --unfreeze runs) and
 * scored on the test split; `cv` is its mean accuracy on the head's folds.
 */
async function trainBaseline(samples: SplitSample[], base: BaselineFeatures, labels: string[], head: Required<HeadOptions>, test: EvalResult, cv: { baseline: number; chosen: number; epochs: number } | undefined, progress: Progress): Promise<BaselineResult> {
  const dim = base.dim;
  const tr = gather(samples.filter((s) => s.split !== 'test' && (!cv ? s.split === 'train' : true)), undefined, base.vectors, labels, dim);
  const te = gather(samples, 'test', base.vectors, labels, dim);
  if (base.standardise) standardiseColumns(tr.x, [te.x], dim);
  const res = await trainHead(tr, { x: new Float32Array(0), y: new Int32Array(0) }, dim, labels.length, { ...head, ...BASELINE_HEAD, dropout: 0, patience: 0, epochs: cv?.epochs ?? head.epochs }, { signal: progress.signal });
  const probs = evaluateSet(res.model, te, dim, labels.length).probs;
  res.model.dispose();
  const ev = evaluatePredictions(labels, te.y, probs);
  const gain = (test.accuracy - ev.accuracy) * 100;
  const wins = cv ? cv.baseline > cv.chosen : gain < 0;
  const advice = wins ? base.advice(cv?.baseline ?? ev.accuracy, cv?.chosen ?? test.accuracy) : undefined;
  const verdict = advice
    ? advice
    : gain >= 5
      ? `the pretrained backbone adds ${gain.toFixed(1)} points over ${base.name}`
      : `the pretrained backbone buys little here (${gain.toFixed(1)} points over ${base.name}): ${base.easyHint}`;
  return { description: `${base.description}, same split${cv ? ' and folds' : ''}`, accuracy: ev.accuracy, interval: ev.interval, cvAccuracy: cv?.baseline, wins, advice, macroF1: ev.macroF1, gainPoints: gain, verdict };
}

/** Rows of the same sources as `set`, from another vector map (the baseline's), originals only. */
function originalsOf(sources: SplitSample[], vectors: Map<string, Float32Array>, labels: string[], dim: number): GroupedSet {
  const g = gather(sources, undefined, vectors, labels, dim);
  return { x: g.x, y: g.y, group: Int32Array.from(sources.keys()), original: new Uint8Array(sources.length).fill(1) };
}

/**
 * Cross-validates the head grid (and the baseline on the same folds), then
 * refits the chosen configuration on every non-test row.
 */
async function selectAndRefit(set: GroupedSet, sources: SplitSample[], base: BaselineFeatures, labels: string[], dim: number, head: Required<HeadOptions>, grid: HeadConfig[], fixedEpochs: number | undefined, progress: Progress): Promise<{ res: HeadResult; selection: Selection }> {
  const k = labels.length;
  const sourceLabels = Int32Array.from(sources, (s) => labels.indexOf(s.label));
  const emit = progress.onEvent ?? (() => undefined);
  const cv = await selectHead(set, sourceLabels, dim, k, { grid, head, fixedEpochs }, progress);
  const chosenScore = cv.selection.results.find((r) => r.name === cv.selection.chosen)!;
  const baselineHead = configHead(head, { name: 'baseline', head: 'linear', ...BASELINE_HEAD }, fixedEpochs !== undefined);
  const b = await scoreConfig(originalsOf(sources, base.vectors, labels, base.dim), base.dim, k, cv.plan.fold, cv.plan.evalFolds, baselineHead, progress, base.standardise);
  const bMean = b.accuracies.reduce((a, x) => a + x, 0) / b.accuracies.length;
  const bStd = Math.sqrt(b.accuracies.reduce((a, x) => a + (x - bMean) ** 2, 0) / b.accuracies.length);
  const wins = bMean > chosenScore.meanAccuracy;
  const selection: Selection = { ...cv.selection, baseline: { meanAccuracy: bMean, stdAccuracy: bStd, foldAccuracies: b.accuracies, meanBestEpoch: b.bestEpochs.reduce((a, x) => a + x, 0) / b.bestEpochs.length }, baselineWins: wins, advice: wins ? base.advice(bMean, chosenScore.meanAccuracy) : undefined };
  emit({ type: 'log', message: `chose ${selection.chosen}: ${selection.reason}` });
  if (wins) emit({ type: 'warning', message: selection.advice! });
  const res = cv.res;
  return { res, selection };
}

function checkClasses(samples: Array<{ label: string; path: string }>, allLabels: string[], failed: Array<Skipped & { label: string }>): void {
  if (samples.length === 0 && allLabels.length === 0) throw new HeadstartError('NO_DATA', 'no images found: DATA needs one sub-folder per class with images inside (jpg, png, webp, gif, bmp), or a manifest listing them');
  const present = new Set(samples.map((s) => s.label));
  const dead = allLabels.filter((l) => !present.has(l));
  if (dead.length) {
    const detail = dead
      .map((l) => {
        const f = failed.filter((x) => x.label === l);
        return `class '${l}' has no readable images; ${f.length} file${f.length === 1 ? '' : 's'} failed: ${f.slice(0, 3).map((x) => `${path.basename(x.path)} (${x.reason})`).join(', ')}${f.length > 3 ? ', …' : ''}`;
      })
      .join('; ');
    throw new HeadstartError('NO_DATA', `${detail}. Fix or remove those files, or remove the class folder`);
  }
  if (present.size < 2) throw new HeadstartError('NO_DATA', `only one class found ('${[...present][0]}'); a classifier needs at least two class folders (or labels)`);
}

/** The backbone's top layers being fine-tuned (--unfreeze): the boundary and a top model sharing the base's layers above it. */
interface Unfreeze {
  boundary: Boundary;
  base: tf.LayersModel;
  top: tf.LayersModel;
  featureNode: string;
  pool: boolean;
}

/** Step: the head options, filled with defaults and checked against the options table. */
export function resolveHeadOptions(cfg: TrainConfig): Required<HeadOptions> {
  const head: Required<HeadOptions> = { ...HEAD_DEFAULTS, ...Object.fromEntries(Object.entries(cfg).filter(([k, v]) => k in HEAD_DEFAULTS && v !== undefined)) } as Required<HeadOptions>;
  validateHead(head);
  checkSplit(cfg.val, cfg.test);
  return head;
}

/** Step (--unfreeze): the boundary and the top model; undefined for frozen runs. */
async function prepareUnfreeze(cfg: TrainConfig, backboneId: string, progress: Progress): Promise<Unfreeze | undefined> {
  if (!cfg.unfreeze) return undefined;
  const rb = await resolveBackbone(backboneId, cfg.cacheDir ?? defaultCacheDir(), progress);
  if (rb.entry.format !== 'layers') throw new HeadstartError('BAD_INPUT', `backbone ${rb.entry.id} is a frozen graph model and cannot be unfrozen; use a layers backbone (mobilenet-v2-100, inception-v3, the mobilenet-v1/v2 downloads) or --unfreeze 0`);
  await initBackend(cfg.backend ?? 'auto');
  const base = await tf.loadLayersModel(dirLoader(rb.dir));
  const boundary = findBoundary(base, rb.entry.featureNode, cfg.unfreeze);
  progress.onEvent?.({ type: 'log', message: `fine-tuning ${boundary.trainable.length} layers above ${boundary.layer} (${boundary.trainable.join(', ')})` });
  return { boundary, base, top: buildTop(base, boundary, !!rb.entry.pool), featureNode: rb.entry.featureNode, pool: !!rb.entry.pool };
}

/** Step: opens the backbone (cut at the boundary for --unfreeze); --queue spreads what is not cached over the workers. */
async function openExtractor(cfg: TrainConfig, backboneId: string, ft: Unfreeze | undefined, progress: Progress): Promise<OpenedBackbone> {
  const cut = ft && { featureNode: ft.boundary.layer, pool: false };
  const opened = await openBackbone(backboneId, { ...cfg, cut }, progress);
  return cfg.queue ? queuedBackbone(opened, backboneId, cfg.queue, cut, cfg.batchSize ?? 16, cfg.maxPixels) : opened;
}

type Extracted = Awaited<ReturnType<OpenedBackbone['extract']>>;

/** Step: features of every scanned image (through the cache); a class left without readable images is an error. */
async function extractAll(opened: OpenedBackbone, scan: ScannedDataset, progress: Progress): Promise<{ ex: Extracted; readable: ScannedDataset['hashed'] }> {
  throwIfAborted(progress.signal);
  const allLabels = [...new Set(scan.hashed.map((s) => s.label))].sort();
  const ex = await opened.extract(scan.hashed, progress);
  const failedPaths = new Set(ex.failed.map((f) => f.path));
  const readable = scan.hashed.filter((s) => !failedPaths.has(s.path));
  const labelOf = new Map(scan.hashed.map((s) => [s.path, s.label]));
  checkClasses(readable, allLabels, ex.failed.map((f) => ({ ...f, label: labelOf.get(f.path) ?? '' })));
  return { ex, readable };
}

/** Where the examples came from, for the split's summary: DATA's root, its kind and what was skipped before the split. */
export interface FoundData {
  root: string;
  kind: string;
  skipped: Skipped[];
}

/** Step: the seeded split (duplicates by `hash`), the labels, and the dataset summary (its warnings go out as events); `noun` names an example. */
export function splitStep(readable: Array<Sample & { hash: string }>, found: FoundData, cfg: TrainConfig, seed: number, progress: Progress, noun = 'image'): { samples: SplitSample[]; labels: string[]; summary: DatasetSummary } {
  const split = splitDataset(readable, { val: cfg.val, test: cfg.test, seed, noun });
  const labels = [...new Set(split.samples.map((s) => s.label))].sort();
  if (labels.length < 2) throw new HeadstartError('NO_DATA', 'after removing files with conflicting labels fewer than two classes remain');
  const summary = summarise(path.resolve(found.root), found.kind, split.samples, [...found.skipped, ...split.conflicts], split.duplicates, noun);
  for (const w of summary.warnings) progress.onEvent?.({ type: 'warning', message: w });
  return { samples: split.samples, labels, summary };
}

/** Training vectors with their source groups (augmented views stay in their source's fold). */
export interface TrainSet {
  train: VectorSet & { paths: string[] };
  viewGroups: number[];
  augmentation?: RunRecord['augmentation'];
  timings: { seconds: number; computed: number; cached: number };
}

/** Step: K augmented views of each training image only (validation and test stay untouched), appended to the training vectors. */
async function augmentStep(opened: OpenedBackbone, sources: SplitSample[], base: VectorSet & { paths: string[] }, labels: string[], cfg: TrainConfig, seed: number, progress: Progress): Promise<TrainSet> {
  if (!cfg.augment || cfg.augment.views <= 0) return { train: base, viewGroups: [], timings: { seconds: 0, computed: 0, cached: 0 } };
  const fsz = opened.backbone.entry.featureSize;
  const aug = normaliseAugment(cfg.augment);
  const viewItems = sources.flatMap((s, source) => Array.from({ length: aug.views }, (_, k) => {
    const view = drawView(s.hash, k, seed, aug);
    return { path: s.path, hash: viewKey(s.hash, view), view, label: s.label, source };
  }));
  progress.onEvent?.({ type: 'phase', phase: 'extract', message: `augmenting: ${aug.views} views of each of ${sources.length} training images` });
  const exAug = await opened.extract(viewItems, progress);
  const ok = viewItems.filter((v) => exAug.features.has(v.hash));
  const x = new Float32Array((base.y.length + ok.length) * fsz);
  x.set(base.x);
  ok.forEach((v, i) => x.set(exAug.features.get(v.hash)!, (base.y.length + i) * fsz));
  return {
    train: { x, y: Int32Array.from([...base.y, ...ok.map((v) => labels.indexOf(v.label))]), paths: [...base.paths, ...ok.map((v) => v.path)] },
    viewGroups: ok.map((v) => v.source),
    augmentation: { ...aug, vectors: ok.length },
    timings: { seconds: exAug.seconds, computed: exAug.computed, cached: exAug.cached },
  };
}

/** The head as trained: the model, the cross-validated choice (if any), and the hidden units and L2 used. */
export interface FittedHead {
  res: HeadResult;
  selection?: Selection;
  used: { hiddenUnits: number; l2: number };
  seconds: number;
}

/**
 * Step: the head. Without --unfreeze it is chosen by cross-validation on
 * every non-test image, then refit on all of them; --unfreeze tunes on the
 * validation split, and a handful of images cannot be cross-validated.
 */
export async function fitHeadStep(ts: TrainSet, val: VectorSet, sources: SplitSample[], base: BaselineFeatures, labels: string[], fsz: number, head: Required<HeadOptions>, cfg: TrainConfig, ft: Unfreeze | undefined, headIn: (v: VectorSet) => VectorSet, headDim: number, progress: Progress, noun = 'image'): Promise<FittedHead> {
  const emit = progress.onEvent ?? (() => undefined);
  const started = Date.now();
  const grid = headGrid(cfg.head ?? 'auto', { hiddenUnits: cfg.hiddenUnits, l2: cfg.l2 }, head.hiddenUnits);
  if (ft || sources.length < MIN_SOURCES) {
    const pick = grid.find((g) => g.l2 === head.l2) ?? grid[grid.length - 1]!;
    if (!ft) emit({ type: 'warning', message: `only ${sources.length} non-test ${noun}s: too few to cross-validate (at least ${MIN_SOURCES}); training ${pick.name} without a model choice` });
    emit({ type: 'phase', phase: 'train', message: `training a head on ${ts.train.y.length} ${cfg.augment?.views ? 'vectors (with augmented views)' : `${noun}s`} (${labels.length} classes)` });
    const used = ft ? { hiddenUnits: head.hiddenUnits, l2: head.l2 } : { hiddenUnits: pick.hiddenUnits, l2: pick.l2 };
    const res = await trainHead(headIn(ts.train), ft ? headIn(val) : { x: new Float32Array(0), y: new Int32Array(0) }, headDim, labels.length, { ...head, ...used }, progress);
    return { res, used, seconds: (Date.now() - started) / 1000 };
  }
  const grouped: GroupedSet = { ...ts.train, group: Int32Array.from([...sources.keys(), ...ts.viewGroups]), original: Uint8Array.from([...sources.map(() => 1), ...ts.viewGroups.map(() => 0)]) };
  emit({ type: 'phase', phase: 'train', message: `choosing the head by cross-validation over ${grid.length} configuration${grid.length === 1 ? '' : 's'} (${grid.map((g) => g.name).join(', ')}) on ${sources.length} non-test ${noun}s, and the ${base.short} baseline on the same folds` });
  const { res, selection } = await selectAndRefit(grouped, sources, base, labels, fsz, head, grid, cfg.epochs, progress);
  const chosen = grid.find((g) => g.name === selection.chosen)!;
  return { res, selection, used: { hiddenUnits: chosen.hiddenUnits, l2: chosen.l2 }, seconds: (Date.now() - started) / 1000 };
}

/** Step (--unfreeze): fine-tunes the top layers with the head; the history continues the head's. */
async function fineTuneStep(ft: Unfreeze, fitted: FittedHead, train: VectorSet, val: VectorSet, k: number, head: Required<HeadOptions>, progress: Progress): Promise<Awaited<ReturnType<typeof fineTune>>> {
  progress.onEvent?.({ type: 'phase', phase: 'train', message: `fine-tuning the top ${ft.boundary.trainable.length} layers with the head (BatchNorm frozen, learning rate ${head.learningRate / 10})` });
  const r = await fineTune(ft.top, fitted.res.model, ft.boundary, train, val, k, head, {}, progress);
  fitted.res.history.push(...r.history.map((m) => ({ ...m, epoch: fitted.res.history.length + m.epoch })));
  return r;
}

/** Step: the test split's metrics and the baseline (on the same folds when the head was cross-validated). */
export async function evaluateStep(fitted: FittedHead, test: VectorSet & { paths: string[] }, samples: SplitSample[], base: BaselineFeatures, labels: string[], head: Required<HeadOptions>, cfg: TrainConfig, headIn: (v: VectorSet) => VectorSet, headDim: number, progress: Progress, noun = 'image'): Promise<{ testEval: EvalResult; baseline: BaselineResult }> {
  progress.onEvent?.({ type: 'phase', phase: 'evaluate', message: `evaluating on ${test.y.length} test ${noun}s` });
  const probs = evaluateSet(fitted.res.model, headIn(test), headDim, labels.length).probs;
  const testEval = evaluatePredictions(labels, test.y, probs, test.paths);
  const sel = fitted.selection;
  const chosenCv = sel?.results.find((r) => r.name === sel.chosen);
  const baseline = await trainBaseline(samples, base, labels, head, testEval, sel?.baseline && chosenCv ? { baseline: sel.baseline.meanAccuracy, chosen: chosenCv.meanAccuracy, epochs: fixedOr(cfg.epochs, sel.baseline.meanBestEpoch) } : undefined, progress);
  return { testEval, baseline };
}

/** run.json's config: what the user asked, the head as trained, the queue URL redacted; nothing about where outputs go. */
export function recordConfig(cfg: TrainConfig, head: Required<HeadOptions>, used: FittedHead['used'], backboneId: string): RunRecord['config'] {
  const { out, force, protectedRoots, cacheDir, queue, ...rest } = cfg;
  void [out, force, protectedRoots, cacheDir]; // not part of run.json
  return { ...rest, ...(queue ? { queue: { ...queue, url: redactQueueUrl(queue.url) } } : {}), ...head, ...used, backbone: backboneId, val: cfg.val ?? 0.15, test: cfg.test ?? 0.15, data: path.resolve(cfg.data) };
}

/** Step: writes RUN_DIR atomically (head, tuned top, run.json). */
export async function writeRun(runDir: string, guard: OutGuard, record: RunRecord, model: tf.LayersModel, ft: Unfreeze | undefined, t0: number, progress: Progress): Promise<void> {
  throwIfAborted(progress.signal);
  await writeOutDir(runDir, guard, async (tmp) => {
    record.timings.totalSeconds = (Date.now() - t0) / 1000;
    await writeRunFiles(tmp, record, model, ft?.top);
  });
}

/** The train reply: the run's figures and the cross-validated estimate of the chosen head. */
export function trainReport(runDir: string, record: RunRecord, res: HeadResult): TrainReport {
  const sel = record.selection;
  const chosenCv = sel?.results.find((r) => r.name === sel.chosen);
  const cvSummary = sel && chosenCv ? { chosen: sel.chosen, meanAccuracy: chosenCv.meanAccuracy, stdAccuracy: chosenCv.stdAccuracy, folds: sel.folds, method: sel.method, configurations: sel.results.length, reason: sel.reason } : undefined;
  return { runDir, backend: record.backend, engine: record.engine, headTrainer: record.headTrainer, dataset: record.dataset, test: record.test, baseline: record.baseline, selection: cvSummary, bestEpoch: res.bestEpoch, epochs: res.history.length, timings: record.timings };
}

/**
 * The image job: scan DATA, extract features through the cache, split, train
 * the head, evaluate on the test split (and a raw-pixel baseline), and write
 * RUN_DIR atomically.
 */
export async function trainImageRun(cfg: TrainConfig, progress: Progress = {}): Promise<TrainReport> {
  const t0 = Date.now();
  const head = resolveHeadOptions(cfg);
  // Before any scan or extraction: a bad --out costs the user nothing.
  const guard = outGuard('run', [{ path: cfg.data, what: 'DATA' }], cfg);
  const runDir = await prepareOutDir(cfg.out, guard);
  const scan = await scanDataset(cfg.data, progress);
  const scanSeconds = (Date.now() - t0) / 1000;
  if (scan.hashed.length === 0) checkClasses([], [], []);
  const backboneId = cfg.backbone ?? DEFAULT_BACKBONE;
  const ft = await prepareUnfreeze(cfg, backboneId, progress);
  let opened: OpenedBackbone;
  try {
    opened = await openExtractor(cfg, backboneId, ft, progress);
  } catch (err) {
    ft?.base.dispose();
    throw err;
  }
  try {
    const { ex, readable } = await extractAll(opened, scan, progress);
    const { samples, labels, summary } = splitStep(readable, { root: scan.root, kind: scan.kind, skipped: [...scan.skipped, ...ex.failed] }, cfg, head.seed, progress);
    const fsz = opened.backbone.entry.featureSize;
    const sources = samples.filter((s) => (ft ? s.split === 'train' : s.split !== 'test'));
    const ts = await augmentStep(opened, sources, gather(sources, undefined, ex.features, labels, fsz), labels, cfg, head.seed, progress);
    const val = gather(samples, 'val', ex.features, labels, fsz);
    const test = gather(samples, 'test', ex.features, labels, fsz);
    // Fine-tuned runs extract boundary activations; the head reads the (frozen, then tuned) top's features.
    const headIn = (v: VectorSet): VectorSet => (ft ? { x: topFeatures(ft.top, v.x, ft.boundary.shape), y: v.y } : v);
    const headDim = ft ? (ft.top.outputs[0]!.shape[1] as number) : fsz;
    const pixels = pixelBaseline(ex.thumbs);
    const fitted = await fitHeadStep(ts, val, sources, pixels, labels, fsz, head, cfg, ft, headIn, headDim, progress);
    try {
      const ftResult = ft ? await fineTuneStep(ft, fitted, ts.train, val, labels.length, head, progress) : undefined;
      const { testEval, baseline } = await evaluateStep(fitted, test, samples, pixels, labels, head, cfg, headIn, headDim, progress);
      const b = opened.backbone;
      const res = fitted.res;
      const record: RunRecord = {
        version: RUN_VERSION,
        createdAt: new Date().toISOString(),
        config: recordConfig(cfg, head, fitted.used, b.entry.id),
        backend: opened.backend.name,
        engine: opened.engine,
        headTrainer: res.trainer,
        backbone: { id: b.entry.id, title: b.entry.title, format: b.entry.format, inputSize: b.entry.inputSize, inputRange: b.entry.inputRange, featureNode: ft ? ft.featureNode : b.entry.featureNode, pool: ft ? ft.pool : !!b.entry.pool, featureSize: headDim, licence: b.entry.licence, source: b.entry.source, modelHash: b.modelHash, dir: b.dir, ...(b.entry.onnxInput ? { onnxInput: b.entry.onnxInput as OnnxInputSpec } : {}) },
        labels,
        dataset: summary,
        samples: samples.map((s) => ({ rel: s.rel, label: s.label, hash: s.hash, split: s.split })),
        history: res.history,
        bestEpoch: res.bestEpoch,
        stoppedEarly: res.stoppedEarly,
        test: testEval,
        baseline,
        selection: fitted.selection,
        augmentation: ts.augmentation,
        unfreeze: ft && ftResult ? { layers: cfg.unfreeze!, boundary: ft.boundary.layer, boundaryShape: ft.boundary.shape, trainable: ft.boundary.trainable, headEpochs: res.history.length - ftResult.history.length, fineTuneEpochs: ftResult.history.length, fineTuneBackend: ftResult.backend, fineTuneSeconds: ftResult.seconds } : undefined,
        timings: {
          scanSeconds,
          extractSeconds: ex.seconds + ts.timings.seconds,
          trainSeconds: fitted.seconds + (ftResult?.seconds ?? 0),
          totalSeconds: 0,
          imagesPerSecond: ex.imagesPerSecond,
          extracted: ex.computed + ts.timings.computed,
          cached: ex.cached + ts.timings.cached,
          workers: opened.workers,
        },
      };
      await writeRun(runDir, guard, record, res.model, ft, t0, progress);
      return trainReport(runDir, record, res);
    } finally {
      fitted.res.model.dispose();
    }
  } finally {
    opened.dispose();
    ft?.base.dispose(); // the top shares its weights
  }
}

/** Checks head options against the shared option table (src/core/options.ts); BAD_INPUT naming the flag. */
export function validateHead(h: Required<HeadOptions>): void {
  checkOption('epochs', h.epochs);
  checkOption('batch', h.batchSize);
  checkOption('lr', h.learningRate);
  checkOption('hidden', h.hiddenUnits);
  checkOption('dropout', h.dropout);
  checkOption('patience', h.patience);
  checkOption('seed', h.seed);
  if (!(typeof h.l2 === 'number' && h.l2 >= 0 && h.l2 <= 1)) throw new HeadstartError('BAD_INPUT', `l2 must be a number from 0 to 1 (got ${h.l2})`);
}

