import type * as shared from '../../shared/records';
import type { ClassCounts } from '../../shared/records';
import { HeadstartError } from '../errors';
import { Rng } from '../rng';
import type { Sample, Skipped } from './dataset';

export type SplitName = 'train' | 'val' | 'test';

/** A sample with its content hash and the split it landed in. */
export interface SplitSample extends Sample {
  hash: string;
  split: SplitName;
}

export interface SplitOptions {
  /** Fraction for validation, default 0.15, range [0, 0.5]. */
  val?: number;
  /** Fraction for test, default 0.15, range [0, 0.5]. */
  test?: number;
  /** Seed of the shuffle, default 42. */
  seed?: number;
  /** What an example is called in messages, default 'image' (text: 'text'). */
  noun?: string;
}

/** Fewest images a class may have: one each for train, validation and test. */
export const MIN_PER_CLASS = 3;

export type { ClassCounts } from '../../shared/records';

/** The dataset as a run used it: the shared shape plus the groups of duplicates. */
export interface DatasetSummary extends shared.DatasetSummary {
  /** Groups of identical files (same content) that were kept together in one split. */
  duplicates: string[][];
  warnings: string[];
}

/**
 * Drops files whose identical content appears under two labels, then splits
 * stratified by class and seeded. Identical files of one class stay in one
 * split (grouped by content hash), so no test image leaks into training.
 */
export function splitDataset(samples: Array<Sample & { hash: string }>, opts: SplitOptions = {}): { samples: SplitSample[]; conflicts: Skipped[]; duplicates: string[][] } {
  const val = opts.val ?? 0.15;
  const test = opts.test ?? 0.15;
  if (!(val >= 0 && val <= 0.5) || !(test >= 0 && test <= 0.5)) throw new HeadstartError('BAD_INPUT', `--val and --test must be fractions between 0 and 0.5 (got ${val}, ${test})`);
  const byHash = new Map<string, Array<Sample & { hash: string }>>();
  for (const s of samples) {
    const group = byHash.get(s.hash);
    if (group) group.push(s);
    else byHash.set(s.hash, [s]);
  }
  const noun = opts.noun ?? 'image';
  const conflicts: Skipped[] = [];
  const duplicates: string[][] = [];
  const groups = new Map<string, Array<Array<Sample & { hash: string }>>>();
  for (const [, group] of byHash) {
    const labels = [...new Set(group.map((s) => s.label))];
    if (labels.length > 1) {
      for (const s of group) conflicts.push({ path: s.path, reason: `identical ${noun} content is labelled ${labels.map((l) => `'${l}'`).join(' and ')}; left out (conflicting labels)` });
      continue;
    }
    if (group.length > 1) duplicates.push(group.map((s) => s.rel));
    const label = labels[0]!;
    // push, not spread: copying the list per file made large classes quadratic.
    const list = groups.get(label);
    if (list) list.push(group);
    else groups.set(label, [group]);
  }
  const out: SplitSample[] = [];
  const rng = new Rng(opts.seed ?? 42);
  const classes = [...groups.keys()].sort();
  const tooSmall = classes.filter((c) => groups.get(c)!.length < MIN_PER_CLASS);
  if (tooSmall.length) {
    throw new HeadstartError('NO_DATA', `class${tooSmall.length > 1 ? 'es' : ''} ${tooSmall.map((c) => `'${c}' (${groups.get(c)!.length} distinct ${noun}${groups.get(c)!.length === 1 ? '' : 's'})`).join(', ')} need at least ${MIN_PER_CLASS} distinct readable ${noun}s each (one for training, validation and test); add ${noun}s or remove the folder`);
  }
  for (const c of classes) {
    const g = groups.get(c)!.sort((a, b) => (a[0]!.rel < b[0]!.rel ? -1 : 1));
    rng.shuffle(g);
    const n = g.length;
    const nTest = test > 0 ? Math.max(1, Math.round(n * test)) : 0;
    const nVal = val > 0 ? Math.max(1, Math.round(n * val)) : 0;
    g.forEach((group, i) => {
      const split: SplitName = i < nTest ? 'test' : i < nTest + nVal ? 'val' : 'train';
      for (const s of group) out.push({ ...s, split });
    });
  }
  return { samples: out, conflicts, duplicates };
}

/** Counts per class and split, plus warnings a user should see before training. */
export function summarise(root: string, kind: string, samples: SplitSample[], skipped: Skipped[], duplicates: string[][], noun = 'image'): DatasetSummary {
  const classes = [...new Set(samples.map((s) => s.label))].sort();
  const counts: Record<string, ClassCounts> = {};
  for (const c of classes) counts[c] = { train: 0, val: 0, test: 0, total: 0 };
  for (const s of samples) {
    counts[s.label]![s.split]++;
    counts[s.label]!.total++;
  }
  const warnings: string[] = [];
  const totals = classes.map((c) => counts[c]!.total);
  const max = Math.max(...totals);
  const min = Math.min(...totals);
  if (min > 0 && max / min >= 3) warnings.push(`classes are imbalanced (${min} to ${max} ${noun}s); class weights compensate in training, but more ${noun}s of the small classes would help`);
  const tiny = classes.filter((c) => counts[c]!.total < 10);
  if (tiny.length) warnings.push(`few ${noun}s in ${tiny.map((c) => `'${c}'`).join(', ')} (under 10): test metrics will be noisy`);
  if (duplicates.length) warnings.push(`${duplicates.length} group${duplicates.length > 1 ? 's' : ''} of identical files; each group was kept in one split`);
  const conflicts = skipped.filter((s) => s.reason.includes('conflicting labels'));
  if (conflicts.length) warnings.push(`${conflicts.length} files have identical content under two labels and were left out`);
  return { root, kind, classes, counts, total: samples.length, skipped, duplicates, warnings };
}
