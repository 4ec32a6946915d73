import { onnx } from 'onnx-proto';
import { HeadstartError } from '../errors';

/** Observed range of one activation tensor over the calibration images. */
export interface Range {
  min: number;
  max: number;
}

export interface QdqOptions {
  /**
   * Store weights in 7 bits ([-63, 63]) instead of 8. ONNX Runtime's
   * quantization tool documents it for x86 CPUs without VNNI, whose u8 x s8
   * kernels add pairs of products in int16 and can saturate at full range.
   * Default false.
   */
  reduceRange?: boolean;
}

/** What the quantizer did. */
export interface QdqStats {
  /** Conv / MatMul / residual Add nodes given int8 inputs. */
  conv: number;
  matmul: number;
  add: number;
  /** Activation tensors quantized to uint8 (one QuantizeLinear each). */
  activations: number;
}

const T = onnx.TensorProto.DataType;

interface GraphIndex {
  graph: onnx.IGraphProto;
  inits: Map<string, onnx.ITensorProto>;
  consumers: Map<string, Array<{ node: onnx.INodeProto; index: number }>>;
  outputs: Set<string>;
}

function index(model: onnx.ModelProto): GraphIndex {
  const graph = model.graph!;
  const inits = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const consumers = new Map<string, Array<{ node: onnx.INodeProto; index: number }>>();
  for (const node of graph.node ?? [])
    (node.input ?? []).forEach((name, i) => {
      if (!consumers.has(name)) consumers.set(name, []);
      consumers.get(name)!.push({ node, index: i });
    });
  return { graph, inits, consumers, outputs: new Set((graph.output ?? []).map((o) => o.name!)) };
}

const isFloatInit = (g: GraphIndex, name: string | undefined, rank: number): boolean => {
  const t = name ? g.inits.get(name) : undefined;
  return !!t && t.dataType === T.FLOAT && (t.dims ?? []).length === rank;
};

/** Which op a node quantizes as, or undefined when it stays float. */
function role(g: GraphIndex, n: onnx.INodeProto): 'conv' | 'matmul' | 'add' | undefined {
  const ins = n.input ?? [];
  if (n.opType === 'Conv' && isFloatInit(g, ins[1], 4) && !g.inits.has(ins[0]!) && (ins.length < 3 || isFloatInit(g, ins[2], 1))) return 'conv';
  if (n.opType === 'MatMul' && isFloatInit(g, ins[1], 2) && !g.inits.has(ins[0]!)) return 'matmul';
  // A residual connection: both operands are activations (a bias Add keeps its float vector).
  if (n.opType === 'Add' && ins.length === 2 && ins.every((x) => !g.inits.has(x))) return 'add';
  return undefined;
}

/**
 * The tensor that carries a Conv / Add output in uint8: the output itself, or
 * the output of a Relu / Clip(0, c) that is its only consumer. ONNX Runtime
 * drops such a Clip when the quantized range already stays inside it (zero
 * point 0, top of range at most c), and fuses DQ → Conv → Q into QLinearConv.
 */
function quantizedOutput(g: GraphIndex, n: onnx.INodeProto): string {
  const y = n.output![0]!;
  const next = g.consumers.get(y) ?? [];
  if (next.length !== 1 || g.outputs.has(y)) return y;
  const c = next[0]!.node;
  if (c.opType === 'Relu') return c.output![0]!;
  if (c.opType === 'Clip' && (c.input ?? []).slice(1).every((x) => g.inits.has(x))) return c.output![0]!;
  return y;
}

/**
 * Activation tensors whose range the quantizer needs: every activation input
 * of a quantized op, and every Conv / residual-Add output (after a fused
 * Relu / Clip). MatMul outputs stay float (ONNX Runtime runs DQ → MatMul as
 * MatMulIntegerToFloat), so the softmax head's output is float.
 */
export function qdqTensors(bytes: Uint8Array): string[] {
  const g = index(onnx.ModelProto.decode(bytes));
  const out = new Set<string>();
  for (const n of g.graph.node ?? []) {
    const r = role(g, n);
    if (!r) continue;
    if (r === 'add') n.input!.forEach((x) => out.add(x));
    else out.add(n.input![0]!);
    if (r !== 'matmul') out.add(quantizedOutput(g, n));
  }
  return [...out];
}

/** The model with `tensors` added as graph outputs (float, shape left to ONNX Runtime): the calibration model. */
export function withOutputs(bytes: Uint8Array, tensors: string[]): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph!;
  const have = new Set((graph.output ?? []).map((o) => o.name));
  for (const name of tensors) if (!have.has(name)) graph.output!.push({ name, type: { tensorType: { elemType: T.FLOAT } } });
  return onnx.ModelProto.encode(model).finish();
}

