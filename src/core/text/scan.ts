/**
 * The dataset summary of labelled texts (the panel's preview before a run):
 * counts per class, length statistics, vocabulary coverage of the bundled
 * word vectors, and a few texts per class with the file each came from.
 * Reads and decodes the texts as training does; embeds nothing.
 */
import type { Progress } from '../events';
import { type Skipped } from '../data/dataset';
import { type TextDataOptions, discoverTextDataset, snippet, textStats } from './dataset';
import { coverageOf } from './embed';
import { openGlove } from './encoder';
import type { TextScan } from '../../shared/records';

/** Texts per class the summary shows. */
export const EXAMPLES_PER_CLASS = 3;

/** What `scanTextDataset` finds: the plain shape of the worker's `scan` reply. */
export interface TextScanSummary {
  root: string;
  kind: 'text-folders' | 'text-csv' | 'text-jsonl';
  modality: 'text';
  counts: Record<string, number>;
  /** The first text's file (or `manifest:line`) of each class. */
  examples: Record<string, string>;
  skipped: Skipped[];
  total: number;
  text: TextScan;
}

/** Reads DATA's labelled texts and summarises them (see the file comment). */
export async function scanTextDataset(data: string, o: TextDataOptions & Progress = {}): Promise<TextScanSummary> {
  const ds = await discoverTextDataset(data, o);
  const counts: Record<string, number> = {};
  const examples: Record<string, string> = {};
  const texts: TextScan['examples'] = {};
  for (const s of ds.samples) {
    counts[s.label] = (counts[s.label] ?? 0) + 1;
    examples[s.label] ??= s.path;
    const list = (texts[s.label] ??= []);
    if (list.length < EXAMPLES_PER_CLASS) list.push({ path: s.path, text: snippet(s.text) });
  }
  const glove = await openGlove();
  const coverage = coverageOf((await glove.embed(ds.samples.map((s) => s.text))).map((e) => ({ known: e.known, words: e.words })));
  const { chars, words } = textStats(ds.samples);
  return { root: ds.root, kind: ds.kind, modality: 'text', counts, examples, skipped: ds.skipped, total: ds.samples.length, text: { chars, words, coverage: { ...coverage, backbone: glove.id }, examples: texts } };
}
