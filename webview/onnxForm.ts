/**
 * Markup of the ONNX preprocessing of a foreign backbone in the options
 * section: each editable field with its value and where it came from, the
 * model's input and feature size, and the refusal when training would refuse
 * the model. No DOM here (node:test checks it): every value (tensor names,
 * the sidecar's name, the reason) goes through html``, which escapes it.
 */
import { type SafeHtml, count, html, trusted } from '../src/shared/html';
import { CHANNEL_ORDER_CHOICES, LAYOUT_CHOICES, POOLING_CHOICES, RANGE_CHOICES } from '../src/shared/options';
import type { OnnxPreprocessingView } from '../src/shared/panelProtocol';
import { ONNX_EDITABLE, type OnnxEditable } from './form';

/** The ONNX preprocessing fields: label, and the choices of a dropdown (none: a text field) with its hint. */
export const ONNX_FIELDS: Record<OnnxEditable, { label: string; choices?: readonly string[]; hint?: string }> = {
  size: { label: 'Input size (px)', hint: 'square side' },
  layout: { label: 'Layout', choices: LAYOUT_CHOICES },
  channelOrder: { label: 'Channel order', choices: CHANNEL_ORDER_CHOICES },
  range: { label: 'Value range', choices: RANGE_CHOICES },
  mean: { label: 'Mean', hint: 'per channel, in range units' },
  std: { label: 'Std', hint: 'per channel, in range units' },
  output: { label: 'Feature output' },
  pooling: { label: 'Pooling', choices: POOLING_CHOICES, hint: 'of a spatial map' },
};

/** The preprocessing view's markup: each field with its value and where it came from; the refusal, if any. */
export function onnxMarkup(v: OnnxPreprocessingView, running: boolean): SafeHtml {
  const off = running ? trusted('disabled') : '';
  const field = (k: OnnxEditable) => {
    const f = ONNX_FIELDS[k];
    const hint = [f.hint, k === 'output' && v.outputs.length ? `outputs: ${v.outputs.join(', ')}` : '', v.from[k] ? `from: ${v.from[k]}` : ''].filter(Boolean).join(' · ');
    const control = f.choices
      ? html`<label for="o-${k}">${f.label}</label><br><vscode-dropdown id="o-${k}" data-onnx="${k}" ${off}><vscode-option value="">the model's own</vscode-option>${f.choices.map((c) => html`<vscode-option value="${c}" ${c === v.text[k] ? trusted('selected') : ''}>${c}</vscode-option>`)}</vscode-dropdown>`
      : html`<vscode-text-field id="o-${k}" data-onnx="${k}" value="${v.text[k]}" placeholder="the model's own" ${off}>${f.label}</vscode-text-field>`;
    return html`<div>${control}<div class="hint" id="o-${k}-from">${hint}</div><div class="field-error" id="o-${k}-err"></div></div>`;
  };
  const about = v.pending
    ? 'Reading the model…'
    : v.refused
      ? ''
      : `Input '${v.text.input}' (${v.channels === 1 ? 'grey' : 'colour'}; from: ${v.from.input}) → ${count(v.featureSize)}-d features. Change a value to override the sidecar and the graph; empty a field to go back to them.`;
  return html`<h3>ONNX preprocessing</h3><p class="muted" id="onnx-about">${about}</p>
    <div class="error" id="onnx-refused" role="alert" ${v.refused ? '' : trusted('hidden')}>${v.refused ?? ''}</div>
    <div class="grid">${ONNX_EDITABLE.map(field)}</div><div class="field-error" id="f-onnxInput-err"></div>`;
}
