import { HeadstartError, throwIfAborted } from '../errors';
import { HEAD_CHOICES } from '../../shared/options';
import type * as shared from '../../shared/records';
import type { Progress } from '../events';
import { Rng } from '../rng';
import { type HeadOptions, type HeadResult, type VectorSet, evaluateSet, trainHead } from './head';

/**
 * Cross-validated choice of the head, on cached features.
 *
 * - Folds: stratified k-fold over source images (k = 5), grouped by source:
 *   augmented views of an image always sit in the fold of their source, and
 *   only original images are scored. Above HOLDOUT_THRESHOLD source images a
 *   single validation split (one fold of the five, 20%) is used instead.
 * - Grid: a linear head (softmax regression) with L2 in L2_GRID, and one
 *   hidden layer (128 ReLU units, dropout as configured) with L2 1e-4 (its
 *   dropout and early stopping regularise it; `--head mlp` tries L2_GRID).
 *   Five MLP fits cost what today's single TF.js fit did; more would not. Epochs: early
 *   stopping on the fold's validation loss (patience as configured, at most
 *   `epochs`); the refit trains the mean best epoch of the chosen config.
 *   A linear head is convex: it trains at LINEAR_LR_FACTOR times the learning
 *   rate, in batches of at least LINEAR_MIN_BATCH, for up to
 *   LINEAR_EPOCH_FACTOR times the epochs (early stopping still ends it), so
 *   it is not judged undertrained.
 * - Choice: the best mean fold accuracy; a simpler configuration within
 *   TIE_POINTS of it wins instead (linear before MLP, stronger L2 first).
 */
export const FOLDS = 5;
/** Source images above which a single validation split replaces k-fold. */
export const HOLDOUT_THRESHOLD = 2000;
/** Two L2 strengths, weak and strong: with early stopping in each fold a middle value rarely changed the choice, and each costs five fits. */
export const L2_GRID = [1e-4, 1e-2] as const;
/** Linear heads may train this many times `epochs` (early stopping decides)... */
export const LINEAR_EPOCH_FACTOR = 3;
/** ...at this many times the learning rate (at most 0.1)... */
export const LINEAR_LR_FACTOR = 10;
/** ...in batches of at least this many vectors (same optimum, a quarter of the steps). */
export const LINEAR_MIN_BATCH = 128;
/** The MLP's L2 in an auto grid. */
export const MLP_AUTO_L2 = 1e-4;
/** Accuracy points within which the simpler configuration is preferred. */
export const TIE_POINTS = 0.5;
/** Fewest source images (and per class) for cross-validation to mean anything. */
export const MIN_SOURCES = 10;

export type HeadChoice = (typeof HEAD_CHOICES)[number];

/** One configuration of the grid. */
export interface HeadConfig {
  name: string;
  head: 'linear' | 'mlp';
  hiddenUnits: number;
  l2: number;
}

/** A configuration scored across the folds, and what run.json records under `selection` (plain data: src/shared/records.ts). */
export type ConfigScore = shared.ConfigScore;
export interface Selection extends shared.Selection {
  /** Non-test images above which a single holdout split replaces k-fold. */
  holdoutThreshold: number;
  /** The raw-pixel baseline on the same folds (with the epochs early stopping kept). */
  baseline?: { meanAccuracy: number; stdAccuracy: number; foldAccuracies: number[]; meanBestEpoch: number };
}

/** Rows of features with their source image: views carry their source's index; `original` marks rows that are the source itself. */
export interface GroupedSet extends VectorSet {
  group: Int32Array;
  original: Uint8Array;
}

/** Fold of each source (0..k-1), stratified by label: each class's sources shuffled, then dealt round the folds. */
export function stratifiedFolds(sourceLabels: ArrayLike<number>, k: number, seed: number): Int32Array {
  const fold = new Int32Array(sourceLabels.length);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < sourceLabels.length; i++) byClass.set(sourceLabels[i]!, [...(byClass.get(sourceLabels[i]!) ?? []), i]);
  const rng = new Rng(seed ^ 0x5bd1e995);
  let at = 0;
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    for (const i of rng.shuffle(byClass.get(c)!)) fold[i] = at++ % k;
  }
  return fold;
}

function subset(set: GroupedSet, keep: (row: number) => boolean, dim: number): VectorSet {
  const rows: number[] = [];
  for (let r = 0; r < set.y.length; r++) if (keep(r)) rows.push(r);
  const x = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => x.set(set.x.subarray(r * dim, (r + 1) * dim), i * dim));
  return { x, y: Int32Array.from(rows, (r) => set.y[r]!) };
}

const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / Math.max(a.length, 1);
const std = (a: number[]) => Math.sqrt(mean(a.map((v) => (v - mean(a)) ** 2)));

