import { onnx } from 'onnx-proto';
import { HeadstartError } from '../errors';

const T = onnx.TensorProto.DataType;

/**
 * One inverted-residual block's hidden layer, found in a converted ONNX graph:
 * expand Conv (group 1) → [BatchNormalization] → Relu / Clip → depthwise Conv
 * (group = C) → [BatchNormalization] → Relu / Clip → project Conv (group 1).
 * Hidden channel c is output channel c of the expand conv (and of its
 * BatchNorm), channel c of the depthwise conv, and input channel c of the
 * project conv; nothing else reads it, so removing it keeps the model valid.
 * Node fields are indices into graph.node.
 */
export interface SlimBlock {
  expand: number;
  expandBn?: number;
  depthwise: number;
  depthwiseBn?: number;
  project: number;
  /** Hidden channels. */
  channels: number;
  /** The activated depthwise output (what the project conv reads): ranking statistics are taken here. */
  hidden: string;
  /** The project conv has a bias input (a fused BatchNorm): a reconstruction's output shift goes there. */
  projectBias: boolean;
  /** A BatchNormalization read only from the project conv (Keras' unfused form): without a conv bias, the shift goes into its mean. */
  projectBn?: number;
  /** Spatial taps of the project conv's kernel (1 for the 1x1 convs of MobileNetV2: only those are reconstructed). */
  projectTaps: number;
}

interface Index {
  nodes: onnx.INodeProto[];
  producer: Map<string, number>;
  consumers: Map<string, number[]>;
  inits: Map<string, onnx.ITensorProto>;
  /** How many node inputs name each initializer. */
  uses: Map<string, number>;
  outputs: Set<string>;
}

function indexGraph(graph: onnx.IGraphProto): Index {
  const nodes = graph.node ?? [];
  const producer = new Map<string, number>();
  const consumers = new Map<string, number[]>();
  const uses = new Map<string, number>();
  nodes.forEach((n, i) => {
    for (const o of n.output ?? []) producer.set(o, i);
    for (const x of n.input ?? []) {
      consumers.set(x, [...(consumers.get(x) ?? []), i]);
      uses.set(x, (uses.get(x) ?? 0) + 1);
    }
  });
  return { nodes, producer, consumers, inits: new Map((graph.initializer ?? []).map((t) => [t.name!, t])), uses, outputs: new Set((graph.output ?? []).map((o) => o.name!)) };
}

const attrInt = (n: onnx.INodeProto, name: string, dflt: number): number => Number(n.attribute?.find((a) => a.name === name)?.i ?? dflt);
const dimsOf = (t: onnx.ITensorProto | undefined): number[] => (t?.dims ?? []).map(Number);

/** The float values of an initializer (raw bytes copied: decoded bytes may view the whole file). */
export function floatValues(t: onnx.ITensorProto): Float32Array {
  if (t.dataType !== T.FLOAT) throw new HeadstartError('BAD_MODEL', `initializer ${t.name} is not float32`);
  if (t.rawData && t.rawData.length) return new Float32Array(Uint8Array.from(t.rawData).buffer);
  return Float32Array.from(t.floatData ?? []);
}

function setFloat(t: onnx.ITensorProto, values: Float32Array, dims: number[]): void {
  t.rawData = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  t.floatData = [];
  t.dims = dims;
}

/** The node's single consumer index, or undefined when the tensor has several readers or is a graph output. */
function only(g: Index, tensor: string): number | undefined {
  const c = g.consumers.get(tensor) ?? [];
  return c.length === 1 && !g.outputs.has(tensor) ? c[0] : undefined;
}

/** A float initializer used by this node alone (slicing a shared one would change another node). */
function own(g: Index, name: string | undefined, rank?: number): boolean {
  const t = name ? g.inits.get(name) : undefined;
  return !!t && t.dataType === T.FLOAT && g.uses.get(name!) === 1 && (rank === undefined || dimsOf(t).length === rank);
}

const isAct = (n: onnx.INodeProto | undefined): boolean => !!n && (n.opType === 'Relu' || (n.opType === 'Clip' && (n.input ?? []).length >= 1));
const isBn = (g: Index, n: onnx.INodeProto | undefined): boolean => !!n && n.opType === 'BatchNormalization' && (n.input ?? []).slice(1, 5).every((x) => own(g, x, 1));
const isPlainConv = (g: Index, n: onnx.INodeProto | undefined): boolean => !!n && n.opType === 'Conv' && attrInt(n, 'group', 1) === 1 && own(g, n.input?.[1], 4) && ((n.input ?? []).length < 3 || own(g, n.input![2], 1));

