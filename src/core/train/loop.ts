import { throwIfAborted } from '../errors';
import type { EpochMetrics, Progress } from '../events';
import { Rng } from '../rng';

/** One optimisation step's rows (indices into the engine's training set), labels and sample weights. */
export interface Batch {
  rows: Int32Array;
  labels: Int32Array;
  weights: Float32Array;
}

/** Consecutive steps handed to an engine in one call; `firstStep` counts steps already taken (0-based). */
export interface Chunk {
  batches: Batch[];
  firstStep: number;
}

export interface StepResult {
  /** Loss of each step (before its update). */
  losses: Float32Array;
  /** Class probabilities of every row of the chunk, batch after batch (before each update). */
  probs: Float32Array;
}

/**
 * What does the arithmetic of a training loop: takes steps, predicts, and
 * hands its weights out and back (for best-epoch restore). The loop below
 * owns everything else (batches, class weights, events, early stopping,
 * cancellation), so engines can be swapped: ONNX Runtime, TF.js.
 */
export interface StepEngine {
  readonly name: string;
  /** How many rows one `steps` call may cover (bounds the time between cancellation checks). */
  readonly rowsPerRun: number;
  steps(chunk: Chunk): Promise<StepResult>;
  /** Class probabilities (inference mode) of rows of features. */
  predict(x: Float32Array): Promise<Float32Array>;
  getWeights(): Float32Array[];
  setWeights(w: Float32Array[]): void;
  dispose(): void;
}

export interface LoopOptions {
  epochs: number;
  batchSize: number;
  /** Epochs without validation-loss improvement before stopping; 0 disables. */
  patience: number;
  /** Seed of the batch shuffles (a fresh stream per call unless `rng` is given). */
  seed: number;
  /** Shuffle from this stream instead of a fresh one from `seed`: a trainer that calls the loop several times (pruning, once per step) keeps one sequence. */
  rng?: Rng;
  /**
   * Score the engine's starting weights on validation before the first epoch
   * (as epoch 0) and keep them if no epoch beats them; default false. Fine-tuning
   * uses it: a second phase never leaves the head worse than the first left it.
   */
  scoreStart?: boolean;
  /** Restore the weights of the epoch with the lowest validation loss at the end; default true. False keeps the last weights (pruning: a fixed schedule with masks held). */
  restoreBest?: boolean;
  /** Tag of the epoch metrics this call emits, e.g. 'fine-tune'; default none (the head stage). */
  stage?: EpochMetrics['stage'];
}

export interface LoopResult {
  history: EpochMetrics[];
  /** 1-based epoch whose weights the engine holds at the end. */
  bestEpoch: number;
  stoppedEarly: boolean;
}

/** Weighted cross-entropy and accuracy of probabilities (n x k) against labels. */
export function scoreProbs(probs: ArrayLike<number>, y: ArrayLike<number>, k: number, w?: ArrayLike<number>): { loss: number; accuracy: number; correct: number } {
  let lossSum = 0;
  let wSum = 0;
  let correct = 0;
  for (let r = 0; r < y.length; r++) {
    const t = y[r]!;
    const wt = w ? w[t]! : 1;
    lossSum -= wt * Math.log(Math.max(probs[r * k + t]!, 1e-7));
    wSum += wt;
    let best = 0;
    for (let j = 1; j < k; j++) if (probs[r * k + j]! > probs[r * k + best]!) best = j;
    if (best === t) correct++;
  }
  return { loss: wSum ? lossSum / wSum : 0, accuracy: y.length ? correct / y.length : 0, correct };
}

/**
 * The one training loop (head training on either engine, distillation,
 * fine-tuning, pruning): seeded shuffles, batches with class weights (all 1
 * for none), a batch event per step and an epoch event per epoch, early
 * stopping on validation loss with the best weights restored into the engine,
 * cancellation checked before every engine call and after every batch event.
 */
export async function runLoop(engine: StepEngine, trainY: Int32Array, val: { x: Float32Array; y: Int32Array }, classW: Float32Array, k: number, o: LoopOptions, progress: Progress = {}): Promise<LoopResult> {
  const emit = progress.onEvent ?? (() => undefined);
  const rng = o.rng ?? new Rng(o.seed);
  const n = trainY.length;
  const order = Array.from({ length: n }, (_, i) => i);
  const batches = Math.ceil(n / o.batchSize);
  const perRun = Math.max(1, Math.floor(engine.rowsPerRun / o.batchSize));
  const history: EpochMetrics[] = [];
  const restore = o.restoreBest ?? true;
  let best = { loss: Infinity, epoch: 0, weights: [] as Float32Array[] };
  if (o.scoreStart && restore) {
    throwIfAborted(progress.signal);
    const loss = val.y.length ? scoreProbs(await engine.predict(val.x), val.y, k, classW).loss : Infinity;
    best = { loss, epoch: 0, weights: engine.getWeights() };
  }
  let sinceBest = 0;
  let stoppedEarly = false;
  let step = 0;
  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    const e0 = Date.now();
    rng.shuffle(order);
    let lossSum = 0;
    let correct = 0;
    for (let b0 = 0; b0 < batches; b0 += perRun) {
      throwIfAborted(progress.signal);
      const chunk: Chunk = { batches: [], firstStep: step };
      for (let b = b0; b < Math.min(batches, b0 + perRun); b++) {
        const rows = Int32Array.from(order.slice(b * o.batchSize, (b + 1) * o.batchSize));
        const labels = rows.map((r) => trainY[r]!);
        chunk.batches.push({ rows, labels, weights: Float32Array.from(labels, (c) => classW[c]!) });
      }
      const res = await engine.steps(chunk);
      step += chunk.batches.length;
      let at = 0;
      chunk.batches.forEach((batch, j) => {
        const m = batch.rows.length;
        const loss = res.losses[j]!;
        lossSum += loss * m;
        correct += scoreProbs(res.probs.subarray(at * k, (at + m) * k), batch.labels, k).correct;
        at += m;
        const b = b0 + j;
        const elapsed = (Date.now() - e0) / 1000;
        const seen = Math.min(n, (b + 1) * o.batchSize);
        const ips = seen / Math.max(elapsed, 1e-3);
        emit({ type: 'batch', epoch, batch: b + 1, batches, loss, accuracy: correct / seen, imagesPerSecond: ips, eta: ((o.epochs - epoch) * n + (n - seen)) / Math.max(ips, 1e-3) });
        throwIfAborted(progress.signal); // an abort from the event handler stops before the next batch is reported
      });
      await new Promise<void>((r) => setImmediate(r)); // let cancellation and I/O through
    }
    const v = val.y.length ? scoreProbs(await engine.predict(val.x), val.y, k, classW) : { loss: lossSum / n, accuracy: correct / n };
    const metrics: EpochMetrics = { epoch, loss: lossSum / n, accuracy: correct / n, valLoss: v.loss, valAccuracy: v.accuracy, seconds: (Date.now() - e0) / 1000, ...(o.stage ? { stage: o.stage } : {}) };
    history.push(metrics);
    emit({ type: 'epoch', metrics, totalEpochs: o.epochs });
    if (v.loss < best.loss - 1e-6) {
      best = { loss: v.loss, epoch, weights: restore ? engine.getWeights() : [] };
      sinceBest = 0;
    } else if (o.patience > 0 && ++sinceBest >= o.patience) {
      stoppedEarly = epoch < o.epochs;
      break;
    }
  }
  if (!restore) return { history, bestEpoch: history.length, stoppedEarly };
  if (best.weights.length) engine.setWeights(best.weights);
  return { history, bestEpoch: best.epoch, stoppedEarly };
}
