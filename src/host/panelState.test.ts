/**
 * The panel's state transitions, walked as the training service walks them:
 * start → phases and epochs → done / cancelled / failed, a past run opened
 * (what a reload of the panel shows), and the store that sends every change.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EngineEvent } from '../shared/events';
import type { PanelState } from '../shared/panelProtocol';
import type { RunRecord, ScanSummary } from '../shared/records';
import { PanelStore, datasetScanned, engineEvent, initialPanelState, onnxRefusal, onnxResolved, optionsChanged, runCancelled, runDone, runFailed, runOpened, runStarted } from './panelState';
import { resultView } from './viewModel';

const apply = (s: PanelState, patch: Partial<PanelState> | undefined): PanelState => ({ ...s, ...patch });
const thumb = (p: string) => `thumb:${p}`;

const epoch = (n: number): EngineEvent => ({ type: 'epoch', totalEpochs: 5, metrics: { epoch: n, loss: 1 / n, accuracy: n / 10, valLoss: 1.2 / n, valAccuracy: n / 12, seconds: 0.1 } });

function record(over: Partial<RunRecord> = {}): RunRecord {
  return {
    version: 1,
    createdAt: '2026-01-01T00:00:00.000Z',
    config: { data: '/ws/shapes', backbone: 'mobilenet-v2-100', epochs: 7, batchSize: 16, learningRate: 0.01, hiddenUnits: 64, dropout: 0.1, val: 0.2, test: 0.2, seed: 3, augment: { views: 2 } },
    backend: 'wasm',
    engine: 'onnxruntime',
    backbone: { id: 'mobilenet-v2-100', title: 'MobileNetV2' },
    labels: ['a', 'b'],
    dataset: { root: '/ws/shapes', kind: 'folders', classes: ['a', 'b'], counts: {}, total: 20, skipped: [], warnings: [] },
    history: [{ epoch: 1, loss: 0.5, accuracy: 0.8, valLoss: 0.6, valAccuracy: 0.7, seconds: 1 }],
    test: { accuracy: 0.9, macroF1: 0.88, count: 10, labels: ['a', 'b'], perClass: [], confusion: [[5, 0], [1, 4]], mistakes: Array.from({ length: 20 }, (_, i) => ({ path: `/ws/shapes/b/${i}.jpg`, label: 'b', predicted: 'a', probability: 0.6 })) },
    baseline: { description: 'pixels', accuracy: 0.5, macroF1: 0.4, gainPoints: 40, verdict: 'the backbone helps' },
    timings: { scanSeconds: 0, extractSeconds: 1, trainSeconds: 2, totalSeconds: 3.5, imagesPerSecond: 10 },
    ...over,
  };
}

test('start → phases and epochs → done: the run is shown, its curves kept, the results set', () => {
  let s = initialPanelState('mobilenet-v2-140', true);
  assert.equal(s.running, false);
  s = apply(s, { error: 'old error', notice: 'old notice', result: resultView('/old', record(), thumb) });
  s = apply(s, runStarted({ ...s.options, data: '/ws/shapes', epochs: 5 }));
  assert.deepEqual([s.running, s.phase, s.totalEpochs, s.error, s.notice, s.result, s.history], [true, 'scan', 5, undefined, undefined, undefined, []]);
  s = apply(s, engineEvent(s, { type: 'phase', phase: 'extract', message: 'extracting' }));
  assert.deepEqual([s.phase, s.phaseMessage], ['extract', 'extracting']);
  s = apply(s, engineEvent(s, epoch(1)));
  s = apply(s, engineEvent(s, epoch(2)));
  assert.deepEqual(s.history.map((h) => h.epoch), [1, 2]);
  assert.equal(engineEvent(s, { type: 'log', message: 'x' }), undefined, 'a log line changes no state');
  const result = resultView('/ws/runs/r1', record(), thumb);
  s = apply(s, runDone(result, [{ runDir: '/ws/runs/r1', name: 'r1', createdAt: 'x', accuracy: 0.9, backbone: 'b', classes: 2 }], 12.34));
  assert.deepEqual([s.running, s.phase, s.phaseMessage, s.notice], [false, 'idle', '', 'Trained in 12.3 s']);
  assert.equal(s.result?.runDir, '/ws/runs/r1');
  assert.equal(s.runs.length, 1);
  assert.equal(s.history.length, 2, 'the curves stay');
});

test('start → cancelled / failed: idle again, with a notice or an error, and no result', () => {
  const base = initialPanelState('b', true);
  const running = apply(base, runStarted({ ...base.options, data: '/d' }));
  const cancelled = apply(running, runCancelled('Training'));
  assert.deepEqual([cancelled.running, cancelled.phase, cancelled.notice, cancelled.error, cancelled.result], [false, 'idle', 'Training cancelled; nothing was saved.', undefined, undefined]);
  assert.equal(apply(running, runCancelled('Distillation')).notice, 'Distillation cancelled.');
  const failed = apply(running, runFailed('the Headstart worker process stopped unexpectedly'));
  assert.deepEqual([failed.running, failed.phase, failed.error], [false, 'idle', 'the Headstart worker process stopped unexpectedly']);
});

test('a past run opened (a reload of the panel) restores its options, curves and results', () => {
  const s = apply(initialPanelState('mobilenet-v2-140', true), { error: 'stale', exported: { outDir: '/x' } as PanelState['exported'] });
  const r = record();
  const next = apply(s, runOpened(s, '/ws/runs/r1', r, thumb, 'r1'));
  // No `selection` (an early version, or a fine-tuned run): the epochs and hidden units it used are kept as set.
  assert.deepEqual(next.options, { data: '/ws/shapes', backbone: 'mobilenet-v2-100', head: 'auto', epochs: 7, batchSize: 16, learningRate: 0.01, hiddenUnits: 64, dropout: 0.1, val: 0.2, test: 0.2, seed: 3, unfreeze: 0, augment: 2 });
  assert.deepEqual(next.history, r.history);
  assert.equal(next.totalEpochs, 7);
  assert.equal(next.result?.accuracy, 0.9);
  assert.equal(next.result?.engine, 'onnxruntime');
  assert.equal(next.result?.mistakes.length, 12, 'at most 12 mistakes shown');
  assert.equal(next.result?.mistakes[0]?.thumb, 'thumb:/ws/shapes/b/0.jpg');
  assert.deepEqual([next.error, next.exported, next.notice, next.exportDefault], [undefined, undefined, 'Showing run r1', 'models/shapes']);
  // A run.json of an early version has no engine: the backend names it.
  const { engine: _engine, ...old } = r;
  assert.equal(runOpened(s, '/r', old, thumb, 'r').result?.engine, 'tfjs-wasm');
});

test('a graph backbone cannot be unfrozen: choosing one sets unfreeze to 0', () => {
  const s = apply(initialPanelState('g', true), {
    backbones: [
      { id: 'g', title: '', format: 'graph', featureSize: 1, inputSize: 1, bundled: true, cached: true, approxBytes: 1 },
      { id: 'l', title: '', format: 'layers', featureSize: 1, inputSize: 1, bundled: true, cached: true, approxBytes: 1 },
    ],
  });
  const layers = apply(s, optionsChanged(s, { backbone: 'l', unfreeze: 4 }));
  assert.deepEqual([layers.options.unfreeze, layers.unfreezeSupported], [4, true]);
  const graph = apply(layers, optionsChanged(layers, { backbone: 'g' }));
  assert.deepEqual([graph.options.unfreeze, graph.unfreezeSupported], [0, false]);
});

test('the store sends the whole new state on every change, with trust as it is now', () => {
  let trusted = true;
  const store = new PanelStore(initialPanelState('b', true), () => trusted);
  const seen: PanelState[] = [];
  store.onDidChange((s) => seen.push(s));
  store.update({ phase: 'extract' });
  trusted = false;
  store.update({ notice: 'n' });
  assert.deepEqual(seen.map((s) => [s.phase, s.notice, s.trusted]), [['extract', undefined, true], ['extract', 'n', false]]);
  assert.equal(store.state, seen[1]);
  store.dispose();
});

test('a scanned text dataset switches an image backbone to the bundled text one (and back for images), and says so', () => {
  const backbones = [{ id: 'mobilenet-v2-140', title: '', task: 'image' as const, format: 'graph' as const, featureSize: 1792, inputSize: 224, bundled: true, cached: true, approxBytes: 1 }];
  let s: PanelState = { ...initialPanelState('mobilenet-v2-140', true), backbones };
  const texts: ScanSummary = { root: '/ws/tickets', kind: 'text-folders', modality: 'text', counts: { a: 10, b: 10 }, examples: {}, skipped: [], total: 20, text: { chars: { min: 1, median: 2, mean: 2, max: 3 }, words: { min: 1, median: 1, mean: 1, max: 2 }, coverage: { tokens: 1, emptyTexts: 0, meanPerText: 1, backbone: 'glove-100d-avg' }, examples: {} } };
  s = apply(s, datasetScanned(s, texts, thumb, 'mobilenet-v2-140'));
  assert.equal(s.options.backbone, 'glove-100d-avg');
  assert.equal(s.notice, 'Texts: backbone set to glove-100d-avg');
  assert.equal(s.dataset?.modality, 'text');
  assert.equal(s.exportDefault, 'models/tickets');
  // The same dataset again: nothing to switch, no notice.
  const again = datasetScanned(s, texts, thumb, 'mobilenet-v2-140');
  assert.ok(!('options' in again) && !('notice' in again));
  const images: ScanSummary = { root: '/ws/shapes', kind: 'folders', counts: { a: 10, b: 10 }, examples: {}, skipped: [], total: 20 };
  s = apply(s, datasetScanned(s, images, thumb, 'mobilenet-v2-100'));
  assert.equal(s.options.backbone, 'mobilenet-v2-100', 'back to the image default of the settings');
});

test('an ONNX model chosen: its preprocessing is pending until the worker answers; edits make it pending again, keeping the values shown; a stale answer is dropped', () => {
  let s = initialPanelState('mobilenet-v2-140', true);
  assert.equal(apply(s, optionsChanged(s, { backbone: 'mobilenet-v2-100' })).onnxPreprocessing, undefined, 'a catalogue backbone has none');
  s = apply(s, optionsChanged(s, { backbone: '/ws/m.onnx' }));
  assert.deepEqual([s.onnxPreprocessing?.backbone, s.onnxPreprocessing?.pending], ['/ws/m.onnx', true]);
  const ok = { ok: true as const, preprocessing: { input: 'x', size: 32, layout: 'NCHW' as const, channels: 3 as const, channelOrder: 'RGB' as const, range: [0, 1] as [number, number], mean: [0, 0, 0], std: [1, 1, 1], output: 'y', pooling: 'avg' as const, featureSize: 4, outputs: ['y'], from: { input: 'graph', size: 'graph', layout: 'graph', channelOrder: 'default', range: 'default', mean: 'default', std: 'default', output: 'graph', pooling: 'default' } as const } };
  s = apply(s, onnxResolved(s, '/ws/m.onnx', undefined, ok));
  assert.deepEqual([s.onnxPreprocessing?.pending, s.onnxPreprocessing?.text.size], [false, '32']);
  // An edit: pending again, the values still shown, the edited field marked.
  s = apply(s, optionsChanged(s, { onnxInput: { mean: [0.5, 0.5, 0.5] } }));
  assert.deepEqual([s.onnxPreprocessing?.pending, s.onnxPreprocessing?.text.size, s.onnxPreprocessing?.edited], [true, '32', ['mean']]);
  assert.equal(onnxResolved(s, '/ws/m.onnx', undefined, ok), undefined, 'the answer for the options before the edit is stale');
  s = apply(s, onnxResolved(s, '/ws/m.onnx', { mean: [0.5, 0.5, 0.5] }, { ok: true, preprocessing: { ...ok.preprocessing, mean: [0.5, 0.5, 0.5], from: { ...ok.preprocessing.from, mean: 'flag' } } }));
  assert.deepEqual([s.onnxPreprocessing?.pending, s.onnxPreprocessing?.text.mean, s.onnxPreprocessing?.from.mean], [false, '0.5, 0.5, 0.5', 'set here']);
  // Unrelated options keep the view as it is (no new request).
  const same = apply(s, optionsChanged(s, { epochs: 5 }));
  assert.equal(same.onnxPreprocessing, s.onnxPreprocessing);
  // Another backbone drops the edits (they were this model's) and the view.
  const other = apply(s, optionsChanged(s, { backbone: 'mobilenet-v2-140', onnxInput: { mean: [0.5, 0.5, 0.5] } }));
  assert.deepEqual([other.options.onnxInput, other.onnxPreprocessing], [undefined, undefined]);
  const second = apply(s, optionsChanged(s, { backbone: '/ws/other.onnx', onnxInput: { mean: [0.5, 0.5, 0.5] } }));
  assert.deepEqual([second.options.onnxInput, second.onnxPreprocessing?.backbone, second.onnxPreprocessing?.pending, second.onnxPreprocessing?.text.mean], [undefined, '/ws/other.onnx', true, '']);
});

test('a refused ONNX model stops Start with its reason; another backbone (a text dataset switched it) does not', () => {
  let s = initialPanelState('mobilenet-v2-140', true);
  s = apply(s, optionsChanged(s, { backbone: '/ws/m.onnx' }));
  s = apply(s, onnxResolved(s, '/ws/m.onnx', undefined, { ok: false, reason: "/ws/m.onnx is not an ONNX model (index out of range)" }));
  assert.equal(onnxRefusal(s, s.options), 'the ONNX model cannot be used: /ws/m.onnx is not an ONNX model (index out of range)');
  assert.equal(onnxRefusal(s, { ...s.options, backbone: 'glove-100d-avg' }), undefined);
  assert.equal(onnxRefusal({}, s.options), undefined, 'not known yet: the engine decides');
});
