import type * as shared from '../../shared/records';
import { throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { VectorCache } from '../data/cache';
import type { TextEmbedder } from './encoder';
import { LOW_COVERAGE } from '../../shared/options';

/** Coverage below which a run warns: the texts are mostly words the backbone does not know (one value, in shared/options; the panel's summary warns with it too). */
export { LOW_COVERAGE };

/** Vocabulary coverage of a dataset: word tokens with a vector (not [UNK]) over all word tokens. */
export type Coverage = shared.TextCoverage;

export interface TextFeatures {
  /** Feature vector by exact-text hash. */
  features: Map<string, Float32Array>;
  /** Coverage counts by exact-text hash. */
  counts: Map<string, { known: number; words: number }>;
  computed: number;
  cached: number;
  seconds: number;
  textsPerSecond: number;
}

/** Cache key of a text backbone: everything that shapes its vectors. */
export function textCacheKey(e: TextEmbedder): string {
  return `text-${e.id.replace(/[^\w.-]/g, '_').slice(0, 40)}-${e.modelHash.slice(0, 16)}`;
}

/**
 * Embeds texts through the on-disk embedding cache: one file per exact-text
 * hash under a key naming the backbone and its model hash; the file holds
 * the vector and the two coverage counts (known, words). Only what is not
 * cached is embedded, in batches of 64 with the AbortSignal checked between.
 */
export async function embedTexts(e: TextEmbedder, items: Array<{ exact: string; text: string }>, cacheRoot: string, progress: Progress = {}): Promise<TextFeatures> {
  const t0 = Date.now();
  const cache = new VectorCache(cacheRoot, textCacheKey(e), e.featureSize + 2);
  const features = new Map<string, Float32Array>();
  const counts = new Map<string, { known: number; words: number }>();
  const todo: Array<{ exact: string; text: string }> = [];
  const seen = new Set<string>();
  for (const it of items) {
    if (seen.has(it.exact)) continue;
    seen.add(it.exact);
    const v = await cache.get(it.exact);
    if (v) {
      features.set(it.exact, v.slice(0, e.featureSize));
      counts.set(it.exact, { known: v[e.featureSize]!, words: v[e.featureSize + 1]! });
    } else todo.push(it);
  }
  const cached = features.size;
  const emit = progress.onEvent ?? (() => undefined);
  if (todo.length) emit({ type: 'phase', phase: 'extract', message: `embedding ${todo.length} texts with ${e.id} (${cached} cached)` });
  const started = Date.now();
  for (let i = 0; i < todo.length; i += 64) {
    throwIfAborted(progress.signal);
    const batch = todo.slice(i, i + 64);
    const out = await e.embed(batch.map((b) => b.text));
    for (const [j, b] of batch.entries()) {
      const r = out[j]!;
      const row = new Float32Array(e.featureSize + 2);
      row.set(r.vector);
      row[e.featureSize] = r.known;
      row[e.featureSize + 1] = r.words;
      await cache.put(b.exact, row);
      features.set(b.exact, r.vector);
      counts.set(b.exact, { known: r.known, words: r.words });
    }
    const done = Math.min(todo.length, i + 64);
    emit({ type: 'progress', phase: 'extract', done, total: todo.length, unit: 'texts', rate: done / Math.max(0.001, (Date.now() - started) / 1000) });
  }
  const seconds = (Date.now() - t0) / 1000;
  return { features, counts, computed: todo.length, cached, seconds, textsPerSecond: todo.length / Math.max(1e-3, (Date.now() - started) / 1000) };
}

/** Coverage over the given texts' counts. */
export function coverageOf(counts: Iterable<{ known: number; words: number }>): Coverage {
  let known = 0;
  let words = 0;
  let empty = 0;
  let sum = 0;
  let n = 0;
  for (const c of counts) {
    known += c.known;
    words += c.words;
    if (c.known === 0) empty++;
    sum += c.words ? c.known / c.words : 1;
    n++;
  }
  return { tokens: words ? known / words : 1, emptyTexts: empty, meanPerText: n ? sum / n : 1 };
}

/** The warning a run shows for low coverage, or undefined. */
export function coverageWarning(c: Coverage, backbone: string): string | undefined {
  if (c.tokens >= LOW_COVERAGE) return undefined;
  return `only ${(c.tokens * 100).toFixed(0)}% of the words are known to ${backbone}${c.emptyTexts ? ` (${c.emptyTexts} texts have no known word)` : ''}: the texts may be in another language, code or IDs. The TF-IDF baseline reads any word; an encoder for that language (--backbone DIR with model.onnx + tokenizer.json) may do better`;
}
