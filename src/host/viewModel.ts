/**
 * Pure mappings between the engine's records and what the panel shows, and
 * from the panel's form to the worker's options. No `vscode` here (node:test
 * checks it); thumbnails come in as a function from a file path to its URL.
 */
import { runStamp } from '../shared/options';
import * as path from 'node:path';
import type { EngineEvent } from '../shared/events';
import type { DatasetPreview, ExportView, FormOptions, PanelState, ProgressView, ResultView } from '../shared/panelProtocol';
import type { ExportReport, RunRecord, ScanSummary } from '../shared/records';
import type { TrainRequestOptions } from '../shared/workerProtocol';

/** How a file path becomes an image URL in the webview. */
export type Thumb = (file: string) => string;

/** Mistakes the panel shows at most. */
export const MAX_MISTAKES_SHOWN = 12;

/** The panel's results of a run. */
export function resultView(runDir: string, r: RunRecord, thumb: Thumb): ResultView {
  return {
    runDir,
    accuracy: r.test.accuracy,
    macroF1: r.test.macroF1,
    count: r.test.count,
    labels: r.labels,
    perClass: r.test.perClass,
    confusion: r.test.confusion,
    mistakes: r.test.mistakes.slice(0, MAX_MISTAKES_SHOWN).map((m) => ({ ...m, thumb: thumb(m.path) })),
    baseline: { accuracy: r.baseline.accuracy, verdict: r.baseline.verdict },
    backend: r.backend,
    engine: r.engine ?? `tfjs-${r.backend}`,
    seconds: r.timings.totalSeconds,
  };
}

/** The panel's figures of an export. */
export function exportView(rep: ExportReport): ExportView {
  return {
    outDir: rep.outDir,
    bytes: rep.exported.bytes,
    gzipBytes: rep.exported.gzipBytes,
    accuracy: rep.exported.accuracy,
    float32Bytes: rep.float32.bytes,
    float32GzipBytes: rep.float32.gzipBytes,
    float32Accuracy: rep.float32.accuracy,
    msPerImage: rep.exported.msPerImage,
    modelFormat: rep.modelFormat,
    chosen: rep.chosen,
    candidates: rep.candidates.map((c) => ({ name: c.name, bytes: c.bytes, gzipBytes: c.gzipBytes, accuracy: c.accuracy, withinBudget: c.withinBudget })),
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

/** The worker's options of a run from the panel's form (a validated one). */
export function trainRequest(o: FormOptions, out: string, protectedRoots: string[]): TrainRequestOptions {
  return {
    data: o.data,
    backbone: o.backbone,
    out,
    epochs: o.epochs,
    batchSize: o.batchSize,
    learningRate: o.learningRate,
    hiddenUnits: o.hiddenUnits,
    dropout: o.dropout,
    val: o.val,
    test: o.test,
    seed: o.seed,
    unfreeze: o.unfreeze,
    augment: o.augment ? { views: o.augment } : undefined,
    protectedRoots,
  };
}

/** The form of a past run: its options over the current ones. */
export function formOfRun(r: RunRecord, current: FormOptions): FormOptions {
  const c = r.config;
  return {
    ...current,
    data: c.data,
    backbone: r.backbone.id,
    epochs: c.epochs,
    batchSize: c.batchSize,
    learningRate: c.learningRate,
    hiddenUnits: c.hiddenUnits,
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
  if (e.type === 'batch') return { phase: 'train', done: (e.epoch - 1) * e.batches + e.batch, total: totalEpochs * e.batches, eta: e.eta, detail: `epoch ${e.epoch}, loss ${e.loss.toFixed(3)}` };
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