/** Walks forward from a tensor through an optional BatchNorm and an activation; returns the nodes passed. */
function bnThenAct(g: Index, tensor: string): { bn?: number; act: number } | undefined {
  let i = only(g, tensor);
  let bn: number | undefined;
  if (i !== undefined && isBn(g, g.nodes[i])) {
    bn = i;
    i = only(g, g.nodes[i]!.output![0]!);
  }
  if (i === undefined || !isAct(g.nodes[i])) return undefined;
  return { bn, act: i };
}

/** Every slimmable block of a model, in graph order. */
export function findSlimBlocks(graph: onnx.IGraphProto): SlimBlock[] {
  const g = indexGraph(graph);
  const blocks: SlimBlock[] = [];
  g.nodes.forEach((dw, d) => {
    if (dw.opType !== 'Conv' || !own(g, dw.input?.[1], 4)) return;
    const w = dimsOf(g.inits.get(dw.input![1]!));
    const c = w[0]!;
    if (attrInt(dw, 'group', 1) !== c || w[1] !== 1 || c < 2) return;
    if ((dw.input ?? []).length >= 3 && !own(g, dw.input![2], 1)) return;
    // Backwards: activation ← [BatchNorm] ← expand conv, each read only by the next.
    const act1 = g.producer.get(dw.input![0]!);
    if (act1 === undefined || !isAct(g.nodes[act1]) || only(g, dw.input![0]!) !== d) return;
    let src = g.nodes[act1]!.input![0]!;
    let expandBn: number | undefined;
    let p = g.producer.get(src);
    if (p !== undefined && isBn(g, g.nodes[p]) && only(g, src) === act1) {
      expandBn = p;
      src = g.nodes[p]!.input![0]!;
      p = g.producer.get(src);
    }
    if (p === undefined || !isPlainConv(g, g.nodes[p]) || only(g, src) !== (expandBn ?? act1)) return;
    if (dimsOf(g.inits.get(g.nodes[p]!.input![1]!))[0] !== c) return;
    // Forwards: [BatchNorm] → activation → project conv.
    const fwd = bnThenAct(g, dw.output![0]!);
    if (!fwd) return;
    const hidden = g.nodes[fwd.act]!.output![0]!;
    const proj = only(g, hidden);
    if (proj === undefined || !isPlainConv(g, g.nodes[proj]) || dimsOf(g.inits.get(g.nodes[proj]!.input![1]!))[1] !== c) return;
    const pNode = g.nodes[proj]!;
    const after = only(g, pNode.output![0]!);
    const projectBn = after !== undefined && isBn(g, g.nodes[after]) && g.nodes[after]!.input![0] === pNode.output![0] ? after : undefined;
    const projectTaps = dimsOf(g.inits.get(pNode.input![1]!)).slice(2).reduce((a, x) => a * x, 1);
    blocks.push({ expand: p, expandBn, depthwise: d, depthwiseBn: fwd.bn, project: proj, channels: c, hidden, projectBias: (pNode.input ?? []).length >= 3 && !!pNode.input![2], projectBn, projectTaps });
  });
  return blocks;
}

/**
 * The conv whose output channels are the backbone's features (MobileNetV2's
 * final 1x1 conv): Conv (group 1) → [BatchNormalization] → [Relu / Clip] →
 * ops that keep channel c as feature c (pooling, Squeeze / Flatten over
 * spatial axes, Identity) → the graph output `features`, each tensor read by
 * the next node alone. Removing output channel c of the conv (its weight
 * row, bias and BatchNorm entries) removes feature c and nothing else.
 */
export interface FeatureConv {
  conv: number;
  bn?: number;
  /** Output channels of the conv = features. */
  channels: number;
}

