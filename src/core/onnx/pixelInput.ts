import { onnx } from 'onnx-proto';

/**
 * The pixel preprocessing the converter puts at the head of a backbone graph
 * (`image` 0..255 NHWC → `x * scale + offset` → Transpose to NCHW), taken out
 * of the graph so the extractor does it in one pass over the pixels while
 * laying them out: ONNX Runtime runs those three whole-tensor ops one after
 * the other (the Transpose on one thread), about 4% of MobileNetV2's time.
 * What is left takes NCHW input already on the network's range, as a
 * PyTorch export does.
 */
export interface PixelPrefix {
  /** The input the stripped graph takes: float32 [N, 3, size, size]. */
  inputName: string;
  scale: number;
  offset: number;
}

/** A float32 scalar initializer's value, or undefined when `name` is not one. */
function scalarOf(graph: onnx.IGraphProto, name: string | undefined): number | undefined {
  const t = graph.initializer?.find((i) => i.name === name);
  if (!t || (t.dims ?? []).length !== 0 || t.dataType !== onnx.TensorProto.DataType.FLOAT) return undefined;
  if (t.rawData?.length === 4) return Buffer.from(t.rawData).readFloatLE(0);
  return t.floatData?.length === 1 ? t.floatData[0] : undefined;
}

/** How many nodes read `tensor`. */
function readers(graph: onnx.IGraphProto, tensor: string): number {
  return (graph.node ?? []).reduce((a, n) => a + (n.input ?? []).filter((i) => i === tensor).length, 0);
}

/**
 * Splits the converter's pixel prefix off a model: the stripped model's bytes
 * and the arithmetic the caller now owes each pixel. Undefined when the graph
 * does not start with exactly that prefix (a foreign model wraps its own
 * preprocessing; it runs as it is).
 */
export function splitPixelPrefix(bytes: Uint8Array): { bytes: Uint8Array; prefix: PixelPrefix } | undefined {
  const model = onnx.ModelProto.decode(bytes);
  const g = model.graph;
  const input = g?.input?.length === 1 ? g.input[0]! : undefined;
  const dims = input?.type?.tensorType?.shape?.dim ?? [];
  if (!g || !input?.name || dims.length !== 4 || Number(dims[3]?.dimValue) !== 3) return undefined;
  const nodes = g.node ?? [];
  const [mul, add, tr] = nodes;
  if (mul?.opType !== 'Mul' || add?.opType !== 'Add' || tr?.opType !== 'Transpose') return undefined;
  const scale = scalarOf(g, mul.input?.[1] ?? undefined);
  const offset = scalarOf(g, add.input?.[1] ?? undefined);
  const perm = tr.attribute?.find((a) => a.name === 'perm')?.ints?.map(Number);
  const chained = mul.input?.[0] === input.name && add.input?.[0] === mul.output?.[0] && tr.input?.[0] === add.output?.[0];
  if (scale === undefined || offset === undefined || !chained || perm?.join() !== '0,3,1,2') return undefined;
  if (readers(g, input.name) !== 1 || readers(g, mul.output![0]!) !== 1 || readers(g, add.output![0]!) !== 1) return undefined;
  const inputName = tr.output![0]!;
  g.node = nodes.slice(3);
  const dropped = new Set([mul.input![1], add.input![1]]);
  g.initializer = (g.initializer ?? []).filter((i) => !dropped.has(i.name ?? '') || g.node!.some((n) => n.input?.includes(i.name!)));
  g.input = [{ name: inputName, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [dims[0]!, dims[3]!, dims[1]!, dims[2]!] } } } }];
  return { bytes: onnx.ModelProto.encode(model).finish(), prefix: { inputName, scale, offset } };
}

/**
 * n images of 0..255 RGB pixels, HWC, into NCHW float32 on the network's
 * range (`p * scale + offset`, rounded to float32 as the graph's Mul and Add
 * would be up to one rounding).
 */
export function toNchw(pixels: Float32Array, n: number, size: number, scale: number, offset: number): Float32Array {
  const plane = size * size;
  const out = new Float32Array(n * plane * 3);
  for (let i = 0; i < n; i++) {
    const base = i * plane * 3;
    const r = base;
    const g = base + plane;
    const b = base + 2 * plane;
    for (let p = 0, q = base; p < plane; p++, q += 3) {
      out[r + p] = pixels[q]! * scale + offset;
      out[g + p] = pixels[q + 1]! * scale + offset;
      out[b + p] = pixels[q + 2]! * scale + offset;
    }
  }
  return out;
}
