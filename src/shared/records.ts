/**
 * What the engine answers, as plain JSON data: the results of the worker's
 * requests and the parts of run.json the host reads. The worker assigns core's
 * results to these types (src/worker/handlers.ts), so a drift between core
 * and these shapes is a compile error there; core may carry more fields than
 * listed here. Nothing in this file imports code.
 */
import type { HeadChoice } from './choices';
import type { EpochMetrics } from './events';

/** A 95% confidence interval of a proportion (0..1), with the count it rests on (Wilson score). */
export interface Interval {
  low: number;
  high: number;
  /** Images the proportion was measured on. */
  n: number;
  level: number;
}

/** A file left out of a dataset, and why. */
export interface Skipped {
  path: string;
  reason: string;
}

/** Precision, recall and F1 of one class. */
export interface ClassMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

/** A misclassified file, most confident first. `probability` of the wrong class, 0..1. */
export interface Mistake {
  path: string;
  label: string;
  predicted: string;
  probability: number;
  /** Text runs: the text, one line, at most 200 characters (the panel shows it instead of a thumbnail). */
  text?: string;
}

/** The metrics `eval` prints and `train` nests under `test`. */
export interface EvalResult {
  /** Fraction correct, 0..1. */
  accuracy: number;
  /** 95% interval of `accuracy` over `count` images (absent in runs of early versions). */
  interval?: Interval;
  /** Set when a class has under 30 evaluation images: how uncertain the figure is. */
  warning?: string;
  macroF1: number;
  /** Images evaluated. */
  count: number;
  labels: string[];
  perClass: ClassMetrics[];
  /** confusion[i][j]: images of class i predicted as class j. */
  confusion: number[][];
  mistakes: Mistake[];
}

/** Images of one class per split. */
export interface ClassCounts {
  train: number;
  val: number;
  test: number;
  total: number;
}

/** The dataset as a run used it. */
export interface DatasetSummary {
  root: string;
  kind: string;
  classes: string[];
  counts: Record<string, ClassCounts>;
  total: number;
  skipped: Skipped[];
  warnings: string[];
}

/** Logistic regression on raw pixels: what the pretrained backbone bought. */
export interface BaselineResult {
  description: string;
  accuracy: number;
  /** 95% interval of `accuracy` on the test images. */
  interval?: Interval;
  /** Mean accuracy across the head's cross-validation folds (absent without selection). */
  cvAccuracy?: number;
  /** True when raw pixels beat the chosen head (in cross-validation when there was one). */
  wins?: boolean;
  /** What to try when the baseline wins. */
  advice?: string;
  macroF1: number;
  /** Backbone test accuracy minus baseline test accuracy, in points (0..100). */
  gainPoints: number;
  verdict: string;
}

/** One configuration of the head grid, scored across the folds (accuracies 0..1). */
export interface ConfigScore {
  name: string;
  head: 'linear' | 'mlp';
  hiddenUnits: number;
  l2: number;
  meanAccuracy: number;
  /** Standard deviation across folds. */
  stdAccuracy: number;
  foldAccuracies: number[];
  meanBestEpoch: number;
}

/** run.json's `selection`: the cross-validated head choice (absent for --unfreeze runs and tiny datasets). */
export interface Selection {
  method: 'stratified-k-fold' | 'holdout';
  folds: number;
  /** Non-test source images the folds were drawn from. */
  sources: number;
  grid: { heads: Array<'linear' | 'mlp'>; hiddenUnits: number; l2: number[]; epochs: string };
  results: ConfigScore[];
  chosen: string;
  reason: string;
  /** Epochs of the refit on all non-test data. */
  refitEpochs: number;
  /** The raw-pixel baseline on the same folds. */
  baseline?: { meanAccuracy: number; stdAccuracy: number; foldAccuracies: number[] };
  baselineWins: boolean;
  advice?: string;
  seconds: number;
}

/** Seconds spent per stage of a run. */
export interface RunTimings {
  scanSeconds: number;
  extractSeconds: number;
  /** The whole head stage (and fine-tuning, when asked). */
  trainSeconds: number;
  totalSeconds: number;
  imagesPerSecond: number;
}

/** The options a run was trained with (run.json `config`). */
export interface RunConfig {
  data: string;
  backbone?: string;
  epochs: number;
  batchSize: number;
  learningRate: number;
  hiddenUnits: number;
  dropout: number;
  val: number;
  test: number;
  seed: number;
  unfreeze?: number;
  augment?: { views?: number };
  /** Head family asked for (absent: auto). */
  head?: HeadChoice;
  l2?: number;
}

/** Vocabulary coverage of a text run's data: known word tokens over all of them. */
export interface TextCoverage {
  /** Known over all word tokens of every text, 0..1 (1 when there are no words). */
  tokens: number;
  /** Texts with no known word at all (their embedding is the zero vector, or only special tokens). */
  emptyTexts: number;
  /** Mean of the per-text coverage, 0..1. */
  meanPerText: number;
}

