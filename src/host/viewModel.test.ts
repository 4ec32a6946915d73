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
import type { ExportReport, RunRecord, Selection } from '../shared/records';
import { datasetPreview, datasetWarnings, exportRequest, exportView, formOfRun, newRunDir, progressView, resultView, runStamp, trainRequest, withThumbs } from './viewModel';

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