/** Axes of a ReduceMean / Squeeze node (attribute before opset 13 / 18, input after). */
function axesOf(g: Index, n: onnx.INodeProto): number[] | undefined {
  const attr = n.attribute?.find((a) => a.name === 'axes');
  if (attr) return (attr.ints ?? []).map(Number);
  const t = n.input?.[1] ? g.inits.get(n.input[1]) : undefined;
  if (!t) return undefined;
  return t.int64Data?.length ? t.int64Data.map(Number) : Array.from(new BigInt64Array(Uint8Array.from(t.rawData ?? []).buffer), Number);
}

/** Nodes between the feature conv and `features` that keep channel c as feature c (NCHW: channels on axis 1). */
function keepsChannels(g: Index, n: onnx.INodeProto): boolean {
  switch (n.opType) {
    case 'Identity':
    case 'Relu':
    case 'Clip':
    case 'GlobalAveragePool':
    case 'GlobalMaxPool':
    case 'AveragePool':
    case 'MaxPool':
      return true;
    case 'Flatten':
      return attrInt(n, 'axis', 1) === 1; // after global pooling: [N, C, 1, 1] → [N, C]
    case 'Transpose': {
      // NCHW → NHWC before a Keras Flatten: channel order is kept when the pooled map is 1x1, which the
      // caller checks (slimSearch cuts features only when the feature count equals the conv's channels).
      const perm = (n.attribute?.find((a) => a.name === 'perm')?.ints ?? []).map(Number);
      return perm.join(',') === '0,2,3,1';
    }
    case 'ReduceMean':
    case 'Squeeze': {
      const axes = axesOf(g, n);
      return !!axes && axes.length > 0 && axes.every((a) => a >= 2);
    }
    default:
      return false;
  }
}

/** The feature conv of a model (findFeatureConv's rules), or undefined when the graph's `features` output is not read off one. */
export function findFeatureConv(graph: onnx.IGraphProto, featureOutput = 'features'): FeatureConv | undefined {
  const g = indexGraph(graph);
  if (!g.outputs.has(featureOutput)) return undefined;
  let tensor = featureOutput;
  let bn: number | undefined;
  for (;;) {
    const p = g.producer.get(tensor);
    if (p === undefined) return undefined;
    const n = g.nodes[p]!;
    // Every tensor on the way is read by the next node alone (the output itself by nobody).
    const next = n.output![0]!;
    if (next !== featureOutput && only(g, next) === undefined) return undefined;
    if (isPlainConv(g, n)) {
      const channels = dimsOf(g.inits.get(n.input![1]!))[0]!;
      return channels >= 2 ? { conv: p, bn, channels } : undefined;
    }
    if (n.opType === 'BatchNormalization' && isBn(g, n) && bn === undefined) bn = p;
    else if (!keepsChannels(g, n)) return undefined;
    tensor = n.input![0]!;
  }
}

/** Rows (axis 0) or columns (axis 1) `keep` of a tensor with the given dims. */
function sliceAxis(values: Float32Array, dims: number[], axis: 0 | 1, keep: number[]): { values: Float32Array; dims: number[] } {
  const inner = dims.slice(2).reduce((a, b) => a * b, 1);
  if (axis === 0) {
    const row = values.length / dims[0]!;
    const out = new Float32Array(keep.length * row);
    keep.forEach((k, i) => out.set(values.subarray(k * row, (k + 1) * row), i * row));
    return { values: out, dims: [keep.length, ...dims.slice(1)] };
  }
  const [o, ci] = dims as [number, number];
  const out = new Float32Array(o * keep.length * inner);
  for (let r = 0; r < o; r++) keep.forEach((k, i) => out.set(values.subarray((r * ci + k) * inner, (r * ci + k + 1) * inner), (r * keep.length + i) * inner));
  return { values: out, dims: [o, keep.length, ...dims.slice(2)] };
}

/** Per-block input-channel L2 norms of the project conv's weights: how much each hidden channel can move the block's output. */
export function projectNorms(graph: onnx.IGraphProto, blocks: SlimBlock[]): Float32Array[] {
  const g = indexGraph(graph);
  return blocks.map((b) => {
    const t = g.inits.get(g.nodes[b.project]!.input![1]!)!;
    const [o, ci] = dimsOf(t) as [number, number];
    const inner = dimsOf(t).slice(2).reduce((a, x) => a * x, 1);
    const w = floatValues(t);
    const norms = new Float32Array(ci);
    for (let r = 0; r < o; r++) for (let c = 0; c < ci; c++) for (let k = 0; k < inner; k++) norms[c]! += w[(r * ci + c) * inner + k]! ** 2;
    return norms.map(Math.sqrt);
  });
}

