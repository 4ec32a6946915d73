import { onnx } from 'onnx-proto';
import { affineRange, toFloat16 } from '../compress/quantize';

/** Weight storage of an ONNX export. */
export type OnnxWeights = 'float32' | 'float16' | 'uint8';

/**
 * Weights-only compression of an ONNX model: every float initializer of rank
 * ≥ 2 (convolution and dense kernels) is stored as float16 (+ Cast) or as
 * uint8 (+ DequantizeLinear, per-tensor affine with an exact zero), so the
 * model runs unchanged on every ONNX Runtime CPU build while the file
 * shrinks. Vectors (biases, BatchNorm) stay float32: they are tiny and
 * sensitive. Kernels whose range excludes zero stay float32 (uint8's zero
 * point must be representable).
 */
export function compressOnnx(bytes: Uint8Array, weights: OnnxWeights): { bytes: Uint8Array; compressed: number; kept: number } {
  if (weights === 'float32') return { bytes, compressed: 0, kept: 0 };
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph!;
  const pre: onnx.INodeProto[] = [];
  const inits: onnx.ITensorProto[] = [];
  let compressed = 0;
  let kept = 0;
  for (const t of graph.initializer ?? []) {
    const dims = (t.dims ?? []).map(Number);
    const raw = t.rawData;
    if (t.dataType !== onnx.TensorProto.DataType.FLOAT || dims.length < 2 || !raw || raw.length < 256) {
      inits.push(t);
      continue;
    }
    const values = new Float32Array(Uint8Array.from(raw).buffer); // decoded bytes may be a view into the whole file
    const name = t.name!;
    if (weights === 'float16') {
      const half = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) half[i] = toFloat16(values[i]!);
      inits.push({ name: `${name}__f16`, dims, dataType: onnx.TensorProto.DataType.FLOAT16, rawData: new Uint8Array(half.buffer) });
      pre.push({ opType: 'Cast', input: [`${name}__f16`], output: [name], name: `${name}/Cast`, attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: onnx.TensorProto.DataType.FLOAT }] });
      compressed++;
      continue;
    }
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!(lo <= 0 && hi >= 0 && hi > lo)) {
      inits.push(t);
      kept++;
      continue;
    }
    const { min, scale } = affineRange(lo, hi, 255);
    const zero = Math.round(-min / scale);
    const q = new Uint8Array(values.length);
    for (let i = 0; i < values.length; i++) q[i] = Math.min(255, Math.max(0, Math.round(values[i]! / scale) + zero));
    inits.push(
      { name: `${name}__q`, dims, dataType: onnx.TensorProto.DataType.UINT8, rawData: q },
      { name: `${name}__scale`, dims: [], dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(new Float32Array([scale]).buffer) },
      { name: `${name}__zero`, dims: [], dataType: onnx.TensorProto.DataType.UINT8, rawData: new Uint8Array([zero]) },
    );
    pre.push({ opType: 'DequantizeLinear', input: [`${name}__q`, `${name}__scale`, `${name}__zero`], output: [name], name: `${name}/Dequantize` });
    compressed++;
  }
  graph.initializer = inits;
  graph.node = [...pre, ...(graph.node ?? [])];
  return { bytes: onnx.ModelProto.encode(model).finish(), compressed, kept };
}
