// One ONNX model run in a process of its own, for whole-process timing of two
// models in turn (e.g. with /usr/bin/time, A B A B): N batches of random input
// at batch B on T intra-op threads, after one warm-up batch.
// Usage: node bench/onnxRun.mjs MODEL.onnx INPUT_NAME nchw|nhwc [N=20] [B=32] [T=2] [SIZE=224]
// The random input is on the network's range for NCHW (-1..1) and 0..255 for NHWC.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');
const [file, input, layout, n = '20', b = '32', t = '2', size = '224'] = process.argv.slice(2);
if (!file || !input || !['nchw', 'nhwc'].includes(layout)) {
  console.error('usage: node bench/onnxRun.mjs MODEL.onnx INPUT_NAME nchw|nhwc [N] [B] [T] [SIZE]');
  process.exit(2);
}
const B = Number(b);
const S = Number(size);
const data = new Float32Array(B * 3 * S * S).map(() => (layout === 'nchw' ? Math.random() * 2 - 1 : Math.random() * 255));
const x = new ort.Tensor('float32', data, layout === 'nchw' ? [B, 3, S, S] : [B, S, S, 3]);
const session = await ort.InferenceSession.create(file, { intraOpNumThreads: Number(t), interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } });
await session.run({ [input]: x });
for (let i = 0; i < Number(n); i++) await session.run({ [input]: x });
await session.release();
