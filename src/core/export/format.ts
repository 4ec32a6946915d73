/**
 * The contract between the export pipeline (pipeline.ts) and a model format
 * (formats/tfjs.ts, formats/onnx.ts). The pipeline owns the candidate /
 * budget loop, the choice set, measuring order, the report and the folder;
 * a format lists its candidates, writes one variant into a folder, measures
 * a written variant, and says what its files are and how to load them.
 */
import type { Progress } from '../events';
import type { LoadedRun } from '../runFolder';
import type { TestSet } from './common';
import type { ExportReport, LabelledSet, Measurement, ResolvedExportOptions } from './report';
import type { PolicyName } from '../compress/quantize';

/** One variant a format can write: its name in the report, its weight policy, its head sparsity. */
export interface VariantSpec {
  name: string;
  policy: PolicyName | 'int8';
  sparsity: number;
}

/** The float32 variant every export measures first and judges the others against. */
export const FLOAT32: VariantSpec = { name: 'float32', policy: 'float32', sparsity: 0 };

/** What the model card says that depends on the format. */
export interface CardParts {
  /** After "Image classifier": e.g. ' (ONNX)'. */
  titleSuffix: string;
  /** What the model is made of, after "Made with Headstart on DATE: ". */
  madeOf: string;
  /** Where and how the figures were measured (after the accuracy line). */
  measuredIn: string;
  /** Weight storage in words, after the variants table. */
  weights: string;
  /** The Files section's lines. */
  files: string;
  /** The section that says how to load and run the model. */
  loadIt: string;
  /** Extra lines of Known limits. */
  limits: string[];
  /** A paragraph after the backbone's recorded licence (text backbones: where the vectors come from). */
  backboneNote?: string;
}

/** Fields of the report that only the format knows. */
export type FormatFields = Pick<ExportReport, 'modelFormat' | 'precision' | 'bytesByDtype' | 'prune' | 'backend' | 'quantization' | 'slimming' | 'latency'>;

/** What the loop needs of a format: its candidates, and writing and measuring one variant. */
export interface VariantSource<S extends LabelledSet> {
  /** Variants to try in order: smallest first under auto, else the one asked for. */
  candidates(): VariantSpec[];
  /** The candidates table always starts with float32 (even when it was not tried). */
  listsReference: boolean;
  /** Writes one variant into `dir`. */
  write(v: VariantSpec, dir: string): Promise<void>;
  /** Loads a written variant and runs it over `set`; `label` names the set and variant in progress events. */
  measure(dir: string, set: S, label: string): Promise<Measurement>;
}

/** A format opened on one run, for one export (inside the export's temp folder). */
export interface FormatSession extends VariantSource<TestSet> {
  /** The model files of a written variant folder (moved into the export). */
  modelFiles: string[];
  /** The format's report fields for the variant chosen (written in `chosenDir`; float32 in `f32Dir`). */
  describe(chosen: VariantSpec, chosenDir: string, f32Dir: string, test: TestSet): Promise<FormatFields>;
  /** The inference script placed beside the model. */
  snippet(fields: FormatFields): string;
  /** The format's parts of the model card. */
  card(report: ExportReport): CardParts;
  /** Frees what open() made (pruned heads). */
  dispose(): void;
  /**
   * Points of --max-drop the format's own lossy step already used before the
   * candidates (slimming: its disagreement with the unslimmed model); the
   * candidates get what is left, so the two steps together stay within it.
   */
  budgetSpent?: number;
}

/** A model format the pipeline can export to. */
export interface ExportFormat {
  /** Refusals of options this format cannot honour (after the shared checks and the --out guard). */
  check(opts: ResolvedExportOptions): void;
  /** The phase message before measuring on `testImages` images. */
  phaseMessage(testImages: number): string;
  /** Prepares the format's float32 source for `run` (pruned heads; the ONNX conversion or slimmed backbone); `work` is scratch inside the export's temp folder. */
  open(run: LoadedRun, opts: ResolvedExportOptions, backendName: string, work: string, progress: Progress): Promise<FormatSession>;
}

/**
 * --max-drop points the slimming search may spend. With `--slim auto` and
 * `--quantize auto` both lossy steps are the tool's to choose, so slimming
 * gets half and the candidates are judged against what it leaves (at least
 * the other half): a 10% slimming step that used the whole budget would
 * otherwise leave int8 (4x smaller, faster) no room at all. An asked
 * fraction or an asked weight format gets the whole budget.
 */
export function slimmingBudget(opts: Pick<ResolvedExportOptions, 'maxDrop' | 'quantize' | 'slim'>): number {
  return opts.slim === 'auto' && opts.quantize === 'auto' ? opts.maxDrop / 2 : opts.maxDrop;
}