/** The grid for `--head` and the flags that fix a part of it. */
export function headGrid(choice: HeadChoice, fixed: { hiddenUnits?: number; l2?: number }, defaultHidden: number): HeadConfig[] {
  if (!HEAD_CHOICES.includes(choice)) throw new HeadstartError('BAD_INPUT', `--head must be one of ${HEAD_CHOICES.join(', ')} (got '${String(choice)}')`);
  let heads: Array<'linear' | 'mlp'> = choice === 'auto' ? ['linear', 'mlp'] : [choice];
  if (fixed.hiddenUnits !== undefined) {
    const want = fixed.hiddenUnits === 0 ? 'linear' : 'mlp';
    if (choice !== 'auto' && choice !== want) throw new HeadstartError('BAD_INPUT', `--head ${choice} contradicts --hidden ${fixed.hiddenUnits}; drop one of them`);
    heads = [want];
  }
  const hidden = fixed.hiddenUnits || defaultHidden || 128;
  const l2s = (head: 'linear' | 'mlp') => (fixed.l2 !== undefined ? [fixed.l2] : head === 'mlp' && heads.length > 1 ? [MLP_AUTO_L2] : [...L2_GRID]);
  return heads.flatMap((head) => l2s(head).map((l2) => ({ name: `${head === 'linear' ? 'linear' : `mlp${hidden}`} l2=${l2}`, head, hiddenUnits: head === 'linear' ? 0 : hidden, l2 })));
}

/** Simplicity order: linear before MLP, then stronger L2. */
const simpler = (a: HeadConfig, b: HeadConfig) => (a.head === b.head ? b.l2 - a.l2 : a.head === 'linear' ? -1 : 1);

/** The configuration to keep, and why. */
export function choose(results: ConfigScore[]): { chosen: ConfigScore; reason: string } {
  const best = results.reduce((a, b) => (b.meanAccuracy > a.meanAccuracy ? b : a));
  const near = results.filter((r) => r.meanAccuracy >= best.meanAccuracy - TIE_POINTS / 100 - 1e-12).sort(simpler);
  const chosen = near[0]!;
  const pts = (x: number) => `${(x * 100).toFixed(1)}%`;
  const reason =
    chosen === best
      ? `highest mean fold accuracy (${pts(best.meanAccuracy)} ± ${pts(best.stdAccuracy)})${results.length > 1 ? `; next best ${pts(Math.max(...results.filter((r) => r !== best).map((r) => r.meanAccuracy)))}` : ''}`
      : `${pts(chosen.meanAccuracy)} is within ${TIE_POINTS} points of the best (${best.name}, ${pts(best.meanAccuracy)}): the simpler model is kept`;
  return { chosen, reason };
}

export interface CrossValidateOptions {
  grid: HeadConfig[];
  /** Other head options (epochs, patience, batch, learning rate, dropout, seed, class weights). */
  head: Required<HeadOptions>;
  /** Fixed epochs (no early stopping) when the user gave --epochs. */
  fixedEpochs?: number;
}

/** Fold plan of a grouped set: fold per source, method and fold count. */
export function foldPlan(sourceLabels: Int32Array, seed: number): { fold: Int32Array; method: Selection['method']; folds: number; evalFolds: number[] } {
  const holdout = sourceLabels.length > HOLDOUT_THRESHOLD;
  return { fold: stratifiedFolds(sourceLabels, FOLDS, seed), method: holdout ? 'holdout' : 'stratified-k-fold', folds: holdout ? 1 : FOLDS, evalFolds: holdout ? [0] : Array.from({ length: FOLDS }, (_, i) => i) };
}

/** Accuracy per fold of one configuration, and the epochs early stopping kept. */
export async function scoreConfig(set: GroupedSet, dim: number, k: number, fold: Int32Array, evalFolds: number[], head: Required<HeadOptions>, progress: Progress, standardise = false): Promise<{ accuracies: number[]; bestEpochs: number[] }> {
  const accuracies: number[] = [];
  const bestEpochs: number[] = [];
  for (const f of evalFolds) {
    throwIfAborted(progress.signal);
    const tr = subset(set, (r) => fold[set.group[r]!] !== f, dim);
    const va = subset(set, (r) => fold[set.group[r]!] === f && set.original[r] === 1, dim);
    if (standardise) standardiseColumns(tr.x, [va.x], dim);
    const res = await trainHead(tr, va, dim, k, head, { signal: progress.signal });
    try {
      accuracies.push(evaluateSet(res.model, va, dim, k).accuracy);
      bestEpochs.push(res.bestEpoch || res.history.length);
    } finally {
      res.model.dispose();
    }
  }
  return { accuracies, bestEpochs };
}

