import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type BackendPreference, initBackend } from './backend';
import { DEFAULT_BACKBONE } from './backbones/catalogue';
import { type EngineOptions, type OpenedBackbone, openBackbone } from './engine';
import { HeadstartError, throwIfAborted } from './errors';
import type { EpochMetrics, Progress } from './events';
import { type Skipped } from './data/dataset';
import { scanDataset } from './data/scan';
import { type AugmentOptions, drawView, normaliseAugment, viewKey } from './data/augment';
import { type DatasetSummary, type SplitName, splitDataset, summarise } from './data/split';
import { type OutOptions, outGuard, prepareOutDir, readJson, writeOutDir } from './fsutil';
import { checkSplit } from './options';
import { type HeadOptions, type HeadResult, type VectorSet, HEAD_DEFAULTS, evaluateSet, trainHead } from './train/head';
import { type GroupedSet, type HeadChoice, type Selection, MIN_SOURCES, headGrid } from './train/select';
import { type Boundary, buildTop, fineTune, findBoundary, loadTop, topFeatures } from './train/finetune';
import { defaultCacheDir, resolveBackbone } from './backbones/store';
import { type EvalResult, evaluatePredictions } from './train/metrics';
import { dirLoader, dirSaver } from './tfjsio';
import { type QueueOptions, queuedBackbone, redactQueueUrl } from './queue';
import { type BaselineResult, RUN_VERSION, fixedOr, gather, headProbs, pixelBaseline, selectAndRefit, trainBaseline, validateHead } from './runParts';

export { type BaselineFeatures, type BaselineResult, RUN_VERSION, gather, headProbs, pixelBaseline, selectAndRefit, trainBaseline, validateHead } from './runParts';
import { type TextDataChoice, type TextRunInfo, trainTextRun } from './text/run';
import { detectModality } from './text/dataset';
import type { Coverage } from './text/embed';


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

