/**
 * Pure mappings between the engine's records and what the panel shows, and
 * from the panel's form to the worker's options. No `vscode` here (node:test
 * checks it); thumbnails come in as a function from a file path to its URL.
 */
import { runStamp } from '../shared/options';
import * as path from 'node:path';
import type { EngineEvent } from '../shared/events';
import { DEFAULT_FORM, type DatasetPreview, type ExportChoices, type ExportView, type FormOptions, type PanelState, type ProgressView, type ResultView, type SelectionView } from '../shared/panelProtocol';
import type { ExportReport, RunRecord, ScanSummary, Selection } from '../shared/records';
import type { ExportRequestOptions, TrainRequestOptions } from '../shared/workerProtocol';

/** How a file path becomes an image URL in the webview. */
export type Thumb = (file: string) => string;

/** Mistakes the panel shows at most. */
export const MAX_MISTAKES_SHOWN = 12;

/** The panel's results of a run. */
export function resultView(runDir: string, r: RunRecord, thumb: Thumb): ResultView {
  return {
    runDir,
    accuracy: r.test.accuracy,
    interval: r.test.interval,
    warning: r.test.warning,
    macroF1: r.test.macroF1,
    count: r.test.count,
    labels: r.labels,
    perClass: r.test.perClass,
    confusion: r.test.confusion,
    mistakes: r.test.mistakes.slice(0, MAX_MISTAKES_SHOWN).map((m) => ({ ...m, thumb: thumb(m.path) })),
    baseline: {
      accuracy: r.baseline.accuracy,
      interval: r.baseline.interval,
      cvAccuracy: r.baseline.cvAccuracy,
      // Runs of early versions have no `wins`: the test figures decide.
      wins: r.baseline.wins ?? r.baseline.accuracy > r.test.accuracy,
      advice: r.baseline.advice,
      verdict: r.baseline.verdict,
    },
    selection: r.selection && selectionView(r.selection),
    backend: r.backend,
    engine: r.engine ?? `tfjs-${r.backend}`,
    seconds: r.timings.totalSeconds,
  };
}

/** run.json's cross-validated head choice as the panel's table: one row per configuration. */
export function selectionView(sel: Selection): SelectionView {
  return {
    method: sel.method,
    folds: sel.folds,
    sources: sel.sources,
    epochs: sel.grid?.epochs ?? '',
    rows: (Array.isArray(sel.results) ? sel.results : []).map((r) => ({ name: r.name, meanAccuracy: r.meanAccuracy, stdAccuracy: r.stdAccuracy, folds: Array.isArray(r.foldAccuracies) ? r.foldAccuracies.length : sel.folds, chosen: r.name === sel.chosen })),
    chosen: sel.chosen,
    reason: sel.reason,
    refitEpochs: sel.refitEpochs,
    baseline: sel.baseline && { meanAccuracy: sel.baseline.meanAccuracy, stdAccuracy: sel.baseline.stdAccuracy },
    baselineWins: sel.baselineWins === true,
    advice: sel.advice,
  };
}

/** The panel's view of report.json's `quantization` (int8 ONNX). */
function quantizationView(q: NonNullable<ExportReport['quantization']>): ExportView['quantization'] {
  return {
    calibrationImages: q.calibrationImages,
    calibrationSplit: q.calibrationSplit,
    threads: q.speed.threads,
    int8Ms: q.speed.int8.batch1Ms,
    float32Ms: q.speed.float32.batch1Ms,
    speedup: q.speed.batch1Speedup,
    batch32Speedup: q.speed.batch32Speedup,
  };
}

/** The panel's view of report.json's `slimming`. */
function slimmingView(sl: NonNullable<ExportReport['slimming']>): ExportView['slimming'] {
  return {
    asked: sl.asked,
    chosen: sl.chosen,
    budgetPoints: sl.budgetPoints,
    validationImages: sl.validationImages,
    threads: sl.threads,
    steps: sl.steps.map((x) => ({ fraction: x.fraction, hiddenKept: x.hiddenKept, hiddenTotal: x.hiddenTotal, bytes: x.bytes, msPerImage: x.msPerImage, speedup: x.speedup, valAccuracy: x.valAccuracy, dropPoints: x.dropPoints, withinBudget: x.withinBudget })),
  };
}

/** The panel's figures of an export. */
export function exportView(rep: ExportReport): ExportView {
  return {
    outDir: rep.outDir,
    bytes: rep.exported.bytes,
    gzipBytes: rep.exported.gzipBytes,
    accuracy: rep.exported.accuracy,
    interval: rep.exported.interval,
    float32Bytes: rep.float32.bytes,
    float32GzipBytes: rep.float32.gzipBytes,
    float32Accuracy: rep.float32.accuracy,
    float32Interval: rep.float32.interval,
    testImages: rep.testImages,
    msPerImage: rep.exported.msPerImage,
    modelFormat: rep.modelFormat,
    chosen: rep.chosen,
    choice: rep.choice && { split: rep.choice.split, images: rep.choice.images, rule: rep.choice.rule },
    candidates: rep.candidates.map((c) => ({ name: c.name, bytes: c.bytes, gzipBytes: c.gzipBytes, accuracy: c.accuracy, accuracyInterval: c.accuracyInterval, withinBudget: c.withinBudget })),
    quantization: rep.quantization && quantizationView(rep.quantization),
    slimming: rep.slimming && slimmingView(rep.slimming),
  };
}

