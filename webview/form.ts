/**
 * The panel's forms as text fields give them, turned into typed options, and
 * the export choices' checks. No DOM here: node:test checks it.
 */
import { HEAD_CHOICES, type HeadChoice, SLIM_MAX_FRACTION, type SlimChoice } from '../src/shared/choices';
import { type OnnxInputField, type OnnxInputOptions, onnxInputErrors, rangePair } from '../src/shared/onnxInput';
import type { ExportChoices, FormOptions, OnnxPreprocessingView } from '../src/shared/panelProtocol';

/** The number fields of the options form, in the order shown. */
export const NUMERIC_FIELDS = ['epochs', 'batchSize', 'learningRate', 'hiddenUnits', 'dropout', 'val', 'test', 'seed', 'unfreeze', 'augment'] as const satisfies ReadonlyArray<keyof FormOptions>;
export type NumericField = (typeof NUMERIC_FIELDS)[number];

/** Number fields that may be left empty: the engine then decides (early stopping, cross-validated head). */
export const AUTO_FIELDS: ReadonlySet<NumericField> = new Set(['epochs', 'hiddenUnits']);

/** A number field's text: empty is NaN (validateForm then names the field), otherwise Number(text). */
export function fieldNumber(text: string): number {
  return text.trim() === '' ? Number.NaN : Number(text);
}

/** The form's text fields over `base` (the options the host sent): what the webview posts. Empty auto fields are null. */
export function readFormValues(base: FormOptions, fields: { data: string; backbone: string; head?: string; numbers: Record<NumericField, string> }): FormOptions {
  const head: HeadChoice = HEAD_CHOICES.find((h) => h === fields.head) ?? base.head ?? 'auto';
  const o: FormOptions = { ...base, data: fields.data.trim(), backbone: fields.backbone || base.backbone, head };
  for (const k of NUMERIC_FIELDS) {
    const text = fields.numbers[k];
    if (AUTO_FIELDS.has(k) && text.trim() === '') (o as Record<NumericField, number | null>)[k] = null;
    else o[k] = fieldNumber(text);
  }
  return o;
}

/** The text a number field shows: '' for an auto (null) value. */
export function fieldText(v: number | null): string {
  return v === null ? '' : String(v);
}

/** The slimming choice from its dropdown ('off', 'auto', 'fraction') and the fraction field; a bad fraction is NaN. */
export function readSlim(mode: string, fraction: string): SlimChoice {
  if (mode === 'auto') return 'auto';
  if (mode === 'fraction') return fieldNumber(fraction);
  return 'off';
}

/** Why these export choices cannot be sent ('' when they can). `out` is the folder field. */
export function exportChoicesError(out: string, c: ExportChoices): string {
  if (!out) return 'choose a folder';
  if (!(c.prune >= 0 && c.prune < 1)) return 'sparsity is a fraction from 0 to below 1';
  if (!(c.maxDrop >= 0 && c.maxDrop <= 100)) return 'max drop is 0–100 points';
  if (c.quantize === 'int8' && c.format !== 'onnx') return 'int8 is static quantization for ONNX Runtime: pick the ONNX format (for TensorFlow.js, uint8, float16 or auto make it smaller)';
  const slim = c.slim ?? 'off';
  if (slim !== 'off' && c.format !== 'onnx' && c.prune > 0) return 'slimming refits the head on the slimmed backbone; for TensorFlow.js, sparsity does not apply on top of it: set sparsity to 0, or slim off';
  if (typeof slim === 'number' && !(slim > 0 && slim <= SLIM_MAX_FRACTION)) return `slim fraction: the share of hidden channels to remove, above 0 and at most ${SLIM_MAX_FRACTION}`;
  if (c.format === 'onnx' && c.quantize === 'uint16') return 'ONNX exports store weights as float32, float16, uint8 or int8';
  return '';
}

/** A hint beside the export choices: what the chosen format allows (shown before anything is sent). */
export function exportHint(format: string): string {
  return format === 'onnx'
    ? 'ONNX: int8 (calibrated on training images) and backbone slimming are available; auto decides on the validation images, never the test split.'
    : 'TensorFlow.js: backbone slimming is available (int8 needs the ONNX format); auto decides on the validation images, never the test split.';
}

/** The preprocessing fields the panel lets the user edit (the input's name is shown, not edited). */
export const ONNX_EDITABLE = ['size', 'layout', 'channelOrder', 'range', 'mean', 'std', 'output', 'pooling'] as const satisfies readonly OnnxInputField[];
export type OnnxEditable = (typeof ONNX_EDITABLE)[number];

/** A field's text as its typed value (unchecked: a bad text becomes a value onnxInputErrors names). */
function onnxValue(k: OnnxEditable, text: string): OnnxInputOptions[OnnxEditable] {
  switch (k) {
    case 'size':
      return fieldNumber(text);
    case 'mean':
    case 'std':
      return text.split(/[\s,]+/).filter(Boolean).map(Number);
    case 'range':
      return rangePair(text) ?? [Number.NaN, Number.NaN];
    case 'output':
      return text.trim();
    default:
      return text as OnnxInputOptions[OnnxEditable];
  }
}

/**
 * The preprocessing edits of the panel's fields over the view shown: a field
 * counts when the user set it before (and did not clear it) or its text now
 * differs from the value shown; an empty field is left to the model. Returns
 * the edits and, by field, why one is out of range (the engine's ranges).
 */
export function readOnnxEdits(view: OnnxPreprocessingView, texts: Partial<Record<OnnxEditable, string>>): { edits: OnnxInputOptions; errors: Partial<Record<OnnxInputField, string>> } {
  const edits: OnnxInputOptions = {};
  for (const k of ONNX_EDITABLE) {
    const text = (texts[k] ?? view.text[k]).trim();
    if (text === '' || (!view.edited.includes(k) && text === view.text[k])) continue;
    (edits as Record<string, unknown>)[k] = onnxValue(k, text);
  }
  return { edits, errors: onnxInputErrors(edits, view.channels) };
}
