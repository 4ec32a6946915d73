/**
 * What the webview may send for the new options: the head, auto (null) epochs
 * and hidden units, int8 and slimming. Messages are rebuilt from their checked
 * fields, so nothing else rides along.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_FORM } from '../shared/panelProtocol';
import { openableFiles, parseFromWebview, textPlace } from './policy';

const form = { ...DEFAULT_FORM, data: 'd', backbone: 'b' };

test('the form: head one of auto / linear / mlp (absent: auto), null epochs and hidden units allowed, extra fields dropped', () => {
  const r = parseFromWebview({ type: 'start', options: { ...form, head: 'linear', extra: '<script>' } });
  assert.ok(r.ok);
  assert.deepEqual(r.msg, { type: 'start', options: { ...form, head: 'linear' } });
  const { head: _head, ...noHead } = form;
  const old = parseFromWebview({ type: 'options', options: noHead });
  assert.ok(old.ok && old.msg.type === 'options' && old.msg.options.head === 'auto', 'a webview of an earlier version');
  for (const head of ['cnn', 7, null]) assert.equal(parseFromWebview({ type: 'start', options: { ...form, head } }).ok, false, String(head));
});

test('export choices: int8 and slim (off, auto, a number) pass; other slim values and quantize names are dropped', () => {
  const c = { format: 'onnx', quantize: 'int8', prune: 0, maxDrop: 1 };
  for (const slim of [undefined, 'off', 'auto', 0.4]) {
    const r = parseFromWebview({ type: 'export', out: 'm', choices: { ...c, slim } });
    assert.ok(r.ok, String(slim));
    assert.deepEqual(r.msg, { type: 'export', out: 'm', choices: slim === undefined ? c : { ...c, slim } });
  }
  for (const bad of [{ ...c, slim: 'all' }, { ...c, slim: ['auto'] }, { ...c, quantize: 'int4' }, { ...c, format: 'tflite' }]) assert.equal(parseFromWebview({ type: 'export', out: 'm', choices: bad }).ok, false, JSON.stringify(bad));
});

test('the panel opens the texts it shows and the text mistakes; a manifest text is its manifest at that line', () => {
  const state = {
    dataset: { root: '/ws/t', total: 2, modality: 'text' as const, skipped: [], warnings: [], classes: [{ label: 'a', count: 1, example: '/ws/t/a/1.txt', texts: [{ path: '/ws/t/a/1.txt', text: 'x' }, { path: '/ws/t/a/2.txt', text: 'y' }] }] },
  };
  const files = openableFiles(state);
  assert.ok(files.has('/ws/t/a/2.txt'), 'a text shown (not the class example) opens');
  assert.ok(!files.has('/ws/t/a/3.txt'));
  // A hostile `texts` (not an array, entries without a path) adds nothing.
  assert.deepEqual([...openableFiles({ dataset: { ...state.dataset, classes: [{ label: 'a', count: 1, texts: 'x' as never }, { label: 'b', count: 1, texts: [null, { text: 'no path' }] as never }] } })], []);
  assert.deepEqual(textPlace('/ws/data.csv:12'), { file: '/ws/data.csv', line: 12 });
  assert.deepEqual(textPlace('/ws/d.JSONL:3'), { file: '/ws/d.JSONL', line: 3 });
  assert.deepEqual(textPlace('/ws/t/a/1.txt'), { file: '/ws/t/a/1.txt' });
  assert.deepEqual(textPlace('/ws/notes:12'), { file: '/ws/notes:12' }, 'only manifests have lines');
});

test('ONNX preprocessing edits: valid ones are rebuilt from their known fields; hostile types and out-of-range values drop the message', () => {
  const onnxInput = { size: 96, layout: 'NHWC', channelOrder: 'BGR', range: [0, 255], mean: [127, 127, 127], std: [128], output: 'features', pooling: 'max' };
  const r = parseFromWebview({ type: 'start', options: { ...form, backbone: '/ws/m.onnx', onnxInput: { ...onnxInput, resize: 'stretch', __proto__: { polluted: 1 } } } });
  assert.ok(r.ok && r.msg.type === 'start');
  assert.deepEqual(r.msg.options.onnxInput, onnxInput, 'unknown keys are left behind');
  const none = parseFromWebview({ type: 'options', options: { ...form, onnxInput: {} } });
  assert.ok(none.ok && none.msg.type === 'options' && !('onnxInput' in none.msg.options), 'no edits, no field');
  const hostile: unknown[] = [
    'mean=1',
    [1, 2],
    { size: '96' },
    { size: 96.5 },
    { size: 1e9 },
    { size: Number.NaN },
    { layout: 'nchw; rm -rf' },
    { range: [0, 2] },
    { range: '0-1' },
    { mean: [1, 2] },
    { mean: [1, 2, 3, 4] },
    { mean: Array(100_000).fill(0) },
    { mean: ['1', 2, 3] },
    { std: [0] },
    { std: [-1, 1, 1] },
    { std: [Infinity] },
    { output: '' },
    { output: 'x'.repeat(10_000) },
    { output: { toString: 'y' } },
    { pooling: 'sum' },
    { input: 7 },
  ];
  for (const bad of hostile) assert.equal(parseFromWebview({ type: 'start', options: { ...form, onnxInput: bad } }).ok, false, JSON.stringify(bad));
});
