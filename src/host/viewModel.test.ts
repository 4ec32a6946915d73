/**
 * The host's view-model mappings: the form → the worker's options, dataset
 * warnings, run folder names, export and progress views, thumbnails, and the
 * engine's selection, intervals, int8 and slimming figures → the panel's views.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import type { ExportReport as CoreExportReport, RunRecord as CoreRunRecord } from '../core';
import { DEFAULT_FORM, type FormOptions, type PanelState } from '../shared/panelProtocol';
import type { ExportReport, RunRecord, ScanSummary, Selection } from '../shared/records';
import type { OnnxPreprocessingResult } from '../shared/onnxInput';
import { backboneFor, capSelection, datasetPreview, datasetWarnings, exportRequest, exportView, formOfRun, modelModality, newRunDir, onnxPreprocessingView, progressView, resultView, runStamp, textPredictionPick, trainRequest, withThumbs } from './viewModel';

// Compile-time drift guards (npm run check-types): what the engine writes must fit what the host reads.
export const runRecordFits = (r: CoreRunRecord): RunRecord => r;
export const exportReportFits = (r: CoreExportReport): ExportReport => r;

const form: FormOptions = { ...DEFAULT_FORM, data: '/ws/my data.csv', backbone: 'mobilenet-v2-100' };
const iv = (low: number, high: number, n: number) => ({ low, high, n, level: 0.95 });

test('an untouched form sends only the dataset, backbone and folder: the engine cross-validates the head and stops early', () => {
  const r = trainRequest(form, '/ws/runs/x', ['/ws']);
  assert.deepEqual(r, { data: '/ws/my data.csv', backbone: 'mobilenet-v2-100', out: '/ws/runs/x', protectedRoots: ['/ws'] });
  assert.ok(!('epochs' in r) && !('hiddenUnits' in r) && !('head' in r), 'nothing pins the head');
});

test('fields the user set pass through: head, epochs, hidden units, the others when off their default; augment as views; the queue URL', () => {
  const r = trainRequest({ ...form, head: 'mlp', epochs: 12, hiddenUnits: 64, batchSize: 16, seed: 7, augment: 3 }, '/o', [], 'redis://u:p@h:6379');
  assert.deepEqual(r, { data: '/ws/my data.csv', backbone: 'mobilenet-v2-100', out: '/o', head: 'mlp', epochs: 12, hiddenUnits: 64, batchSize: 16, seed: 7, augment: { views: 3 }, queue: { url: 'redis://u:p@h:6379' }, protectedRoots: [] });
  assert.deepEqual(trainRequest({ ...form, head: 'linear', hiddenUnits: 0 }, '/o', []).hiddenUnits, 0, 'an explicit 0 (linear) is sent');
  assert.equal(trainRequest(form, '/o', [], '').queue, undefined, 'an empty setting is no queue');
});

test('export choices → worker options: slim only when on, int8 passes with onnx', () => {
  assert.deepEqual(exportRequest({ format: 'onnx', quantize: 'int8', prune: 0, maxDrop: 1 }), { format: 'onnx', quantize: 'int8', prune: 0, maxDrop: 1 });
  assert.deepEqual(exportRequest({ format: 'onnx', quantize: 'auto', prune: 0, maxDrop: 2, slim: 'off' }), { format: 'onnx', quantize: 'auto', prune: 0, maxDrop: 2 });
  assert.equal(exportRequest({ format: 'onnx', quantize: 'none', prune: 0, maxDrop: 1, slim: 'auto' }).slim, 'auto');
  assert.equal(exportRequest({ format: 'onnx', quantize: 'none', prune: 0, maxDrop: 1, slim: 0.4 }).slim, 0.4);
});

test('a run folder is named by UTC time and the dataset, with unsafe characters replaced', () => {
  const at = new Date('2026-03-04T05:06:07.890Z');
  assert.equal(runStamp(at), '20260304-050607');
  assert.equal(newRunDir('/ws/runs', '/ws/my data.csv', at), path.join('/ws/runs', '20260304-050607-my_data'));
  assert.equal(path.dirname(newRunDir('/ws/runs', '/ws/../../etc', at)), '/ws/runs', 'never outside the runs folder');
});

test('dataset warnings: one class, tiny classes, imbalance', () => {
  assert.deepEqual(datasetWarnings({ a: 50, b: 50 }), []);
  assert.match(datasetWarnings({ a: 50 }).join(), /at least two classes/);
  assert.match(datasetWarnings({ a: 50, b: 5 }).join(), /few images in 'b'/);
  assert.match(datasetWarnings({ a: 90, b: 30 }).join(), /imbalanced/);
  const p = datasetPreview({ root: '/d', kind: 'folders', counts: { a: 12, b: 12 }, examples: { a: '/d/a/1.jpg' }, skipped: [], total: 24 }, (f) => `t:${f}`);
  assert.deepEqual(p.classes, [{ label: 'a', count: 12, example: '/d/a/1.jpg', thumb: 't:/d/a/1.jpg' }, { label: 'b', count: 12, example: undefined, thumb: undefined }]);
});

/** A selection as the engine writes it (src/core/train/select.ts), 5 folds over 30 images. */
const selection: Selection = {
  method: 'stratified-k-fold',
  folds: 5,
  sources: 30,
  grid: { heads: ['linear', 'mlp'], hiddenUnits: 128, l2: [0.0001, 0.01], epochs: 'early stopping in each fold (patience 6, at most 30); refit for the mean best epoch' },
  results: [
    { name: 'linear l2=0.0001', head: 'linear', hiddenUnits: 0, l2: 1e-4, meanAccuracy: 0.9, stdAccuracy: 0.05, foldAccuracies: [0.9, 0.85, 0.95, 0.9, 0.9], meanBestEpoch: 20 },
    { name: 'mlp128 l2=0.0001', head: 'mlp', hiddenUnits: 128, l2: 1e-4, meanAccuracy: 0.92, stdAccuracy: 0.04, foldAccuracies: [0.9, 0.95, 0.95, 0.9, 0.9], meanBestEpoch: 12 },
  ],
  chosen: 'linear l2=0.0001',
  reason: '90.0% is within 0.5 points of the best',
  refitEpochs: 20,
  baseline: { meanAccuracy: 0.95, stdAccuracy: 0.03, foldAccuracies: [0.95, 0.95, 0.9, 1, 0.95] },
  baselineWins: true,
  advice: 'raw pixels (95.0%) beat the backbone',
  seconds: 3,
};