/**
 * New project conv weights of one slimmed block (a least-squares
 * reconstruction, compress/reconstruct.ts): `kernel` [O, K] replaces the
 * kept columns, `shift` [O] is added to the conv's output (into its bias, or
 * subtracted from the mean of the BatchNorm that follows it).
 */
export interface ProjectWeights {
  kernel: Float32Array;
  shift?: Float32Array;
}

/**
 * The model with only the hidden channels `keep[i]` (sorted indices) of each
 * block `i` of findSlimBlocks: expand conv rows (weights, bias, BatchNorm),
 * depthwise rows and group, project conv columns (or `project[i]`'s
 * reconstructed weights); with `features`, only those output channels of
 * the feature conv (findFeatureConv: its weight rows, bias, BatchNorm), so
 * the `features` output has features.length values. Everything else unchanged.
 */
export function slimOnnx(bytes: Uint8Array, keep: number[][], project: Array<ProjectWeights | undefined> = [], features?: number[]): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph!;
  const blocks = findSlimBlocks(graph);
  // Found before the blocks are cut (the walk reads only node links and the feature conv's own initializers).
  const feature = features && findFeatureConv(graph);
  if (features && !feature) throw new HeadstartError('INTERNAL', 'slimming plan cuts features, but the model\'s features are not read off one conv');
  if (blocks.length !== keep.length) throw new HeadstartError('INTERNAL', `slimming plan has ${keep.length} blocks, the model ${blocks.length}`);
  const g = indexGraph(graph);
  let keepNow: number[] = [];
  const rows = (name: string | undefined) => {
    if (!name) return;
    const t = g.inits.get(name)!;
    const s = sliceAxis(floatValues(t), dimsOf(t), 0, keepNow);
    setFloat(t, s.values, s.dims);
  };
  blocks.forEach((b, i) => {
    keepNow = checkedKeep(keep[i]!, b.channels, `block ${i}`);
    if (keepNow.length === b.channels) return;
    const e = g.nodes[b.expand]!;
    const dw = g.nodes[b.depthwise]!;
    rows(e.input![1]);
    rows(e.input![2]);
    rows(dw.input![1]);
    rows(dw.input![2]);
    for (const bn of [b.expandBn, b.depthwiseBn]) if (bn !== undefined) for (const x of g.nodes[bn]!.input!.slice(1, 5)) rows(x);
    dw.attribute!.find((a) => a.name === 'group')!.i = keepNow.length;
    const pw = g.inits.get(g.nodes[b.project]!.input![1]!)!;
    const s = sliceAxis(floatValues(pw), dimsOf(pw), 1, keepNow);
    setFloat(pw, project[i] ? checkedKernel(project[i]!.kernel, s.dims, i) : s.values, s.dims);
    const shift = project[i]?.shift;
    if (shift) shiftOutput(g, b, shift, i);
  });
  if (feature) {
    keepNow = checkedKeep(features!, feature.channels, 'features');
    const conv = g.nodes[feature.conv]!;
    rows(conv.input![1]);
    rows(conv.input![2]);
    if (feature.bn !== undefined) for (const x of g.nodes[feature.bn]!.input!.slice(1, 5)) rows(x);
  }
  return onnx.ModelProto.encode(model).finish();
}

function checkedKeep(keep: number[], channels: number, what: string): number[] {
  if (!keep.length || keep.some((k, j) => k < 0 || k >= channels || (j > 0 && k <= keep[j - 1]!))) throw new HeadstartError('INTERNAL', `${what}: kept channels must be sorted, distinct and below ${channels}`);
  return keep;
}

function checkedKernel(kernel: Float32Array, dims: number[], block: number): Float32Array {
  if (kernel.length !== dims.reduce((a, x) => a * x, 1)) throw new HeadstartError('INTERNAL', `block ${block}: reconstructed project kernel has ${kernel.length} values, the slimmed conv [${dims.join(', ')}]`);
  return kernel;
}

