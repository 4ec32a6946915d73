import * as tf from '@tensorflow/tfjs';
import { HeadstartError } from '../errors';
import type { EpochMetrics, Progress } from '../events';
import { dirLoader } from '../tfjsio';
import { registerWasmGradients } from './wasmGrads';
import { type HeadOptions, type VectorSet, HEAD_DEFAULTS, TfjsStepEngine, classWeights, forward, predictRows, setModelWeights, weightedLoss } from './head';
import { type Batch, runLoop } from './loop';

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
 * The fine-tuning engine for the shared loop: one step is one batch of
 * boundary activations through the top (BatchNorm in inference mode) and the
 * head (dropout on, seeded per step), one Adam update of both.
 */
class FineTuneEngine extends TfjsStepEngine {
  readonly name = 'tfjs-fine-tune';
  private readonly wT: tf.Tensor1D;

  constructor(
    private readonly top: tf.LayersModel,
    head: tf.Sequential,
    b: Boundary,
    x: Float32Array,
    k: number,
    private readonly o: Required<HeadOptions>,
    lr: number,
    classW: Float32Array,
  ) {
    for (const l of top.layers) l.trainable = b.trainable.includes(l.name);
    const vars = [...top.trainableWeights, ...head.trainableWeights].map((w) => w.read() as tf.Variable); // read() returns the layer's own variable
    super(head, x, b.shape, k, tf.train.adam(lr), vars);
    this.wT = tf.tensor1d(classW);
  }

  protected batchLoss(x: tf.Tensor, y: tf.Tensor1D, _b: Batch, step: number): { probs: tf.Tensor2D; loss: tf.Scalar } {
    const feats = this.top.apply(x, { training: false }) as tf.Tensor2D; // BatchNorm stays in inference mode
    const probs = forward(this.model, feats, { rate: this.o.dropout, seed: (this.o.seed * 1_000_033 + step) >>> 0 });
    return { probs, loss: weightedLoss(this.model, probs, y, this.wT, this.k, this.o.l2) };
  }

  override async predict(x: Float32Array): Promise<Float32Array> {
    const f = topFeatures(this.top, x, this.shape);
    return predictRows(this.model, f, f.length / (x.length / this.per), this.k);
  }

  override getWeights(): Float32Array[] {
    const tw = this.top.getWeights().map((t) => (t.dataSync() as Float32Array).slice());
    return [...tw, ...super.getWeights()];
  }

  override setWeights(w: Float32Array[]): void {
    const tw = this.top.getWeights().length;
    setModelWeights(this.top, w.slice(0, tw));
    super.setWeights(w.slice(tw));
  }

  /** Frees the optimizer and class weights; the top and head belong to the caller. */
  override dispose(): void {
    super.dispose();
    this.wT.dispose();
  }
}

/**
 * Phase two of transfer learning: the top layers (BatchNorm frozen and in
 * inference mode) and the head trained together on boundary activations at a
 * lower learning rate, through the shared loop: early-stopped on validation
 * loss with the best weights restored, the weights before fine-tuning kept
 * when no epoch beats them. Runs on the current backend; on wasm, the
 * convolution gradients it lacks come from registerWasmGradients (measured:
 * the CPU backend took 75 s for one 8-image step of MobileNetV2's top block).
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
  const previous = tf.getBackend();
  const target = opts.backend ?? previous;
  if (target === 'wasm') registerWasmGradients();
  const started = Date.now();
  if (target !== previous && !(await tf.setBackend(target))) throw new HeadstartError('BACKEND', `the ${target} backend needed for fine-tuning did not start`);
  const w = classWeights(train.y, numClasses, o.balanceClasses);
  let engine: FineTuneEngine | undefined;
  try {
    engine = new FineTuneEngine(top, head, b, train.x, numClasses, o, opts.learningRate ?? o.learningRate / 10, w);
    // Shuffles seeded apart from the head stage's (seed + 7), as before the loop was shared.
    const res = await runLoop(engine, train.y, val, w, numClasses, { epochs, batchSize: o.batchSize, patience: o.patience, seed: o.seed + 7, scoreStart: true, stage: 'fine-tune' }, progress);
    return { history: res.history, bestEpoch: res.bestEpoch, seconds: (Date.now() - started) / 1000, backend: target };
  } finally {
    engine?.dispose();
    if (tf.getBackend() !== previous) await tf.setBackend(previous);
  }
}

/** Loads a run's fine-tuned top (RUN_DIR/top), if it has one. */
export async function loadTop(dir: string): Promise<tf.LayersModel> {
  return tf.loadLayersModel(dirLoader(dir));
}
