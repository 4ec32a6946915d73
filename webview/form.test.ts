/// <reference types="node" />
/**
 * The panel's form as the user types it: text fields → options, and which
 * values validateForm refuses (the host runs the same check before training).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_FORM, type FormOptions, validateForm } from '../src/shared/panelProtocol';
import { NUMERIC_FIELDS, type NumericField, exportChoicesError, readFormValues } from './form';

const base: FormOptions = { ...DEFAULT_FORM, data: '', backbone: 'mobilenet-v2-140' };
const text = (over: Partial<Record<NumericField, string>> = {}): Record<NumericField, string> => ({ ...(Object.fromEntries(NUMERIC_FIELDS.map((k) => [k, String(DEFAULT_FORM[k])])) as Record<NumericField, string>), ...over });

test('text fields become numbers; the data path is trimmed; an empty backbone keeps the current one', () => {
  const o = readFormValues(base, { data: '  shapes ', backbone: '', numbers: text({ epochs: '12', learningRate: '1e-2' }) });
  assert.deepEqual(o, { ...base, data: 'shapes', epochs: 12, learningRate: 0.01 });
  assert.deepEqual(validateForm(o), {});
});

test('bad values are refused by field, with what is allowed', () => {
  const o = readFormValues(base, {
    data: '',
    backbone: 'b',
    numbers: text({ epochs: '', batchSize: '0', learningRate: '2', hiddenUnits: '1.5', dropout: '1', val: '0.6', test: '0', seed: 'abc', unfreeze: '-1', augment: '33' }),
  });
  assert.ok(Number.isNaN(o.epochs), 'an empty field is NaN, not 0');
  const errs = validateForm(o);
  assert.deepEqual(Object.keys(errs).sort(), ['augment', 'batchSize', 'data', 'dropout', 'epochs', 'hiddenUnits', 'learningRate', 'seed', 'test', 'unfreeze', 'val']);
  assert.equal(errs.epochs, 'a whole number from 1 to 1000');
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
