import * as tf from '@tensorflow/tfjs';
import { HeadstartError, throwIfAborted } from '../errors';
import type { EpochMetrics, Progress } from '../events';
import { type Batch, type Chunk, type StepEngine, type StepResult, runLoop, scoreProbs } from './loop';
import { OrtHeadEngine, ortTrainerAvailable } from './ortHead';

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
  /** The engine that trained it: 'onnxruntime' or 'tfjs'. */
  trainer: string;
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
  const probs = predictRows(model, set.x, featureSize, k, batch);
  const s = scoreProbs(probs, set.y, k, w);
  return { loss: s.loss, accuracy: s.accuracy, probs };
}

/** Class probabilities of rows of features (inference mode), batched. */
export function predictRows(model: tf.Sequential, x: Float32Array, featureSize: number, k: number, batch = 256): Float32Array {
  const n = x.length / featureSize;
  const probs = new Float32Array(n * k);
  for (let i = 0; i < n; i += batch) {
    const m = Math.min(batch, n - i);
    const p = tf.tidy(() => forward(model, tf.tensor2d(x.subarray(i * featureSize, (i + m) * featureSize), [m, featureSize]), undefined));
    probs.set(p.dataSync() as Float32Array, i * k);
    p.dispose();
  }
  return probs;
}

/**
 * A TF.js engine for the shared loop: one optimizer step per batch on the
 * model's trainable weights (or `vars`), the batch's rows gathered from `x`
 * (rows of `shape`). Subclasses say what one batch's loss is: the head (also
 * distillation), fine-tuning, pruning.
 */
export abstract class TfjsStepEngine implements StepEngine {
  abstract readonly name: string;
  /** One batch per call: cancellation is checked between batches. */
  readonly rowsPerRun = 1;
  /** Values per row of `x`. */
  protected readonly per: number;

  constructor(
    protected readonly model: tf.Sequential,
    protected readonly x: Float32Array,
    protected readonly shape: number[],
    protected readonly k: number,
    protected readonly optimizer: tf.Optimizer,
    private readonly vars?: tf.Variable[],
  ) {
    this.per = shape.reduce((a, b) => a * b, 1);
  }

  /** Class probabilities (training mode) and loss of one batch; `step` counts the steps taken before it. Runs inside tidy and minimize. */
  protected abstract batchLoss(x: tf.Tensor, y: tf.Tensor1D, batch: Batch, step: number): { probs: tf.Tensor2D; loss: tf.Scalar };

  /** Runs after every update (pruning re-applies its masks there). */
  protected afterStep(): void {}

  async steps(chunk: Chunk): Promise<StepResult> {
    const { per, k } = this;
    const losses = new Float32Array(chunk.batches.length);
    const probs = new Float32Array(chunk.batches.reduce((a, b) => a + b.rows.length, 0) * k);
    let at = 0;
    for (const [j, b] of chunk.batches.entries()) {
      const m = b.rows.length;
      const xb = new Float32Array(m * per);
      b.rows.forEach((r, i) => xb.set(this.x.subarray(r * per, (r + 1) * per), i * per));
      let probsT: tf.Tensor | undefined;
      const lossT = tf.tidy(() => {
        const x = tf.tensor(xb, [m, ...this.shape]);
        const y = tf.tensor1d(b.labels, 'int32');
        return this.optimizer.minimize(() => {
          const out = this.batchLoss(x, y, b, chunk.firstStep + j);
          probsT = tf.keep(out.probs);
          return out.loss;
        }, true, this.vars)!;
      });
      this.afterStep();
      losses[j] = (await lossT.data())[0]!;
      probs.set((await probsT!.data()) as Float32Array, at);
      at += m * k;
      tf.dispose([lossT, probsT!]);
    }
    return { losses, probs };
  }

  async predict(x: Float32Array): Promise<Float32Array> {
    return predictRows(this.model, x, this.per, this.k);
  }

  getWeights(): Float32Array[] {
    return this.model.getWeights().map((t) => (t.dataSync() as Float32Array).slice());
  }

  setWeights(w: Float32Array[]): void {
    setModelWeights(this.model, w);
  }

  /** Frees the optimizer; subclasses free what else they made. */
  dispose(): void {
    this.optimizer.dispose();
  }
}

/** The TF.js head engine: the head's weighted loss with dropout seeded per step, L2, and distillation's soft targets when given. */
class TfjsHeadEngine extends TfjsStepEngine {
  readonly name = 'tfjs';
  private readonly wT: tf.Tensor1D;

