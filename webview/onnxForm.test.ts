/// <reference types="node" />
/**
 * The ONNX preprocessing markup: each field shows its value and where it
 * came from, a refused model its reason; every value (a tensor name, the
 * sidecar's name, the reason: any text a model file carries) comes out escaped.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { OnnxPreprocessingView } from '../src/shared/panelProtocol';
import { onnxMarkup } from './onnxForm';

const HOSTILE = '"><img src=x onerror=alert(1)>';
const view: OnnxPreprocessingView = {
  backbone: '/ws/m.onnx',
  pending: false,
  text: { input: HOSTILE, size: '224', layout: 'NHWC', channelOrder: 'BGR', range: '0-255', mean: '127, 127, 127', std: '128, 128, 128', output: HOSTILE, pooling: 'max' },
  from: { input: 'model graph', size: 'model graph', layout: 'sidecar <b>.json', channelOrder: 'set here', range: 'default', mean: 'default', std: 'default', output: 'model graph', pooling: 'set here' },
  edited: ['channelOrder', 'pooling'],
  channels: 3,
  featureSize: 1280,
  outputs: [HOSTILE],
};

test('the preprocessing fields show each value with its source; choices are selected; values are escaped', () => {
  const m = onnxMarkup(view, false).value;
  assert.ok(!m.includes('<img'), 'no markup from a value');
  assert.ok(!m.includes('<b>'), 'no markup from a source');
  assert.ok(m.includes('&#34;&#62;&#60;img src=x onerror=alert(1)&#62;'), 'the hostile name shown as text');
  assert.match(m, /<vscode-option value="NHWC" selected>NHWC<\/vscode-option>/);
  assert.match(m, /<vscode-option value="BGR" selected>/);
  assert.match(m, /<vscode-option value="0-255" selected>/);
  assert.match(m, /<vscode-option value="max" selected>/);
  assert.match(m, /id="o-mean" data-onnx="mean" value="127, 127, 127"/);
  assert.match(m, /from: sidecar &#60;b&#62;\.json/);
  assert.match(m, /1280-d features/);
  assert.match(m, /id="onnx-refused" role="alert" hidden>/, 'no refusal shown');
  assert.ok(!/data-onnx="size"[^>]*disabled/.test(m));
  assert.match(onnxMarkup(view, true).value, /data-onnx="size"[^>]*disabled/, 'fields are locked while training');
});

test('a refused model shows its reason (escaped) and no feature size; a pending one says it is reading', () => {
  const refused = onnxMarkup({ ...view, refused: `input 'x' <script> has a dynamic size`, channels: undefined, featureSize: undefined }, false).value;
  assert.match(refused, /id="onnx-refused" role="alert" >input &#39;x&#39; &#60;script&#62; has a dynamic size<\/div>/);
  assert.ok(!refused.includes('features'));
  assert.match(onnxMarkup({ ...view, pending: true }, false).value, /Reading the model…/);
});