/** Length statistics and examples of a text dataset (the panel's summary). */
export interface TextStats {
  chars: { min: number; median: number; mean: number; max: number };
  words: { min: number; median: number; mean: number; max: number };
  /** Up to three examples per class, one line each, at most 120 characters. */
  examples: Record<string, string[]>;
}

/** What run.json records of a text run beside the common fields. */
export interface TextRunInfo {
  kind: 'word-average' | 'onnx-encoder';
  tokenizer: string;
  /** Vocabulary coverage of the run's texts. */
  coverage: TextCoverage;
  columns?: { text: string; label: string };
  stats: TextStats;
  /** TF-IDF terms the baseline used. */
  tfidfTerms: number;
}

/**
 * run.json as the host reads it. A run.json is any JSON a repository ships:
 * src/host/runs.ts checks this shape before use.
 */
export interface RunRecord {
  version: number;
  createdAt: string;
  /** 'text' for text runs; absent (or 'image') for images. */
  modality?: 'image' | 'text';
  /** Text runs: tokenizer, vocabulary coverage, columns, length statistics and examples. */
  text?: TextRunInfo;
  config: RunConfig;
  backend: string;
  /** What extracted the features ('onnxruntime' or 'tfjs-<backend>'); absent in runs of early versions. */
  engine?: string;
  /** What trained the head ('onnxruntime' or 'tfjs'); absent in runs of early versions. */
  headTrainer?: string;
  backbone: { id: string; title: string };
  labels: string[];
  dataset: DatasetSummary;
  history: EpochMetrics[];
  test: EvalResult;
  baseline: BaselineResult;
  /** Cross-validated head choice (absent for --unfreeze runs, tiny datasets and early versions). */
  selection?: Selection;
  timings: RunTimings;
}

/** The reply of `train` (what `headstart train --json` prints). */
export interface TrainReport {
  runDir: string;
  backend: string;
  engine: string;
  /** What trained the head ('onnxruntime' or 'tfjs'). */
  headTrainer?: string;
  dataset: DatasetSummary;
  test: EvalResult;
  baseline: BaselineResult;
  bestEpoch: number;
  epochs: number;
  timings: RunTimings;
  /** Text runs: the modality and the vocabulary coverage of the data. */
  modality?: 'text';
  coverage?: TextCoverage;
}

/** Size and quality of one exported model variant. */
export interface VariantReport {
  bytes: number;
  gzipBytes: number;
  /** Test-split accuracy 0..1, measured from the exported files. */
  accuracy: number;
  /** 95% interval of `accuracy` over the test images. */
  interval?: Interval;
  macroF1: number;
  /** Mean milliseconds per single image (backbone + head) in the exporting process. */
  msPerImage: number;
}

/** One variant tried by `--quantize auto` (or the one asked for). */
export interface ExportCandidate {
  name: string;
  sparsity: number;
  bytes: number;
  gzipBytes: number;
  accuracy: number;
  /** 95% interval of `accuracy` on the choice images. */
  accuracyInterval?: Interval;
  /** Fraction of the choice images whose top-1 class equals float32's. */
  agreement?: number;
  /** Points below float32 (negative: better). */
  dropPoints: number;
  withinBudget: boolean;
}

/** Where an export's variant was decided: auto on the validation (or training) split, never the test split. */
export interface ExportChoiceInfo {
  split: 'val' | 'train' | 'test';
  images: number;
  rule: string;
}

/** Speed of one ONNX model in ONNX Runtime. */
export interface OnnxSpeed {
  /** Milliseconds per single image (batch 1). */
  batch1Ms: number;
  batch32ImagesPerSecond: number;
  /** Process CPU ms per image at batch 32 (absent in reports before 0.2.1). */
  batch32CpuMs?: number;
}

/** report.json's `quantization` of an int8 ONNX export (core carries more fields). */
export interface Int8Report {
  method: string;
  /** Training images the activation ranges came from (never validation or test images). */
  calibrationImages: number;
  calibrationSplit: string;
  calibrationSkipped: number;
  speed: { threads: number; float32: OnnxSpeed; int8: OnnxSpeed; batch1Speedup: number; batch32Speedup: number; batch32CpuSpeedup?: number };
}

/** One row of report.json's `slimming.steps`. */
export interface SlimStep {
  /** Fraction of each block's hidden channels asked to go (0: the unslimmed backbone). */
  fraction: number;
  hiddenKept: number;
  hiddenTotal: number;
  bytes: number;
  gzipBytes: number;
  /** Backbone, batch 1, ONNX Runtime. */
  msPerImage: number;
  speedup: number;
  /** Accuracy of the refit head on the validation split (0..1). */
  valAccuracy: number;
  /** Points below the unslimmed reference on the validation split. */
  dropPoints: number;
  /** Accuracy on the training images, each predicted by a head fit on the other folds (0..1; absent in reports of earlier versions). */
  oofAccuracy?: number;
  /** Points below the unslimmed reference over all judged images (validation + out-of-fold training); the disagreements bound it. */
  judgedDropPoints?: number;
  /** Within the budget rule: top-1 agreement with the unslimmed reference on the judged images. */
  withinBudget: boolean;
  agreement?: number;
}

