/**
 * The numeric options of every command, in one table: the CLI parses its
 * flags with it, the engine validates what callers pass with it (the panel's
 * form can build its inputs from it). Messages name the flag, its range and
 * what was given: "--epochs must be a whole number from 1 to 1000 (got -1)".
 */
import { HeadstartError } from './errors';

/** One numeric option: its range, whether it is whole, its default. */
export interface NumericOption {
  /** How messages name it, e.g. `--epochs` or `--aug crop`. */
  label: string;
  /** Whole numbers only. */
  int: boolean;
  min: number;
  max: number;
  /** The bound itself is not allowed (a value must be greater than min / less than max). */
  minExclusive?: boolean;
  maxExclusive?: boolean;
  /** Value used when the option is not given. */
  default: number;
  /** What it sets, in a few words (help text, form labels). */
  help: string;
}

const opt = (label: string, int: boolean, min: number, max: number, dflt: number, help: string, extra: Partial<NumericOption> = {}): NumericOption => ({ label, int, min, max, default: dflt, help, ...extra });

/** Largest seed: seeds feed 32-bit generators and TF.js initialisers. */
export const MAX_SEED = 2 ** 31 - 1;

/** Every numeric option of every command, by flag name (without dashes). */
export const NUMERIC_OPTIONS = {
  epochs: opt('--epochs', true, 1, 1000, 30, 'passes over the training set'),
  batch: opt('--batch', true, 1, 4096, 32, 'vectors per training step'),
  lr: opt('--lr', false, 0, 1, 1e-3, 'Adam learning rate', { minExclusive: true }),
  hidden: opt('--hidden', true, 0, 8192, 128, 'units of the hidden layer (0: none)'),
  l2: opt('--l2', false, 0, 1, 1e-4, "L2 penalty on the head's kernels"),
  dropout: opt('--dropout', false, 0, 1, 0.2, 'dropout rate after the hidden layer', { maxExclusive: true }),
  patience: opt('--patience', true, 0, 1000, 6, 'epochs without improvement before stopping (0: never stop early)'),
  seed: opt('--seed', true, 0, MAX_SEED, 42, 'seed of splits, initialisation and shuffling (sample: default 7)'),
  val: opt('--val', false, 0, 0.5, 0.15, 'fraction of images held out for validation'),
  test: opt('--test', false, 0, 0.5, 0.15, 'fraction of images held out for the test (0: none)'),
  unfreeze: opt('--unfreeze', true, 0, 1000, 0, 'top weighted layers of the backbone to fine-tune (0: frozen)'),
  augment: opt('--augment', true, 0, 32, 2, 'augmented views per training image (0: off)'),
  crop: opt('--aug crop', false, 0, 0.5, 0.15, 'largest fraction of the side cropped away'),
  rotate: opt('--aug rotate', false, 0, 45, 10, 'largest rotation, degrees either way'),
  brightness: opt('--aug brightness', false, 0, 1, 0.2, 'largest brightness change (±fraction)'),
  contrast: opt('--aug contrast', false, 0, 1, 0.2, 'largest contrast change (±fraction)'),
  workers: opt('--workers', true, 1, 64, 4, 'extraction threads'),
  prune: opt('--prune', false, 0, 1, 0, 'fraction of weights pruned to zero', { maxExclusive: true }),
  'max-drop': opt('--max-drop', false, 0, 100, 1, 'accuracy points --quantize auto may lose'),
  temperature: opt('--temperature', false, 1, 20, 4, 'softening temperature of the teacher'),
  alpha: opt('--alpha', false, 0, 1, 0.7, "weight of the teacher's soft targets"),
  'per-class': opt('--per-class', true, 1, 10_000, 30, 'images per class'),
  classes: opt('--classes', true, 2, 4, 3, 'classes (circle, square, triangle, star)'),
  shard: opt('--shard', true, 1, 100_000, 256, 'images per queued extraction job'),
  'queue-timeout': opt('--queue-timeout', false, 1, 86_400, 20, 'seconds without an answer from the queue before giving up'),
  concurrency: opt('--concurrency', true, 1, 64, 1, 'jobs a worker runs at once'),
  'lock-seconds': opt('--lock-seconds', false, 1, 3600, 30, "seconds a worker's job lock lasts before the job counts as stalled"),
} as const satisfies Record<string, NumericOption>;

export type NumericOptionName = keyof typeof NUMERIC_OPTIONS;

/** The range of an option in words: "a whole number from 1 to 1000", "a number greater than 0 and at most 1". */
export function describeRange(name: NumericOptionName): string {
  const o: NumericOption = NUMERIC_OPTIONS[name];
  const kind = o.int ? 'a whole number' : 'a number';
  if (!o.minExclusive && !o.maxExclusive) return `${kind} from ${o.min} to ${o.max}`;
  const lo = o.minExclusive ? `greater than ${o.min}` : `at least ${o.min}`;
  const hi = o.maxExclusive ? `less than ${o.max}` : `at most ${o.max}`;
  return `${kind} ${lo} and ${hi}`;
}

function refuse(name: NumericOptionName, got: string): never {
  throw new HeadstartError('BAD_INPUT', `${NUMERIC_OPTIONS[name].label} must be ${describeRange(name)} (got ${got})`);
}

/** Checks a value against its option's range; returns it. Throws BAD_INPUT naming the flag otherwise. */
export function checkOption(name: NumericOptionName, value: unknown, given?: string): number {
  const o: NumericOption = NUMERIC_OPTIONS[name];
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (!o.int || Number.isInteger(value)) &&
    (o.minExclusive ? value > o.min : value >= o.min) &&
    (o.maxExclusive ? value < o.max : value <= o.max);
  if (!ok) refuse(name, given ?? (typeof value === 'string' ? JSON.stringify(value) : String(value)));
  return value as number;
}

/** Plain decimal notation, optionally with an exponent: no hex, binary, octal, blanks, Infinity or NaN. */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/**
 * Parses a flag's text as a number of its option and checks its range.
 * `undefined` (flag not given) stays undefined.
 */
export function parseOption(name: NumericOptionName, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const shown = text && text.trim() === text ? text : JSON.stringify(text);
  if (!DECIMAL.test(text)) refuse(name, shown);
  return checkOption(name, Number(text), shown);
}

/** Checks the validation and test fractions together: each in range, and some images left to train on. */
export function checkSplit(val: number | undefined, test: number | undefined): void {
  const v = val === undefined ? NUMERIC_OPTIONS.val.default : checkOption('val', val);
  const t = test === undefined ? NUMERIC_OPTIONS.test.default : checkOption('test', test);
  if (v + t >= 1) throw new HeadstartError('BAD_INPUT', `--val plus --test must leave images to train on (below 1; got ${v} + ${t})`);
}