/** uint8 asymmetric parameters of a range; the range is widened to hold 0 (zero must be exact). */
export function activationParams(r: Range): { scale: number; zero: number } {
  const lo = Math.min(0, r.min);
  const hi = Math.max(0, r.max);
  // A dead tensor (all zeros) still needs a positive scale.
  const scale = Math.fround(Math.max(hi - lo, 1e-6) / 255);
  const zero = Math.min(255, Math.max(0, Math.round(-lo / scale)));
  return { scale, zero };
}

/**
 * Symmetric int8 per-channel quantization along axis `axis` of a 2-D
 * [rows, cols] view (axis 0: one scale per row; axis 1: one per column).
 */
export function quantizeWeights(values: Float32Array, rows: number, cols: number, axis: 0 | 1, qmax: number): { q: Int8Array; scales: Float32Array } {
  const n = axis === 0 ? rows : cols;
  const absMax = new Float32Array(n);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) {
      const ch = axis === 0 ? r : c;
      const a = Math.abs(values[r * cols + c]!);
      if (a > absMax[ch]!) absMax[ch] = a;
    }
  const scales = absMax.map((m) => (m > 0 ? m / qmax : 1));
  const q = new Int8Array(values.length);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) {
      const s = scales[axis === 0 ? r : c]!;
      q[r * cols + c] = Math.max(-qmax, Math.min(qmax, Math.round(values[r * cols + c]! / s)));
    }
  return { q, scales };
}

function floats(t: onnx.ITensorProto): Float32Array {
  if (t.rawData && t.rawData.length) return new Float32Array(Uint8Array.from(t.rawData).buffer); // decoded bytes may be a view into the whole file
  return Float32Array.from(t.floatData ?? []);
}

const raw = (v: Float32Array | Int8Array | Uint8Array | Int32Array): Uint8Array => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

/**
 * Static QDQ quantization of a float32 ONNX model (the ONNX Runtime "QDQ"
 * format): each activation tensor of `qdqTensors` becomes uint8 per-tensor
 * (asymmetric, scale and zero point from its calibrated range) through one
 * QuantizeLinear and a DequantizeLinear per consumer; Conv weights become
 * int8 per output channel (symmetric, axis 0), MatMul weights int8 per
 * column (axis 1); Conv biases int32 at scale input_scale x weight_scale, as
 * ONNX Runtime's fusion into QLinearConv requires. Every other op
 * (normalisation, pooling, the head's bias / Relu / Softmax) stays float.
 */