/** Adds `shift` to a block's project conv output: into the conv's bias, or out of the following BatchNorm's mean. */
function shiftOutput(g: Index, b: SlimBlock, shift: Float32Array, block: number): void {
  const add = (name: string, sign: number) => {
    const t = g.inits.get(name)!;
    const v = floatValues(t);
    if (v.length !== shift.length) throw new HeadstartError('INTERNAL', `block ${block}: output shift has ${shift.length} values, ${name} ${v.length}`);
    setFloat(t, v.map((x, o) => x + sign * shift[o]!), dimsOf(t));
  };
  if (b.projectBias) add(g.nodes[b.project]!.input![2]!, 1);
  else if (b.projectBn !== undefined) add(g.nodes[b.projectBn]!.input![3]!, -1); // BN reads x - mean: x + shift - mean = x - (mean - shift)
  else throw new HeadstartError('INTERNAL', `block ${block}: the project conv has no bias and no BatchNorm to take an output shift`);
}

/**
 * A copy of the model that also outputs, per block, the mean absolute value of
 * each hidden channel over the batch and the spatial positions (Abs →
 * ReduceMean over N, H, W): output `slim/stat/i` is a vector of C values.
 */
export function withHiddenStats(bytes: Uint8Array, blocks: SlimBlock[]): { bytes: Uint8Array; outputs: string[] } {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph!;
  const outputs = blocks.map((b, i) => {
    const abs = `slim/abs/${i}`;
    const out = `slim/stat/${i}`;
    graph.node!.push({ opType: 'Abs', input: [b.hidden], output: [abs], name: `${abs}/Abs` });
    graph.node!.push({ opType: 'ReduceMean', input: [abs], output: [out], name: `${out}/ReduceMean`, attribute: [{ name: 'axes', type: onnx.AttributeProto.AttributeType.INTS, ints: [0, 2, 3] }, { name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] });
    graph.output!.push({ name: out, type: { tensorType: { elemType: T.FLOAT } } });
    return out;
  });
  return { bytes: onnx.ModelProto.encode(model).finish(), outputs };
}

/** Output names of one block's hidden-layer moments (withHiddenGram). */
export interface GramOutputs {
  /** [C, C]: sum over the batch and spatial positions of h h^T. */
  gram: string;
  /** [C]: sum of each hidden channel over the batch and spatial positions. */
  sum: string;
  /** int64 [4]: the hidden tensor's shape (N, C, H, W), for the count of positions. */
  shape: string;
}

/**
 * A copy of the model that also outputs, per block, the second moments of its
 * hidden layer (what the project conv reads): Reshape to [N, C, H*W], MatMul
 * with its transpose, summed over the batch; plus per-channel sums and the
 * shape. Enough for a least-squares reconstruction of the project conv from
 * any subset of channels (compress/reconstruct.ts) without keeping the
 * activations.
 */
export function withHiddenGram(bytes: Uint8Array, blocks: SlimBlock[]): { bytes: Uint8Array; outputs: GramOutputs[] } {
  const model = onnx.ModelProto.decode(bytes);
  const b = momentNodes(model);
  const outputs = blocks.map((blk, i) => {
    const p = `slim/gram/${i}`;
    const h3 = b.channelsByPositions(blk.hidden, blk.channels, p);
    const o: GramOutputs = { gram: `${p}/gram`, sum: `${p}/sum`, shape: `${p}/shape` };
    b.sumOverBatch(b.timesTransposed(h3, h3, `${p}/outer`), o.gram);
    b.channelSums(blk.hidden, o.sum);
    b.shape(blk.hidden, o.shape);
    return o;
  });
  return { bytes: onnx.ModelProto.encode(model).finish(), outputs };
}

/**
 * Node builders for moment outputs added to a model: each output is also a
 * graph output. ReduceSum takes its axes as an input from opset 13 on, as an
 * attribute before.
 */
function momentNodes(model: onnx.ModelProto) {
  const graph = model.graph!;
  const opset = Number(model.opsetImport?.find((o) => !o.domain)?.version ?? 13);
  const ints = onnx.AttributeProto.AttributeType.INTS;
  const int64 = (name: string, v: number[]) => graph.initializer!.push({ name, dims: [v.length], dataType: T.INT64, int64Data: v });
  const node = (opType: string, input: string[], output: string, attribute: onnx.IAttributeProto[] = []) => {
    graph.node!.push({ opType, input, output: [output], name: `${output}/${opType}`, attribute });
    return output;
  };
  const output = (name: string, elemType = T.FLOAT) => graph.output!.push({ name, type: { tensorType: { elemType } } });
  const reduceSum = (x: string, axes: number[], out: string) => {
    const keep = { name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 };
    if (opset >= 13) {
      int64(`${out}/axes`, axes);
      node('ReduceSum', [x, `${out}/axes`], out, [keep]);
    } else node('ReduceSum', [x], out, [{ name: 'axes', type: ints, ints: axes }, keep]);
    output(out);
  };
  return {
    /** [N, C, H, W] → [N, C, H*W]. */
    channelsByPositions: (x: string, channels: number, p: string) => {
      int64(`${p}/to3d`, [0, channels, -1]);
      return node('Reshape', [x, `${p}/to3d`], `${p}/3d`);
    },
    /** a [N, A, P], b [N, B, P] → a b^T [N, A, B]. */
    timesTransposed: (a: string, b: string, out: string) => node('MatMul', [a, node('Transpose', [b], `${out}/bT`, [{ name: 'perm', type: ints, ints: [0, 2, 1] }])], out),
    sumOverBatch: (x: string, out: string) => reduceSum(x, [0], out),
    channelSums: (x: string, out: string) => reduceSum(x, [0, 2, 3], out),
    shape: (x: string, out: string) => {
      node('Shape', [x], out);
      output(out, T.INT64);
    },
  };
}

/** Output names of one block's moments between a slimmed model's hidden layer and the unslimmed one's (withCrossGram). */
export interface CrossGramOutputs {
  /** [K, K]: sum of h~ h~^T (the slimmed model's kept channels). */
  gram: string;
  /** [K, C]: sum of h~ h^T (slimmed against unslimmed, same positions). */
  cross: string;
  /** [K] and [C]: channel sums of h~ and h. */
  slimSum: string;
  sum: string;
  /** int64 [4]: the hidden tensor's shape (N, C, H, W). */
  shape: string;
}

/**
 * One model that runs the unslimmed model (`bytes`) and a slimmed copy of it
 * (`slimBytes`, from slimOnnx: same blocks, fewer hidden channels) on the
 * same input, and outputs per block the moments between the two hidden
 * layers (compress/reconstruct.ts CrossMoments), for every block or for the
 * blocks `only`. The slimmed copy's names get the prefix `s/`; its input is
 * the unslimmed model's.
 */
export function withCrossGram(bytes: Uint8Array, slimBytes: Uint8Array, only?: number[]): { bytes: Uint8Array; outputs: Array<CrossGramOutputs | undefined> } {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph!;
  const slim = onnx.ModelProto.decode(slimBytes).graph!;
  const [blocks, slimBlocks] = [findSlimBlocks(graph), findSlimBlocks(slim)];
  if (blocks.length !== slimBlocks.length) throw new HeadstartError('INTERNAL', `cross moments: the slimmed model has ${slimBlocks.length} blocks, the unslimmed ${blocks.length}`);
  const inputOf = (g: onnx.IGraphProto) => {
    const inits = new Set((g.initializer ?? []).map((t) => t.name));
    return g.input!.find((i) => !inits.has(i.name))!.name!;
  };
  const [input, slimInput] = [inputOf(graph), inputOf(slim)];
  const rename = (n: string) => (n === slimInput ? input : n === '' ? '' : `s/${n}`); // '': an optional input left out
  for (const t of slim.initializer ?? []) graph.initializer!.push({ ...t, name: rename(t.name!) });
  for (const n of slim.node ?? []) graph.node!.push({ ...n, name: `s/${n.name ?? ''}`, input: (n.input ?? []).map(rename), output: (n.output ?? []).map(rename) });
  const b = momentNodes(model);
  const outputs = blocks.map((blk, i) => {
    if (only && !only.includes(i)) return undefined;
    const p = `slim/cross/${i}`;
    const hs = rename(slimBlocks[i]!.hidden);
    const s3 = b.channelsByPositions(hs, slimBlocks[i]!.channels, `${p}/s`);
    const h3 = b.channelsByPositions(blk.hidden, blk.channels, `${p}/h`);
    const o: CrossGramOutputs = { gram: `${p}/gram`, cross: `${p}/cross`, slimSum: `${p}/slimSum`, sum: `${p}/sum`, shape: `${p}/shape` };
    b.sumOverBatch(b.timesTransposed(s3, s3, `${p}/ss`), o.gram);
    b.sumOverBatch(b.timesTransposed(s3, h3, `${p}/sh`), o.cross);
    b.channelSums(hs, o.slimSum);
    b.channelSums(blk.hidden, o.sum);
    b.shape(blk.hidden, o.shape);
    return o;
  });
  // Only the moments are read: the model's own outputs go, and with them every node past the last block asked for.
  const kept = new Set(outputs.flatMap((o) => (o ? [o.gram, o.cross, o.slimSum, o.sum, o.shape] : [])));
  graph.output = graph.output!.filter((o) => kept.has(o.name!));
  pruneToOutputs(graph);
  return { bytes: onnx.ModelProto.encode(model).finish(), outputs };
}

/** Drops the nodes and initializers that no graph output depends on. */
function pruneToOutputs(graph: onnx.IGraphProto): void {
  const producer = new Map<string, onnx.INodeProto>();
  for (const n of graph.node ?? []) for (const o of n.output ?? []) producer.set(o, n);
  const needed = new Set<onnx.INodeProto>();
  const used = new Set<string>();
  const stack = (graph.output ?? []).map((o) => o.name!);
  while (stack.length) {
    const t = stack.pop()!;
    if (used.has(t)) continue;
    used.add(t);
    const n = producer.get(t);
    if (n && !needed.has(n)) {
      needed.add(n);
      stack.push(...(n.input ?? []).filter(Boolean));
    }
  }
  graph.node = (graph.node ?? []).filter((n) => needed.has(n));
  graph.initializer = (graph.initializer ?? []).filter((t) => used.has(t.name!));
  graph.input = (graph.input ?? []).filter((i) => used.has(i.name!)); // older IRs list initializers among the inputs
}

/** A dense layer of a head: kernel [in, out] row-major, bias [out], activation. */
export interface DenseLayer {
  kernel: Float32Array;
  shape: [number, number];
  bias: Float32Array;
  activation: string;
}

/**
 * Replaces a feature extractor's output (`features`, [N, F]) by a dense head
 * ending in softmax: output `probabilities`. The head's weights stay float32.
 */
export function appendHead(bytes: Uint8Array, dense: DenseLayer[], featureOutput = 'features', outputName = 'probabilities'): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph!;
  if (!(graph.output ?? []).some((o) => o.name === featureOutput)) throw new HeadstartError('BAD_MODEL', `the backbone's ONNX model has no '${featureOutput}' output`);
  let x = featureOutput;
  const init = (name: string, dims: number[], v: Float32Array) => graph.initializer!.push({ name, dims, dataType: T.FLOAT, rawData: new Uint8Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength)) });
  dense.forEach((d, i) => {
    const p = `head/${i}`;
    init(`${p}/kernel`, d.shape, d.kernel);
    init(`${p}/bias`, [d.shape[1]], d.bias);
    graph.node!.push({ opType: 'MatMul', input: [x, `${p}/kernel`], output: [`${p}/matmul`], name: `${p}/MatMul` });
    graph.node!.push({ opType: 'Add', input: [`${p}/matmul`, `${p}/bias`], output: [`${p}/add`], name: `${p}/Add` });
    x = `${p}/add`;
    const last = i === dense.length - 1;
    if (d.activation === 'relu') {
      graph.node!.push({ opType: 'Relu', input: [x], output: [`${p}/relu`], name: `${p}/Relu` });
      x = `${p}/relu`;
    } else if (d.activation === 'softmax' && last) {
      graph.node!.push({ opType: 'Softmax', input: [x], output: [outputName], name: `${p}/Softmax`, attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: -1 }] });
      x = outputName;
    } else if (d.activation !== 'linear') throw new HeadstartError('INTERNAL', `head activation ${d.activation} cannot be exported to ONNX`);
  });
  if (x !== outputName) throw new HeadstartError('INTERNAL', 'the head does not end in a softmax');
  graph.output = [{ name: outputName, type: { tensorType: { elemType: T.FLOAT } } }];
  return onnx.ModelProto.encode(model).finish();
}

/** Hidden channels per block of a model (its slimming "shape"). */
export function hiddenChannels(bytes: Uint8Array): number[] {
  return findSlimBlocks(onnx.ModelProto.decode(bytes).graph!).map((b) => b.channels);
}
