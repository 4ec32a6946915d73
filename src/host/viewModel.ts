/**
 * Pure mappings between the engine's records and what the panel shows, and
 * from the panel's form to the worker's options. No `vscode` here (node:test
 * checks it); thumbnails come in as a function from a file path to its URL.
 */
import { DEFAULT_TEXT_BACKBONE, LOW_COVERAGE, runStamp } from '../shared/options';
import * as path from 'node:path';
import type { EngineEvent } from '../shared/events';
import { ONNX_INPUT_FIELDS, type OnnxInputField, type OnnxInputOptions, type OnnxInputSource, type OnnxPreprocessingResult, isOnnxModelFile, rangeChoice } from '../shared/onnxInput';
import { DEFAULT_FORM, type DatasetPreview, type ExportChoices, type ExportView, type FormOptions, type OnnxPreprocessingView, type PanelState, type ProgressView, type ResultView, type SelectionView } from '../shared/panelProtocol';
import type { BackboneInfo, ExportReport, RunRecord, ScanSummary, Selection } from '../shared/records';
import type { ExportRequestOptions, TrainRequestOptions } from '../shared/workerProtocol';

/** How a file path becomes an image URL in the webview. */
export type Thumb = (file: string) => string;

/** Mistakes the panel shows at most. */
export const MAX_MISTAKES_SHOWN = 12;

