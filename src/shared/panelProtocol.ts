/**
 * Host <-> webview messages of the training panel (JSON only), as maps from
 * each message type to its fields. The host owns the state and sends it whole
 * (`state`) when it changes, plus light `progress` messages per batch. The
 * webview asks `ready` first and gets the state as the reply.
 */
import { type ExportFormat, HEAD_CHOICES, type HeadChoice, type QuantizeChoice, type SlimChoice } from './choices';
import type { Phase as EnginePhase } from './events';
import type { ReplyMessage, RequestMessage } from './messageHandler';
import { ONNX_INPUT_FIELDS, type OnnxInputField, type OnnxInputOptions, onnxInputErrors } from './onnxInput';
import type { BackboneInfo, EvalResult, Interval, LengthStats, ModelFigures, TextCoverage } from './records';

/**
 * The options form. Numbers are validated on both sides. `epochs` and
 * `hiddenUnits` are null when left to the engine: then cross-validation picks
 * linear vs one hidden layer and early stopping picks the epochs.
 */
export interface FormOptions {
  data: string;
  backbone: string;
  /** Head family: auto (cross-validated), linear, or one hidden layer. */
  head: HeadChoice;
  /** null: early stopping decides (at most 30 epochs). */
  epochs: number | null;
  batchSize: number;
  learningRate: number;
  /** null: cross-validation decides (0 = linear, else one hidden layer of this many units). */
  hiddenUnits: number | null;
  dropout: number;
  val: number;
  test: number;
  seed: number;
  unfreeze: number;
  /** Augmented views per training image (0: none). */
  augment: number;
  /** A foreign ONNX backbone: the preprocessing fields the user changed (absent: its sidecar and graph decide). */
  onnxInput?: OnnxInputOptions;
}

/**
 * The preprocessing of the foreign ONNX backbone chosen, as the panel shows
 * it: each field's text (what the engine resolved, or the user's edit where
 * the model is refused) and where it came from, in words.
 */
export interface OnnxPreprocessingView {
  /** The backbone this view is of. */
  backbone: string;
  /** The worker is resolving it. */
  pending: boolean;
  /** Why training would refuse the model (one line); absent when it is accepted. */
  refused?: string;
  /** Field texts: size '224', layout 'NCHW', range '0-1', mean '0.485, 0.456, 0.406', …; '' where nothing is known. */
  text: Record<OnnxInputField, string>;
  /** Where each value came from: 'set here', 'sidecar model.onnx.json', 'model graph', 'default'; '' where nothing is known. */
  from: Record<OnnxInputField, string>;
  /** Fields the user set (they stay set until cleared). */
  edited: OnnxInputField[];
  /** Resolved models: channels, feature size and the graph's outputs. */
  channels?: 1 | 3;
  featureSize?: number;
  outputs: string[];
}

/** A backbone the form offers. */
export type BackboneChoice = BackboneInfo;

export interface DatasetPreview {
  root: string;
  total: number;
  /**
   * `example`: a file of the class; `thumb`: its URL in the webview (images);
   * `texts`: a few of its texts, one line each, with their file or `manifest:line` (texts).
   */
  classes: Array<{ label: string; count: number; example?: string; thumb?: string; texts?: Array<{ path: string; text: string }> }>;
  skipped: Array<{ path: string; reason: string }>;
  warnings: string[];
  /** 'text' for labelled texts; absent for images. */
  modality?: 'text';
  /** Texts: length statistics and the coverage of the bundled word vectors. */
  text?: { chars: LengthStats; words: LengthStats; coverage: TextCoverage & { backbone: string } };
}

export interface EpochPoint {
  epoch: number;
  loss: number;
  accuracy: number;
  valLoss: number;
  valAccuracy: number;
}

/** One row of the head-selection table: a configuration's accuracy across folds (0..1). */
export interface SelectionRow {
  name: string;
  meanAccuracy: number;
  stdAccuracy: number;
  folds: number;
  chosen: boolean;
}

/** run.json's `selection` as the panel shows it. */
export interface SelectionView {
  /** 'stratified-k-fold' or 'holdout'. */
  method: string;
  folds: number;
  /** Non-test images the folds were drawn from. */
  sources: number;
  /** How epochs were set in the folds (the engine's words). */
  epochs: string;
  rows: SelectionRow[];
  chosen: string;
  reason: string;
  refitEpochs: number;
  /** The raw-pixel baseline on the same folds. */
  baseline?: { meanAccuracy: number; stdAccuracy: number };
  baselineWins: boolean;
  advice?: string;
}

