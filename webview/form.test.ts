/// <reference types="node" />
/**
 * The panel's form as the user types it: text fields → options, and which
 * values validateForm refuses (the host runs the same check before training).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_FORM, type FormOptions, validateForm } from '../src/shared/panelProtocol';
import { NUMERIC_FIELDS, type NumericField, exportChoicesError, exportHint, fieldText, readFormValues, readSlim } from './form';

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
  assert.match(exportChoicesError('m', { ...ok, format: 'onnx' }), /applies to TensorFlow.js/);
});

test('int8 only with ONNX, slimming with either format but not with head pruning, and the form says why; slim is off, auto or a fraction in (0, 0.9]', () => {
  const onnx = { format: 'onnx', quantize: 'int8', prune: 0, maxDrop: 1 } as const;
  assert.equal(exportChoicesError('m', onnx), '');
  assert.match(exportChoicesError('m', { ...onnx, format: 'tfjs' }), /int8 is static quantization for ONNX Runtime: pick the ONNX format/);
  assert.equal(exportChoicesError('m', { ...onnx, slim: 'auto' }), '');
  assert.equal(exportChoicesError('m', { ...onnx, slim: 0.9 }), '');
  assert.equal(exportChoicesError('m', { ...onnx, format: 'tfjs', quantize: 'none', slim: 'auto' }), '');
  assert.match(exportChoicesError('m', { ...onnx, format: 'tfjs', quantize: 'none', slim: 'auto', prune: 0.5 }), /head sparsity does not apply/);
  assert.equal(exportChoicesError('m', { ...onnx, format: 'tfjs', quantize: 'none', slim: 'off' }), '');
  for (const bad of [0, 0.95, -0.1, Number.NaN]) assert.match(exportChoicesError('m', { ...onnx, slim: bad }), /above 0 and at most 0.9/, String(bad));
  assert.deepEqual([readSlim('off', '0.3'), readSlim('auto', ''), readSlim('fraction', '0.3')], ['off', 'auto', 0.3]);
  assert.ok(Number.isNaN(readSlim('fraction', '') as number), 'an empty fraction is refused, not 0');
  assert.match(exportHint('tfjs'), /slimming is available \(int8 needs the ONNX format\)/);
  assert.match(exportHint('onnx'), /never the test split/);
});
