/**
 * The preprocessing of a foreign ONNX backbone as it crosses the boundaries:
 * the fields a caller may set (the panel's edits, the train request's
 * `onnxInput`), what the worker resolved and where each value came from, and
 * the one check of the fields' ranges (the webview, the host's policy and the
 * form's validation all use it). Plain data; imports only the options table.
 */
import { CHANNEL_ORDER_CHOICES, LAYOUT_CHOICES, NUMERIC_OPTIONS, POOLING_CHOICES, RANGE_CHOICES } from './options';

export type LayoutChoice = (typeof LAYOUT_CHOICES)[number];
export type ChannelOrderChoice = (typeof CHANNEL_ORDER_CHOICES)[number];
export type PoolingChoice = (typeof POOLING_CHOICES)[number];
export type RangeChoice = (typeof RANGE_CHOICES)[number];

/** Where a resolved value came from: a flag (the panel's edit), the sidecar JSON, the model's graph, or Headstart's default. */
export type OnnxInputSource = 'flag' | 'sidecar' | 'graph' | 'default';

/** The fields of the preprocessing, in the order the panel shows them. */
export const ONNX_INPUT_FIELDS = ['input', 'size', 'layout', 'channelOrder', 'range', 'mean', 'std', 'output', 'pooling'] as const;
export type OnnxInputField = (typeof ONNX_INPUT_FIELDS)[number];

/**
 * Preprocessing fields a caller fixes (absent: the sidecar, then the graph,
 * then the default decides). `range` is the pair pixels 0..255 map onto;
 * `mean` / `std` are per channel (1 or 3 values) in `range` units.
 */
export interface OnnxInputOptions {
  input?: string;
  /** Square input side, pixels (NUMERIC_OPTIONS['input-size']). */
  size?: number;
  layout?: LayoutChoice;
  channelOrder?: ChannelOrderChoice;
  range?: [number, number];
  mean?: number[];
  std?: number[];
  output?: string;
  pooling?: PoolingChoice;
}

/** The preprocessing the engine would use for a model, every field resolved. */
export interface OnnxPreprocessing extends Required<OnnxInputOptions> {
  /** 3 (colour) or 1 (grey). */
  channels: 1 | 3;
  /** Length of the feature vector (after pooling a spatial map). */
  featureSize: number;
  /** The graph's outputs (any of them, or an inner tensor, may be named as `output`). */
  outputs: string[];
  /** The sidecar JSON read beside the model, when there is one. */
  sidecar?: string;
  /** Where each field's value came from. */
  from: Record<OnnxInputField, OnnxInputSource>;
}

/** The worker's answer: the resolved preprocessing, or the one-line reason the model is refused. */
export type OnnxPreprocessingResult = { ok: true; preprocessing: OnnxPreprocessing } | { ok: false; reason: string };

/** Longest tensor name taken (ONNX names are short; a longer one is hostile or a mistake). */
export const MAX_TENSOR_NAME = 512;

const PAIRS: Record<RangeChoice, [number, number]> = { '0-1': [0, 1], '0-255': [0, 255], '-1-1': [-1, 1] };

/** The pair of a range choice's text ('0-1' → [0, 1]); undefined for any other text. */
export const rangePair = (text: string): [number, number] | undefined => (RANGE_CHOICES.includes(text as RangeChoice) ? [...PAIRS[text as RangeChoice]] : undefined);

/** The choice of a [lo, hi] pair; undefined for any other pair. */
export function rangeChoice(pair: unknown): RangeChoice | undefined {
  if (!Array.isArray(pair) || pair.length !== 2) return undefined;
  return RANGE_CHOICES.find((c) => PAIRS[c][0] === pair[0] && PAIRS[c][1] === pair[1]);
}

const inRange = (x: unknown, o: { min: number; max: number; minExclusive?: boolean }): boolean => typeof x === 'number' && Number.isFinite(x) && (o.minExclusive ? x > o.min : x >= o.min) && x <= o.max;

function channelListError(v: number[], name: 'mean' | 'std', channels: number | undefined): string | undefined {
  const o = NUMERIC_OPTIONS[name];
  const counts = channels === 1 ? [1] : [1, 3];
  if (!Array.isArray(v) || !counts.includes(v.length) || !v.every((x) => inRange(x, o))) return `${counts.join(' or ')} number${channels === 1 ? '' : 's'} ${o.minExclusive ? `above ${o.min}` : `from ${o.min}`} to ${o.max}, comma-separated`;
  return undefined;
}

/**
 * Why each set field is out of its range (empty when all are fine):
 * size a whole number within --input-size's range, mean and std 1 or 3
 * numbers within theirs (1 for a grey model), names non-empty and short,
 * choices from their lists.
 */
export function onnxInputErrors(o: OnnxInputOptions, channels?: number): Partial<Record<OnnxInputField, string>> {
  const errs: Partial<Record<OnnxInputField, string>> = {};
  const size = NUMERIC_OPTIONS['input-size'];
  const name = (v: unknown) => typeof v === 'string' && v.trim() !== '' && v.length <= MAX_TENSOR_NAME;
  if (o.input !== undefined && !name(o.input)) errs.input = 'the name of the graph input that takes the image';
  if (o.size !== undefined && !(Number.isInteger(o.size) && inRange(o.size, size))) errs.size = `a whole number of pixels from ${size.min} to ${size.max}`;
  if (o.layout !== undefined && !LAYOUT_CHOICES.includes(o.layout)) errs.layout = LAYOUT_CHOICES.join(' or ');
  if (o.channelOrder !== undefined && !CHANNEL_ORDER_CHOICES.includes(o.channelOrder)) errs.channelOrder = CHANNEL_ORDER_CHOICES.join(' or ');
  if (o.range !== undefined && !rangeChoice(o.range)) errs.range = `one of ${RANGE_CHOICES.join(', ')}`;
  const mean = o.mean !== undefined && channelListError(o.mean, 'mean', channels);
  if (mean) errs.mean = mean;
  const std = o.std !== undefined && channelListError(o.std, 'std', channels);
  if (std) errs.std = std;
  if (o.output !== undefined && !name(o.output)) errs.output = 'the name of a tensor of the model';
  if (o.pooling !== undefined && !POOLING_CHOICES.includes(o.pooling)) errs.pooling = POOLING_CHOICES.join(' or ');
  return errs;
}

/** True for a backbone that names a foreign ONNX model file (a `.onnx` path, or `onnx:` + path as a run records it). */
export const isOnnxModelFile = (backbone: string): boolean => /\.onnx$/i.test(backbone) || backbone.startsWith('onnx:');
