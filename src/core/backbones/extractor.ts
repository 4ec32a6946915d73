import * as tf from '@tensorflow/tfjs';
import { HeadstartError } from '../errors';
import { dirLoader } from '../tfjsio';
import type { ResolvedBackbone } from './store';

/**
 * A frozen feature extractor: raw pixels in, feature vectors out. The one
 * interface every extraction engine implements.
 */
export interface FeatureExtractor {
  /** Length of one feature vector. */
  readonly featureSize: number;
  /** Square input size in pixels. */
  readonly inputSize: number;
  /**
   * `pixels`: n images, each inputSize x inputSize x 3 (HWC, RGB), values 0..255.
   * Returns n x featureSize features, row-major.
   */
  extract(pixels: Float32Array, n: number): Promise<Float32Array>;
  dispose(): void;
  /** Releases native resources and resolves when done (engines that need it: ONNX Runtime). */
  close?(): Promise<void>;
}

/** Maps 0..255 pixels linearly onto the backbone's input range. */
export function normalise(x: tf.Tensor, range: [number, number]): tf.Tensor {
  const [lo, hi] = range;
  return tf.add(tf.mul(x, (hi - lo) / 255), lo);
}

/**
 * Loads a backbone as a feature extractor (TensorFlow.js engine). The model
 * is cut at the entry's feature node; 4-D outputs are global-average-pooled.
 */
export async function loadTfjsExtractor(b: ResolvedBackbone): Promise<FeatureExtractor> {
  const { entry } = b;
  const size = entry.inputSize;
  let run: (x: tf.Tensor4D) => tf.Tensor;
  let disposeModel: () => void;
  try {
    if (entry.format === 'graph') {
      const model = await tf.loadGraphModel(dirLoader(b.dir));
      run = (x) => model.execute(x, entry.featureNode) as tf.Tensor;
      disposeModel = () => model.dispose();
    } else {
      const model = await tf.loadLayersModel(dirLoader(b.dir));
      const layer = model.getLayer(entry.featureNode);
      const sub = tf.model({ inputs: model.inputs, outputs: layer.output as tf.SymbolicTensor });
      run = (x) => sub.predict(x) as tf.Tensor;
      disposeModel = () => model.dispose();
    }
  } catch (err) {
    if (err instanceof HeadstartError) throw err;
    throw new HeadstartError('BAD_MODEL', `cannot load backbone ${entry.id} from ${b.dir}: ${String((err as Error).message)}`, { cause: err });
  }
  const forward = (x: tf.Tensor4D): tf.Tensor2D =>
    tf.tidy(() => {
      let y = run(normalise(x, entry.inputRange) as tf.Tensor4D);
      if (y.rank === 4 && entry.pool) y = tf.mean(y, [1, 2]);
      else if (y.rank > 2) y = tf.reshape(y, [y.shape[0]!, -1]);
      return y as tf.Tensor2D;
    });
  // Measure the feature size once (local models do not declare it).
  const zeros = tf.zeros([1, size, size, 3]) as tf.Tensor4D;
  const probe = forward(zeros);
  const featureSize = probe.shape[1]!;
  tf.dispose([zeros, probe]);
  if (entry.featureSize && entry.featureSize !== featureSize) {
    throw new HeadstartError('BAD_MODEL', `backbone ${entry.id} gives ${featureSize}-d features, the catalogue says ${entry.featureSize}`);
  }
  return {
    featureSize,
    inputSize: size,
    async extract(pixels, n) {
      const x = tf.tensor4d(pixels, [n, size, size, 3]);
      try {
        const y = forward(x);
        const data = (await y.data()) as Float32Array;
        y.dispose();
        return data;
      } finally {
        x.dispose();
      }
    },
    dispose: () => disposeModel(),
  };
}
