import * as tf from '@tensorflow/tfjs';
import { HeadstartError } from '../errors';
import type { Progress } from '../events';
import { Rng } from '../rng';
import { type VectorSet, TfjsStepEngine, evaluateSet, forward, weightedLoss } from '../train/head';
import { type LoopOptions, runLoop } from '../train/loop';

export interface PruneOptions {
  /** Pruning steps of the gradual schedule, default 4. */
  steps?: number;
  /** Fine-tuning epochs after each step, default 3. */
  epochsPerStep?: number;
  /** Adam learning rate of the fine-tuning, default 3e-4. */
  learningRate?: number;
  batchSize?: number;
  seed?: number;
}

export interface PruneResult {
  head: tf.Sequential;
  /** Fraction of exact zeros per dense kernel, by layer name. */
  sparsity: Record<string, number>;
  /** Validation accuracy after pruning and fine-tuning. */
  valAccuracy: number;
}

/** Copies a head's dense layers (dropout left out: pruning fine-tunes without it). */
function cloneDense(head: tf.LayersModel, featureSize: number): tf.Sequential {
  const m = tf.sequential({ name: 'headstart_head' });
  head.layers.forEach((l) => {
    if (l.getClassName() !== 'Dense') return;
    const c = l.getConfig() as { units: number; activation: string };
    const layer = tf.layers.dense({ units: c.units, activation: c.activation as 'relu', name: l.name, ...(m.layers.length === 0 ? { inputShape: [featureSize] } : {}) });
    m.add(layer);
    layer.setWeights(l.getWeights());
  });
  return m;
}

/** Keeps the largest-magnitude (1 - sparsity) fraction of a kernel; returns the 0/1 mask. */
function magnitudeMask(w: tf.Tensor, sparsity: number): tf.Tensor {
  return tf.tidy(() => {
    const abs = tf.abs(w);
    const flat = abs.dataSync() as Float32Array;
    const sorted = Float32Array.from(flat).sort();
    const k = Math.floor(sparsity * sorted.length);
    if (k <= 0) return tf.onesLike(w);
    const thr = sorted[k - 1]!;
    return tf.cast(tf.greater(abs, thr), 'float32');
  });
}

/**
 * The pruning engine for the shared loop: one step is one Adam update of the
 * dense copy on the plain (unweighted, no L2, no dropout) cross-entropy, then
 * the masks of the current pruning step re-applied, so pruned weights stay
 * exactly zero. The optimizer's state carries over from one pruning step to the next.
 */
class PruneEngine extends TfjsStepEngine {
  readonly name = 'tfjs-prune';
  private readonly kernels: tf.LayerVariable[];
  private readonly ones: tf.Tensor1D;
  private masks: tf.Tensor[] = [];

  constructor(model: tf.Sequential, x: Float32Array, d: number, k: number, lr: number) {
    super(model, x, [d], k, tf.train.adam(lr));
    this.kernels = model.layers.map((l) => l.trainableWeights[0]!);
    this.ones = tf.ones([k]);
  }

  /** Masks every kernel to `sparsity` by magnitude and holds those masks until the next call. */
  prune(sparsity: number): void {
    tf.dispose(this.masks);
    this.masks = this.kernels.map((k) => magnitudeMask(k.read(), sparsity));
    this.afterStep();
  }

  protected batchLoss(x: tf.Tensor, y: tf.Tensor1D): { probs: tf.Tensor2D; loss: tf.Scalar } {
    const probs = forward(this.model, x as tf.Tensor2D, undefined);
    return { probs, loss: weightedLoss(this.model, probs, y, this.ones, this.k, 0) };
  }

  /** Re-applies the masks after each update. */
  protected override afterStep(): void {
    this.kernels.forEach((k, i) => {
      // write() assigns the new value's data to the variable; the tensor itself is still ours to free.
      const masked = tf.tidy(() => tf.mul(k.read(), this.masks[i]!));
      k.write(masked);
      masked.dispose();
    });
  }

  /** Frees masks and optimizer; the model is the caller's. */
  override dispose(): void {
    super.dispose();
    tf.dispose(this.masks);
    this.masks = [];
    this.ones.dispose();
  }
}

/**
 * Magnitude pruning of the head's dense kernels to `target` sparsity with a
 * gradual (cubic) schedule, fine-tuning after each step with the masks held
 * (Zhu & Gupta, 2017): each step is one call of the shared training loop
 * (a fixed number of epochs, the last weights kept). Biases are not pruned.
 */
export async function pruneHead(head: tf.LayersModel, train: VectorSet, val: VectorSet, featureSize: number, numClasses: number, target: number, opts: PruneOptions = {}, progress: Progress = {}): Promise<PruneResult> {
  if (!(target >= 0 && target < 1)) throw new HeadstartError('BAD_INPUT', `sparsity must be in [0, 1) (got ${target})`);
  const steps = opts.steps ?? 4;
  const model = cloneDense(head, featureSize);
  const engine = new PruneEngine(model, train.x, featureSize, numClasses, opts.learningRate ?? 3e-4);
  // One shuffle stream over all steps; no class weights, no early stopping: the schedule fixes the epochs.
  const seed = opts.seed ?? 42;
  const loop: LoopOptions = { epochs: opts.epochsPerStep ?? 3, batchSize: opts.batchSize ?? 32, patience: 0, seed, rng: new Rng(seed), restoreBest: false, stage: 'prune' };
  const noWeights = new Float32Array(numClasses).fill(1);
  try {
    for (let s = 1; s <= steps && target > 0; s++) {
      const sparsity = target * (1 - (1 - s / steps) ** 3);
      engine.prune(sparsity);
      await runLoop(engine, train.y, val, noWeights, numClasses, loop, progress);
      progress.onEvent?.({ type: 'log', message: `pruned the head to ${(sparsity * 100).toFixed(0)}% sparsity (step ${s}/${steps})` });
    }
  } catch (err) {
    model.dispose(); // cancelled or failed: the caller never gets the copy
    throw err;
  } finally {
    engine.dispose();
  }
  const sparsity: Record<string, number> = {};
  model.layers.forEach((l) => {
    const v = l.getWeights()[0]!.dataSync();
    let zeros = 0;
    for (const x of v) if (x === 0) zeros++;
    sparsity[l.name] = zeros / v.length;
  });
  const valAccuracy = val.y.length ? evaluateSet(model, val, featureSize, numClasses).accuracy : NaN;
  return { head: model, sparsity, valAccuracy };
}
