import type * as shared from '../../shared/records';
import type { Mistake } from '../../shared/records';
export type { ClassMetrics, Mistake } from '../../shared/records';

/** A 95% confidence interval of a proportion (0..1), with the count it rests on. */
export interface Interval {
  low: number;
  high: number;
  /** Images the proportion was measured on. */
  n: number;
  level: 0.95;
}

const Z95 = 1.959963984540054;

/**
 * Wilson score interval of `correct` successes in `n` trials (95%): unlike
 * p ± 1.96·SE it stays inside [0, 1] and is honest at 0/n and n/n.
 * 8/10 → [0.490, 0.943]; 0/10 → [0, 0.278].
 */
export function wilson(correct: number, n: number, z = Z95): Interval {
  if (n <= 0) return { low: 0, high: 1, n: 0, level: 0.95 };
  const p = correct / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half), n, level: 0.95 };
}

/** The interval of an accuracy measured on n images. */
export function accuracyInterval(accuracy: number, n: number): Interval {
  return wilson(Math.round(accuracy * n), n);
}

/** "81.0% (95% CI 72.3–87.6%, n=100)" */
export function formatAccuracy(accuracy: number, iv: Interval): string {
  const pct = (x: number) => (x * 100).toFixed(1);
  return `${pct(accuracy)}% (95% CI ${pct(iv.low)}–${pct(iv.high)}%, n=${iv.n})`;
}

/** Images per class under which an accuracy figure gets a warning. */
export const SMALL_CLASS = 30;

/** A warning when some class has fewer than 30 evaluation images: how wide the figure's interval is. */
export function smallSampleWarning(perClass: Array<{ label: string; support: number }>, iv: Interval): string | undefined {
  const present = perClass.filter((c) => c.support > 0);
  if (!present.length) return undefined;
  const fewest = present.reduce((a, b) => (b.support < a.support ? b : a));
  if (fewest.support >= SMALL_CLASS) return undefined;
  const width = ((iv.high - iv.low) * 100) / 2;
  return `only ${fewest.support} evaluation image${fewest.support === 1 ? '' : 's'} in class '${fewest.label}' (under ${SMALL_CLASS} per class): the accuracy's 95% interval is ${(iv.low * 100).toFixed(1)}–${(iv.high * 100).toFixed(1)}% (about ±${width.toFixed(1)} points), so differences smaller than that are noise; per-class figures are rougher still`;
}

/** The metrics `eval` prints and `train` nests under `test`. */
export interface EvalResult extends shared.EvalResult {
  /** 95% Wilson interval of `accuracy` over `count` images. */
  interval: Interval;
  /** Set when a class has under 30 images: how uncertain the figure is. */
  warning?: string;
}

/** Computes accuracy, per-class P/R/F1 and the confusion matrix. */
export function evaluatePredictions(labels: string[], yTrue: ArrayLike<number>, probs: Float32Array, paths: string[] = [], maxMistakes = 20): EvalResult {
  const k = labels.length;
  const n = yTrue.length;
  const confusion = labels.map(() => new Array<number>(k).fill(0));
  const mistakes: Mistake[] = [];
  let correct = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (probs[i * k + j]! > probs[i * k + best]!) best = j;
    const t = yTrue[i]!;
    confusion[t]![best]!++;
    if (best === t) correct++;
    else mistakes.push({ path: paths[i] ?? '', label: labels[t]!, predicted: labels[best]!, probability: probs[i * k + best]! });
  }
  const perClass = labels.map((label, c) => {
    const tp = confusion[c]![c]!;
    const support = confusion[c]!.reduce((a, b) => a + b, 0);
    const predicted = confusion.reduce((a, row) => a + row[c]!, 0);
    const precision = predicted ? tp / predicted : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    return { label, precision, recall, f1, support };
  });
  mistakes.sort((a, b) => b.probability - a.probability);
  const interval = wilson(correct, n);
  const warning = smallSampleWarning(perClass, interval);
  return {
    accuracy: n ? correct / n : 0,
    interval,
    ...(warning ? { warning } : {}),
    macroF1: perClass.reduce((a, c) => a + c.f1, 0) / Math.max(k, 1),
    count: n,
    labels,
    perClass,
    confusion,
    mistakes: mistakes.slice(0, maxMistakes),
  };
}

/** How closely a compressed variant reproduces float32's predictions on the same images. */
export interface Agreement {
  /** Fraction of images whose top-1 class equals float32's. */
  agreement: number;
  agreementInterval: Interval;
  /** The variant's accuracy on these images and its interval. */
  accuracy: number;
  accuracyInterval: Interval;
  /** float32's accuracy minus the variant's, in points (negative: better). At most 100 * (1 - agreement). */
  dropPoints: number;
}

/** Agreement of `pred` with `ref` (top-1 classes) and the accuracy change against `truth`. */
export function agreementOf(ref: ArrayLike<number>, pred: ArrayLike<number>, truth: ArrayLike<number>): Agreement {
  const n = truth.length;
  let same = 0;
  let right = 0;
  let refRight = 0;
  for (let i = 0; i < n; i++) {
    if (pred[i] === ref[i]) same++;
    if (pred[i] === truth[i]) right++;
    if (ref[i] === truth[i]) refRight++;
  }
  return { agreement: n ? same / n : 1, agreementInterval: wilson(same, n), accuracy: n ? right / n : 0, accuracyInterval: wilson(right, n), dropPoints: n ? ((refRight - right) / n) * 100 : 0 };
}
