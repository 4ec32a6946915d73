import * as tf from '@tensorflow/tfjs';
import { throwIfAborted } from '../errors';
import type { EpochMetrics, Progress } from '../events';
import { Rng } from '../rng';

/** Hyper-parameters of the classification head. */
export interface HeadOptions {
  /** Passes over the training set, default 30, range 1..1000. */
  epochs?: number;
  /** Vectors per step, default 32, range 1..4096. */
  batchSize?: number;
  /** Adam learning rate, default 1e-3, range (0, 1]. */
  learningRate?: number;
  /** Units of the hidden dense layer (ReLU); 0 for none (logistic regression). Default 128. */
  hiddenUnits?: number;
  /** Dropout rate after the hidden layer, default 0.2, range [0, 1). */
  dropout?: number;
  /** L2 penalty on the kernels, default 1e-4. */
  l2?: number;
  /** Epochs without validation-loss improvement before stopping, default 6; 0 disables. */
  patience?: number;
  /** Seed of initialisation, shuffling and dropout, default 42. */
  seed?: number;
  /** Weight classes inversely to their frequency, default true. */
  balanceClasses?: boolean;
}

/** Vectors and integer labels, row-major. */
export interface VectorSet {
  x: Float32Array;
  y: Int32Array;
  /** Distillation: a teacher's class probabilities per row (n x classes). */
  soft?: Float32Array;
}

/** Distillation settings: softened targets at `temperature`, mixed with the hard labels. */
export interface DistillOptions {
  /** Softening temperature, default 4, range [1, 20]. */
  temperature: number;
  /** Weight of the teacher's soft targets against the hard labels, default 0.7, range [0, 1]. */
  alpha: number;
}

export interface HeadResult {
  model: tf.Sequential;
  history: EpochMetrics[];
  /** 1-based epoch whose weights were kept (lowest validation loss). */
  bestEpoch: number;
  stoppedEarly: boolean;
  seconds: number;
}

export const HEAD_DEFAULTS: Required<HeadOptions> = {
  epochs: 30,
  batchSize: 32,
  learningRate: 1e-3,
  hiddenUnits: 128,
  dropout: 0.2,
  l2: 1e-4,
  patience: 6,
  seed: 42,
  balanceClasses: true,
};

/** Builds the head: [dense(hidden, relu), dropout], dense(classes, softmax). */
export function buildHead(featureSize: number, numClasses: number, o: Required<HeadOptions>): tf.Sequential {
  const model = tf.sequential({ name: 'headstart_head' });
  if (o.hiddenUnits > 0) {
    model.add(tf.layers.dense({ inputShape: [featureSize], units: o.hiddenUnits, activation: 'relu', name: 'head_hidden', kernelInitializer: tf.initializers.heNormal({ seed: o.seed }) }));
    model.add(tf.layers.dropout({ rate: o.dropout, name: 'head_dropout' }));
  }
  model.add(
    tf.layers.dense({
      ...(o.hiddenUnits > 0 ? {} : { inputShape: [featureSize] }),
      units: numClasses,
      activation: 'softmax',
      name: 'head_output',
      kernelInitializer: tf.initializers.glorotUniform({ seed: o.seed + 1 }),
    }),
  );
  return model;
}

export function classWeights(y: Int32Array, k: number, balance: boolean): Float32Array {
  const w = new Float32Array(k).fill(1);
  if (!balance) return w;
  const counts = new Array<number>(k).fill(0);
  for (const c of y) counts[c]!++;
  for (let c = 0; c < k; c++) w[c] = counts[c]! ? y.length / (k * counts[c]!) : 0;
  return w;
}

/**
 * Forward pass of the head. In training, dropout masks come from a per-step
 * seed (tfjs's Dropout layer would reuse one fixed seed: the same mask every step).
 */
export function forward(model: tf.Sequential, x: tf.Tensor2D, dropout: { rate: number; seed: number } | undefined): tf.Tensor2D {
  let h: tf.Tensor = x;
  for (const layer of model.layers) {
    if (layer.getClassName() === 'Dropout') {
      if (dropout && dropout.rate > 0) {
        const keep = tf.cast(tf.greaterEqual(tf.randomUniform(h.shape, 0, 1, 'float32', dropout.seed), dropout.rate), 'float32');
        h = tf.div(tf.mul(h, keep), 1 - dropout.rate);
      }
      continue;
    }
    h = layer.apply(h) as tf.Tensor;
  }
  return h as tf.Tensor2D;
}

