/**
 * What an export reports (report.json) and the rule --quantize auto decides
 * by. Plain types and small pure helpers: the pipeline, the format plug-ins
 * and the model card all read them.
 */
import type { EngineOptions } from '../engine';
import type { Skipped } from '../data/dataset';
import type { OutOptions } from '../fsutil';
import type { Policy, PolicyName } from '../compress/quantize';
import type { SlimOption, SlimReport } from '../compress/slim';
import type { RefitInfo } from '../compress/sparseRefit';
import type { Int8Info } from '../onnx/calibrate';
import type { Int8Speed } from '../onnx/speed';
import { type Agreement, type Interval, agreementOf } from '../train/metrics';
import type { Measured } from './common';
import type { QUANTIZE_CHOICES } from '../../shared/options';

export type Quantize = (typeof QUANTIZE_CHOICES)[number];

export interface ExportOptions extends EngineOptions, OutOptions {
  /** Export folder to create. */
  out: string;
  /** Weight storage: none (float32), float16, uint16, uint8, or auto (smallest within --max-drop). Default none. */
  quantize?: Quantize;
  /** Target sparsity of the model's kernels (head, and the backbone's convolution kernels), in [0, 1). Default 0 (auto also tries sparser variants). */
  prune?: number;
  /** Accuracy budget of --quantize auto, in points below float32 (default 1). */
  maxDrop?: number;
  /** Model format: 'tfjs' (default) or 'onnx'. */
  format?: 'tfjs' | 'onnx';
  /** Slim the backbone for this task before compression (ONNX only): 'auto' or a fraction of hidden channels to remove. Default: no slimming. */
  slim?: SlimOption;
}

/** Export options with every default filled in and checked. */
export interface ResolvedExportOptions extends ExportOptions {
  quantize: Quantize;
  prune: number;
  maxDrop: number;
  format: 'tfjs' | 'onnx';
}

/** Size and quality of one model variant. */
export interface VariantReport {
  bytes: number;
  gzipBytes: number;
  /** Test-split accuracy 0..1 of this variant, loaded from its files. */
  accuracy: number;
  /** 95% Wilson interval of `accuracy` over the test images. */
  interval: Interval;
  macroF1: number;
  perClassF1: Record<string, number>;
  /** Mean milliseconds per single image in the exporting process (backbone + head). */
  msPerImage: number;
}

/**
 * One variant tried by --quantize auto (or the one asked for), judged on the
 * choice images (auto: the run's validation split, never the test split; an
 * explicit --quantize: the test split, where nothing is chosen).
 */
export interface Candidate extends Agreement {
  name: string;
  /** Weight policy (TF.js) or ONNX variant; int8 is ONNX's static QDQ quantization. */
  policy: PolicyName | 'int8';
  sparsity: number;
  bytes: number;
  gzipBytes: number;
  /** Within --max-drop: top-1 predictions differ from float32's on at most max-drop % of the choice images. */
  withinBudget: boolean;
}

/** Where --quantize auto decided, and by what rule. */
export interface ChoiceInfo {
  split: 'val' | 'train' | 'test';
  images: number;
  rule: string;
  /** --max-drop left to the candidates after slimming used part of it (absent: all of it). */
  budgetPoints?: number;
  budgetNote?: string;
}

/** The budget rule, in words (CLI help, README and report say the same). */
export const BUDGET_RULE = 'a variant is within --max-drop P when its top-1 prediction differs from float32\'s on at most P% of the choice images (the run\'s validation split, or its training split when it has none; never the test split); each changed prediction can cost at most one correct answer, so its accuracy on those images is at most P points below float32\'s';

/** A set variants are measured on: its items' true classes (images of a TestSet, or texts). */
export interface LabelledSet {
  images: ReadonlyArray<{ label: number }>;
}

/** Judges a candidate against float32 on the same images (or texts). */
export function judge(ref: Pick<Measured, 'predicted'>, rep: Pick<Measured, 'predicted'>, set: LabelledSet, auto: boolean, maxDrop: number): Agreement & { withinBudget: boolean } {
  const a = agreementOf(ref.predicted, rep.predicted, set.images.map((im) => im.label));
  return { ...a, withinBudget: !auto || (1 - a.agreement) * 100 <= maxDrop + 1e-9 };
}

export interface ExportReport {
  outDir: string;
  format: 'tfjs' | 'onnx';
  modelFormat: 'graph-model' | 'layers-model' | 'onnx';
  quantize: Quantize;
  /** Storage dtype per weight role in the export. */
  precision: Policy | Record<string, string>;
  /** Bytes of weights per storage dtype in the export. */
  bytesByDtype: Record<string, number>;
  /** Sparsity asked for / achieved per pruned kernel; `overall`: exact zeros over every kernel weight; `scope`: which kernels were pruned; `refit`: how the head was refit on the pruned backbone's features (ONNX). */
  prune: { target: number; perLayer: Record<string, number>; overall?: number; scope?: string; refit?: RefitInfo };
  maxDropPoints: number;
  candidates: Candidate[];
  chosen: string;
  /** What the choice rested on (auto) — the test split is measured only after it. */
  choice: ChoiceInfo;
  testImages: number;
  /** Accuracy of the run's own head on cached features (the engine's figure). */
  engineAccuracy: number;
  float32: VariantReport;
  exported: VariantReport;
  skipped: Skipped[];
  backend: string;
  /** int8 ONNX exports: calibration, quantization choices and speed against float32. */
  quantization?: Int8Info & { speed: Int8Speed };
  /** --slim: the slimming steps tried (size, speed, validation accuracy) and the one chosen. */
  slimming?: SlimReport;
  /** The exported model's latency in each runtime, batch 1 (a runtime not measured says why). */
  latency?: ExportLatency;
}

/** One runtime's latency: ms per image at batch 1 over `images` test images (the first a warm-up, not counted); `null` with a note where it was not measured. */
export interface RuntimeLatency {
  msPerImage: number | null;
  images?: number;
  /** TF.js backend, or ONNX Runtime threads. */
  where?: string;
  note?: string;
}

/** The exported model's latency in TF.js and in ONNX Runtime. */
export interface ExportLatency {
  tfjs: RuntimeLatency;
  onnxRuntime: RuntimeLatency;
}

/**
 * The latency record of an export: its own runtime's figure is the test-split
 * measurement (`own`); the other runtime's comes from the format, or says why
 * it is missing.
 */
export function completeLatency(format: 'tfjs' | 'onnx', given: ExportLatency | undefined, own: RuntimeLatency): ExportLatency {
  if (format === 'tfjs') return { tfjs: { ...given?.tfjs, ...own }, onnxRuntime: given?.onnxRuntime ?? { msPerImage: null, note: 'not measured' } };
  return { onnxRuntime: { ...given?.onnxRuntime, ...own }, tfjs: given?.tfjs ?? { msPerImage: null, note: 'TF.js cannot load an ONNX file; export with --format tfjs for the TF.js figure of the same model' } };
}

/** A variant's report with its per-image top-1 classes (for agreement; left out of report.json). */
export type Measurement = VariantReport & { predicted: number[] };

/** The report without per-image predictions. */
export function plain(m: Measurement): VariantReport {
  const { predicted, ...rest } = m;
  void predicted;
  return rest;
}
