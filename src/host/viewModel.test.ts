/**
 * The host's view-model mappings: the form → the worker's options, dataset
 * warnings, run folder names, export and progress views, thumbnails.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { DEFAULT_FORM, type FormOptions, type PanelState } from '../shared/panelProtocol';
import type { ExportReport } from '../shared/records';
import { datasetPreview, datasetWarnings, exportView, newRunDir, progressView, runStamp, trainRequest, withThumbs } from './viewModel';

const form: FormOptions = { ...DEFAULT_FORM, data: '/ws/my data.csv', backbone: 'mobilenet-v2-100' };

test('the form maps onto the worker options: augment 0 is none, views otherwise; protected roots pass through', () => {
  const r = trainRequest(form, '/ws/runs/x', ['/ws']);
  assert.deepEqual(r, { data: '/ws/my data.csv', backbone: 'mobilenet-v2-100', out: '/ws/runs/x', epochs: 30, batchSize: 32, learningRate: 0.001, hiddenUnits: 128, dropout: 0.2, val: 0.15, test: 0.15, seed: 42, unfreeze: 0, augment: undefined, protectedRoots: ['/ws'] });
  assert.deepEqual(trainRequest({ ...form, augment: 3 }, '/o', []).augment, { views: 3 });
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

test('export view: the exported and float32 figures side by side', () => {
  const v = (bytes: number, accuracy: number) => ({ bytes, gzipBytes: bytes / 2, accuracy, macroF1: accuracy, msPerImage: 3 });
  const rep: ExportReport = { outDir: '/ws/m', format: 'tfjs', modelFormat: 'graph-model', quantize: 'uint8', maxDropPoints: 1, chosen: 'uint8', testImages: 9, float32: v(400, 0.9), exported: v(100, 0.89), skipped: [], backend: 'wasm', candidates: [{ name: 'uint8', sparsity: 0, bytes: 100, gzipBytes: 50, accuracy: 0.89, dropPoints: 1, withinBudget: true }] };
  const view = exportView(rep);
  assert.deepEqual([view.bytes, view.float32Bytes, view.accuracy, view.float32Accuracy, view.gzipBytes, view.msPerImage, view.chosen], [100, 400, 0.89, 0.9, 50, 3, 'uint8']);
  assert.deepEqual(view.candidates, [{ name: 'uint8', bytes: 100, gzipBytes: 50, accuracy: 0.89, withinBudget: true }]);
});

test('progress: extraction as counted, batches across all epochs; other events none', () => {
  assert.deepEqual(progressView({ type: 'progress', phase: 'extract', done: 3, total: 10, rate: 2.5, unit: 'images', eta: 4 }, 5), { phase: 'extract', done: 3, total: 10, eta: 4, detail: '2.5 images/s' });
  assert.deepEqual(progressView({ type: 'batch', epoch: 2, batch: 3, batches: 4, loss: 0.1234, accuracy: 1, imagesPerSecond: 1, eta: 9 }, 5), { phase: 'train', done: 7, total: 20, eta: 9, detail: 'epoch 2, loss 0.123' });
  assert.equal(progressView({ type: 'warning', message: 'w' }, 5), undefined);
});

test('thumbnails are made again for a new webview', () => {
  const state: Pick<PanelState, 'dataset' | 'result'> = {
    dataset: { root: '/d', total: 1, classes: [{ label: 'a', count: 1, example: '/d/a.jpg', thumb: 'old' }], skipped: [], warnings: [] },
    result: undefined,
  };
  assert.equal(withThumbs(state, (f) => `new:${f}`).dataset?.classes[0]?.thumb, 'new:/d/a.jpg');
});