/** Probabilities softened at temperature T: softmax(log(p) / T). */
function soften(p: tf.Tensor2D, t: number): tf.Tensor2D {
  return tf.softmax(tf.div(tf.log(tf.clipByValue(p, 1e-7, 1)), t)) as tf.Tensor2D;
}

export function weightedLoss(model: tf.Sequential, probs: tf.Tensor2D, y: tf.Tensor1D, w: tf.Tensor1D, k: number, l2: number, soft?: { teacher: tf.Tensor2D } & DistillOptions): tf.Scalar {
  const oneHot = tf.oneHot(y, k);
  const ce = tf.neg(tf.sum(tf.mul(oneHot, tf.log(tf.clipByValue(probs, 1e-7, 1))), 1));
  const sw = tf.gather(w, y);
  let loss = tf.div(tf.sum(tf.mul(ce, sw)), tf.sum(sw)) as tf.Scalar;
  if (soft) {
    // Hinton et al.: alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(labels, student).
    const t = soften(soft.teacher, soft.temperature);
    const q = soften(probs, soft.temperature);
    const kl = tf.mean(tf.sum(tf.mul(t, tf.sub(tf.log(tf.clipByValue(t, 1e-7, 1)), tf.log(tf.clipByValue(q, 1e-7, 1)))), 1));
    loss = tf.add(tf.mul(soft.alpha * soft.temperature ** 2, kl), tf.mul(1 - soft.alpha, loss)) as tf.Scalar;
  }
  if (l2 > 0) {
    for (const v of model.trainableWeights) if (v.name.includes('kernel')) loss = tf.add(loss, tf.mul(l2, tf.sum(tf.square(v.read())))) as tf.Scalar;
  }
  return loss;
}

/** Mean loss and accuracy of the model on a set (inference mode), batched. */
export function evaluateSet(model: tf.Sequential, set: VectorSet, featureSize: number, k: number, w?: Float32Array, batch = 256): { loss: number; accuracy: number; probs: Float32Array } {
  const n = set.y.length;
  const probs = new Float32Array(n * k);
  let lossSum = 0;
  let wSum = 0;
  let correct = 0;
  const weights = w ?? new Float32Array(k).fill(1);
  for (let i = 0; i < n; i += batch) {
    const m = Math.min(batch, n - i);
    const p = tf.tidy(() => forward(model, tf.tensor2d(set.x.subarray(i * featureSize, (i + m) * featureSize), [m, featureSize]), undefined));
    const pd = p.dataSync() as Float32Array;
    p.dispose();
    probs.set(pd, i * k);
    for (let r = 0; r < m; r++) {
      const t = set.y[i + r]!;
      lossSum -= weights[t]! * Math.log(Math.max(pd[r * k + t]!, 1e-7));
      wSum += weights[t]!;
      let best = 0;
      for (let j = 1; j < k; j++) if (pd[r * k + j]! > pd[r * k + best]!) best = j;
      if (best === t) correct++;
    }
  }
  return { loss: wSum ? lossSum / wSum : 0, accuracy: n ? correct / n : 0, probs };
}

/**
 * Trains a dense head on feature vectors with Adam: class weights for
 * imbalance, early stopping on validation loss with the best weights
 * restored, an event per batch and per epoch, cancellation within one batch.
 * The same seed and data give the same metrics.
 */