/** The results the panel shows: the run's test metrics (EvalResult's fields) and what goes with them. */
export interface ResultView extends Pick<EvalResult, 'accuracy' | 'interval' | 'warning' | 'macroF1' | 'count' | 'labels' | 'perClass' | 'confusion'> {
  runDir: string;
  /** Images: `thumb` is the image's URL. Texts: `text` is a one-line excerpt and `thumb` is ''. */
  mistakes: Array<{ path: string; thumb: string; label: string; predicted: string; probability: number; text?: string }>;
  /** 'text' for text runs (the baseline is TF-IDF, the counts are texts); absent for images. */
  modality?: 'text';
  /** Text runs: the backbone's vocabulary coverage of the run's texts and its tokenizer. */
  text?: { coverage: TextCoverage; tokenizer: string };
  baseline: { accuracy: number; interval?: Interval; cvAccuracy?: number; wins: boolean; advice?: string; verdict: string };
  /** The cross-validated head choice (absent for --unfreeze runs and tiny datasets). */
  selection?: SelectionView;
  backend: string;
  /** What trained the head: 'onnxruntime', or the TF.js backend. */
  headTrainer: string;
  /** What extracted the features: 'onnxruntime' or 'tfjs-<backend>'. */
  engine: string;
  seconds: number;
}

/** int8 against float32 in ONNX Runtime, as the panel shows it. */
export interface QuantizationView {
  calibrationImages: number;
  calibrationSplit: string;
  threads: number;
  int8Ms: number;
  float32Ms: number;
  /** float32 ms / int8 ms at batch 1 (above 1: int8 is faster). */
  speedup: number;
  batch32Speedup: number;
}

/** The slimming steps of an ONNX export. */
export interface SlimmingView {
  asked: 'auto' | number;
  /** Fraction of the chosen step (0: unslimmed). */
  chosen: number;
  budgetPoints: number;
  validationImages: number;
  /** Training images judged out of fold (absent in reports of earlier versions). */
  oofTrainImages?: number;
  threads: number;
  steps: Array<{ fraction: number; hiddenKept: number; hiddenTotal: number; bytes: number; msPerImage: number; speedup: number; valAccuracy: number; dropPoints: number; withinBudget: boolean }>;
}

export interface ExportView {
  outDir: string;
  bytes: number;
  gzipBytes: number;
  accuracy: number;
  /** 95% interval of the export's test accuracy. */
  interval?: Interval;
  float32Bytes: number;
  float32GzipBytes: number;
  float32Accuracy: number;
  float32Interval?: Interval;
  testImages: number;
  msPerImage: number;
  modelFormat: string;
  /** The variant written (e.g. 'uint8', 'mixed-sparse50'). */
  chosen: string;
  /** Where the variant was decided (auto: validation images, never the test split). */
  choice?: { split: string; images: number; rule: string };
  candidates: Array<{ name: string; bytes: number; gzipBytes: number; accuracy: number; accuracyInterval?: Interval; withinBudget: boolean }>;
  quantization?: QuantizationView;
  slimming?: SlimmingView;
}

/** Compression choices of the export section. */
export interface ExportChoices {
  /** TF.js (graph / layers model) or ONNX. */
  format: ExportFormat;
  quantize: QuantizeChoice;
  /** Head sparsity in [0, 1). */
  prune: number;
  /** Accuracy budget of auto, in points. */
  maxDrop: number;
  /** Slim the backbone (ONNX only); absent: off. */
  slim?: SlimChoice;
}

/** One model of a distillation (teacher or student). */
export type DistillFigures = ModelFigures;

export interface RunSummary {
  runDir: string;
  name: string;
  createdAt: string;
  accuracy: number;
  backbone: string;
  classes: number;
  /** 'text' for text runs; absent for images. */
  modality?: 'text';
}

/** The engine's phase of the run shown, or 'idle'. */
export type Phase = 'idle' | EnginePhase;

export interface PanelState {
  options: FormOptions;
  backbones: BackboneChoice[];
  /** Layers-format backbones can be partly unfrozen (when the engine supports it). */
  unfreezeSupported: boolean;
  dataset?: DatasetPreview;
  running: boolean;
  phase: Phase;
  phaseMessage: string;
  history: EpochPoint[];
  totalEpochs: number;
  result?: ResultView;
  exported?: ExportView;
  exportDefault: string;
  exporting: boolean;
  /** Teacher vs student after a distillation. */
  distilled?: { teacher: DistillFigures; student: DistillFigures };
  error?: string;
  notice?: string;
  runs: RunSummary[];
  trusted: boolean;
  /** The preprocessing of a foreign ONNX backbone (absent for catalogue backbones). */
  onnxPreprocessing?: OnnxPreprocessingView;
}

