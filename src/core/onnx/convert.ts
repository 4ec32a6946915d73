import * as tf from '@tensorflow/tfjs';
import { type GraphNode, type GraphTopology, inputNodeName } from '../backbones/bundled';
import { HeadstartError } from '../errors';
import { decodeEntries, readModelDir } from '../tfjsio';
import { OnnxBuilder } from './builder';

/** Bumped whenever the conversion changes: part of the ONNX cache key. */
export const CONVERTER_VERSION = 2;

/** How a converted tensor is laid out: 4-D tensors run as NCHW inside ONNX. */
type Layout = 'nchw' | 'flat';

export interface ConvertOptions {
  /** Graph: node name; layers: layer name. Default: the model's own output. */
  output?: string;
  /** Prepend `x * scale + offset` (0..255 pixels onto the model's range). */
  normalise?: { scale: number; offset: number };
  /** Global-average-pool a 4-D output into a vector. */
  pool?: boolean;
  /** Append a softmax (for a head saved without one). */
  softmax?: boolean;
  /** Name of the ONNX input / output, default 'image' / 'output'. */
  inputName?: string;
  outputName?: string;
}

export interface ConvertedModel {
  bytes: Uint8Array;
  inputName: string;
  outputName: string;
  /** Input dims with a symbolic batch: ['N', H, W, 3] or ['N', F]. */
  inputDims: Array<number | string>;
}

const unsupported = (op: string, node: string): never => {
  throw new HeadstartError('BAD_MODEL', `cannot convert operation '${op}' (node '${node}') to ONNX: not supported by Headstart's converter`);
};

function b64(s: unknown): string {
  return typeof s === 'string' ? Buffer.from(s, 'base64').toString('utf8') : '';
}

/** HWIO conv kernel → OIHW. */
function convKernel(values: Float32Array, [h, w, i, o]: number[]): Float32Array {
  const out = new Float32Array(values.length);
  for (let y = 0; y < h!; y++) for (let x = 0; x < w!; x++) for (let c = 0; c < i!; c++) for (let k = 0; k < o!; k++) out[((k * i! + c) * h! + y) * w! + x] = values[((y * w! + x) * i! + c) * o! + k]!;
  return out;
}

/** Depthwise kernel [H, W, C, M] → grouped conv weights [C*M, 1, H, W]. */
function depthwiseKernel(values: Float32Array, [h, w, c, m]: number[]): Float32Array {
  const out = new Float32Array(values.length);
  for (let y = 0; y < h!; y++) for (let x = 0; x < w!; x++) for (let ch = 0; ch < c!; ch++) for (let k = 0; k < m!; k++) out[((ch * m! + k) * h! + y) * w! + x] = values[((y * w! + x) * c! + ch) * m! + k]!;
  return out;
}

/** Shared emitters: activations and the NCHW bookkeeping. */
class Emitter {
  readonly layout = new Map<string, Layout>();
  constructor(readonly b: OnnxBuilder) {}

  activation(x: string, act: string, stem: string, where: string): string {
    switch (act) {
      case 'linear':
      case '':
        return x;
      case 'relu':
        return this.b.node('Relu', [x], stem);
      case 'relu6':
        return this.b.node('Clip', [x, this.b.scalar(`${stem}/zero`, 0), this.b.scalar(`${stem}/six`, 6)], stem);
      case 'sigmoid':
        return this.b.node('Sigmoid', [x], stem);
      case 'tanh':
        return this.b.node('Tanh', [x], stem);
      case 'softmax':
        return this.b.node('Softmax', [x], stem, { axis: this.layout.get(x) === 'nchw' ? 1 : -1 });
      case 'hard_sigmoid':
        return this.b.node('HardSigmoid', [x], stem, { alpha: { f: 0.2 }, beta: { f: 0.5 } });
      case 'swish':
        return this.b.node('Mul', [x, this.b.node('Sigmoid', [x], `${stem}/sig`)], stem);
      case 'elu':
        return this.b.node('Elu', [x], stem, { alpha: { f: 1 } });
      default:
        return unsupported(`activation ${act}`, where);
    }
  }

  /** 1-D per-channel vector reshaped to broadcast over NCHW. */
  channelVector(name: string, values: Float32Array): string {
    return this.b.init(this.b.fresh(name), [values.length, 1, 1], values);
  }
}