export async function trainHead(train: VectorSet, val: VectorSet, featureSize: number, numClasses: number, options: HeadOptions = {}, progress: Progress = {}, distill?: DistillOptions): Promise<HeadResult> {
  const o = { ...HEAD_DEFAULTS, ...options };
  const emit = progress.onEvent ?? (() => undefined);
  const started = Date.now();
  const model = buildHead(featureSize, numClasses, o);
  const optimizer = tf.train.adam(o.learningRate);
  const w = classWeights(train.y, numClasses, o.balanceClasses);
  const wT = tf.tensor1d(w);
  const rng = new Rng(o.seed);
  const n = train.y.length;
  const order = Array.from({ length: n }, (_, i) => i);
  const batches = Math.ceil(n / o.batchSize);
  const history: EpochMetrics[] = [];
  let best = { loss: Infinity, epoch: 0, weights: [] as tf.Tensor[] };
  let sinceBest = 0;
  let stoppedEarly = false;
  const useVal = val.y.length > 0;
  let step = 0;
  try {
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const e0 = Date.now();
      rng.shuffle(order);
      let lossSum = 0;
      let correct = 0;
      for (let b = 0; b < batches; b++) {
        throwIfAborted(progress.signal);
        const idx = order.slice(b * o.batchSize, (b + 1) * o.batchSize);
        const xb = new Float32Array(idx.length * featureSize);
        const yb = new Int32Array(idx.length);
        const sb = train.soft ? new Float32Array(idx.length * numClasses) : undefined;
        idx.forEach((r, i) => {
          xb.set(train.x.subarray(r * featureSize, (r + 1) * featureSize), i * featureSize);
          yb[i] = train.y[r]!;
          sb?.set(train.soft!.subarray(r * numClasses, (r + 1) * numClasses), i * numClasses);
        });
        const seed = (o.seed * 1_000_003 + step++) >>> 0;
        let probsT: tf.Tensor | undefined;
        const lossT = tf.tidy(() => {
          const x = tf.tensor2d(xb, [idx.length, featureSize]);
          const y = tf.tensor1d(yb, 'int32');
          return optimizer.minimize(() => {
            const p = forward(model, x, { rate: o.dropout, seed });
            probsT = tf.keep(p);
            return weightedLoss(model, p, y, wT, numClasses, o.l2, sb && distill ? { teacher: tf.tensor2d(sb, [idx.length, numClasses]), ...distill } : undefined);
          }, true)!;
        });
        const loss = (await lossT.data())[0]!;
        const pd = (await probsT!.data()) as Float32Array;
        lossT.dispose();
        probsT!.dispose();
        lossSum += loss * idx.length;
        for (let i = 0; i < idx.length; i++) {
          let bestJ = 0;
          for (let j = 1; j < numClasses; j++) if (pd[i * numClasses + j]! > pd[i * numClasses + bestJ]!) bestJ = j;
          if (bestJ === yb[i]) correct++;
        }
        const elapsed = (Date.now() - e0) / 1000;
        const seen = Math.min(n, (b + 1) * o.batchSize);
        const ips = seen / Math.max(elapsed, 1e-3);
        emit({ type: 'batch', epoch, batch: b + 1, batches, loss, accuracy: correct / seen, imagesPerSecond: ips, eta: ((o.epochs - epoch) * n + (n - seen)) / Math.max(ips, 1e-3) });
        await new Promise<void>((r) => setImmediate(r)); // let cancellation and I/O through
      }
      const v = useVal ? evaluateSet(model, val, featureSize, numClasses, w) : { loss: lossSum / n, accuracy: correct / n };
      const metrics: EpochMetrics = { epoch, loss: lossSum / n, accuracy: correct / n, valLoss: v.loss, valAccuracy: v.accuracy, seconds: (Date.now() - e0) / 1000 };
      history.push(metrics);
      emit({ type: 'epoch', metrics, totalEpochs: o.epochs });
      if (v.loss < best.loss - 1e-6) {
        best.weights.forEach((t) => t.dispose());
        best = { loss: v.loss, epoch, weights: model.getWeights().map((t) => t.clone()) };
        sinceBest = 0;
      } else if (o.patience > 0 && ++sinceBest >= o.patience) {
        stoppedEarly = epoch < o.epochs;
        break;
      }
    }
    if (best.weights.length) model.setWeights(best.weights);
  } catch (err) {
    model.dispose();
    throw err;
  } finally {
    best.weights.forEach((t) => t.dispose());
    wT.dispose();
    optimizer.dispose();
  }
  return { model, history, bestEpoch: best.epoch, stoppedEarly, seconds: (Date.now() - started) / 1000 };
}