/** The light per-batch progress of the current phase. */
export interface ProgressView {
  phase: Phase;
  done: number;
  total: number;
  /** Seconds left, when known. */
  eta?: number;
  detail: string;
}

/** Requests of the webview, with the host's reply. */
export type PanelRequests = {
  /** The webview is listening: the reply is the state to draw. */
  ready: { params: object; result: PanelState };
};

/** Host -> webview notifications: each type and its fields. */
export interface ToWebviewMessages {
  state: { state: PanelState };
  progress: ProgressView;
}

/** Webview -> host notifications: each type and its fields. */
export interface FromWebviewMessages {
  options: { options: FormOptions };
  start: { options: FormOptions };
  cancel: object;
  pickData: object;
  export: { out: string; choices: ExportChoices };
  openFile: { path: string };
  openSnippet: object;
  openRun: { runDir: string };
  distill: { student: string };
}

/** `{type: K, ...fields}` for each K of a message map. */
type Messages<M> = { [K in keyof M & string]: { type: K } & M[K] }[keyof M & string];

export type ToWebview = Messages<ToWebviewMessages> | ReplyMessage<PanelRequests>;
export type FromWebview = Messages<FromWebviewMessages> | RequestMessage<PanelRequests>;

/** Checks a form; returns messages by field (empty when valid). */
export function validateForm(o: FormOptions): Partial<Record<keyof FormOptions, string>> {
  const errs: Partial<Record<keyof FormOptions, string>> = {};
  const int = (v: number, lo: number, hi: number) => Number.isInteger(v) && v >= lo && v <= hi;
  if (!o.data) errs.data = 'choose a dataset folder or manifest';
  if (!o.backbone) errs.backbone = 'choose a backbone';
  if (!HEAD_CHOICES.includes(o.head)) errs.head = `one of ${HEAD_CHOICES.join(', ')}`;
  if (o.epochs !== null && !int(o.epochs, 1, 1000)) errs.epochs = 'a whole number from 1 to 1000, or empty for auto';
  if (!int(o.batchSize, 1, 4096)) errs.batchSize = 'a whole number from 1 to 4096';
  if (!(o.learningRate > 0 && o.learningRate <= 1)) errs.learningRate = 'a number in (0, 1]';
  if (o.hiddenUnits !== null && !int(o.hiddenUnits, 0, 8192)) errs.hiddenUnits = 'a whole number from 0 to 8192, or empty for auto';
  else if (o.hiddenUnits === 0 && o.head === 'mlp') errs.hiddenUnits = '0 hidden units is the linear head: pick head linear or auto, or give units';
  else if (o.hiddenUnits !== null && o.hiddenUnits > 0 && o.head === 'linear') errs.hiddenUnits = 'a linear head has no hidden units: leave this empty or 0';
  if (!(o.dropout >= 0 && o.dropout < 1)) errs.dropout = 'a number in [0, 1)';
  if (!(o.val >= 0 && o.val <= 0.5)) errs.val = 'a fraction from 0 to 0.5';
  if (!(o.test > 0 && o.test <= 0.5)) errs.test = 'a fraction above 0, at most 0.5';
  if (!Number.isInteger(o.seed)) errs.seed = 'a whole number';
  if (!int(o.unfreeze, 0, 200)) errs.unfreeze = 'a whole number from 0 to 200';
  if (!int(o.augment, 0, 32)) errs.augment = 'a whole number of views from 0 to 32';
  const onnx = o.onnxInput ? onnxInputErrors(o.onnxInput) : {};
  const bad = ONNX_INPUT_FIELDS.find((k) => onnx[k]);
  if (bad) errs.onnxInput = `ONNX preprocessing ${bad}: ${onnx[bad]}`;
  return errs;
}

/** The form's defaults: the engine's own (src/core/train/head.ts HEAD_DEFAULTS), with the head left to cross-validation. */
export const DEFAULT_FORM: Omit<FormOptions, 'data' | 'backbone'> = {
  head: 'auto',
  epochs: null,
  batchSize: 32,
  learningRate: 0.001,
  hiddenUnits: null,
  dropout: 0.2,
  val: 0.15,
  test: 0.15,
  seed: 42,
  unfreeze: 0,
  augment: 0,
};