/** Converts a TF graph model (JSON GraphDef) to ONNX. */
function convertGraph(topo: GraphTopology, weights: tf.NamedTensorMap, opts: ConvertOptions): ConvertedModel {
  const b = new OnnxBuilder();
  const em = new Emitter(b);
  const byName = new Map(topo.node.map((n) => [n.name, n]));
  const placeholder = topo.node.find((n) => n.op === 'Placeholder');
  if (!placeholder) throw new HeadstartError('BAD_MODEL', 'graph model has no input placeholder');
  const consumed = new Set(topo.node.flatMap((n) => (n.input ?? []).map(inputNodeName)));
  const output = opts.output ?? topo.node.filter((n) => !consumed.has(n.name) && n.op !== 'Const').at(-1)!.name;
  if (!byName.has(output)) throw new HeadstartError('BAD_MODEL', `graph has no node '${output}'`);
  const dims = (placeholder.attr?.shape as { shape?: { dim?: Array<{ size: string }> } })?.shape?.dim?.map((d) => Number(d.size)) ?? [-1, 224, 224, 3];
  const inputName = opts.inputName ?? 'image';
  const outputName = opts.outputName ?? 'output';
  const inputDims: Array<number | string> = dims.map((d, i) => (i === 0 || d < 0 ? 'N' : d));
  b.fresh(inputName);
  b.fresh(outputName); // reserved: intermediate tensors never take the output's name
  let x = inputName;
  if (opts.normalise) x = b.node('Add', [b.node('Mul', [x, b.scalar('normalise/scale', opts.normalise.scale)], 'normalise'), b.scalar('normalise/offset', opts.normalise.offset)], 'normalise');
  const env = new Map<string, string>(); // TF node name -> ONNX tensor name
  if (dims.length === 4) {
    env.set(placeholder.name, b.node('Transpose', [x], 'input/nchw', { perm: [0, 3, 1, 2] }));
    em.layout.set(env.get(placeholder.name)!, 'nchw');
  } else {
    env.set(placeholder.name, x);
    em.layout.set(x, 'flat');
  }
  const constVal = (name: string): tf.Tensor => {
    const t = weights[name];
    if (!t) throw new HeadstartError('BAD_MODEL', `graph constant '${name}' has no weights`);
    return t;
  };
  const constInit = (name: string): string => {
    const key = `const:${name}`;
    if (!env.has(key)) {
      const t = constVal(name);
      const v = t.dtype === 'int32' ? Int32Array.from(t.dataSync() as Int32Array) : (t.dataSync() as Float32Array);
      env.set(key, b.init(b.fresh(name), t.shape, v instanceof Int32Array ? BigInt64Array.from(Array.from(v, (q) => BigInt(q))) : v));
    }
    return env.get(key)!;
  };
  const visiting = new Set<string>();
  const get = (ref: string): string => {
    const name = inputNodeName(ref);
    const done = env.get(name);
    if (done) return done;
    const n = byName.get(name);
    if (!n) throw new HeadstartError('BAD_MODEL', `graph node '${name}' is referenced but missing`);
    if (n.op === 'Const') return constInit(name);
    if (visiting.has(name)) throw new HeadstartError('BAD_MODEL', `graph has a cycle at '${name}'`);
    visiting.add(name);
    const out = emit(n);
    env.set(name, out);
    return out;
  };
  const attrList = (n: GraphNode, key: string): number[] => ((n.attr?.[key] as { list?: { i?: string[] } })?.list?.i ?? []).map(Number);
  const attrS = (n: GraphNode, key: string): string => b64((n.attr?.[key] as { s?: string })?.s);
  const padding = (n: GraphNode) => {
    const p = attrS(n, 'padding');
    if (p === 'SAME') return { auto_pad: 'SAME_UPPER' };
    if (p === 'VALID') return { auto_pad: 'VALID' };
    return unsupported(`padding ${p}`, n.name);
  };
  const fusedActivation = (n: GraphNode, y: string): string => {
    const ops = ((n.attr?.fused_ops as { list?: { s?: string[] } })?.list?.s ?? []).map(b64);
    let out = y;
    for (const op of ops.slice(1)) out = em.activation(out, op === 'Relu' ? 'relu' : op === 'Relu6' ? 'relu6' : op === 'Elu' ? 'elu' : op === 'Sigmoid' ? 'sigmoid' : op === 'Tanh' ? 'tanh' : `fused ${op}`, n.name, n.name);
    if (ops[0] && ops[0] !== 'BiasAdd') unsupported(`fused ${ops.join('+')}`, n.name);
    return out;
  };
  const emit = (n: GraphNode): string => {
    const ins = n.input?.filter((r) => !r.startsWith('^')) ?? [];
    const set = (y: string, layout: Layout) => {
      em.layout.set(y, layout);
      return y;
    };
    switch (n.op) {
      case 'Identity':
        return get(ins[0]!);
      case 'Conv2D':
      case '_FusedConv2D':
      case 'DepthwiseConv2dNative':
      case 'FusedDepthwiseConv2dNative': {
        const depthwise = n.op.includes('Depthwise');
        const xIn = get(ins[0]!);
        const kName = inputNodeName(ins[1]!);
        const k = constVal(kName);
        const kv = k.dataSync() as Float32Array;
        const w = depthwise ? depthwiseKernel(kv, k.shape) : convKernel(kv, k.shape);
        const [kh, kw, ci, co] = k.shape as [number, number, number, number];
        const wDims = depthwise ? [ci * co, 1, kh, kw] : [co, ci, kh, kw];
        const wName = b.init(b.fresh(`${kName}/oihw`), wDims, w);
        const strides = attrList(n, 'strides');
        const dil = attrList(n, 'dilations');
        const inputs = [xIn, wName];
        if (n.op.startsWith('_Fused') || n.op.startsWith('Fused')) inputs.push(constInit(inputNodeName(ins[2]!)));
        const y = b.node('Conv', inputs, n.name, { ...padding(n), strides: [strides[1] ?? 1, strides[2] ?? 1], dilations: [dil[1] ?? 1, dil[2] ?? 1], kernel_shape: [kh, kw], group: depthwise ? ci : 1 });
        return set(n.op.startsWith('_Fused') || n.op.startsWith('Fused') ? fusedActivation(n, y) : y, 'nchw');
      }
      case 'BiasAdd':
      case 'Add':
      case 'AddV2':
      case 'Sub':
      case 'Mul':
      case 'RealDiv':
      case 'Maximum':
      case 'Minimum': {
        const [a, c] = ins.map((r) => {
          const rn = inputNodeName(r);
          const node = byName.get(rn);
          // Per-channel constant vectors meet NCHW tensors: reshape to [C, 1, 1].
          if (node?.op === 'Const' && constVal(rn).rank === 1 && constVal(rn).shape[0]! > 1) return { rn, vec: true };
          return { rn, vec: false };
        });
        const left = get(ins[0]!);
        const nchw = em.layout.get(left) === 'nchw';
        const right = c!.vec && nchw ? em.channelVector(`${c!.rn}/c11`, constVal(c!.rn).dataSync() as Float32Array) : get(ins[1]!);
        void a;
        const op = { BiasAdd: 'Add', Add: 'Add', AddV2: 'Add', Sub: 'Sub', Mul: 'Mul', RealDiv: 'Div', Maximum: 'Max', Minimum: 'Min' }[n.op]!;
        return set(b.node(op, [left, right], n.name), em.layout.get(left) ?? 'flat');
      }
      case 'Relu':
      case 'Relu6':
      case 'Sigmoid':
      case 'Tanh':
      case 'Elu': {
        const xIn = get(ins[0]!);
        return set(em.activation(xIn, n.op.toLowerCase(), n.name, n.name), em.layout.get(xIn) ?? 'flat');
      }
      case 'Softmax': {
        const xIn = get(ins[0]!);
        return set(b.node('Softmax', [xIn], n.name, { axis: -1 }), 'flat');
      }
      case 'AvgPool':
      case 'MaxPool': {
        const xIn = get(ins[0]!);
        const k = attrList(n, 'ksize');
        const s = attrList(n, 'strides');
        return set(b.node(n.op === 'AvgPool' ? 'AveragePool' : 'MaxPool', [xIn], n.name, { ...padding(n), kernel_shape: [k[1]!, k[2]!], strides: [s[1]!, s[2]!] }), 'nchw');
      }
      case 'Squeeze': {
        const xIn = get(ins[0]!);
        const axes = attrList(n, 'squeeze_dims');
        const mapped = em.layout.get(xIn) === 'nchw' ? axes.map((a) => ({ 1: 2, 2: 3, 3: 1 })[a as 1 | 2 | 3] ?? a) : axes;
        return set(b.node('Squeeze', [xIn, b.ints(`${n.name}/axes`, mapped)], n.name), 'flat');
      }
      case 'Mean': {
        const xIn = get(ins[0]!);
        const axes = Array.from(constVal(inputNodeName(ins[1]!)).dataSync());
        const keep = !!(n.attr?.keep_dims as { b?: boolean })?.b;
        const mapped = em.layout.get(xIn) === 'nchw' ? axes.map((a) => ({ 1: 2, 2: 3, 3: 1 })[a as 1 | 2 | 3] ?? a) : axes;
        return set(b.node('ReduceMean', [xIn], n.name, { axes: mapped, keepdims: keep ? 1 : 0 }), keep ? 'nchw' : 'flat');
      }
      case 'MatMul':
      case '_FusedMatMul': {
        const xIn = get(ins[0]!);
        const ta = !!(n.attr?.transpose_a as { b?: boolean })?.b;
        const tb = !!(n.attr?.transpose_b as { b?: boolean })?.b;
        if (ta) unsupported('MatMul with transpose_a', n.name);
        const wName = inputNodeName(ins[1]!);
        let wIn = get(ins[1]!);
        if (tb) wIn = b.node('Transpose', [wIn], `${wName}/T`, { perm: [1, 0] });
        let y = b.node('MatMul', [xIn, wIn], n.name);
        if (n.op === '_FusedMatMul') {
          y = b.node('Add', [y, get(ins[2]!)], `${n.name}/bias`);
          y = fusedActivation(n, y);
        }
        return set(y, 'flat');
      }
      case 'Reshape': {
        const xIn = get(ins[0]!);
        const shape = Array.from(constVal(inputNodeName(ins[1]!)).dataSync());
        const src = em.layout.get(xIn) === 'nchw' ? b.node('Transpose', [xIn], `${n.name}/nhwc`, { perm: [0, 2, 3, 1] }) : xIn;
        if (shape.length === 4) unsupported('Reshape to 4-D', n.name);
        return set(b.node('Reshape', [src, b.ints(`${n.name}/shape`, shape)], n.name), 'flat');
      }
      case 'Placeholder':
        return env.get(n.name)!;
      default:
        return unsupported(n.op, n.name);
    }
  };
  let y = get(output);
  if (opts.pool && em.layout.get(y) === 'nchw') y = b.node('ReduceMean', [y], 'pool', { axes: [2, 3], keepdims: 0 });
  else if (em.layout.get(y) === 'nchw') y = b.node('Transpose', [y], 'output/nhwc', { perm: [0, 2, 3, 1] });
  if (opts.softmax) y = b.node('Softmax', [y], 'softmax', { axis: -1 });
  b.node('Identity', [y], 'output', {}, [outputName]);
  return { bytes: b.build({ name: inputName, dims: inputDims }, [outputName], 'converted from a TF.js graph model by Headstart'), inputName, outputName, inputDims };
}