/** The panel's results of a run. */
export function resultView(runDir: string, r: RunRecord, thumb: Thumb): ResultView {
  const text = r.modality === 'text';
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
    // A text mistake shows its words (run.json's excerpt; runs without one show the file's name), never a thumbnail.
    mistakes: r.test.mistakes.slice(0, MAX_MISTAKES_SHOWN).map((m) => (text ? { ...m, thumb: '', text: typeof m.text === 'string' ? m.text : path.basename(m.path) } : { ...m, thumb: thumb(m.path) })),
    ...(text ? { modality: 'text' as const, ...(r.text && typeof r.text === 'object' ? { text: { coverage: r.text.coverage, tokenizer: r.text.tokenizer } } : {}) } : {}),
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
    // Runs record what trained the head (ONNX Runtime by default); older runs trained it on the TF.js backend.
    headTrainer: r.headTrainer ?? `TF.js ${r.backend}`,
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
    oofTrainImages: sl.oofTrainImages,
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

/** What to warn about before training on a dataset with these counts per class (`noun`: what is counted). */
export function datasetWarnings(counts: Record<string, number>, noun = 'images'): string[] {
  const n = Object.values(counts);
  const warnings: string[] = [];
  if (n.length < 2) warnings.push('a classifier needs at least two classes (one sub-folder per class)');
  const tiny = Object.entries(counts).filter(([, c]) => c < 10).map(([l]) => `'${l}'`);
  if (tiny.length) warnings.push(`few ${noun} in ${tiny.join(', ')} (under 10): results will be noisy`);
  if (n.length && Math.max(...n) / Math.max(1, Math.min(...n)) >= 3) warnings.push('classes are imbalanced (3x or more); class weights compensate in training');
  return warnings;
}

/** The panel's preview of a scanned dataset: thumbnails for images; lengths, coverage and a few texts per class for texts. */
export function datasetPreview(s: ScanSummary, thumb: Thumb): DatasetPreview {
  if (s.modality === 'text' && s.text) return textDatasetPreview(s, s.text);
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

function textDatasetPreview(s: ScanSummary, t: NonNullable<ScanSummary['text']>): DatasetPreview {
  const c = t.coverage;
  const low = c.tokens < LOW_COVERAGE ? [`only ${(c.tokens * 100).toFixed(0)}% of the words are known to ${c.backbone}${c.emptyTexts ? ` (${c.emptyTexts} texts have no known word)` : ''}: another language, code or IDs? The TF-IDF baseline reads any word; a sentence encoder for that language may do better`] : [];
  return {
    root: s.root,
    total: s.total,
    modality: 'text',
    classes: Object.entries(s.counts).map(([label, count]) => ({ label, count, example: s.examples[label], texts: t.examples[label] ?? [] })),
    skipped: s.skipped,
    warnings: [...datasetWarnings(s.counts, 'texts'), ...low],
    text: { chars: t.chars, words: t.words, coverage: c },
  };
}

/**
 * The backbone to train `modality` with: the current one when it embeds that
 * modality; otherwise the bundled text backbone for texts, `imageDefault`
 * (the setting) for images. A backbone not in `backbones` (the list is not
 * loaded yet) counts as an image backbone unless it is the text default.
 */
export function backboneFor(modality: 'image' | 'text', current: string, backbones: readonly BackboneInfo[], imageDefault: string): string {
  const task = backbones.find((b) => b.id === current)?.task ?? (current === DEFAULT_TEXT_BACKBONE ? 'text' : 'image');
  if (task === modality) return current;
  return modality === 'text' ? DEFAULT_TEXT_BACKBONE : imageDefault;
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
  const onnxInput = isOnnxModelFile(o.backbone) && o.onnxInput && Object.keys(o.onnxInput).length ? o.onnxInput : undefined;
  return {
    data: o.data,
    backbone: o.backbone,
    out,
    ...set,
    ...(o.augment ? { augment: { views: o.augment } } : {}),
    ...(onnxInput ? { onnxInput } : {}),
    ...(queue ? { queue: { url: queue } } : {}),
    protectedRoots,
  };
}

/** One preprocessing value as its field shows it: numbers as typed, lists comma-separated, a range as its choice. */
function onnxFieldText(k: OnnxInputField, v: unknown): string {
  if (v === undefined || v === null) return '';
  if (k === 'range') return rangeChoice(v) ?? '';
  if (Array.isArray(v)) return v.map(String).join(', ');
  return String(v);
}

const SOURCE_WORDS: Record<Exclude<OnnxInputSource, 'sidecar'>, string> = { flag: 'set here', graph: 'model graph', default: 'default' };

/**
 * The panel's view of a foreign ONNX backbone's preprocessing: the worker's
 * answer (undefined while it is pending) and the user's edits. A resolved
 * model shows every value and its source; a refused one its reason, with
 * the edits in their fields (to fix a dynamic size or an ambiguous layout).
 */
export function onnxPreprocessingView(backbone: string, result: OnnxPreprocessingResult | undefined, edits: OnnxInputOptions = {}): OnnxPreprocessingView {
  const edited = ONNX_INPUT_FIELDS.filter((k) => edits[k] !== undefined);
  const each = (f: (k: OnnxInputField) => string) => Object.fromEntries(ONNX_INPUT_FIELDS.map((k) => [k, f(k)])) as Record<OnnxInputField, string>;
  if (!result?.ok) {
    return { backbone, pending: !result, ...(result ? { refused: result.reason } : {}), text: each((k) => onnxFieldText(k, edits[k])), from: each((k) => (edits[k] !== undefined ? SOURCE_WORDS.flag : '')), edited, outputs: [] };
  }
  const p = result.preprocessing;
  const sidecar = p.sidecar ? `sidecar ${path.basename(p.sidecar)}` : 'sidecar';
  return {
    backbone,
    pending: false,
    text: each((k) => onnxFieldText(k, p[k])),
    from: each((k) => (p.from[k] === 'sidecar' ? sidecar : SOURCE_WORDS[p.from[k]] ?? '')),
    edited,
    channels: p.channels,
    featureSize: p.featureSize,
    outputs: p.outputs,
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
  // Preprocessing edits belong to the model they were made for; a past run's preprocessing is in its run.json.
  const { onnxInput: _edits, ...kept } = current;
  return {
    ...kept,
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
    dataset: ds && (ds.modality === 'text' ? ds : { ...ds, classes: ds.classes.map((c) => ({ ...c, thumb: c.example && thumb(c.example) })) }),
    result: res && (res.modality === 'text' ? res : { ...res, mistakes: res.mistakes.map((m) => ({ ...m, thumb: thumb(m.path) })) }),
  };
}


/**
 * The selection to classify, capped at `maxBytes` of UTF-8 (the engine's size
 * of one example), cut at a character boundary; `cut` says it was cut, with
 * the selection's size. Whitespace-only text is left for the engine to refuse.
 */
export function capSelection(text: string, maxBytes: number): { text: string; cut?: { bytes: number; maxBytes: number } } {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes <= maxBytes) return { text };
  // Decoding the first maxBytes drops a split character as U+FFFD at the end: trim that.
  const head = Buffer.from(text, 'utf8').subarray(0, maxBytes).toString('utf8').replace(/\uFFFD+$/u, '');
  return { text: head, cut: { bytes, maxBytes } };
}

/** Which modality a model folder holds: its run.json's `modality`, or its export metadata.json's `headstart.modality`; image when neither says text. */
export function modelModality(json: unknown): 'image' | 'text' {
  if (typeof json !== 'object' || json === null) return 'image';
  const j = json as { modality?: unknown; headstart?: { modality?: unknown } };
  return j.modality === 'text' || j.headstart?.modality === 'text' ? 'text' : 'image';
}

/** The quick pick of a text's top classes: each with its probability, and the title naming the winner. */
export function textPredictionPick(line: { label: string; probability: number; top: Array<{ label: string; probability: number }>; coverage: number }, cut?: { bytes: number; maxBytes: number }): { title: string; items: Array<{ label: string; description: string }> } {
  const p = (x: number) => `${(x * 100).toFixed(1)}%`;
  const notes = [`${p(line.coverage)} of its words known`, ...(cut ? [`first ${cut.maxBytes} of ${cut.bytes} bytes`] : [])];
  return { title: `Selection: ${line.label} (${p(line.probability)}) · ${notes.join(' · ')}`, items: line.top.map((t) => ({ label: t.label, description: p(t.probability) })) };
}