function record(over: Partial<RunRecord> = {}): RunRecord {
  return {
    version: 1,
    createdAt: '2026-01-01T00:00:00.000Z',
    config: { data: '/ws/shapes', backbone: 'b', epochs: 30, batchSize: 32, learningRate: 0.001, hiddenUnits: 0, dropout: 0.2, val: 0.15, test: 0.15, seed: 42 },
    backend: 'wasm',
    engine: 'onnxruntime',
    backbone: { id: 'b', title: 'B' },
    labels: ['a', 'b'],
    dataset: { root: '/ws/shapes', kind: 'folders', classes: ['a', 'b'], counts: {}, total: 36, skipped: [], warnings: [] },
    history: [],
    test: { accuracy: 5 / 6, interval: iv(0.44, 0.97, 6), warning: 'only 3 evaluation images in class a', macroF1: 0.8, count: 6, labels: ['a', 'b'], perClass: [], confusion: [[3, 0], [1, 2]], mistakes: [] },
    baseline: { description: 'pixels', accuracy: 1, interval: iv(0.61, 1, 6), cvAccuracy: 0.95, wins: true, advice: 'raw pixels (95.0%) beat the backbone', macroF1: 1, gainPoints: -16.7, verdict: 'raw pixels win' },
    selection,
    timings: { scanSeconds: 0, extractSeconds: 1, trainSeconds: 2, totalSeconds: 3.5, imagesPerSecond: 10 },
    ...over,
  };
}