interface KerasLayer {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: Array<Array<[string, number, number, Record<string, unknown>]>>;
}

/** Converts a Keras-style layers model (functional or sequential) to ONNX. */
function convertLayers(topology: unknown, weights: tf.NamedTensorMap, opts: ConvertOptions): ConvertedModel {
  type Cfg = { class_name: string; config: { layers: KerasLayer[]; input_layers?: Array<[string, number, number]>; output_layers?: Array<[string, number, number]>; name?: string } | KerasLayer[] };
  const t = topology as Cfg & { model_config?: Cfg };
  const cfg = t.model_config ?? t;
  let layers: KerasLayer[];
  let inputLayer: string;
  let outputLayer: string;
  let inputShape: number[];
  if (cfg.class_name === 'Sequential') {
    const list = (Array.isArray(cfg.config) ? cfg.config : cfg.config.layers) as KerasLayer[];
    // Sequential: chain each layer to the previous one.
    const first = list[0]!;
    const shape = (first.config.batch_input_shape as number[] | undefined) ?? (first.config.batchInputShape as number[] | undefined);
    if (!shape) throw new HeadstartError('BAD_MODEL', 'sequential model without an input shape');
    inputShape = shape.slice(1);
    inputLayer = '__input__';
    let prev = inputLayer;
    layers = list.filter((l) => l.class_name !== 'InputLayer').map((l) => {
      const out = { ...l, name: (l.config.name as string) ?? l.name, inbound_nodes: [[[prev, 0, 0, {}]]] as KerasLayer['inbound_nodes'] };
      prev = out.name;
      return out;
    });
    outputLayer = prev;
  } else {
    const c = cfg.config as { layers: KerasLayer[]; input_layers: Array<[string, number, number]>; output_layers: Array<[string, number, number]> };
    layers = c.layers;
    inputLayer = c.input_layers[0]![0];
    outputLayer = c.output_layers[0]![0];
    const il = layers.find((l) => l.name === inputLayer)!;
    inputShape = ((il.config.batch_input_shape ?? il.config.batchInputShape) as number[]).slice(1);
  }
  const b = new OnnxBuilder();
  const em = new Emitter(b);
  const inputName = opts.inputName ?? 'image';
  const outputName = opts.outputName ?? 'output';
  b.fresh(inputName);
  b.fresh(outputName); // reserved: intermediate tensors never take the output's name
  const inputDims: Array<number | string> = ['N', ...inputShape.map((d) => d ?? -1)];
  let x = inputName;
  if (opts.normalise) x = b.node('Add', [b.node('Mul', [x, b.scalar('normalise/scale', opts.normalise.scale)], 'normalise'), b.scalar('normalise/offset', opts.normalise.offset)], 'normalise');
  const env = new Map<string, string>();
  if (inputShape.length === 3) {
    env.set(inputLayer, b.node('Transpose', [x], 'input/nchw', { perm: [0, 3, 1, 2] }));
    em.layout.set(env.get(inputLayer)!, 'nchw');
  } else {
    env.set(inputLayer, x);
    em.layout.set(x, 'flat');
  }
  const byName = new Map(layers.map((l) => [l.name, l]));
  const w = (layer: string, param: string, required = true): Float32Array | undefined => {
    const tt = weights[`${layer}/${param}`];
    if (!tt) {
      if (required) throw new HeadstartError('BAD_MODEL', `layer '${layer}' has no weight '${param}'`);
      return undefined;
    }
    return tt.dataSync() as Float32Array;
  };
  const shapeOf = (layer: string, param: string): number[] => weights[`${layer}/${param}`]!.shape;
  const foldedPads = new Map<string, [number, number, number, number]>();
  const consumers = new Map<string, number>();
  for (const l of layers) for (const node of l.inbound_nodes) for (const ref of node) consumers.set(ref[0], (consumers.get(ref[0]) ?? 0) + 1);
  /** [top, left, bottom, right] of a ZeroPadding2D layer. */
  const zeroPads = (l: KerasLayer): [number, number, number, number] => {
    const p = l.config.padding as number | [number, number] | [[number, number], [number, number]];
    const [[t, bt], [le, r]] = Array.isArray(p) ? (Array.isArray(p[0]) ? (p as [[number, number], [number, number]]) : [[p[0] as number, p[0] as number], [p[1] as number, p[1] as number]]) : [[p, p], [p, p]];
    return [t, le, bt, r];
  };
  const padAttrs = (l: KerasLayer): Record<string, string | number[]> => {
    const folded = foldedPads.get(l.name);
    if (folded) return { pads: [folded[0], folded[1], folded[2], folded[3]] };
    return { auto_pad: l.config.padding === 'same' ? 'SAME_UPPER' : 'VALID' };
  };
  const pair = (v: unknown): [number, number] => (Array.isArray(v) ? [Number(v[0]), Number(v[1] ?? v[0])] : [Number(v), Number(v)]);
  const visiting = new Set<string>();
  const get = (name: string): string => {
    const done = env.get(name);
    if (done) return done;
    const l = byName.get(name);
    if (!l) throw new HeadstartError('BAD_MODEL', `layer '${name}' is referenced but missing`);
    if (visiting.has(name)) throw new HeadstartError('BAD_MODEL', `layers model has a cycle at '${name}'`);
    visiting.add(name);
    // ZeroPadding2D feeding only a 'valid' convolution becomes the convolution's own pads:
    // ONNX Runtime then keeps its blocked (NCHWc) layout instead of reordering around a Pad.
    const src = l.inbound_nodes[0]?.[0]?.[0];
    const pad = src ? byName.get(src) : undefined;
    if ((l.class_name === 'Conv2D' || l.class_name === 'DepthwiseConv2D') && l.config.padding === 'valid' && pad?.class_name === 'ZeroPadding2D' && consumers.get(pad.name) === 1 && pad.inbound_nodes[0]?.length === 1) {
      foldedPads.set(l.name, zeroPads(pad));
      const out = emit(l, [get(pad.inbound_nodes[0]![0]![0])]);
      env.set(name, out);
      return out;
    }
    const ins = (l.inbound_nodes[0] ?? []).map((r) => get(r[0]));
    const out = emit(l, ins);
    env.set(name, out);
    return out;
  };
  const emit = (l: KerasLayer, ins: string[]): string => {
    const c = l.config;
    const x0 = ins[0]!;
    const lay = em.layout.get(x0) ?? 'flat';
    const set = (y: string, layout: Layout) => {
      em.layout.set(y, layout);
      return y;
    };
    switch (l.class_name) {
      case 'InputLayer':
        return x0;
      case 'Dropout':
      case 'SpatialDropout2D':
      case 'GaussianNoise':
      case 'GaussianDropout':
      case 'AlphaDropout':
        return x0;
      case 'Rescaling':
        return set(b.node('Add', [b.node('Mul', [x0, b.scalar(`${l.name}/scale`, Number(c.scale))], l.name), b.scalar(`${l.name}/offset`, Number(c.offset ?? 0))], l.name), lay);
      case 'ZeroPadding2D': {
        const [t, le, bt, r] = zeroPads(l);
        return set(b.node('Pad', [x0, b.ints(`${l.name}/pads`, [0, 0, t, le, 0, 0, bt, r])], l.name, { mode: 'constant' }), 'nchw');
      }
      case 'Conv2D':
      case 'DepthwiseConv2D': {
        const depthwise = l.class_name === 'DepthwiseConv2D';
        const kp = depthwise ? 'depthwise_kernel' : 'kernel';
        const ks = shapeOf(l.name, kp) as [number, number, number, number];
        const kv = w(l.name, kp)!;
        const kernel = depthwise ? depthwiseKernel(kv, ks) : convKernel(kv, ks);
        const [kh, kw, ci, co] = ks;
        if (!depthwise && Number(c.groups ?? 1) !== 1) unsupported('grouped Conv2D', l.name);
        const wName = b.init(b.fresh(`${l.name}/${kp}/oihw`), depthwise ? [ci * co, 1, kh, kw] : [co, ci, kh, kw], kernel);
        const inputs = [x0, wName];
        if (c.use_bias !== false) {
          const bias = w(l.name, 'bias', false);
          if (bias) inputs.push(b.init(b.fresh(`${l.name}/bias`), [bias.length], bias));
        }
        const y = b.node('Conv', inputs, l.name, { ...padAttrs(l), strides: pair(c.strides ?? 1), dilations: pair(c.dilation_rate ?? 1), kernel_shape: [kh, kw], group: depthwise ? ci : 1 });
        em.layout.set(y, 'nchw');
        return set(em.activation(y, String(c.activation ?? 'linear'), l.name, l.name), 'nchw');
      }
      case 'BatchNormalization': {
        const mean = w(l.name, 'moving_mean')!;
        const n = mean.length;
        const gamma = c.scale === false ? new Float32Array(n).fill(1) : w(l.name, 'gamma')!;
        const beta = c.center === false ? new Float32Array(n) : w(l.name, 'beta')!;
        const vari = w(l.name, 'moving_variance')!;
        if (lay === 'nchw') {
          const inits = [gamma, beta, mean, vari].map((v, i) => b.init(b.fresh(`${l.name}/${['gamma', 'beta', 'mean', 'var'][i]}`), [n], v));
          return set(b.node('BatchNormalization', [x0, ...inits], l.name, { epsilon: { f: Number(c.epsilon ?? 1e-3) } }), 'nchw');
        }
        // On vectors: y = (x - mean) / sqrt(var + eps) * gamma + beta, folded.
        const eps = Number(c.epsilon ?? 1e-3);
        const scale = gamma.map((g, i) => g / Math.sqrt(vari[i]! + eps));
        const shift = beta.map((bb, i) => bb - mean[i]! * scale[i]!);
        return set(b.node('Add', [b.node('Mul', [x0, b.init(b.fresh(`${l.name}/scale`), [n], scale)], l.name), b.init(b.fresh(`${l.name}/shift`), [n], shift)], l.name), 'flat');
      }
      case 'ReLU': {
        const max = c.max_value === null || c.max_value === undefined ? undefined : Number(c.max_value);
        if (Number(c.negative_slope ?? 0) !== 0 || Number(c.threshold ?? 0) !== 0) unsupported('ReLU with slope or threshold', l.name);
        return set(max === undefined ? b.node('Relu', [x0], l.name) : b.node('Clip', [x0, b.scalar(`${l.name}/min`, 0), b.scalar(`${l.name}/max`, max)], l.name), lay);
      }
      case 'Activation':
        return set(em.activation(x0, String(c.activation), l.name, l.name), lay);
      case 'Softmax':
        return set(b.node('Softmax', [x0], l.name, { axis: lay === 'nchw' ? 1 : -1 }), lay);
      case 'Add':
      case 'Multiply':
      case 'Maximum':
      case 'Minimum': {
        const op = { Add: 'Add', Multiply: 'Mul', Maximum: 'Max', Minimum: 'Min' }[l.class_name]!;
        let y = ins[0]!;
        for (const other of ins.slice(1)) y = b.node(op, [y, other], l.name);
        return set(y, lay);
      }
      case 'Concatenate': {
        const axis = Number(c.axis ?? -1);
        const mapped = lay === 'nchw' ? ({ [-1]: 1, 3: 1, 1: 2, 2: 3 } as Record<number, number>)[axis] ?? axis : axis;
        return set(b.node('Concat', ins, l.name, { axis: mapped }), lay);
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        const k = pair(c.pool_size ?? 2);
        return set(b.node(l.class_name === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', [x0], l.name, { ...padAttrs(l), kernel_shape: k, strides: pair(c.strides ?? k) }), 'nchw');
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D':
        return set(b.node(l.class_name === 'GlobalAveragePooling2D' ? 'ReduceMean' : 'ReduceMax', [x0], l.name, { axes: [2, 3], keepdims: 0 }), 'flat');
      case 'Flatten': {
        const src = lay === 'nchw' ? b.node('Transpose', [x0], `${l.name}/nhwc`, { perm: [0, 2, 3, 1] }) : x0;
        return set(b.node('Flatten', [src], l.name, { axis: 1 }), 'flat');
      }
      case 'Dense': {
        if (lay === 'nchw') unsupported('Dense on a 4-D tensor', l.name);
        const ks = shapeOf(l.name, 'kernel');
        let y = b.node('MatMul', [x0, b.init(b.fresh(`${l.name}/kernel`), ks, w(l.name, 'kernel')!)], l.name);
        const bias = c.use_bias === false ? undefined : w(l.name, 'bias', false);
        if (bias) y = b.node('Add', [y, b.init(b.fresh(`${l.name}/bias`), [bias.length], bias)], l.name);
        em.layout.set(y, 'flat');
        return set(em.activation(y, String(c.activation ?? 'linear'), l.name, l.name), 'flat');
      }
      default:
        return unsupported(l.class_name, l.name);
    }
  };
  let y = get(opts.output ?? outputLayer);
  if (opts.pool && em.layout.get(y) === 'nchw') y = b.node('ReduceMean', [y], 'pool', { axes: [2, 3], keepdims: 0 });
  else if (em.layout.get(y) === 'nchw') y = b.node('Transpose', [y], 'output/nhwc', { perm: [0, 2, 3, 1] });
  if (opts.softmax) y = b.node('Softmax', [y], 'softmax', { axis: -1 });
  b.node('Identity', [y], 'output', {}, [outputName]);
  return { bytes: b.build({ name: inputName, dims: inputDims }, [outputName], 'converted from a TF.js layers model by Headstart'), inputName, outputName, inputDims };
}

/**
 * Converts a TF.js model folder (graph or layers model.json + shards) to an
 * ONNX model (opset 13, NCHW inside, NHWC input as in TF.js, weights as
 * float32 initializers). An unsupported operation is an error naming it and
 * its node.
 */
export async function convertTfjsModel(dir: string, opts: ConvertOptions = {}): Promise<ConvertedModel> {
  const { json, entries } = await readModelDir(dir);
  const weights = decodeEntries(entries);
  try {
    const topo = json.modelTopology as GraphTopology & { node?: unknown };
    if (Array.isArray(topo.node)) return convertGraph(topo, weights, opts);
    return convertLayers(json.modelTopology, weights, opts);
  } finally {
    tf.dispose(weights);
  }
}
