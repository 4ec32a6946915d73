/**
 * What the webview may send for the new options: the head, auto (null) epochs
 * and hidden units, int8 and slimming. Messages are rebuilt from their checked
 * fields, so nothing else rides along.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_FORM } from '../shared/panelProtocol';
import { parseFromWebview } from './policy';

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