test('results: the test interval and small-split warning, the baseline with its interval and CV score, the selection table', () => {
  const v = resultView('/r', record(), (f) => f);
  assert.deepEqual(v.interval, iv(0.44, 0.97, 6));
  assert.match(v.warning ?? '', /only 3 evaluation images/);
  assert.deepEqual(v.baseline, { accuracy: 1, interval: iv(0.61, 1, 6), cvAccuracy: 0.95, wins: true, advice: 'raw pixels (95.0%) beat the backbone', verdict: 'raw pixels win' });
  const s = v.selection!;
  assert.deepEqual(s.rows, [
    { name: 'linear l2=0.0001', meanAccuracy: 0.9, stdAccuracy: 0.05, folds: 5, chosen: true },
    { name: 'mlp128 l2=0.0001', meanAccuracy: 0.92, stdAccuracy: 0.04, folds: 5, chosen: false },
  ]);
  assert.deepEqual([s.method, s.folds, s.sources, s.chosen, s.refitEpochs, s.baselineWins], ['stratified-k-fold', 5, 30, 'linear l2=0.0001', 20, true]);
  assert.deepEqual(s.baseline, { meanAccuracy: 0.95, stdAccuracy: 0.03 });
  assert.match(s.epochs, /early stopping/);
  // A run.json of an early version: no interval, no selection, and `wins` from the test figures.
  const old = resultView('/r', record({ selection: undefined, test: { ...record().test, interval: undefined, warning: undefined }, baseline: { description: 'p', accuracy: 0.5, macroF1: 0.5, gainPoints: 33, verdict: 'v' } }), (f) => f);
  assert.deepEqual([old.interval, old.selection, old.baseline.wins], [undefined, undefined, false]);
});

test('a past run with a cross-validated head reopens with the head, epochs and hidden units left to the engine', () => {
  const f = formOfRun(record(), form);
  assert.deepEqual([f.head, f.epochs, f.hiddenUnits], ['auto', null, null]);
  const fixed = formOfRun(record({ config: { ...record().config, epochs: 12, hiddenUnits: 64, head: 'mlp' }, selection: { ...selection, grid: { ...selection.grid, heads: ['mlp'], epochs: 'fixed at 12' } } }), form);
  assert.deepEqual([fixed.head, fixed.epochs, fixed.hiddenUnits], ['mlp', 12, null]);
  const hidden = formOfRun(record({ config: { ...record().config, hiddenUnits: 64 }, selection: { ...selection, grid: { ...selection.grid, heads: ['mlp'] } } }), form);
  assert.equal(hidden.hiddenUnits, 64, '--hidden fixed the one family');
});

const variant = (bytes: number, accuracy: number, n = 6) => ({ bytes, gzipBytes: bytes / 2, accuracy, interval: iv(accuracy - 0.3, Math.min(1, accuracy + 0.1), n), macroF1: accuracy, msPerImage: 3 });

test('export view: sizes, accuracies with intervals, where auto decided', () => {
  const rep: ExportReport = {
    outDir: '/ws/m', format: 'tfjs', modelFormat: 'graph-model', quantize: 'auto', maxDropPoints: 1, chosen: 'uint8', testImages: 6,
    float32: variant(400, 0.9), exported: variant(100, 0.89), skipped: [], backend: 'wasm',
    choice: { split: 'val', images: 5, rule: 'never the test split' },
    candidates: [{ name: 'uint8', sparsity: 0, bytes: 100, gzipBytes: 50, accuracy: 0.8, accuracyInterval: iv(0.38, 0.96, 5), agreement: 1, dropPoints: 0, withinBudget: true }],
  };
  const view = exportView(rep);
  assert.deepEqual([view.bytes, view.float32Bytes, view.accuracy, view.float32Accuracy, view.gzipBytes, view.msPerImage, view.chosen, view.testImages], [100, 400, 0.89, 0.9, 50, 3, 'uint8', 6]);
  assert.deepEqual(view.interval, rep.exported.interval);
  assert.deepEqual(view.float32Interval, rep.float32.interval);
  assert.deepEqual(view.choice, { split: 'val', images: 5, rule: 'never the test split' });
  assert.deepEqual(view.candidates, [{ name: 'uint8', bytes: 100, gzipBytes: 50, accuracy: 0.8, accuracyInterval: iv(0.38, 0.96, 5), withinBudget: true }]);
  assert.equal(view.quantization, undefined);
  assert.equal(view.slimming, undefined);
});

