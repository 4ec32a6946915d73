import * as tf from '@tensorflow/tfjs';
import { HeadstartError } from './errors';
import type { Progress } from './events';
import { THUMB } from './data/decode';
import type { SplitName, SplitSample } from './data/split';
import { checkOption } from './options';
import { type HeadOptions, type HeadResult, type VectorSet, evaluateSet, trainHead } from './train/head';
import { type GroupedSet, type HeadConfig, type Selection, baselineAdvice, configHead, scoreConfig, selectHead, standardiseColumns } from './train/select';
import { type EvalResult, type Interval, evaluatePredictions } from './train/metrics';

/**
 * Parts of the training job shared by the image pipeline (run.ts) and the
 * text pipeline (text/run.ts): the run format version, gathering vectors by
 * split, the cross-validated head choice beside a trivial baseline, the
 * baseline's refit and verdict, head option checks and head probabilities.
 */
export const RUN_VERSION = 1;

/** Baseline on raw pixels, to show what the pretrained backbone bought. */
export interface BaselineResult {
  description: string;
  /** Test accuracy of the baseline refit on all non-test images. */
  accuracy: number;
  /** 95% Wilson interval of `accuracy` on the test images. */
  interval: Interval;
  /** Mean accuracy across the same cross-validation folds as the head (absent without selection). */
  cvAccuracy?: number;
  /** True when raw pixels beat the chosen head in cross-validation. */
  wins: boolean;
  /** What to try when it wins. */
  advice?: string;
  macroF1: number;
  /** Backbone test accuracy minus baseline test accuracy, in points (0..100). */
  gainPoints: number;
  verdict: string;
}

export function gather(samples: SplitSample[], split: SplitName | undefined, vectors: Map<string, Float32Array>, labels: string[], size: number): VectorSet & { paths: string[] } {
  const sel = split ? samples.filter((s) => s.split === split) : samples;
  const x = new Float32Array(sel.length * size);
  const y = new Int32Array(sel.length);
  sel.forEach((s, i) => {
    x.set(vectors.get(s.hash)!, i * size);
    y[i] = labels.indexOf(s.label);
  });
  return { x, y, paths: sel.map((s) => s.path) };
}

export const BASELINE_HEAD = { hiddenUnits: 0, l2: 1e-3 };

/**
 * The trivial baseline's features: raw-pixel thumbnails for images, TF-IDF
 * words for text (src/core/text/). `vectors` is keyed by sample hash.
 */
export interface BaselineFeatures {
  vectors: Map<string, Float32Array>;
  dim: number;
  /** Standardise columns on the training rows (raw pixels need it). */
  standardise: boolean;
  /** What the baseline reads, in the verdict: 'raw pixels', 'TF-IDF words'. */
  name: string;
  description: string;
  /** Why a backbone may buy little over it. */
  easyHint: string;
  /** Advice when it beats the backbone in cross-validation. */
  advice: (baseline: number, chosen: number) => string;
}

/** The image baseline: THUMB x THUMB raw pixels. */
export function pixelBaseline(thumbs: Map<string, Float32Array>): BaselineFeatures {
  return { vectors: thumbs, dim: THUMB * THUMB * 3, standardise: true, name: 'raw pixels', description: `logistic regression on ${THUMB}x${THUMB} raw pixels`, easyHint: 'this data may be easy from colour and layout alone, or too small to tell', advice: baselineAdvice };
}

/** The user's --epochs, else the mean epoch early stopping kept across folds. */
export const fixedOr = (epochs: number | undefined, meanBest: number): number => epochs ?? Math.max(1, Math.round(meanBest));

/**
 * The "no backbone" baseline: logistic regression on THUMB x THUMB raw pixels,
 * trained on every non-test image (or the train split for --unfreeze runs) and
 * scored on the test split; `cv` is its mean accuracy on the head's folds.
 */