/** report.json's `slimming` (ONNX exports with `slim`). */
export interface SlimReport {
  method: string;
  asked: 'auto' | number;
  /** Training images the ranking ran on (never validation or test images). */
  rankImages: number;
  blocks: number;
  budgetPoints: number;
  /**
   * Judged images: the validation split (a head refit on the training split)
   * plus the training images out of fold (`folds` heads, each fit on the other
   * folds); never test images. The unslimmed reference is refit the same way.
   */
  validationImages: number;
  /** Training images judged out of fold (absent in reports of earlier versions: they judged on validation images only). */
  oofTrainImages?: number;
  folds?: number;
  threads: number;
  steps: SlimStep[];
  /** Fraction of the chosen step (0: none met the budget; the backbone is unslimmed). */
  chosen: number;
}

/** The reply of `export` (the export folder's report.json). */
export interface ExportReport {
  outDir: string;
  format: 'tfjs' | 'onnx';
  modelFormat: 'graph-model' | 'layers-model' | 'onnx';
  quantize: string;
  maxDropPoints: number;
  candidates: ExportCandidate[];
  /** The variant written (e.g. 'uint8', 'mixed-sparse50'). */
  chosen: string;
  /** What the choice rested on (absent in reports of early versions). */
  choice?: ExportChoiceInfo;
  testImages: number;
  float32: VariantReport;
  exported: VariantReport;
  skipped: Skipped[];
  backend: string;
  /** int8 ONNX exports: calibration and speed against float32. */
  quantization?: Int8Report;
  /** Slimmed ONNX exports: the steps tried and the one chosen. */
  slimming?: SlimReport;
}

/** Size, accuracy and speed of one model as shipped (full float32 TF.js model). */
export interface ModelFigures {
  backbone: string;
  runDir: string;
  /** Bytes of model.json + weights.bin. */
  bytes: number;
  /** Test-split accuracy 0..1. */
  accuracy: number;
  msPerImage: number;
}

/** The reply of `distill`: the student's run and both models' figures. */
export interface DistillReport {
  runDir: string;
  temperature: number;
  alpha: number;
  teacher: ModelFigures;
  student: ModelFigures;
}

/** The reply of `scan`: what the panel previews of a dataset. */
export interface ScanSummary {
  root: string;
  kind: 'folders' | 'csv' | 'jsonl' | 'text-folders' | 'text-csv' | 'text-jsonl';
  /** Readable images (texts) per class. */
  counts: Record<string, number>;
  /** One file per class (for a thumbnail; a text's file, or `manifest:line`). */
  examples: Record<string, string>;
  skipped: Skipped[];
  total: number;
  /** 'text' for labelled texts; absent for images. */
  modality?: 'text';
  /** Text datasets: lengths, coverage and example texts. */
  text?: TextScan;
}

/** Min, median, mean and max of a length. */
export type LengthStats = TextStats['chars'];

/** What a scan of labelled texts adds: length statistics, vocabulary coverage and a few texts per class. */
export interface TextScan {
  chars: LengthStats;
  words: LengthStats;
  /** Coverage of the bundled word vectors (`backbone`): the run records its own backbone's. */
  coverage: TextCoverage & { backbone: string };
  /** Up to three texts per class: the file (or `manifest:line`) and the text, one line, at most 120 characters. */
  examples: Record<string, Array<{ path: string; text: string }>>;
}

/** One classified file: the top class and the top classes with their probability (0..1). */
export interface Prediction {
  path: string;
  label: string;
  probability: number;
  top: Array<{ label: string; probability: number }>;
}

/** A line of `predict`: a prediction, or why the file could not be classified. */
export type PredictionLine = Prediction | { path: string; error: string };

/** One classified text: `text` is a one-line snippet of it; `coverage` the share of its words with a vector (0..1). */
export interface TextPrediction {
  text: string;
  label: string;
  probability: number;
  /** The top classes (at most 5), most probable first. */
  top: Array<{ label: string; probability: number }>;
  coverage: number;
}

/** A text prediction, or why the text could not be classified (empty, over the size cap). */
export type TextPredictionLine = TextPrediction | { text?: string; error: string };

/** A backbone of the catalogue, and whether it is on this machine. */
export interface BackboneInfo {
  id: string;
  title: string;
  /** What it embeds; absent: image (replies of early versions). */
  task?: 'image' | 'text';
  /** 'graph', 'onnx' and the text kinds: frozen; 'layers': its top layers can be unfrozen. */
  format: 'graph' | 'layers' | 'onnx' | 'word-average' | 'onnx-encoder';
  featureSize: number;
  /** Square input size in pixels. */
  inputSize: number;
  bundled: boolean;
  cached: boolean;
  approxBytes: number;
}