test('export view: int8 calibration and speed-up, slimming steps', () => {
  const step = (fraction: number, ms: number, valAccuracy: number, withinBudget: boolean) => ({ fraction, hiddenKept: Math.round(1000 * (1 - fraction)), hiddenTotal: 1000, bytes: 4e6 * (1 - fraction), gzipBytes: 3e6, msPerImage: ms, speedup: 10 / ms, valAccuracy, dropPoints: (0.9 - valAccuracy) * 100, withinBudget });
  const rep: ExportReport = {
    outDir: '/ws/m', format: 'onnx', modelFormat: 'onnx', quantize: 'int8', maxDropPoints: 1, chosen: 'int8', testImages: 6,
    float32: variant(400, 0.9), exported: variant(100, 0.9), skipped: [], backend: 'onnxruntime', candidates: [],
    quantization: { method: 'static QDQ', calibrationImages: 24, calibrationSplit: 'train', calibrationSkipped: 0, speed: { threads: 2, float32: { batch1Ms: 8, batch32ImagesPerSecond: 100 }, int8: { batch1Ms: 4, batch32ImagesPerSecond: 180 }, batch1Speedup: 2, batch32Speedup: 1.8 } },
    slimming: { method: 'channel ranking', asked: 'auto', rankImages: 24, blocks: 16, budgetPoints: 1, validationImages: 5, threads: 2, steps: [step(0, 10, 0.9, true), step(0.25, 8, 0.9, true), step(0.4, 7, 0.8, false)], chosen: 0.25 },
  };
  const v = exportView(rep);
  assert.deepEqual(v.quantization, { calibrationImages: 24, calibrationSplit: 'train', threads: 2, int8Ms: 4, float32Ms: 8, speedup: 2, batch32Speedup: 1.8 });
  assert.deepEqual([v.slimming?.asked, v.slimming?.chosen, v.slimming?.budgetPoints, v.slimming?.validationImages, v.slimming?.threads], ['auto', 0.25, 1, 5, 2]);
  assert.deepEqual(v.slimming?.steps.map((x) => [x.fraction, x.msPerImage, x.valAccuracy, x.withinBudget]), [[0, 10, 0.9, true], [0.25, 8, 0.9, true], [0.4, 7, 0.8, false]]);
});

test('progress: extraction as counted, batches across all epochs (the current one when the total is not known yet); other events none', () => {
  assert.deepEqual(progressView({ type: 'progress', phase: 'extract', done: 3, total: 10, rate: 2.5, unit: 'images', eta: 4 }, 5), { phase: 'extract', done: 3, total: 10, eta: 4, detail: '2.5 images/s' });
  assert.deepEqual(progressView({ type: 'batch', epoch: 2, batch: 3, batches: 4, loss: 0.1234, accuracy: 1, imagesPerSecond: 1, eta: 9 }, 5), { phase: 'train', done: 7, total: 20, eta: 9, detail: 'epoch 2, loss 0.123' });
  assert.equal(progressView({ type: 'batch', epoch: 1, batch: 3, batches: 4, loss: 0.1, accuracy: 1, imagesPerSecond: 1, eta: 1 }, 0)?.total, 4);
  assert.equal(progressView({ type: 'warning', message: 'w' }, 5), undefined);
});

test('thumbnails are made again for a new webview', () => {
  const state: Pick<PanelState, 'dataset' | 'result'> = {
    dataset: { root: '/d', total: 1, classes: [{ label: 'a', count: 1, example: '/d/a.jpg', thumb: 'old' }], skipped: [], warnings: [] },
    result: undefined,
  };
  assert.equal(withThumbs(state, (f) => `new:${f}`).dataset?.classes[0]?.thumb, 'new:/d/a.jpg');
});

// Text: the dataset summary, the results of a text run, the backbone a modality trains on, the selection cap.
const textScan: ScanSummary = {
  root: '/ws/tickets', kind: 'text-folders', modality: 'text', counts: { billing: 12, shipping: 4 }, examples: { billing: '/ws/tickets/billing/1.txt', shipping: '/ws/tickets/shipping/1.txt' }, skipped: [], total: 16,
  text: {
    chars: { min: 10, median: 40, mean: 42.5, max: 90 }, words: { min: 2, median: 8, mean: 8.4, max: 17 },
    coverage: { tokens: 0.42, emptyTexts: 2, meanPerText: 0.5, backbone: 'glove-100d-avg' },
    examples: { billing: [{ path: '/ws/tickets/billing/1.txt', text: 'I was charged twice' }], shipping: [{ path: '/ws/tickets/shipping/1.txt', text: 'Where is my parcel?' }] },
  },
};