export async function trainBaseline(samples: SplitSample[], base: BaselineFeatures, labels: string[], head: Required<HeadOptions>, test: EvalResult, cv: { baseline: number; chosen: number; epochs: number } | undefined, progress: Progress): Promise<BaselineResult> {
  const dim = base.dim;
  const tr = gather(samples.filter((s) => s.split !== 'test' && (!cv ? s.split === 'train' : true)), undefined, base.vectors, labels, dim);
  const te = gather(samples, 'test', base.vectors, labels, dim);
  if (base.standardise) standardiseColumns(tr.x, [te.x], dim);
  const res = await trainHead(tr, { x: new Float32Array(0), y: new Int32Array(0) }, dim, labels.length, { ...head, ...BASELINE_HEAD, dropout: 0, patience: 0, epochs: cv?.epochs ?? head.epochs }, { signal: progress.signal });
  const probs = evaluateSet(res.model, te, dim, labels.length).probs;
  res.model.dispose();
  const ev = evaluatePredictions(labels, te.y, probs);
  const gain = (test.accuracy - ev.accuracy) * 100;
  const wins = cv ? cv.baseline > cv.chosen : gain < 0;
  const advice = wins ? base.advice(cv?.baseline ?? ev.accuracy, cv?.chosen ?? test.accuracy) : undefined;
  const verdict = advice
    ? advice
    : gain >= 5
      ? `the pretrained backbone adds ${gain.toFixed(1)} points over ${base.name}`
      : `the pretrained backbone buys little here (${gain.toFixed(1)} points over ${base.name}): ${base.easyHint}`;
  return { description: `${base.description}, same split${cv ? ' and folds' : ''}`, accuracy: ev.accuracy, interval: ev.interval, cvAccuracy: cv?.baseline, wins, advice, macroF1: ev.macroF1, gainPoints: gain, verdict };
}

/** Rows of the same source images as `set`, from another vector map (raw-pixel thumbnails), originals only. */
export function originalsOf(sources: SplitSample[], vectors: Map<string, Float32Array>, labels: string[], dim: number): GroupedSet {
  const g = gather(sources, undefined, vectors, labels, dim);
  return { x: g.x, y: g.y, group: Int32Array.from(sources.keys()), original: new Uint8Array(sources.length).fill(1) };
}

/**
 * Cross-validates the head grid (and the raw-pixel baseline on the same
 * folds), then refits the chosen configuration on every non-test row.
 */
export async function selectAndRefit(set: GroupedSet, sources: SplitSample[], base: BaselineFeatures, labels: string[], dim: number, head: Required<HeadOptions>, grid: HeadConfig[], fixedEpochs: number | undefined, progress: Progress): Promise<{ res: HeadResult; selection: Selection }> {
  const k = labels.length;
  const sourceLabels = Int32Array.from(sources, (s) => labels.indexOf(s.label));
  const emit = progress.onEvent ?? (() => undefined);
  const cv = await selectHead(set, sourceLabels, dim, k, { grid, head, fixedEpochs }, progress);
  const chosenScore = cv.selection.results.find((r) => r.name === cv.selection.chosen)!;
  const baselineHead = configHead(head, { name: 'baseline', head: 'linear', ...BASELINE_HEAD }, fixedEpochs !== undefined);
  const b = await scoreConfig(originalsOf(sources, base.vectors, labels, base.dim), base.dim, k, cv.plan.fold, cv.plan.evalFolds, baselineHead, progress, base.standardise);
  const bMean = b.accuracies.reduce((a, x) => a + x, 0) / b.accuracies.length;
  const bStd = Math.sqrt(b.accuracies.reduce((a, x) => a + (x - bMean) ** 2, 0) / b.accuracies.length);
  const wins = bMean > chosenScore.meanAccuracy;
  const selection: Selection = { ...cv.selection, baseline: { meanAccuracy: bMean, stdAccuracy: bStd, foldAccuracies: b.accuracies, meanBestEpoch: b.bestEpochs.reduce((a, x) => a + x, 0) / b.bestEpochs.length }, baselineWins: wins, advice: wins ? base.advice(bMean, chosenScore.meanAccuracy) : undefined };
  emit({ type: 'log', message: `chose ${selection.chosen}: ${selection.reason}` });
  if (wins) emit({ type: 'warning', message: selection.advice! });
  const res = cv.res;
  return { res, selection };
}

/** Checks head options against the shared option table (src/core/options.ts); BAD_INPUT naming the flag. */
export function validateHead(h: Required<HeadOptions>): void {
  checkOption('epochs', h.epochs);
  checkOption('batch', h.batchSize);
  checkOption('lr', h.learningRate);
  checkOption('hidden', h.hiddenUnits);
  checkOption('dropout', h.dropout);
  checkOption('patience', h.patience);
  checkOption('seed', h.seed);
  if (!(typeof h.l2 === 'number' && h.l2 >= 0 && h.l2 <= 1)) throw new HeadstartError('BAD_INPUT', `l2 must be a number from 0 to 1 (got ${h.l2})`);
}

/** Head probabilities for feature rows. */
export function headProbs(head: tf.LayersModel, x: Float32Array, featureSize: number): Float32Array {
  const n = x.length / featureSize;
  return tf.tidy(() => (head.predict(tf.tensor2d(x, [n, featureSize])) as tf.Tensor).dataSync() as Float32Array);
}
