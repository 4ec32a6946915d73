import { tokenize } from './tokenize';

/**
 * The trivial baseline's features: TF-IDF over word unigrams (the tokenizer
 * of tokenize.ts, numbers included), fitted on the training texts only
 * (vocabulary and document frequencies; no labels): at most
 * TFIDF_MAX_FEATURES terms, the most frequent by document frequency (ties by
 * term), appearing in at least two documents when there are more than
 * TFIDF_MAX_FEATURES candidates. Rows use sublinear term frequency
 * (1 + ln tf), smoothed idf (ln((1 + n) / (1 + df)) + 1) and unit L2 norm,
 * as scikit-learn's TfidfVectorizer(sublinear_tf=True) does.
 */
export const TFIDF_MAX_FEATURES = 5000;

export interface TfidfModel {
  terms: string[];
  idf: Float32Array;
  index: Map<string, number>;
}

/** Fits the vocabulary and idf on `docs` (training texts). */
export function fitTfidf(docs: string[], maxFeatures = TFIDF_MAX_FEATURES): TfidfModel {
  const df = new Map<string, number>();
  for (const d of docs) for (const t of new Set(tokenize(d))) df.set(t, (df.get(t) ?? 0) + 1);
  let cands = [...df.entries()];
  if (cands.length > maxFeatures) cands = cands.filter(([, n]) => n >= 2);
  cands.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const kept = cands.slice(0, maxFeatures);
  const n = docs.length;
  const terms = kept.map(([t]) => t);
  const idf = Float32Array.from(kept, ([, f]) => Math.log((1 + n) / (1 + f)) + 1);
  return { terms, idf, index: new Map(terms.map((t, i) => [t, i])) };
}

/** TF-IDF rows of `docs` (row-major, docs.length x terms.length). */
export function transformTfidf(m: TfidfModel, docs: string[]): Float32Array {
  const dim = m.terms.length;
  const out = new Float32Array(docs.length * dim);
  docs.forEach((d, r) => {
    const tf = new Map<number, number>();
    for (const t of tokenize(d)) {
      const i = m.index.get(t);
      if (i !== undefined) tf.set(i, (tf.get(i) ?? 0) + 1);
    }
    let norm = 0;
    for (const [i, c] of tf) {
      const v = (1 + Math.log(c)) * m.idf[i]!;
      out[r * dim + i] = v;
      norm += v * v;
    }
    norm = Math.sqrt(norm);
    if (norm > 0) for (const [i] of tf) out[r * dim + i]! /= norm;
  });
  return out;
}
