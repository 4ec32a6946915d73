import * as tf from '@tensorflow/tfjs';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { Rng } from '../rng';
import { type VectorSet, evaluateSet } from '../train/head';

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
 * Magnitude pruning of the head's dense kernels to `target` sparsity with a
 * gradual (cubic) schedule, fine-tuning after each step with the masks held
 * (Zhu & Gupta, 2017). Biases are not pruned.
 */
export async function pruneHead(head: tf.LayersModel, train: VectorSet, val: VectorSet, featureSize: number, numClasses: number, target: number, opts: PruneOptions = {}, progress: Progress = {}): Promise<PruneResult> {
  if (!(target >= 0 && target < 1)) throw new HeadstartError('BAD_INPUT', `sparsity must be in [0, 1) (got ${target})`);
  const steps = opts.steps ?? 4;
  const epochs = opts.epochsPerStep ?? 3;
  const batch = opts.batchSize ?? 32;
  const model = cloneDense(head, featureSize);
  const kernels = model.layers.map((l) => l.trainableWeights[0]!);
  const optimizer = tf.train.adam(opts.learningRate ?? 3e-4);
  const rng = new Rng(opts.seed ?? 42);
  const n = train.y.length;
  const order = Array.from({ length: n }, (_, i) => i);
  let masks: tf.Tensor[] = [];
  // write() assigns the new value's data to the variable; the tensor itself is still ours to free.
  const applyMasks = () =>
    kernels.forEach((k, i) => {
      const masked = tf.tidy(() => tf.mul(k.read(), masks[i]!));
      k.write(masked);
      masked.dispose();
    });
  try {
    for (let s = 1; s <= steps && target > 0; s++) {
      const sparsity = target * (1 - (1 - s / steps) ** 3);
      tf.dispose(masks);
      masks = kernels.map((k) => magnitudeMask(k.read(), sparsity));
      applyMasks();
      for (let e = 0; e < epochs; e++) {
        rng.shuffle(order);
        for (let b = 0; b < n; b += batch) {
          throwIfAborted(progress.signal);
          const idx = order.slice(b, b + batch);
          const xb = new Float32Array(idx.length * featureSize);
          idx.forEach((r, i) => xb.set(train.x.subarray(r * featureSize, (r + 1) * featureSize), i * featureSize));
          const yb = Int32Array.from(idx.map((r) => train.y[r]!));
          tf.tidy(() => {
            const x = tf.tensor2d(xb, [idx.length, featureSize]);
            const y = tf.oneHot(tf.tensor1d(yb, 'int32'), numClasses);
            optimizer.minimize(() => tf.neg(tf.mean(tf.sum(tf.mul(y, tf.log(tf.clipByValue(model.apply(x) as tf.Tensor, 1e-7, 1))), 1))) as tf.Scalar);
          });
          applyMasks();
        }
        await new Promise<void>((r) => setImmediate(r));
      }
      progress.onEvent?.({ type: 'log', message: `pruned the head to ${(sparsity * 100).toFixed(0)}% sparsity (step ${s}/${steps})` });
    }
  } catch (err) {
    model.dispose(); // cancelled or failed: the caller never gets the copy
    throw err;
  } finally {
    tf.dispose(masks);
    optimizer.dispose();
  }
  const sparsity: Record<string, number> = {};
  model.layers.forEach((l, i) => {
    const v = kernels[i]!.read().dataSync();
    let zeros = 0;
    for (const x of v) if (x === 0) zeros++;
    sparsity[l.name] = zeros / v.length;
  });
  const valAccuracy = val.y.length ? evaluateSet(model, val, featureSize, numClasses).accuracy : NaN;
  return { head: model, sparsity, valAccuracy };
}
