import * as tf from '@tensorflow/tfjs';
import { HeadstartError, throwIfAborted } from '../errors';
import type { EpochMetrics, Progress } from '../events';
import { Rng } from '../rng';
import { dirLoader } from '../tfjsio';
import { registerWasmGradients } from './wasmGrads';
import { type HeadOptions, type VectorSet, HEAD_DEFAULTS, classWeights, evaluateSet, forward, weightedLoss } from './head';

/** A layer of a layers model, with its inbound nodes (the graph's edges). */
type LayerWithNodes = tf.LayersModel['layers'][number];

/** Where the frozen part of a layers backbone ends and the fine-tuned top begins. */
export interface Boundary {
  /** The layer whose output is the only tensor crossing the cut. */
  layer: string;
  /** Its output shape without the batch dimension. */
  shape: number[];
  /** Layers above the boundary up to the feature layer, in order. */
  top: string[];
  /** Of those, the ones with weights that will be trained (BatchNorm excluded). */
  trainable: string[];
}

/**
 * The cut for fine-tuning the top `n` weighted layers (convolutions and dense
 * layers; BatchNorm does not count and stays frozen) below the feature layer,
 * moved down to the nearest point where one tensor alone crosses it (a
 * residual block is never split).
 */
export function findBoundary(model: tf.LayersModel, featureLayer: string, n: number): Boundary {
  const all: LayerWithNodes[] = model.layers;
  const feature = all.findIndex((l) => l.name === featureLayer);
  if (feature < 0) throw new HeadstartError('BAD_MODEL', `backbone has no layer '${featureLayer}'`);
  // Ancestors of the feature layer, in the model's topological order.
  const need = new Set<string>([featureLayer]);
  for (let i = feature; i >= 0; i--) if (need.has(all[i]!.name)) for (const node of all[i]!.inboundNodes.slice(0, 1)) for (const src of node.inboundLayers) need.add(src.name);
  const order = all.filter((l, i) => i <= feature && need.has(l.name));
  const inputs = (l: LayerWithNodes) => (l.inboundNodes[0]?.inboundLayers ?? []).map((x) => x.name);
  if (!(n >= 1) || !Number.isInteger(n)) throw new HeadstartError('BAD_INPUT', `--unfreeze must be a whole number of layers ≥ 1 (got ${n})`);
  const weighted = (name: string) => {
    const l = model.getLayer(name);
    return l.getClassName() !== 'BatchNormalization' && l.getWeights().length > 0;
  };
  // A Sequential model lists no InputLayer: its first layer can be the boundary; an input layer never is.
  for (let k = order.length - 2; k >= 0; k--) {
    if (model.getLayer(order[k]!.name).getClassName() === 'InputLayer') continue;
    const top = order.slice(k + 1);
    if (top.filter((l) => weighted(l.name)).length < n) continue;
    const below = new Set(order.slice(0, k + 1).map((l) => l.name));
    const crossing = new Set(top.flatMap((l) => inputs(l).filter((x) => below.has(x))));
    if (crossing.size === 1 && crossing.has(order[k]!.name)) {
      const trainable = top.map((l) => l.name).filter(weighted);
      const shape = (model.getLayer(order[k]!.name).outputShape as number[]).slice(1);
      return { layer: order[k]!.name, shape, top: top.map((l) => l.name), trainable };
    }
  }
  const total = order.filter((l) => weighted(l.name)).length;
  if (n > total) throw new HeadstartError('BAD_INPUT', `cannot unfreeze ${n} layers of this backbone: it has only ${total} weighted layers (convolutions and dense layers; BatchNorm not counted) up to ${featureLayer}; use a smaller --unfreeze`);
  throw new HeadstartError('BAD_INPUT', `--unfreeze ${n}: this backbone has no single-tensor boundary below its top ${n} weighted layers; try another --unfreeze`);
}

/**
 * A model from the boundary's activations to the feature vector, made of the
 * backbone's own top layers (weights shared with `model`), global-average-
 * pooled when `pool` and the output is 4-D.
 */