test('a text dataset: counts, texts per class with their files, lengths and coverage; no thumbnails; warnings count texts and call low coverage', () => {
  const p = datasetPreview(textScan, () => assert.fail("a text dataset has no thumbnails"));
  assert.equal(p.modality, 'text');
  assert.deepEqual(p.classes[0], { label: 'billing', count: 12, example: '/ws/tickets/billing/1.txt', texts: [{ path: '/ws/tickets/billing/1.txt', text: 'I was charged twice' }] });
  assert.deepEqual(p.text, { chars: textScan.text!.chars, words: textScan.text!.words, coverage: textScan.text!.coverage });
  assert.match(p.warnings.join('\n'), /few texts in 'shipping'/);
  assert.match(p.warnings.join('\n'), /only 42% of the words are known to glove-100d-avg \(2 texts have no known word\)/);
  assert.ok(!datasetPreview({ ...textScan, text: { ...textScan.text!, coverage: { ...textScan.text!.coverage, tokens: 0.9 } } }, (f) => f).warnings.some((w) => /known/.test(w)), 'no warning at 90%');
  // Re-made thumbnails leave a text dataset as it is.
  assert.deepEqual(withThumbs({ dataset: p }, () => 'x').dataset, p);
});

test('a text run: mistakes as excerpts (no thumbnail; the file name for runs without one), TF-IDF modality, coverage and tokenizer', () => {
  const coverage = { tokens: 0.93, emptyTexts: 0, meanPerText: 0.94 };
  const r = record({
    modality: 'text',
    text: { kind: 'word-average', tokenizer: 'lower-case words', coverage, stats: { chars: textScan.text!.chars, words: textScan.text!.words, examples: {} }, tfidfTerms: 40 },
    test: { ...record().test, mistakes: [{ path: '/ws/t/a/1.txt', label: 'a', predicted: 'b', probability: 0.8, text: 'my <b>parcel</b>' }, { path: '/ws/t.csv:7', label: 'b', predicted: 'a', probability: 0.6 }] },
  });
  const v = resultView('/runs/t', r, () => assert.fail('a text run has no thumbnails'));
  assert.equal(v.modality, 'text');
  assert.deepEqual(v.text, { coverage, tokenizer: 'lower-case words' });
  assert.deepEqual(v.mistakes, [{ path: '/ws/t/a/1.txt', label: 'a', predicted: 'b', probability: 0.8, text: 'my <b>parcel</b>', thumb: '' }, { path: '/ws/t.csv:7', label: 'b', predicted: 'a', probability: 0.6, text: 't.csv:7', thumb: '' }]);
  assert.deepEqual(withThumbs({ result: v }, () => 'x').result, v);
  assert.equal(resultView("/runs/i", record(), (f) => f).modality, undefined, 'image runs unchanged');
});

test('the backbone a modality trains on: the current one when it fits, else the bundled text backbone or the image default', () => {
  const list = [
    { id: 'mobilenet-v2-140', title: '', task: 'image' as const, format: 'graph' as const, featureSize: 1792, inputSize: 224, bundled: true, cached: true, approxBytes: 1 },
    { id: 'minilm-l6-v2', title: '', task: 'text' as const, format: 'onnx-encoder' as const, featureSize: 384, inputSize: 0, bundled: false, cached: true, approxBytes: 1 },
  ];
  assert.equal(backboneFor('text', 'mobilenet-v2-140', list, 'mobilenet-v2-140'), 'glove-100d-avg');
  assert.equal(backboneFor('text', 'minilm-l6-v2', list, 'mobilenet-v2-140'), 'minilm-l6-v2', 'a text backbone the user chose stays');
  assert.equal(backboneFor('image', 'minilm-l6-v2', list, 'mobilenet-v2-100'), 'mobilenet-v2-100');
  assert.equal(backboneFor('image', 'mobilenet-v2-140', list, 'x'), 'mobilenet-v2-140');
  // Before the list is loaded: only the text default counts as text.
  assert.equal(backboneFor('text', 'mobilenet-v2-140', [], 'x'), 'glove-100d-avg');
  assert.equal(backboneFor('image', 'glove-100d-avg', [], 'mobilenet-v2-140'), 'mobilenet-v2-140');
  assert.equal(backboneFor('image', '/ws/my/model.json', [], 'x'), '/ws/my/model.json');
});