export function quantizeQdq(bytes: Uint8Array, ranges: Map<string, Range>, opts: QdqOptions = {}): { bytes: Uint8Array; stats: QdqStats } {
  const model = onnx.ModelProto.decode(bytes);
  const g = index(model);
  const qmax = opts.reduceRange ? 63 : 127;
  const tensors = qdqTensors(bytes);
  const params = new Map<string, { scale: number; zero: number }>();
  for (const t of tensors) {
    const r = ranges.get(t);
    if (!r || !Number.isFinite(r.min) || !Number.isFinite(r.max)) throw new HeadstartError('INTERNAL', `int8 quantization: no calibrated range for tensor '${t}'`);
    params.set(t, activationParams(r));
  }
  const newInits: onnx.ITensorProto[] = [];
  const scalar = (name: string, v: number): string => {
    newInits.push({ name, dims: [], dataType: T.FLOAT, rawData: raw(new Float32Array([v])) });
    return name;
  };
  const pre: onnx.INodeProto[] = [];
  const replaced = new Set<string>();
  const stats: QdqStats = { conv: 0, matmul: 0, add: 0, activations: tensors.length };
  /** A constant weight stored as int8 (or int32) behind a DequantizeLinear. */
  const dequantized = (stem: string, dims: number[], q: Int8Array | Int32Array, scales: Float32Array, axis: number): string => {
    const type = q instanceof Int8Array ? T.INT8 : T.INT32;
    newInits.push(
      { name: `${stem}__q`, dims, dataType: type, rawData: raw(q) },
      { name: `${stem}__scale`, dims: [scales.length], dataType: T.FLOAT, rawData: raw(scales) },
      { name: `${stem}__zero`, dims: [scales.length], dataType: type, rawData: raw(q instanceof Int8Array ? new Int8Array(scales.length) : new Int32Array(scales.length)) },
    );
    pre.push({ opType: 'DequantizeLinear', input: [`${stem}__q`, `${stem}__scale`, `${stem}__zero`], output: [`${stem}__dq`], name: `${stem}/DQ`, attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: axis }] });
    return `${stem}__dq`;
  };
  let k = 0;
  for (const n of g.graph.node ?? []) {
    const r = role(g, n);
    if (r === 'conv') {
      const wName = n.input![1]!;
      const w = g.inits.get(wName)!;
      const dims = w.dims!.map(Number);
      const { q, scales } = quantizeWeights(floats(w), dims[0]!, dims[1]! * dims[2]! * dims[3]!, 0, qmax);
      const stem = `qdq/w${k++}`;
      n.input![1] = dequantized(stem, dims, q, scales, 0);
      replaced.add(wName);
      const bName = n.input![2];
      if (bName) {
        const b = floats(g.inits.get(bName)!);
        const sx = params.get(n.input![0]!)!.scale;
        const bs = scales.map((s) => Math.fround(s * sx));
        const bq = Int32Array.from(b, (v, i) => Math.max(-2147483647, Math.min(2147483647, Math.round(v / bs[i]!))));
        n.input![2] = dequantized(`${stem}_bias`, [b.length], bq, bs, 0);
        replaced.add(bName);
      }
      stats.conv++;
    } else if (r === 'matmul') {
      const wName = n.input![1]!;
      const w = g.inits.get(wName)!;
      const dims = w.dims!.map(Number);
      const { q, scales } = quantizeWeights(floats(w), dims[0]!, dims[1]!, 1, qmax);
      n.input![1] = dequantized(`qdq/w${k++}`, dims, q, scales, 1);
      replaced.add(wName);
      stats.matmul++;
    } else if (r === 'add') stats.add++;
  }
  // Q after the producer (or at the top for a graph input), a DQ per consumer edge after it:
  // the node list stays topologically sorted.
  // Short generated names (qdq/a<i>, qdq/w<k>): the converted graph's names run to 150 characters
  // and each quantized tensor would repeat its name in ~8 places.
  let a = 0;
  const qdq = (t: string): onnx.INodeProto[] => {
    const p = params.get(t)!;
    const stem = `qdq/a${a++}`;
    const s = scalar(`${stem}__scale`, p.scale);
    const z = `${stem}__zero`;
    newInits.push({ name: z, dims: [], dataType: T.UINT8, rawData: new Uint8Array([p.zero]) });
    const nodes: onnx.INodeProto[] = [{ opType: 'QuantizeLinear', input: [t, s, z], output: [`${stem}__u8`], name: `${stem}/Q` }];
    (g.consumers.get(t) ?? []).forEach(({ node, index: i }, j) => {
      const out = `${stem}__dq${j}`;
      nodes.push({ opType: 'DequantizeLinear', input: [`${stem}__u8`, s, z], output: [out], name: `${stem}/DQ${j}` });
      node.input![i] = out;
    });
    return nodes;
  };
  const inputs = new Set((g.graph.input ?? []).map((i) => i.name!));
  const body: onnx.INodeProto[] = tensors.filter((t) => inputs.has(t)).flatMap(qdq);
  for (const n of g.graph.node ?? []) {
    body.push(n);
    for (const y of n.output ?? []) if (params.has(y)) body.push(...qdq(y));
  }
  const stillUsed = new Set(body.flatMap((n) => n.input ?? []));
  g.graph.initializer = [...(g.graph.initializer ?? []).filter((t) => !replaced.has(t.name!) || stillUsed.has(t.name!)), ...newInits];
  g.graph.node = [...pre, ...body];
  return { bytes: onnx.ModelProto.encode(model).finish(), stats };
}

/** Checks of a QDQ model's structure: what the tests and the exporter assert. */
export function describeQdq(bytes: Uint8Array): { unquantizedInputs: string[]; badScales: string[]; ops: Record<string, number> } {
  const model = onnx.ModelProto.decode(bytes);
  const g = index(model);
  const producer = new Map<string, onnx.INodeProto>();
  for (const n of g.graph.node ?? []) for (const y of n.output ?? []) producer.set(y, n);
  const ops: Record<string, number> = {};
  const unquantizedInputs: string[] = [];
  const badScales: string[] = [];
  for (const n of g.graph.node ?? []) {
    ops[n.opType!] = (ops[n.opType!] ?? 0) + 1;
    if (n.opType === 'Conv' || n.opType === 'MatMul')
      for (const x of n.input ?? []) if (x && producer.get(x)?.opType !== 'DequantizeLinear') unquantizedInputs.push(`${n.name}: ${x}`);
    if (n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear') {
      const s = g.inits.get(n.input![1]!);
      const values = s ? floats(s) : new Float32Array();
      if (!values.length || values.some((v) => !(v > 0) || !Number.isFinite(v))) badScales.push(n.name!);
    }
  }
  return { unquantizedInputs, badScales, ops };
}