/** What to warn about before training on a dataset with these counts per class. */
export function datasetWarnings(counts: Record<string, number>): string[] {
  const n = Object.values(counts);
  const warnings: string[] = [];
  if (n.length < 2) warnings.push('a classifier needs at least two classes (one sub-folder per class)');
  const tiny = Object.entries(counts).filter(([, c]) => c < 10).map(([l]) => `'${l}'`);
  if (tiny.length) warnings.push(`few images in ${tiny.join(', ')} (under 10): results will be noisy`);
  if (n.length && Math.max(...n) / Math.max(1, Math.min(...n)) >= 3) warnings.push('classes are imbalanced (3x or more); class weights compensate in training');
  return warnings;
}

/** The panel's preview of a scanned dataset. */
export function datasetPreview(s: ScanSummary, thumb: Thumb): DatasetPreview {
  return {
    root: s.root,
    total: s.total,
    classes: Object.entries(s.counts).map(([label, count]) => {
      const example = s.examples[label];
      return { label, count, example, thumb: example ? thumb(example) : undefined };
    }),
    skipped: s.skipped,
    warnings: datasetWarnings(s.counts),
  };
}

/** The default export folder for a dataset at `root` (workspace-relative). */
export function exportDefaultFor(root: string): string {
  return path.join('models', path.basename(root).replace(/\.(csv|jsonl)$/i, '') || 'model');
}

/** A sortable UTC stamp for folder names: 20260115-093000 (one helper, in src/shared/options.ts). */
export { runStamp };

/** The folder a new run of `data` is written to, inside `runsFolder`. */
export function newRunDir(runsFolder: string, data: string, at: Date): string {
  return path.join(runsFolder, `${runStamp(at)}-${path.basename(data).replace(/\.(csv|jsonl)$/i, '')}`.replace(/[^\w.-]/g, '_'));
}

/** Form fields passed to the engine only when they differ from the defaults (which are the engine's). */
const TUNABLE = ['head', 'epochs', 'batchSize', 'learningRate', 'hiddenUnits', 'dropout', 'val', 'test', 'seed', 'unfreeze'] as const satisfies ReadonlyArray<keyof FormOptions & keyof TrainRequestOptions>;

/**
 * The worker's options of a run from the panel's form (a validated one). Only
 * the fields the user set are sent: a given `epochs` turns early stopping off
 * and a given `hiddenUnits` pins the head, so untouched ones (null, or at the
 * default) are left out and the engine's cross-validation decides. `queue`:
 * the `headstart.queue` URL, when set.
 */
export function trainRequest(o: FormOptions, out: string, protectedRoots: string[], queue?: string): TrainRequestOptions {
  const set: Partial<TrainRequestOptions> = {};
  for (const k of TUNABLE) {
    const v = o[k];
    if (v !== null && v !== DEFAULT_FORM[k]) Object.assign(set, { [k]: v });
  }
  return {
    data: o.data,
    backbone: o.backbone,
    out,
    ...set,
    ...(o.augment ? { augment: { views: o.augment } } : {}),
    ...(queue ? { queue: { url: queue } } : {}),
    protectedRoots,
  };
}

/** The worker's export options of the panel's choices: `slim` only when on (the engine checks its range and that the format is ONNX). */
export function exportRequest(c: ExportChoices): Omit<ExportRequestOptions, 'out'> {
  return { format: c.format, quantize: c.quantize, prune: c.prune, maxDrop: c.maxDrop, ...(c.slim !== undefined && c.slim !== 'off' ? { slim: c.slim } : {}) };
}

/**
 * The form of a past run: its options over the current ones. run.json records
 * the epochs and hidden units it trained with, chosen or asked for; where its
 * `selection` shows they were chosen (epochs by early stopping, the head by
 * the grid), the form leaves them to the engine again.
 */
export function formOfRun(r: RunRecord, current: FormOptions): FormOptions {
  const c = r.config;
  const sel = r.selection;
  const epochsFixed = !sel || /^fixed/.test(sel.grid?.epochs ?? '');
  // A one-family grid with the head left to auto means --hidden fixed it.
  const hiddenFixed = !sel || ((c.head ?? 'auto') === 'auto' && sel.grid?.heads?.length === 1);
  return {
    ...current,
    data: c.data,
    backbone: r.backbone.id,
    head: c.head ?? 'auto',
    epochs: epochsFixed ? c.epochs : null,
    batchSize: c.batchSize,
    learningRate: c.learningRate,
    hiddenUnits: hiddenFixed ? c.hiddenUnits : null,
    dropout: c.dropout,
    val: c.val,
    test: c.test,
    seed: c.seed,
    unfreeze: c.unfreeze ?? 0,
    augment: c.augment?.views ?? 0,
  };
}

/** The per-batch progress line of an engine event (undefined: not a progress event). */
export function progressView(e: EngineEvent, totalEpochs: number): ProgressView | undefined {
  if (e.type === 'progress') return { phase: e.phase, done: e.done, total: e.total, eta: e.eta, detail: e.rate ? `${e.rate.toFixed(1)} ${e.unit ?? ''}/s` : '' };
  // Epochs left to early stopping are unknown until the first epoch event: count the current one.
  if (e.type === 'batch') return { phase: 'train', done: (e.epoch - 1) * e.batches + e.batch, total: Math.max(totalEpochs, e.epoch) * e.batches, eta: e.eta, detail: `epoch ${e.epoch}, loss ${e.loss.toFixed(3)}` };
  return undefined;
}

/** The state with every thumbnail URL made again (after the panel, and with it the webview's URL scheme, was re-created). */
export function withThumbs(state: Pick<PanelState, 'dataset' | 'result'>, thumb: Thumb): Pick<PanelState, 'dataset' | 'result'> {
  const ds = state.dataset;
  const res = state.result;
  return {
    dataset: ds && { ...ds, classes: ds.classes.map((c) => ({ ...c, thumb: c.example && thumb(c.example) })) },
    result: res && { ...res, mistakes: res.mistakes.map((m) => ({ ...m, thumb: thumb(m.path) })) },
  };
}