  constructor(
    private readonly train: VectorSet,
    d: number,
    k: number,
    private readonly o: Required<HeadOptions>,
    classW: Float32Array,
    private readonly distill?: DistillOptions,
  ) {
    super(buildHead(d, k, o), train.x, [d], k, tf.train.adam(o.learningRate));
    this.wT = tf.tensor1d(classW);
  }

  protected batchLoss(x: tf.Tensor, y: tf.Tensor1D, b: Batch, step: number): { probs: tf.Tensor2D; loss: tf.Scalar } {
    const { k, o, train } = this;
    const probs = forward(this.model, x as tf.Tensor2D, { rate: o.dropout, seed: (o.seed * 1_000_003 + step) >>> 0 });
    let soft: ({ teacher: tf.Tensor2D } & DistillOptions) | undefined;
    if (train.soft && this.distill) {
      const sb = new Float32Array(b.rows.length * k);
      b.rows.forEach((r, i) => sb.set(train.soft!.subarray(r * k, (r + 1) * k), i * k));
      soft = { teacher: tf.tensor2d(sb, [b.rows.length, k]), ...this.distill };
    }
    return { probs, loss: weightedLoss(this.model, probs, y, this.wT, k, o.l2, soft) };
  }

  override dispose(): void {
    super.dispose();
    this.model.dispose();
    this.wT.dispose();
  }
}

/** Writes plain arrays (in `model.getWeights()` order) into a model. */
export function setModelWeights(model: tf.LayersModel, w: Float32Array[]): void {
  const shapes = model.getWeights().map((t) => t.shape);
  const ts = w.map((a, i) => tf.tensor(a, shapes[i]));
  model.setWeights(ts);
  ts.forEach((t) => t.dispose());
}

/** Which engine trains the head: ONNX Runtime (fast, the default where it loads) or TF.js. */
export type HeadTrainer = 'auto' | 'onnx' | 'tfjs';

async function makeEngine(train: VectorSet, d: number, k: number, o: Required<HeadOptions>, classW: Float32Array, trainer: HeadTrainer, distill?: DistillOptions): Promise<StepEngine> {
  const soft = !!(distill && train.soft);
  if (trainer === 'onnx' && soft) throw new HeadstartError('BAD_INPUT', 'the ONNX Runtime head trainer has no distillation loss; use the tfjs trainer');
  if (trainer === 'onnx' && !ortTrainerAvailable()) throw new HeadstartError('BACKEND', 'the ONNX Runtime head trainer needs onnxruntime-node, which did not load here; use the tfjs trainer');
  if (trainer === 'tfjs' || soft || !ortTrainerAvailable()) return new TfjsHeadEngine(train, d, k, o, classW, distill);
  // Same initial weights as the TF.js head (seeded initialisers), so both trainers start alike.
  const init = buildHead(d, k, o);
  const w = init.getWeights().map((t) => (t.dataSync() as Float32Array).slice());
  init.dispose();
  return OrtHeadEngine.create(train.x, d, o.hiddenUnits, k, o, w);
}

/**
 * Trains a dense head on feature vectors with Adam: class weights for
 * imbalance, early stopping on validation loss with the best weights
 * restored, an event per batch and per epoch, cancellation within one batch
 * (TF.js) or one engine call of at most 2048 rows (ONNX Runtime). The same
 * seed and data give the same metrics. The result is a TF.js layers model
 * whichever engine trained it.
 */
export async function trainHead(train: VectorSet, val: VectorSet, featureSize: number, numClasses: number, options: HeadOptions = {}, progress: Progress = {}, distill?: DistillOptions, trainer: HeadTrainer = 'auto'): Promise<HeadResult> {
  const o = { ...HEAD_DEFAULTS, ...options };
  const started = Date.now();
  throwIfAborted(progress.signal);
  const w = classWeights(train.y, numClasses, o.balanceClasses);
  const engine = await makeEngine(train, featureSize, numClasses, o, w, trainer, distill);
  try {
    const res = await runLoop(engine, train.y, val, w, numClasses, o, progress);
    const model = buildHead(featureSize, numClasses, o);
    setModelWeights(model, engine.getWeights());
    return { model, ...res, seconds: (Date.now() - started) / 1000, trainer: engine.name };
  } finally {
    engine.dispose();
  }
}
