// A small MobileNetV2-shaped layers model made by code: stem conv, an
// expansion-1 block, expanded blocks with and without a residual Add, and a
// 1x1 feature conv, each conv followed by BatchNormalization (random
// statistics, so folding errors show) and ReLU6. Seeded; saved as
// model.json + weights.bin.
import { createRequire } from 'node:module';
import path from 'node:path';
import { core, tf } from './helpers.mjs';

const { onnx } = createRequire(import.meta.url)('onnx-proto');

export async function mobileNetV2Like(dir, { size = 32, seed = 7 } = {}) {
  await core.initBackend();
  const rng = new core.Rng(seed);
  let n = 0;
  const init = () => tf.initializers.glorotUniform({ seed: seed * 100 + n++ });
  const bn = (x) => tf.layers.batchNormalization({ epsilon: 1e-3 }).apply(x);
  const relu6 = (x) => tf.layers.reLU({ maxValue: 6 }).apply(x);
  const conv = (x, filters, k = 1, strides = 1) => tf.layers.conv2d({ filters, kernelSize: k, strides, padding: 'same', useBias: false, kernelInitializer: init() }).apply(x);
  const dw = (x, strides = 1) => tf.layers.depthwiseConv2d({ kernelSize: 3, strides, padding: 'same', useBias: false, depthwiseInitializer: init() }).apply(x);
  const block = (x, cin, expansion, cout, strides) => {
    let h = x;
    if (expansion > 1) h = relu6(bn(conv(h, cin * expansion)));
    h = relu6(bn(dw(h, strides)));
    h = bn(conv(h, cout));
    return strides === 1 && cin === cout ? tf.layers.add().apply([x, h]) : h;
  };
  const input = tf.input({ shape: [size, size, 3] });
  let x = relu6(bn(conv(input, 16, 3, 2)));
  x = block(x, 16, 1, 8, 1);
  x = block(x, 8, 6, 16, 2);
  x = block(x, 16, 6, 16, 1);
  x = block(x, 16, 6, 24, 2);
  x = relu6(bn(conv(x, 64)));
  x = tf.layers.globalAveragePooling2d({}).apply(x);
  const model = tf.model({ inputs: input, outputs: x });
  // BatchNorm statistics that are not the identity: gamma, beta, mean, variance drawn per channel.
  for (const l of model.layers.filter((l) => l.getClassName() === 'BatchNormalization')) {
    const c = l.getWeights()[0].shape[0];
    const draw = (lo, hi) => tf.tensor1d(Array.from({ length: c }, () => lo + rng.next() * (hi - lo)));
    l.setWeights([draw(0.8, 1.6), draw(-0.05, 0.1), draw(-0.02, 0.02), draw(0.05, 0.2)]);
  }
  await model.save(core.dirSaver(dir));
  model.dispose();
  return path.join(dir, 'model.json');
}

/**
 * Random project weights for the kept channels of a converted backbone (any
 * weights must land where the zeroed model puts them): the original kept
 * columns scaled by 0.5..1.5 (kernel [O, K]) and an output shift [O] drawn
 * from ±shiftScale/2.
 */
export function randomProject(bytes, keep, rng, shiftScale = 1) {
  const graph = onnx.ModelProto.decode(bytes).graph;
  return core.findSlimBlocks(graph).map((b, i) => {
    const conv = core.projectConvOf(graph, b);
    if (!conv || keep[i].length === b.channels) return undefined;
    const k = keep[i].length;
    const kernel = Float32Array.from({ length: conv.outputs * k }, (_, x) => conv.w[Math.floor(x / k) * b.channels + keep[i][x % k]] * (0.5 + rng.next()));
    return { kernel, shift: Float32Array.from({ length: conv.outputs }, () => (rng.next() - 0.5) * shiftScale) };
  });
}
