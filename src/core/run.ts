import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type BackendPreference, initBackend } from './backend';
import { DEFAULT_BACKBONE } from './backbones/catalogue';
import { type EngineOptions, type OpenedBackbone, openBackbone } from './engine';
import { HeadstartError, throwIfAborted } from './errors';
import type { EpochMetrics, Progress } from './events';
import { type Skipped } from './data/dataset';
import { THUMB } from './data/decode';
import { scanDataset } from './data/scan';
import { type AugmentOptions, drawView, normaliseAugment, viewKey } from './data/augment';
import { type DatasetSummary, type SplitName, type SplitSample, splitDataset, summarise } from './data/split';
import { type OutOptions, outGuard, prepareOutDir, readJson, writeOutDir } from './fsutil';
import { checkOption, checkSplit } from './options';
import { type HeadOptions, type HeadResult, type VectorSet, HEAD_DEFAULTS, evaluateSet, trainHead } from './train/head';
import { type GroupedSet, type HeadChoice, type HeadConfig, type Selection, MIN_SOURCES, baselineAdvice, configHead, headGrid, scoreConfig, selectHead, standardiseColumns } from './train/select';
import { type Boundary, buildTop, fineTune, findBoundary, loadTop, topFeatures } from './train/finetune';
import { defaultCacheDir, resolveBackbone } from './backbones/store';
import { type EvalResult, type Interval, evaluatePredictions } from './train/metrics';
import { dirLoader, dirSaver } from './tfjsio';
import { type QueueOptions, queuedBackbone, redactQueueUrl } from './queue';
import { type TextDataChoice, type TextRunInfo, trainTextRun } from './text/run';
import { detectModality } from './text/dataset';
import type { Coverage } from './text/embed';

export const RUN_VERSION = 1;

export interface TrainConfig extends HeadOptions, EngineOptions, OutOptions, TextDataChoice {
  /** DATA: class folders or a CSV / JSONL manifest. */
  data: string;
  /** Catalogue id or path to a model.json; default mobilenet-v2-140. */
  backbone?: string;
  /** Validation / test fractions, default 0.15 each. */
  val?: number;
  test?: number;
  /** Top layers of a layers backbone to fine-tune (0: frozen). Moved down to the nearest single-tensor boundary. */
  unfreeze?: number;
  /** Augmented views of training images, drawn once and cached. */
  augment?: AugmentOptions;
  /** Head family: auto (cross-validated choice, the default), linear or mlp. --hidden / --l2 / --epochs fix their part. */
  head?: HeadChoice;
  /** RUN_DIR to create. */
  out: string;
  /** Spread extraction over `headstart worker` processes on this queue (run.json records the URL redacted). */
  queue?: QueueOptions;
}

/** Baseline on raw pixels, to show what the pretrained backbone bought. */
export interface BaselineResult {
  description: string;
  /** Test accuracy of the baseline refit on all non-test images. */
  accuracy: number;
  /** 95% Wilson interval of `accuracy` on the test images. */
  interval: Interval;
  /** Mean accuracy across the same cross-validation folds as the head (absent without selection). */
  cvAccuracy?: number;
  /** True when raw pixels beat the chosen head in cross-validation. */
  wins: boolean;
  /** What to try when it wins. */
  advice?: string;
  macroF1: number;
  /** Backbone test accuracy minus baseline test accuracy, in points (0..100). */
  gainPoints: number;
  verdict: string;
}

