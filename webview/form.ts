/**
 * The panel's forms as text fields give them, turned into typed options, and
 * the export choices' checks. No DOM here: node:test checks it.
 */
import type { ExportChoices, FormOptions } from '../src/shared/panelProtocol';

/** The number fields of the options form, in the order shown. */
export const NUMERIC_FIELDS = ['epochs', 'batchSize', 'learningRate', 'hiddenUnits', 'dropout', 'val', 'test', 'seed', 'unfreeze', 'augment'] as const satisfies ReadonlyArray<keyof FormOptions>;
export type NumericField = (typeof NUMERIC_FIELDS)[number];

/** A number field's text: empty is NaN (validateForm then names the field), otherwise Number(text). */
export function fieldNumber(text: string): number {
  return text.trim() === '' ? Number.NaN : Number(text);
}

/** The form's text fields over `base` (the options the host sent): what the webview posts. */
export function readFormValues(base: FormOptions, fields: { data: string; backbone: string; numbers: Record<NumericField, string> }): FormOptions {
  const o: FormOptions = { ...base, data: fields.data.trim(), backbone: fields.backbone || base.backbone };
  for (const k of NUMERIC_FIELDS) o[k] = fieldNumber(fields.numbers[k]);
  return o;
}

/** Why these export choices cannot be sent ('' when they can). `out` is the folder field. */
export function exportChoicesError(out: string, c: ExportChoices): string {
  if (!out) return 'choose a folder';
  if (!(c.prune >= 0 && c.prune < 1)) return 'head sparsity is a fraction from 0 to below 1';
  if (!(c.maxDrop >= 0 && c.maxDrop <= 100)) return 'max drop is 0–100 points';
  if (c.format === 'onnx' && c.quantize === 'uint16') return 'ONNX exports store weights as float32, float16 or uint8';
  if (c.format === 'onnx' && c.prune > 0) return 'head sparsity applies to TensorFlow.js exports';
  return '';
}
