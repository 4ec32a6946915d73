/** Precision, recall and F1 of one class. */
export interface ClassMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

/** A misclassified file, most confident first. */
export interface Mistake {
  path: string;
  label: string;
  predicted: string;
  probability: number;
}

/** The metrics `eval` prints and `train` nests under `test`. */
export interface EvalResult {
  /** Fraction correct, 0..1. */
  accuracy: number;
  macroF1: number;
  count: number;
  labels: string[];
  perClass: ClassMetrics[];
  /** confusion[i][j]: images of class i predicted as class j. */
  confusion: number[][];
  mistakes: Mistake[];
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
  return {
    accuracy: n ? correct / n : 0,
    macroF1: perClass.reduce((a, c) => a + c.f1, 0) / Math.max(k, 1),
    count: n,
    labels,
    perClass,
    confusion,
    mistakes: mistakes.slice(0, maxMistakes),
  };
}