test('a selection over the size cap is cut at a character boundary and says so; a model folder says its modality', () => {
  assert.deepEqual(capSelection('short', 10), { text: 'short' });
  const euro = '€€€€'; // 3 bytes each
  const c = capSelection(euro, 7);
  assert.equal(c.text, '€€', 'no broken character at the end');
  assert.deepEqual(c.cut, { bytes: 12, maxBytes: 7 });
  assert.ok(Buffer.byteLength(capSelection('a'.repeat(300_000), 100_000).text) === 100_000);
  const pick = textPredictionPick({ label: 'billing', probability: 0.8123, top: [{ label: 'billing', probability: 0.8123 }, { label: 'shipping', probability: 0.1 }], coverage: 0.9 }, c.cut);
  assert.equal(pick.title, 'Selection: billing (81.2%) · 90.0% of its words known · first 7 of 12 bytes');
  assert.deepEqual(pick.items, [{ label: 'billing', description: '81.2%' }, { label: 'shipping', description: '10.0%' }]);
  assert.equal(modelModality({ modality: 'text' }), 'text');
  assert.equal(modelModality({ labels: [], headstart: { modality: 'text' } }), 'text');
  for (const j of [{ modality: 'image' }, { labels: [] }, null, 'text', [1]]) assert.equal(modelModality(j), 'image', JSON.stringify(j));
});

const RESOLVED: OnnxPreprocessingResult = {
  ok: true,
  preprocessing: {
    input: 'pixel_values', size: 224, layout: 'NCHW', channels: 3, channelOrder: 'RGB', range: [0, 1], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225],
    output: 'pooler_output', pooling: 'avg', featureSize: 768, outputs: ['last_hidden_state', 'pooler_output'], sidecar: '/ws/models/dino.onnx.json',
    from: { input: 'graph', size: 'graph', layout: 'graph', channelOrder: 'default', range: 'sidecar', mean: 'sidecar', std: 'sidecar', output: 'flag', pooling: 'default' },
  },
};

test('ONNX preprocessing → the panel\'s fields: values as texts, each source in words (the sidecar by its name), the user\'s edits marked', () => {
  const v = onnxPreprocessingView('/ws/models/dino.onnx', RESOLVED, { output: 'pooler_output' });
  assert.deepEqual(v.text, { input: 'pixel_values', size: '224', layout: 'NCHW', channelOrder: 'RGB', range: '0-1', mean: '0.485, 0.456, 0.406', std: '0.229, 0.224, 0.225', output: 'pooler_output', pooling: 'avg' });
  assert.deepEqual(v.from, { input: 'model graph', size: 'model graph', layout: 'model graph', channelOrder: 'default', range: 'sidecar dino.onnx.json', mean: 'sidecar dino.onnx.json', std: 'sidecar dino.onnx.json', output: 'set here', pooling: 'default' });
  assert.deepEqual([v.pending, v.refused, v.edited, v.channels, v.featureSize, v.outputs], [false, undefined, ['output'], 3, 768, ['last_hidden_state', 'pooler_output']]);
  assert.equal(onnxPreprocessingView('/m.onnx', { ok: true, preprocessing: { ...RESOLVED.preprocessing, range: [0, 255] } }).text.range, '0-255');
});

test('ONNX preprocessing refused or pending: the reason, and the user\'s edits in their fields (a dynamic size to fill in)', () => {
  const refused = onnxPreprocessingView('/m.onnx', { ok: false, reason: "input 'x' has a dynamic spatial size" }, { size: 300, range: [-1, 1] });
  assert.equal(refused.refused, "input 'x' has a dynamic spatial size");
  assert.deepEqual([refused.text.size, refused.text.range, refused.text.mean, refused.from.size, refused.from.mean, refused.outputs], ['300', '-1-1', '', 'set here', '', []]);
  const pending = onnxPreprocessingView('/m.onnx', undefined);
  assert.deepEqual([pending.pending, pending.refused, pending.text.size], [true, undefined, '']);
});

test('the preprocessing edits go to the worker with a .onnx backbone only, and only when there are some', () => {
  const edits = { mean: [0.5, 0.5, 0.5] };
  assert.deepEqual(trainRequest({ ...form, backbone: '/ws/m.onnx', onnxInput: edits }, '/o', []).onnxInput, edits);
  assert.deepEqual(trainRequest({ ...form, backbone: 'onnx:/ws/m.onnx', onnxInput: edits }, '/o', []).onnxInput, edits, 'a past run\'s backbone');
  assert.ok(!('onnxInput' in trainRequest({ ...form, backbone: 'mobilenet-v2-100', onnxInput: edits }, '/o', [])), 'not for a catalogue backbone');
  assert.ok(!('onnxInput' in trainRequest({ ...form, backbone: '/ws/m.onnx', onnxInput: {} }, '/o', [])), 'no edits, no field');
});