/** The content of run.json. */
export interface RunRecord {
  version: number;
  createdAt: string;
  /** 'text' for text runs (src/core/text/); absent or 'image' for images. */
  modality?: 'image' | 'text';
  /** Text runs: tokenizer, vocabulary coverage, columns, length statistics. */
  text?: TextRunInfo;
  config: Omit<TrainConfig, 'out' | 'force' | 'protectedRoots' | 'cacheDir' | 'val' | 'test'> & Required<HeadOptions> & { val: number; test: number };
  backend: string;
  engine: string;
  backbone: { id: string; title: string; format: string; inputSize: number; inputRange: [number, number]; featureNode: string; pool: boolean; featureSize: number; licence: string; source: string; modelHash: string; dir: string };
  labels: string[];
  dataset: DatasetSummary;
  /** Every sample used: path relative to dataset.root, label, content hash, split. */
  samples: Array<{ rel: string; label: string; hash: string; split: SplitName }>;
  history: EpochMetrics[];
  bestEpoch: number;
  stoppedEarly: boolean;
  test: EvalResult;
  baseline: BaselineResult;
  /** Cross-validated head choice (absent for --unfreeze runs, whose head trains on the validation split). */
  selection?: Selection;
  /** Fine-tuning of the backbone's top layers, when --unfreeze was given. */
  unfreeze?: { layers: number; boundary: string; boundaryShape: number[]; trainable: string[]; headEpochs: number; fineTuneEpochs: number; fineTuneBackend: string; fineTuneSeconds: number };
  /** What augmentation made: options and the number of augmented training vectors. */
  augmentation?: Required<AugmentOptions> & { vectors: number };
  timings: { scanSeconds: number; extractSeconds: number; trainSeconds: number; totalSeconds: number; imagesPerSecond: number; extracted: number; cached: number; workers: number };
}