/** Standardises columns with the first set's mean and std (in place): raw pixels need it, features do not. */
export function standardiseColumns(train: Float32Array, others: Float32Array[], dim: number): void {
  const n = train.length / dim;
  const mu = new Float64Array(dim);
  const sq = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) mu[d]! += train[i * dim + d]! / n;
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) sq[d]! += (train[i * dim + d]! - mu[d]!) ** 2 / n;
  for (const a of [train, ...others]) for (let i = 0; i < a.length; i++) a[i] = (a[i]! - mu[i % dim]!) / Math.sqrt(sq[i % dim]! + 1e-6);
}

/**
 * Scores every configuration of the grid on the same folds and picks one.
 * `sourceLabels[g]` is the label of source g; rows of `set` point at their source.
 */
export async function crossValidate(set: GroupedSet, sourceLabels: Int32Array, dim: number, k: number, o: CrossValidateOptions, progress: Progress = {}): Promise<{ selection: Omit<Selection, 'baseline' | 'baselineWins' | 'advice'>; chosen: HeadConfig; plan: ReturnType<typeof foldPlan> }> {
  const t0 = Date.now();
  const plan = foldPlan(sourceLabels, o.head.seed);
  const head = o.fixedEpochs ? { ...o.head, epochs: o.fixedEpochs, patience: 0 } : o.head;
  const results: ConfigScore[] = [];
  for (const [i, c] of o.grid.entries()) {
    progress.onEvent?.({ type: 'progress', phase: 'train', done: i, total: o.grid.length, unit: 'configurations' });
    const s = await scoreConfig(set, dim, k, plan.fold, plan.evalFolds, configHead(head, c, !!o.fixedEpochs), progress);
    results.push({ ...c, meanAccuracy: mean(s.accuracies), stdAccuracy: std(s.accuracies), foldAccuracies: s.accuracies, meanBestEpoch: mean(s.bestEpochs) });
  }
  progress.onEvent?.({ type: 'progress', phase: 'train', done: o.grid.length, total: o.grid.length, unit: 'configurations' });
  const { chosen, reason } = choose(results);
  const refitEpochs = o.fixedEpochs ?? Math.max(1, Math.round(chosen.meanBestEpoch));
  return {
    selection: {
      method: plan.method,
      folds: plan.folds,
      sources: sourceLabels.length,
      holdoutThreshold: HOLDOUT_THRESHOLD,
      grid: { heads: [...new Set(o.grid.map((g) => g.head))], hiddenUnits: Math.max(0, ...o.grid.map((g) => g.hiddenUnits)), l2: [...new Set(o.grid.map((g) => g.l2))], epochs: o.fixedEpochs ? `fixed at ${o.fixedEpochs}` : `early stopping in each fold (patience ${o.head.patience}, at most ${o.head.epochs}); refit for the mean best epoch` },
      results,
      chosen: chosen.name,
      reason,
      refitEpochs,
      seconds: (Date.now() - t0) / 1000,
    },
    chosen,
    plan,
  };
}

/** Head options of one grid configuration. */
export function configHead(head: Required<HeadOptions>, c: HeadConfig, epochsFixed: boolean): Required<HeadOptions> {
  return { ...head, hiddenUnits: c.hiddenUnits, l2: c.l2, ...(c.head === 'linear' ? { dropout: 0, learningRate: Math.min(0.1, Math.max(head.learningRate, head.learningRate * LINEAR_LR_FACTOR)), batchSize: Math.max(head.batchSize, LINEAR_MIN_BATCH), epochs: epochsFixed ? head.epochs : head.epochs * LINEAR_EPOCH_FACTOR } : {}) };
}

/** Plain words for a baseline that beats the backbone in cross-validation. */
export function baselineAdvice(baseline: number, chosen: number): string {
  return `raw pixels (${(baseline * 100).toFixed(1)}%) beat the backbone's features (${(chosen * 100).toFixed(1)}%) in cross-validation: this data is unlike the backbone's training images. Try another backbone (--backbone), more images per class, or fine-tuning its top layers (--unfreeze 1)`;
}

/**
 * Cross-validates the grid, then refits the chosen configuration on every row
 * of `set` (all non-test data) for the mean best epoch of its folds.
 */
export async function selectHead(set: GroupedSet, sourceLabels: Int32Array, dim: number, k: number, o: CrossValidateOptions, progress: Progress = {}): Promise<{ res: HeadResult; selection: Omit<Selection, 'baseline' | 'baselineWins' | 'advice'>; chosen: HeadConfig; plan: ReturnType<typeof foldPlan> }> {
  const cv = await crossValidate(set, sourceLabels, dim, k, o, progress);
  progress.onEvent?.({ type: 'phase', phase: 'train', message: `refitting ${cv.selection.chosen} on all ${set.y.length} non-test vectors for ${cv.selection.refitEpochs} epochs` });
  const res = await trainHead(set, { x: new Float32Array(0), y: new Int32Array(0) }, dim, k, { ...configHead(o.head, cv.chosen, true), epochs: cv.selection.refitEpochs, patience: 0 }, progress);
  return { res, ...cv };
}
