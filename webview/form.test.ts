/// <reference types="node" />
/**
 * The panel's form as the user types it: text fields → options, and which
 * values validateForm refuses (the host runs the same check before training).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_FORM, type FormOptions, type OnnxPreprocessingView, validateForm } from '../src/shared/panelProtocol';
import { NUMERIC_FIELDS, type NumericField, exportChoicesError, exportHint, fieldText, readFormValues, readOnnxEdits, readSlim } from './form';

const base: FormOptions = { ...DEFAULT_FORM, data: '', backbone: 'mobilenet-v2-140' };
const text = (over: Partial<Record<NumericField, string>> = {}): Record<NumericField, string> => ({ ...(Object.fromEntries(NUMERIC_FIELDS.map((k) => [k, fieldText(DEFAULT_FORM[k])])) as Record<NumericField, string>), ...over });

test('text fields become numbers; the data path is trimmed; an empty backbone keeps the current one', () => {
  const o = readFormValues(base, { data: '  shapes ', backbone: '', numbers: text({ epochs: '12', learningRate: '1e-2' }) });
  assert.deepEqual(o, { ...base, data: 'shapes', epochs: 12, learningRate: 0.01 });
  assert.deepEqual(validateForm(o), {});
});

test('epochs and hidden units left empty are auto (null), other empty fields are errors; the head comes from its dropdown', () => {
  assert.deepEqual([fieldText(DEFAULT_FORM.epochs), fieldText(DEFAULT_FORM.hiddenUnits), DEFAULT_FORM.head], ['', '', 'auto'], 'the form starts on auto');
  const o = readFormValues(base, { data: 'd', backbone: 'b', head: 'linear', numbers: text({ epochs: ' ', hiddenUnits: '', dropout: '' }) });
  assert.deepEqual([o.head, o.epochs, o.hiddenUnits], ['linear', null, null]);
  assert.ok(Number.isNaN(o.dropout));
  assert.deepEqual(Object.keys(validateForm(o)), ['dropout']);
  assert.equal(readFormValues(base, { data: 'd', backbone: 'b', head: '<script>', numbers: text() }).head, 'auto', 'an unknown head is not taken');
});

test('a head that contradicts the hidden units is refused before the engine refuses it', () => {
  const o = (head: FormOptions['head'], hiddenUnits: number | null) => validateForm({ ...base, data: 'd', head, hiddenUnits }).hiddenUnits;
  assert.match(o('mlp', 0) ?? '', /linear head/);
  assert.match(o('linear', 64) ?? '', /no hidden units/);
  for (const [head, h] of [['auto', 0], ['auto', 64], ['linear', 0], ['mlp', 64], ['mlp', null], ['linear', null]] as const) assert.equal(o(head, h), undefined, `${head} ${h}`);
});

test('bad values are refused by field, with what is allowed', () => {
  const o = readFormValues(base, {
    data: '',
    backbone: 'b',
    numbers: text({ epochs: 'x', batchSize: '0', learningRate: '2', hiddenUnits: '1.5', dropout: '1', val: '0.6', test: '0', seed: 'abc', unfreeze: '-1', augment: '33' }),
  });
  assert.ok(Number.isNaN(o.epochs as number), 'text that is no number is NaN (refused), not auto');
  const errs = validateForm(o);
  assert.deepEqual(Object.keys(errs).sort(), ['augment', 'batchSize', 'data', 'dropout', 'epochs', 'hiddenUnits', 'learningRate', 'seed', 'test', 'unfreeze', 'val']);
  assert.equal(errs.epochs, 'a whole number from 1 to 1000, or empty for auto');
  assert.equal(errs.test, 'a fraction above 0, at most 0.5');
  // The limits themselves are allowed.
  const edges = readFormValues(base, { data: 'd', backbone: 'b', numbers: text({ epochs: '1000', batchSize: '4096', learningRate: '1', dropout: '0', val: '0.5', test: '0.5', unfreeze: '200', augment: '32' }) });
  assert.deepEqual(validateForm(edges), {});
});

test('export choices: a folder, sparsity below 1, a budget of 0–100 points, and what ONNX supports', () => {
  const ok = { format: 'tfjs', quantize: 'auto', prune: 0.5, maxDrop: 1 } as const;
  assert.equal(exportChoicesError('models/m', ok), '');
  assert.match(exportChoicesError('', ok), /choose a folder/);
  assert.match(exportChoicesError('m', { ...ok, prune: 1 }), /sparsity/);
  assert.match(exportChoicesError('m', { ...ok, prune: Number.NaN }), /sparsity/);
  assert.match(exportChoicesError('m', { ...ok, maxDrop: 101 }), /max drop/);
  assert.match(exportChoicesError('m', { ...ok, format: 'onnx', prune: 0, quantize: 'uint16' }), /ONNX exports store/);
  assert.equal(exportChoicesError('m', { ...ok, format: 'onnx' }), '', 'ONNX exports take a sparsity too');
});

test('int8 only with ONNX, slimming with either format but not with head pruning, and the form says why; slim is off, auto or a fraction in (0, 0.9]', () => {
  const onnx = { format: 'onnx', quantize: 'int8', prune: 0, maxDrop: 1 } as const;
  assert.equal(exportChoicesError('m', { ...onnx, prune: 0.3 }), '', 'ONNX exports take a sparsity (backbone and head kernels)');
  assert.equal(exportChoicesError('m', onnx), '');
  assert.match(exportChoicesError('m', { ...onnx, format: 'tfjs' }), /int8 is static quantization for ONNX Runtime: pick the ONNX format/);
  assert.equal(exportChoicesError('m', { ...onnx, slim: 'auto' }), '');
  assert.equal(exportChoicesError('m', { ...onnx, slim: 0.9 }), '');
  assert.equal(exportChoicesError('m', { ...onnx, format: 'tfjs', quantize: 'none', slim: 'auto' }), '');
  assert.match(exportChoicesError('m', { ...onnx, format: 'tfjs', quantize: 'none', slim: 'auto', prune: 0.5 }), /sparsity does not apply on top of it/);
  assert.equal(exportChoicesError('m', { ...onnx, format: 'tfjs', quantize: 'none', slim: 'off' }), '');
  for (const bad of [0, 0.95, -0.1, Number.NaN]) assert.match(exportChoicesError('m', { ...onnx, slim: bad }), /above 0 and at most 0.9/, String(bad));
  assert.deepEqual([readSlim('off', '0.3'), readSlim('auto', ''), readSlim('fraction', '0.3')], ['off', 'auto', 0.3]);
  assert.ok(Number.isNaN(readSlim('fraction', '') as number), 'an empty fraction is refused, not 0');
  assert.match(exportHint('tfjs'), /slimming is available \(int8 needs the ONNX format\)/);
  assert.match(exportHint('onnx'), /never the test split/);
});

const VIEW: OnnxPreprocessingView = {
  backbone: '/ws/m.onnx',
  pending: false,
  text: { input: 'pixel_values', size: '224', layout: 'NCHW', channelOrder: 'RGB', range: '0-1', mean: '0.485, 0.456, 0.406', std: '0.229, 0.224, 0.225', output: 'pooler_output', pooling: 'avg' },
  from: { input: 'model graph', size: 'model graph', layout: 'model graph', channelOrder: 'default', range: 'sidecar m.onnx.json', mean: 'sidecar m.onnx.json', std: 'sidecar m.onnx.json', output: 'set here', pooling: 'default' },
  edited: ['output'],
  channels: 3,
  featureSize: 768,
  outputs: ['last_hidden_state', 'pooler_output'],
};

test('ONNX preprocessing fields: only the changed ones (and earlier edits not cleared) become edits, typed', () => {
  assert.deepEqual(readOnnxEdits(VIEW, {}), { edits: { output: 'pooler_output' }, errors: {} }, 'untouched: the earlier edit stays, nothing else');
  const r = readOnnxEdits(VIEW, { mean: '0.5,0.5 0.5', range: '-1-1', pooling: 'max', size: ' 224 ', output: '' });
  assert.deepEqual(r, { edits: { range: [-1, 1], mean: [0.5, 0.5, 0.5], pooling: 'max' }, errors: {} }, 'an emptied field goes back to the model; an unchanged size is no edit');
  assert.deepEqual(readOnnxEdits(VIEW, { std: '2' }).edits, { std: [2], output: 'pooler_output' }, 'one value for every channel');
  assert.deepEqual(readOnnxEdits({ ...VIEW, edited: [], text: { ...VIEW.text, size: '' }, refused: 'dynamic size' }, { size: '300' }).edits, { size: 300 }, 'a refused model takes a size');
});

test('ONNX preprocessing fields out of range are named with the ranges of the options table; the form refuses them too', () => {
  const errs = (texts: Record<string, string>) => readOnnxEdits({ ...VIEW, edited: [] }, texts).errors;
  assert.match(errs({ size: '4' }).size ?? '', /whole number of pixels from 8 to 2048/);
  assert.match(errs({ size: '22.5' }).size ?? '', /whole number/);
  assert.match(errs({ std: '0, 1, 1' }).std ?? '', /above 0 to 1000/);
  assert.match(errs({ mean: '1, 2' }).mean ?? '', /1 or 3 numbers from -1000 to 1000/);
  assert.match(errs({ mean: '1, x, 3' }).mean ?? '', /1 or 3 numbers/);
  assert.match(errs({ mean: '1e999' }).mean ?? '', /1 or 3 numbers/);
  assert.match(errs({ range: '0-2' }).range ?? '', /one of 0-1, 0-255, -1-1/);
  assert.match(errs({ layout: 'CHWN' }).layout ?? '', /NCHW or NHWC/);
  assert.match(readOnnxEdits({ ...VIEW, channels: 1, edited: [] }, { mean: '0.1, 0.2, 0.3' }).errors.mean ?? '', /^1 number from/, 'a grey model takes one value');
  assert.deepEqual(errs({ mean: '-3.5', size: '2048' }), {});
  // The same check in the form's validation (the host's, before training).
  assert.match(validateForm({ ...base, data: 'd', backbone: '/ws/m.onnx', onnxInput: { std: [0] } }).onnxInput ?? '', /ONNX preprocessing std: 1 or 3 numbers above 0/);
  assert.deepEqual(validateForm({ ...base, data: 'd', backbone: '/ws/m.onnx', onnxInput: { std: [0.5], size: 96, output: 'y' } }), {});
});