export interface TrainReport {
  runDir: string;
  backend: string;
  engine: string;
  dataset: DatasetSummary;
  test: EvalResult;
  baseline: BaselineResult;
  /** The cross-validated estimate beside the test figure: chosen config, mean and spread across folds. */
  selection?: { chosen: string; meanAccuracy: number; stdAccuracy: number; folds: number; method: Selection['method']; configurations: number; reason: string };
  bestEpoch: number;
  epochs: number;
  timings: RunRecord['timings'];
  /** Text runs: the modality and the vocabulary coverage of the data. */
  modality?: 'text';
  coverage?: Coverage;
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
 * words for text (src/core/text/). `vectors` is keyed by sample hash.
 */
export interface BaselineFeatures {
  vectors: Map<string, Float32Array>;
  dim: number;
  /** Standardise columns on the training rows (raw pixels need it). */
  standardise: boolean;
  /** What the baseline reads, in the verdict: 'raw pixels', 'TF-IDF words'. */
  name: string;
  description: string;
  /** Why a backbone may buy little over it. */
  easyHint: string;
  /** Advice when it beats the backbone in cross-validation. */
  advice: (baseline: number, chosen: number) => string;
}

/** The image baseline: THUMB x THUMB raw pixels. */
export function pixelBaseline(thumbs: Map<string, Float32Array>): BaselineFeatures {
  return { vectors: thumbs, dim: THUMB * THUMB * 3, standardise: true, name: 'raw pixels', description: `logistic regression on ${THUMB}x${THUMB} raw pixels`, easyHint: 'this data may be easy from colour and layout alone, or too small to tell', advice: baselineAdvice };
}

/** The user's --epochs, else the mean epoch early stopping kept across folds. */
const fixedOr = (epochs: number | undefined, meanBest: number): number => epochs ?? Math.max(1, Math.round(meanBest));

/**
 * The "no backbone" baseline: logistic regression on THUMB x THUMB raw pixels,
 * trained on every non-test image (or the train split for --unfreeze runs) and
 * scored on the test split; `cv` is its mean accuracy on the head's folds.
 */
export async function trainBaseline(samples: SplitSample[], base: BaselineFeatures, labels: string[], head: Required<HeadOptions>, test: EvalResult, cv: { baseline: number; chosen: number; epochs: number } | undefined, progress: Progress): Promise<BaselineResult> {
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

/** Rows of the same source images as `set`, from another vector map (raw-pixel thumbnails), originals only. */
function originalsOf(sources: SplitSample[], vectors: Map<string, Float32Array>, labels: string[], dim: number): GroupedSet {
  const g = gather(sources, undefined, vectors, labels, dim);
  return { x: g.x, y: g.y, group: Int32Array.from(sources.keys()), original: new Uint8Array(sources.length).fill(1) };
}

/**
 * Cross-validates the head grid (and the raw-pixel baseline on the same
 * folds), then refits the chosen configuration on every non-test row.
 */
export async function selectAndRefit(set: GroupedSet, sources: SplitSample[], base: BaselineFeatures, labels: string[], dim: number, head: Required<HeadOptions>, grid: HeadConfig[], fixedEpochs: number | undefined, progress: Progress): Promise<{ res: HeadResult; selection: Selection }> {
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

/**
 * The main job: scan DATA, extract features through the cache, split, train
 * the head, evaluate on the test split (and a raw-pixel baseline), and write
 * RUN_DIR atomically.
 */
export async function trainRun(cfg: TrainConfig, progress: Progress = {}): Promise<TrainReport> {
  // Text data (or --modality text) takes the text pipeline; everything below is the image job.
  if ((await detectModality(cfg.data, cfg)) === 'text') return trainTextRun(cfg, progress);
  const t0 = Date.now();
  const emit = progress.onEvent ?? (() => undefined);
  const head: Required<HeadOptions> = { ...HEAD_DEFAULTS, ...Object.fromEntries(Object.entries(cfg).filter(([k, v]) => k in HEAD_DEFAULTS && v !== undefined)) } as Required<HeadOptions>;
  validateHead(head);
  checkSplit(cfg.val, cfg.test);
  // Before any scan or extraction: a bad --out costs the user nothing.
  const guard = outGuard('run', [{ path: cfg.data, what: 'DATA' }], cfg);
  const runDir = await prepareOutDir(cfg.out, guard);
  const scan = await scanDataset(cfg.data, progress);
  const scanSeconds = (Date.now() - t0) / 1000;
  const allLabels = [...new Set(scan.hashed.map((s) => s.label))].sort();
  if (scan.hashed.length === 0) checkClasses([], [], []);
  const backboneId = cfg.backbone ?? DEFAULT_BACKBONE;
  // --unfreeze: the boundary, and a top model sharing the backbone's layers above it.
  let ft: { boundary: Boundary; base: tf.LayersModel; top: tf.LayersModel; featureNode: string; pool: boolean } | undefined;
  if (cfg.unfreeze) {
    const rb = await resolveBackbone(backboneId, cfg.cacheDir ?? defaultCacheDir(), progress);
    if (rb.entry.format !== 'layers') throw new HeadstartError('BAD_INPUT', `backbone ${rb.entry.id} is a frozen graph model and cannot be unfrozen; use a layers backbone (mobilenet-v2-100, inception-v3, the mobilenet-v1/v2 downloads) or --unfreeze 0`);
    await initBackend(cfg.backend ?? 'auto');
    const base = await tf.loadLayersModel(dirLoader(rb.dir));
    const boundary = findBoundary(base, rb.entry.featureNode, cfg.unfreeze);
    ft = { boundary, base, top: buildTop(base, boundary, !!rb.entry.pool), featureNode: rb.entry.featureNode, pool: !!rb.entry.pool };
    emit({ type: 'log', message: `fine-tuning ${boundary.trainable.length} layers above ${boundary.layer} (${boundary.trainable.join(', ')})` });
  }
  let opened: OpenedBackbone;
  try {
    opened = await openBackbone(backboneId, { ...cfg, cut: ft && { featureNode: ft.boundary.layer, pool: false } }, progress);
  } catch (err) {
    ft?.base.dispose();
    throw err;
  }
  // --queue: extract() spreads what is not cached over the workers, then reads the cache as below.
  if (cfg.queue) opened = queuedBackbone(opened, backboneId, cfg.queue, ft && { featureNode: ft.boundary.layer, pool: false }, cfg.batchSize ?? 16, cfg.maxPixels);
  try {
    throwIfAborted(progress.signal);
    const ex = await opened.extract(scan.hashed, progress);
    const failedPaths = new Set(ex.failed.map((f) => f.path));
    const readable = scan.hashed.filter((s) => !failedPaths.has(s.path));
    const labelOf = new Map(scan.hashed.map((s) => [s.path, s.label]));
    const failedWithLabel = ex.failed.map((f) => ({ ...f, label: labelOf.get(f.path) ?? '' }));
    checkClasses(readable, allLabels, failedWithLabel);
    const split = splitDataset(readable, { val: cfg.val, test: cfg.test, seed: head.seed });
    const labels = [...new Set(split.samples.map((s) => s.label))].sort();
    if (labels.length < 2) throw new HeadstartError('NO_DATA', 'after removing files with conflicting labels fewer than two classes remain');
    const summary = summarise(path.resolve(scan.root), scan.kind, split.samples, [...scan.skipped, ...ex.failed, ...split.conflicts], split.duplicates);
    for (const w of summary.warnings) emit({ type: 'warning', message: w });
    const fsz = opened.backbone.entry.featureSize;
    // Without --unfreeze the head is chosen by cross-validation on every non-test image, then refit on all of them.
    const sources = split.samples.filter((s) => (ft ? s.split === 'train' : s.split !== 'test'));
    let train = gather(sources, undefined, ex.features, labels, fsz);
    let viewGroups: number[] = [];
    const val = gather(split.samples, 'val', ex.features, labels, fsz);
    let augmentation: RunRecord['augmentation'];
    let augTimings = { seconds: 0, computed: 0, cached: 0 };
    if (cfg.augment && cfg.augment.views > 0) {
      // K views of each training image only; validation and test stay untouched.
      const aug = normaliseAugment(cfg.augment);
      const viewItems = sources.flatMap((s, source) => Array.from({ length: aug.views }, (_, k) => {
        const view = drawView(s.hash, k, head.seed, aug);
        return { path: s.path, hash: viewKey(s.hash, view), view, label: s.label, source };
      }));
      emit({ type: 'phase', phase: 'extract', message: `augmenting: ${aug.views} views of each of ${sources.length} training images` });
      const exAug = await opened.extract(viewItems, progress);
      const ok = viewItems.filter((v) => exAug.features.has(v.hash));
      const x = new Float32Array((train.y.length + ok.length) * fsz);
      x.set(train.x);
      ok.forEach((v, i) => x.set(exAug.features.get(v.hash)!, (train.y.length + i) * fsz));
      train = { x, y: Int32Array.from([...train.y, ...ok.map((v) => labels.indexOf(v.label))]), paths: [...train.paths, ...ok.map((v) => v.path)] };
      viewGroups = ok.map((v) => v.source); // a view stays in its source's fold
      augmentation = { ...aug, vectors: ok.length };
      augTimings = { seconds: exAug.seconds, computed: exAug.computed, cached: exAug.cached };
    }
    const test = gather(split.samples, 'test', ex.features, labels, fsz);
    // Fine-tuned runs extract boundary activations; the head reads the (frozen, then tuned) top's features.
    const headIn = (v: VectorSet): VectorSet => (ft ? { x: topFeatures(ft.top, v.x, ft.boundary.shape), y: v.y } : v);
    const headDim = ft ? (ft.top.outputs[0]!.shape[1] as number) : fsz;
    const headStarted = Date.now();
    let res: HeadResult;
    let selection: Selection | undefined;
    /** The head's hidden units and L2 as trained (recorded in config, read by distill). */
    let used = { hiddenUnits: head.hiddenUnits, l2: head.l2 };
    const grid = headGrid(cfg.head ?? 'auto', { hiddenUnits: cfg.hiddenUnits, l2: cfg.l2 }, head.hiddenUnits);
    if (ft || sources.length < MIN_SOURCES) {
      // --unfreeze tunes the top on the validation split; a handful of images cannot be cross-validated.
      const pick = grid.find((g) => g.l2 === head.l2) ?? grid[grid.length - 1]!;
      if (!ft) emit({ type: 'warning', message: `only ${sources.length} non-test images: too few to cross-validate (at least ${MIN_SOURCES}); training ${pick.name} without a model choice` });
      emit({ type: 'phase', phase: 'train', message: `training a head on ${train.y.length} ${cfg.augment?.views ? 'vectors (with augmented views)' : 'images'} (${labels.length} classes)` });
      if (!ft) used = { hiddenUnits: pick.hiddenUnits, l2: pick.l2 };
      res = await trainHead(headIn(train), ft ? headIn(val) : { x: new Float32Array(0), y: new Int32Array(0) }, headDim, labels.length, { ...head, ...used }, progress);
    } else {
      const grouped: GroupedSet = { ...train, group: Int32Array.from([...sources.keys(), ...viewGroups]), original: Uint8Array.from([...sources.map(() => 1), ...viewGroups.map(() => 0)]) };
      emit({ type: 'phase', phase: 'train', message: `choosing the head by cross-validation over ${grid.length} configuration${grid.length === 1 ? '' : 's'} (${grid.map((g) => g.name).join(', ')}) on ${sources.length} non-test images, and the raw-pixel baseline on the same folds` });
      ({ res, selection } = await selectAndRefit(grouped, sources, pixelBaseline(ex.thumbs), labels, fsz, head, grid, cfg.epochs, progress));
      const chosen = grid.find((g) => g.name === selection!.chosen)!;
      used = { hiddenUnits: chosen.hiddenUnits, l2: chosen.l2 };
    }
    const headSeconds = (Date.now() - headStarted) / 1000;
    let ftResult: Awaited<ReturnType<typeof fineTune>> | undefined;
    if (ft) {
      emit({ type: 'phase', phase: 'train', message: `fine-tuning the top ${ft.boundary.trainable.length} layers with the head (BatchNorm frozen, learning rate ${head.learningRate / 10})` });
      ftResult = await fineTune(ft.top, res.model, ft.boundary, train, val, labels.length, head, {}, progress);
      res.history.push(...ftResult.history.map((m) => ({ ...m, epoch: res.history.length + m.epoch })));
    }
    try {
      emit({ type: 'phase', phase: 'evaluate', message: `evaluating on ${test.y.length} test images` });
      const probs = evaluateSet(res.model, headIn(test), headDim, labels.length).probs;
      const testEval = evaluatePredictions(labels, test.y, probs, test.paths);
      const chosenCv = selection?.results.find((r) => r.name === selection.chosen);
      const baseline = await trainBaseline(split.samples, pixelBaseline(ex.thumbs), labels, head, testEval, selection?.baseline && chosenCv ? { baseline: selection.baseline.meanAccuracy, chosen: chosenCv.meanAccuracy, epochs: fixedOr(cfg.epochs, selection.baseline.meanBestEpoch) } : undefined, progress);
      const b = opened.backbone;
      const timings = {
        scanSeconds,
        extractSeconds: ex.seconds + augTimings.seconds,
        trainSeconds: headSeconds + (ftResult?.seconds ?? 0),
        totalSeconds: 0,
        imagesPerSecond: ex.imagesPerSecond,
        extracted: ex.computed + augTimings.computed,
        cached: ex.cached + augTimings.cached,
        workers: opened.workers,
      };
      const { out, force, protectedRoots, cacheDir, queue, ...cfgRest } = cfg;
      void [out, force, protectedRoots, cacheDir]; // not part of run.json
      const record: RunRecord = {
        version: RUN_VERSION,
        createdAt: new Date().toISOString(),
        config: { ...cfgRest, ...(queue ? { queue: { ...queue, url: redactQueueUrl(queue.url) } } : {}), ...head, ...used, backbone: b.entry.id, val: cfg.val ?? 0.15, test: cfg.test ?? 0.15, data: path.resolve(cfg.data) },
        backend: opened.backend.name,
        engine: opened.engine,
        backbone: { id: b.entry.id, title: b.entry.title, format: b.entry.format, inputSize: b.entry.inputSize, inputRange: b.entry.inputRange, featureNode: ft ? ft.featureNode : b.entry.featureNode, pool: ft ? ft.pool : !!b.entry.pool, featureSize: headDim, licence: b.entry.licence, source: b.entry.source, modelHash: b.modelHash, dir: b.dir },
        labels,
        dataset: summary,
        samples: split.samples.map((s) => ({ rel: s.rel, label: s.label, hash: s.hash, split: s.split })),
        history: res.history,
        bestEpoch: res.bestEpoch,
        stoppedEarly: res.stoppedEarly,
        test: testEval,
        baseline,
        selection,
        augmentation,
        unfreeze: ft && ftResult ? { layers: cfg.unfreeze!, boundary: ft.boundary.layer, boundaryShape: ft.boundary.shape, trainable: ft.boundary.trainable, headEpochs: res.history.length - ftResult.history.length, fineTuneEpochs: ftResult.history.length, fineTuneBackend: ftResult.backend, fineTuneSeconds: ftResult.seconds } : undefined,
        timings,
      };
      throwIfAborted(progress.signal);
      await writeOutDir(runDir, guard, async (tmp) => {
        await res.model.save(dirSaver(path.join(tmp, 'head')));
        if (ft) await ft.top.save(dirSaver(path.join(tmp, 'top')));
        record.timings.totalSeconds = (Date.now() - t0) / 1000;
        await fs.writeFile(path.join(tmp, 'run.json'), JSON.stringify(record, null, 2));
      });
      const cvSummary = selection && chosenCv ? { chosen: selection.chosen, meanAccuracy: chosenCv.meanAccuracy, stdAccuracy: chosenCv.stdAccuracy, folds: selection.folds, method: selection.method, configurations: selection.results.length, reason: selection.reason } : undefined;
      return { runDir, backend: record.backend, engine: record.engine, dataset: summary, test: testEval, baseline, selection: cvSummary, bestEpoch: res.bestEpoch, epochs: res.history.length, timings: record.timings };
    } finally {
      res.model.dispose();
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

/** A run folder read back: its record and trained head. */
export interface LoadedRun {
  dir: string;
  record: RunRecord;
  head: tf.LayersModel;
  /** The fine-tuned top layers (boundary activations → features), for --unfreeze runs. */
  top?: tf.LayersModel;
}

/** Reads RUN_DIR; a folder from another version or with missing files is a clear error. */
export async function loadRun(dir: string, backend: BackendPreference = 'auto'): Promise<LoadedRun> {
  await initBackend(backend);
  const record = await readJson<RunRecord>(path.join(dir, 'run.json'), 'run record (is this a RUN_DIR made by `headstart train`?)');
  if (record.version !== RUN_VERSION) throw new HeadstartError('BAD_INPUT', `${dir} was made by another version of Headstart (run format ${record.version}, this one reads ${RUN_VERSION}); train again`);
  if (!Array.isArray(record.labels) || !record.backbone?.id || !Array.isArray(record.samples)) throw new HeadstartError('BAD_INPUT', `${dir}/run.json is incomplete; train again`);
  let head: tf.LayersModel;
  try {
    head = await tf.loadLayersModel(dirLoader(path.join(dir, 'head')));
  } catch (err) {
    throw new HeadstartError('BAD_INPUT', `${dir} has no readable trained head (head/model.json): ${String((err as Error).message)}; train again`, { cause: err });
  }
  let top: tf.LayersModel | undefined;
  if (record.unfreeze) {
    try {
      top = await loadTop(path.join(dir, 'top'));
    } catch (err) {
      head.dispose();
      throw new HeadstartError('BAD_INPUT', `${dir} was fine-tuned but its top layers (top/model.json) are unreadable: ${String((err as Error).message)}; train again`, { cause: err });
    }
  }
  return { dir, record, head, top };
}

/** Opens the backbone a run was trained on and checks it is the same model. */
export async function openRunBackbone(run: LoadedRun, opts: EngineOptions, progress: Progress = {}): Promise<OpenedBackbone> {
  const b = run.record.backbone;
  // The run's own engine reproduces its features exactly; ONNX Runtime falls back to TF.js where it is missing.
  const engine = opts.engine ?? (run.record.engine === 'onnxruntime' ? 'auto' : 'tfjs');
  const cut = run.record.unfreeze ? { featureNode: run.record.unfreeze.boundary, pool: false } : undefined;
  // An ONNX backbone (a slimmed one) lives inside the run folder, named relative to it.
  const id = b.format === 'onnx' ? path.resolve(run.dir, b.dir) : b.id.startsWith('local:') ? b.id.slice('local:'.length) : b.id;
  const opened = await openBackbone(id, { ...opts, engine, cut }, progress);
  if (opened.backbone.modelHash !== b.modelHash) {
    opened.dispose();
    throw new HeadstartError('BAD_MODEL', `backbone ${b.id} changed since this run was trained (its model.json or weights differ); train again`);
  }
  return opened;
}

/** What the head reads, from what the run's backbone extracts: features, or (fine-tuned runs) top(boundary activations). */
export function toHeadInput(run: LoadedRun, x: Float32Array): Float32Array {
  return run.top && run.record.unfreeze ? topFeatures(run.top, x, run.record.unfreeze.boundaryShape) : x;
}

/** Class probabilities for rows of what the run's backbone extracts. */
export function runProbs(run: LoadedRun, x: Float32Array): Float32Array {
  return headProbs(run.head, toHeadInput(run, x), run.record.backbone.featureSize);
}

/** Head probabilities for feature rows. */
export function headProbs(head: tf.LayersModel, x: Float32Array, featureSize: number): Float32Array {
  const n = x.length / featureSize;
  return tf.tidy(() => (head.predict(tf.tensor2d(x, [n, featureSize])) as tf.Tensor).dataSync() as Float32Array);
}
