/**
 * The one source of truth for the choices and numeric options of every
 * command, as plain data: the CLI parses its flags with it, the engine
 * validates what callers pass with it (src/core/options.ts), and the panel
 * builds its form from it. Nothing here imports code.
 */

/** TensorFlow.js backends (`--backend`, the `headstart.backend` setting). */
export const BACKEND_CHOICES = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;
/** What runs the frozen backbone (`--engine`, `headstart.engine`). */
export const ENGINE_CHOICES = ['auto', 'onnx', 'tfjs'] as const;
/** Weight storage of an export (`--quantize`); int8 is ONNX-only. */
export const QUANTIZE_CHOICES = ['none', 'float16', 'uint16', 'uint8', 'int8', 'auto'] as const;
/** Model format of an export (`--format`). */
export const FORMAT_CHOICES = ['tfjs', 'onnx'] as const;
/** Head family (`--head`): auto (cross-validated), linear or mlp. */
export const HEAD_CHOICES = ['auto', 'linear', 'mlp'] as const;
/** Tensor layout of an ONNX backbone's image input (`--layout`). */
export const LAYOUT_CHOICES = ['NCHW', 'NHWC'] as const;
/** Value range an ONNX backbone's input expects before mean/std (`--range`): pixels 0..255 map linearly onto it. */
export const RANGE_CHOICES = ['0-1', '0-255', '-1-1'] as const;
/** Channel order of an ONNX backbone's colour input (`--channel-order`). */
export const CHANNEL_ORDER_CHOICES = ['RGB', 'BGR'] as const;
/** Pooling of a spatial feature map (`--pooling`): global average or global max. */
export const POOLING_CHOICES = ['avg', 'max'] as const;

/** Run names and sweep folders: a UTC timestamp like 20260314-093015. */
export function runStamp(at: Date = new Date()): string {
  return at.toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
}

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
  'input-size': opt('--input-size', true, 8, 2048, 224, "square input side of an ONNX backbone, pixels (default: from the model's input shape)"),
  mean: opt('--mean', false, -1000, 1000, 0, 'per-channel mean subtracted from an ONNX backbone\'s input, in --range units'),
  std: opt('--std', false, 0, 1000, 1, 'per-channel divisor of an ONNX backbone\'s input, in --range units', { minExclusive: true }),
  'lock-seconds': opt('--lock-seconds', false, 1, 3600, 30, "seconds a worker's job lock lasts before the job counts as stalled"),
  rank: opt('--rank', true, 1, 256, 1, 'leaderboard rank of the sweep trial to promote'),
} as const satisfies Record<string, NumericOption>;

export type NumericOptionName = keyof typeof NUMERIC_OPTIONS;


/**
 * Largest text example Headstart reads, in bytes (100 KB of UTF-8). A support
 * ticket, a review or an issue is a few KB; a larger file is a document, not
 * one example, and the average-word model would blur it into one vector.
 * Larger files and manifest cells are skipped with a reason; the editor's
 * Classify Selection classifies the first MAX_TEXT_BYTES of a larger selection.
 */
export const MAX_TEXT_BYTES = 100_000;

/** The text backbone that ships with the install (core's catalogue); the panel switches to it for a text dataset. */
export const DEFAULT_TEXT_BACKBONE = 'glove-100d-avg';
/** Below this share of known words, a text dataset's coverage is called low (another language, code, IDs). */
export const LOW_COVERAGE = 0.6;

/** Header names a text manifest's text column is found by (CSV / JSONL), in order of preference. */
export const TEXT_COLUMNS = ['text', 'sentence', 'content', 'body', 'message', 'utterance', 'review'];
/** Header names its label column is found by. */
export const LABEL_COLUMNS = ['label', 'class', 'category', 'intent', 'tag', 'target'];