export function buildTop(model: tf.LayersModel, b: Boundary, pool: boolean): tf.LayersModel {
  const input = tf.input({ shape: b.shape, name: 'boundary' });
  const out = new Map<string, tf.SymbolicTensor>([[b.layer, input]]);
  for (const name of b.top) {
    const layer = model.getLayer(name);
    const ins = (layer.inboundNodes[0]?.inboundLayers ?? []).map((x) => out.get(x.name)!);
    out.set(name, layer.apply(ins.length === 1 ? ins[0]! : ins) as tf.SymbolicTensor);
  }
  let y = out.get(b.top.at(-1) ?? b.layer)!;
  if (pool && y.shape.length === 4) y = tf.layers.globalAveragePooling2d({ name: 'headstart_top_pool' }).apply(y) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: y, name: 'headstart_top' });
}

/** Runs the top model over activation rows in batches (inference mode). */
export function topFeatures(top: tf.LayersModel, x: Float32Array, shape: number[], batch = 64): Float32Array {
  const per = shape.reduce((a, b) => a * b, 1);
  const n = x.length / per;
  const chunks: Float32Array[] = [];
  for (let i = 0; i < n; i += batch) {
    const m = Math.min(batch, n - i);
    chunks.push(tf.tidy(() => (top.predict(tf.tensor(x.subarray(i * per, (i + m) * per), [m, ...shape])) as tf.Tensor).dataSync() as Float32Array));
  }
  const size = chunks.reduce((a, c) => a + c.length, 0);
  const out = new Float32Array(size);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

export interface FineTuneOptions {
  /** Epochs of the second phase, default max(3, head epochs / 3). */
  epochs?: number;
  /** Learning rate of the second phase, default head rate / 10. */
  learningRate?: number;
  /** Backend of the second phase; default the current one (on wasm, Headstart's own gradient kernels fill its gaps). */
  backend?: string;
}

/**
 * Phase two of transfer learning: the top layers (BatchNorm frozen and in
 * inference mode) and the head trained together on boundary activations at a
 * lower learning rate, early-stopped on validation loss with the best weights
 * restored. Runs on the current backend; on wasm, the convolution
 * gradients it lacks come from registerWasmGradients (measured: the CPU
 * backend took 75 s for one 8-image step of MobileNetV2's top block).
 */
export async function fineTune(
  top: tf.LayersModel,
  head: tf.Sequential,
  b: Boundary,
  train: VectorSet,
  val: VectorSet,
  numClasses: number,
  headOptions: HeadOptions,
  opts: FineTuneOptions = {},
  progress: Progress = {},
): Promise<{ history: EpochMetrics[]; bestEpoch: number; seconds: number; backend: string }> {
  const o = { ...HEAD_DEFAULTS, ...headOptions };
  const epochs = opts.epochs ?? Math.max(3, Math.round(o.epochs / 3));
  const lr = opts.learningRate ?? o.learningRate / 10;
  const per = b.shape.reduce((a, c) => a * c, 1);
  const emit = progress.onEvent ?? (() => undefined);
  const previous = tf.getBackend();
  const target = opts.backend ?? previous;
  if (target === 'wasm') registerWasmGradients();
  const started = Date.now();
  if (target !== previous && !(await tf.setBackend(target))) throw new HeadstartError('BACKEND', `the ${target} backend needed for fine-tuning did not start`);
  for (const l of top.layers) l.trainable = b.trainable.includes(l.name);
  const vars = [...top.trainableWeights, ...head.trainableWeights].map((w) => w.read() as tf.Variable)  // read() returns the layer's own variable;
  const optimizer = tf.train.adam(lr);
  const w = classWeights(train.y, numClasses, o.balanceClasses);
  const wT = tf.tensor1d(w);
  const rng = new Rng(o.seed + 7);
  const n = train.y.length;
  const order = Array.from({ length: n }, (_, i) => i);
  const batches = Math.ceil(n / o.batchSize);
  const history: EpochMetrics[] = [];
  const snapshot = () => [...top.getWeights(), ...head.getWeights()].map((t) => t.clone());
  let best = { loss: Infinity, epoch: 0, weights: [] as tf.Tensor[] };
  let since = 0;
  let step = 0;
  const valLoss = (): { loss: number; accuracy: number } => {
    if (!val.y.length) return { loss: NaN, accuracy: NaN };
    const f = topFeatures(top, val.x, b.shape);
    return evaluateSet(head, { x: f, y: val.y }, f.length / val.y.length, numClasses, w);
  };
  try {
    const v0 = valLoss();
    best = { loss: Number.isNaN(v0.loss) ? Infinity : v0.loss, epoch: 0, weights: snapshot() };
    for (let epoch = 1; epoch <= epochs; epoch++) {
      const e0 = Date.now();
      rng.shuffle(order);
      let lossSum = 0;
      let correct = 0;
      for (let bi = 0; bi < batches; bi++) {
        throwIfAborted(progress.signal);
        const idx = order.slice(bi * o.batchSize, (bi + 1) * o.batchSize);
        const xb = new Float32Array(idx.length * per);
        idx.forEach((r, i) => xb.set(train.x.subarray(r * per, (r + 1) * per), i * per));
        const yb = Int32Array.from(idx.map((r) => train.y[r]!));
        const seed = (o.seed * 1_000_033 + step++) >>> 0;
        let probsT: tf.Tensor | undefined;
        const lossT = tf.tidy(() => {
          const x = tf.tensor(xb, [idx.length, ...b.shape]);
          const y = tf.tensor1d(yb, 'int32');
          return optimizer.minimize(() => {
            const feats = top.apply(x, { training: false }) as tf.Tensor2D; // BatchNorm stays in inference mode
            const p = forward(head, feats, { rate: o.dropout, seed });
            probsT = tf.keep(p);
            return weightedLoss(head, p, y, wT, numClasses, o.l2);
          }, true, vars)!;
        });
        const loss = (await lossT.data())[0]!;
        const pd = (await probsT!.data()) as Float32Array;
        tf.dispose([lossT, probsT!]);
        lossSum += loss * idx.length;
        for (let i = 0; i < idx.length; i++) {
          let bj = 0;
          for (let j = 1; j < numClasses; j++) if (pd[i * numClasses + j]! > pd[i * numClasses + bj]!) bj = j;
          if (bj === yb[i]) correct++;
        }
        const seen = Math.min(n, (bi + 1) * o.batchSize);
        const ips = seen / Math.max((Date.now() - e0) / 1000, 1e-3);
        emit({ type: 'batch', epoch, batch: bi + 1, batches, loss, accuracy: correct / seen, imagesPerSecond: ips, eta: ((epochs - epoch) * n + (n - seen)) / Math.max(ips, 1e-3) });
        await new Promise<void>((r) => setImmediate(r));
      }
      const v = valLoss();
      const m: EpochMetrics = { epoch, loss: lossSum / n, accuracy: correct / n, valLoss: Number.isNaN(v.loss) ? lossSum / n : v.loss, valAccuracy: Number.isNaN(v.accuracy) ? correct / n : v.accuracy, seconds: (Date.now() - e0) / 1000, stage: 'fine-tune' };
      history.push(m);
      emit({ type: 'epoch', metrics: m, totalEpochs: epochs });
      if (m.valLoss < best.loss - 1e-6) {
        best.weights.forEach((t) => t.dispose());
        best = { loss: m.valLoss, epoch, weights: snapshot() };
        since = 0;
      } else if (o.patience > 0 && ++since >= o.patience) break;
    }
    const tw = top.getWeights().length;
    top.setWeights(best.weights.slice(0, tw));
    head.setWeights(best.weights.slice(tw));
  } finally {
    best.weights.forEach((t) => t.dispose());
    wT.dispose();
    optimizer.dispose();
    if (tf.getBackend() !== previous) await tf.setBackend(previous);
  }
  return { history, bestEpoch: best.epoch, seconds: (Date.now() - started) / 1000, backend: target };
}

/** Loads a run's fine-tuned top (RUN_DIR/top), if it has one. */
export async function loadTop(dir: string): Promise<tf.LayersModel> {
  return tf.loadLayersModel(dirLoader(dir));
}
