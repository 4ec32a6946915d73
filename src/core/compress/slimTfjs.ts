/**
 * Backbone slimming applied to a TF.js backbone: the channel choice the ONNX
 * search made (slim.ts: ranking, steps, head refits), carried over to the
 * TF.js model it was converted from. A graph model (fused convolutions, as
 * the bundled MobileNetV2 1.4) loses the expand conv's output channels and
 * bias entries, the depthwise filter's channels and bias entries, and the
 * project conv's input channels; a layers model (Keras MobileNetV2) the same
 * on its Conv2D / BatchNormalization / DepthwiseConv2D weights, with the
 * expand conv's `filters` rewritten. Weights are sliced in their stored
 * form, so a quantized source weight keeps its grid bit for bit, except the
 * project convs the search reconstructed by least squares (plan `weights`):
 * their kernels (and the bias or BatchNorm mean taking the output shift)
 * are written as float32, and an export's --quantize quantizes them afresh
 * like any float weight.
 */
import type { GraphNode, GraphTopology } from '../backbones/bundled';
import { inputNodeName } from '../backbones/bundled';
import { HeadstartError } from '../errors';
import type { LoadedRun } from '../runFolder';
import { type WeightEntry, decodeEntries, floatEntry, readModelDir, writeModelDir } from '../tfjsio';
import type { SlimPlan, SlimPlanBlock, SlimPlanFeatures } from './slim';

const prod = (xs: number[]) => xs.reduce((a, b) => a * b, 1);

/** The entry with only indices `keep` along `axis`, sliced in its stored dtype. */
export function sliceEntry(e: WeightEntry, axis: number, keep: number[]): WeightEntry {
  const shape = e.spec.shape;
  const dim = shape[axis]!;
  const elemBytes = e.bytes.length / prod(shape);
  const outer = prod(shape.slice(0, axis));
  const inner = prod(shape.slice(axis + 1)) * elemBytes;
  const out = new Uint8Array(outer * keep.length * inner);
  for (let o = 0; o < outer; o++) keep.forEach((k, i) => out.set(e.bytes.subarray((o * dim + k) * inner, (o * dim + k + 1) * inner), (o * keep.length + i) * inner));
  return { spec: { ...e.spec, shape: shape.map((d, a) => (a === axis ? keep.length : d)) }, bytes: out };
}

/** Channels to keep on one axis: a block's hidden channels, or the features. */
interface Cut {
  channels: number;
  keep: number[];
  /** For messages: which block or conv. */
  label: string;
}

const blockCut = (b: SlimPlanBlock): Cut => ({ channels: b.channels, keep: b.keep, label: `block of ${b.depthwise}` });
const featureCut = (f: SlimPlanFeatures): Cut => ({ channels: f.channels, keep: f.keep, label: `features of ${f.conv}` });

/** The model's weights by name, sliced in place by `cut`, which checks the axis holds the block's hidden channels (or the features). */
class Weights {
  readonly byName: Map<string, WeightEntry>;
  constructor(entries: WeightEntry[]) {
    this.byName = new Map(entries.map((e) => [e.spec.name, e]));
  }
  has(name: string): boolean {
    return this.byName.has(name);
  }
  cut(name: string, axis: number, c: Cut): number[] {
    const e = this.byName.get(name);
    if (!e) throw new HeadstartError('BAD_MODEL', `slimming the TF.js model: weight ${name} (${c.label}) is missing`);
    if (e.spec.shape[axis] !== c.channels) throw new HeadstartError('BAD_MODEL', `slimming the TF.js model: weight ${name} has shape [${e.spec.shape.join(', ')}], not ${c.channels} ${c.label.startsWith('features') ? 'features' : 'hidden channels'} on axis ${axis}; the TF.js backbone is not the one the ONNX search ranked`);
    const s = sliceEntry(e, axis, c.keep);
    this.byName.set(name, s);
    return s.spec.shape;
  }
  /** A weight's values as float32 (dequantized). */
  values(name: string): Float32Array {
    const e = this.byName.get(name);
    if (!e) throw new HeadstartError('BAD_MODEL', `slimming the TF.js model: weight ${name} is missing`);
    const t = decodeEntries([e])[name]!;
    try {
      return Float32Array.from(t.dataSync());
    } finally {
      t.dispose();
    }
  }
  /** Replaces a weight by float32 values of the same shape. */
  setFloat(name: string, values: Float32Array): void {
    const e = this.byName.get(name)!;
    if (values.length !== prod(e.spec.shape)) throw new HeadstartError('INTERNAL', `slimming the TF.js model: ${values.length} values for ${name} of shape [${e.spec.shape.join(', ')}]`);
    this.byName.set(name, floatEntry(name, e.spec.shape, values));
  }
  /** Writes a block's reconstructed project kernel (ONNX [O, K] into TF.js [1, 1, K, O]) over the cut one. */
  projectKernel(name: string, b: SlimPlanBlock): void {
    const k = b.keep.length;
    const src = b.weights!.kernel;
    const out = src.length / k;
    const v = new Float32Array(src.length);
    for (let o = 0; o < out; o++) for (let j = 0; j < k; j++) v[j * out + o] = src[o * k + j]!;
    this.setFloat(name, v);
  }
  /** Adds `sign` x the block's output shift to a [O] weight (a bias, or a BatchNorm mean with sign -1). */
  shift(name: string, b: SlimPlanBlock, sign: number): void {
    const shift = b.weights!.shift!;
    this.setFloat(name, this.values(name).map((x, o) => x + sign * shift[o]!));
  }
}

/** A graph model's project conv gets the reconstructed kernel, and the output shift in its fused bias. */
function reconstructedGraphProject(p: GraphNode, w: Weights, b: SlimPlanBlock): void {
  const ins = (p.input ?? []).filter((r) => !r.startsWith('^')).map(inputNodeName);
  w.projectKernel(ins[1]!, b);
  if (!b.weights!.shift) return;
  if (!ins[2] || !w.has(ins[2])) throw new HeadstartError('BAD_MODEL', `slimming the TF.js graph model: ${b.project} has no fused bias to take the reconstruction's output shift; export with --format onnx --slim`);
  w.shift(ins[2], b, 1);
}

/** Graph model: slices the fused convolutions' Const weights (and their declared shapes). */
function slimGraph(topo: GraphTopology, w: Weights, plan: SlimPlan): void {
  const byName = new Map(topo.node.map((n) => [n.name, n]));
  const uses = new Map<string, number>();
  for (const n of topo.node) for (const r of n.input ?? []) uses.set(inputNodeName(r), (uses.get(inputNodeName(r)) ?? 0) + 1);
  const node = (name: string, op: RegExp): GraphNode => {
    const n = byName.get(name);
    if (!n || !op.test(n.op)) throw new HeadstartError('BAD_MODEL', `slimming the TF.js model: node ${name} is ${n ? `a ${n.op}` : 'missing'}, not the convolution the ONNX search found`);
    return n;
  };
  /** Slices the Const input `i` of node `n` (a weight read by this node alone) and rewrites its declared shape. */
  const cutConst = (n: GraphNode, i: number, axis: number, c: Cut) => {
    const ins = (n.input ?? []).filter((r) => !r.startsWith('^'));
    if (!ins[i]) return;
    const name = inputNodeName(ins[i]);
    if (uses.get(name) !== 1) throw new HeadstartError('BAD_MODEL', `slimming the TF.js model: weight ${name} is shared by several nodes; slicing it would change another layer`);
    const shape = w.cut(name, axis, c);
    const tensor = (byName.get(name)?.attr?.value as { tensor?: { tensorShape?: { dim?: Array<{ size: string }> } } } | undefined)?.tensor;
    if (tensor?.tensorShape?.dim) tensor.tensorShape.dim = shape.map((d) => ({ size: String(d) }));
  };
  for (const b of plan.blocks) {
    if (b.expandBn || b.depthwiseBn) throw new HeadstartError('BAD_MODEL', `slimming the TF.js graph model: block ${b.depthwise} has an unfused BatchNorm, which the TF.js slimming does not rewrite; export with --format onnx --slim`);
    if (b.keep.length === b.channels) continue;
    const e = node(b.expand, /^(_Fused)?Conv2D$/);
    const d = node(b.depthwise, /^(Fused)?DepthwiseConv2dNative$/);
    const p = node(b.project, /^(_Fused)?Conv2D$/);
    const c = blockCut(b);
    cutConst(e, 1, 3, c); // filter [kh, kw, in, hidden]
    cutConst(e, 2, 0, c); // fused bias [hidden]
    cutConst(d, 1, 2, c); // depthwise filter [kh, kw, hidden, 1]
    cutConst(d, 2, 0, c);
    cutConst(p, 1, 2, c); // project filter [1, 1, hidden, out]
    if (b.weights) reconstructedGraphProject(p, w, b);
  }
  const f = plan.features;
  if (!f || f.keep.length === f.channels) return;
  if (f.bn) throw new HeadstartError('BAD_MODEL', `slimming the TF.js graph model: the feature conv ${f.conv} has an unfused BatchNorm, which the TF.js slimming does not rewrite; export with --format onnx --slim`);
  const conv = node(f.conv, /^(_Fused)?Conv2D$/);
  cutConst(conv, 1, 3, featureCut(f)); // filter [1, 1, in, features]
  cutConst(conv, 2, 0, featureCut(f)); // fused bias [features]
}

interface KerasLayer {
  name?: string;
  class_name: string;
  config: Record<string, unknown>;
}

/** A layers model's project Conv2D gets the reconstructed kernel, and the output shift in its bias or out of the BatchNorm after it. */
function reconstructedLayersProject(w: Weights, b: SlimPlanBlock): void {
  w.projectKernel(`${b.project}/kernel`, b);
  if (!b.weights!.shift) return;
  if (w.has(`${b.project}/bias`)) w.shift(`${b.project}/bias`, b, 1);
  else if (b.projectBn && w.has(`${b.projectBn}/moving_mean`)) w.shift(`${b.projectBn}/moving_mean`, b, -1); // BN reads x - mean
  else throw new HeadstartError('BAD_MODEL', `slimming the TF.js layers model: ${b.project} has no bias and no BatchNorm after it to take the reconstruction's output shift; export with --format onnx --slim`);
}

/** Layers model: slices the Keras layers' weights and rewrites the expand conv's `filters`. */
function slimLayers(topology: unknown, w: Weights, plan: SlimPlan, featureNode?: string): void {
  const t = topology as { model_config?: { config?: { layers?: unknown } }; config?: { layers?: unknown } };
  const layers = (t.model_config ?? t).config?.layers;
  if (!Array.isArray(layers)) throw new HeadstartError('BAD_MODEL', 'slimming the TF.js layers model: its topology has no list of layers (a nested or Sequential model); export with --format onnx --slim');
  const byName = new Map((layers as KerasLayer[]).map((l) => [l.name ?? String(l.config.name), l]));
  const layer = (name: string, cls: string): KerasLayer => {
    const l = byName.get(name);
    if (!l || l.class_name !== cls) throw new HeadstartError('BAD_MODEL', `slimming the TF.js model: layer ${name} is ${l ? `a ${l.class_name}` : 'missing'}, not the ${cls} the ONNX search found`);
    return l;
  };
  const bias = (name: string, c: Cut) => w.has(`${name}/bias`) && w.cut(`${name}/bias`, 0, c);
  const bnCut = (bn: string, c: Cut) => {
    layer(bn, 'BatchNormalization');
    for (const v of ['gamma', 'beta', 'moving_mean', 'moving_variance']) if (w.has(`${bn}/${v}`)) w.cut(`${bn}/${v}`, 0, c);
  };
  for (const b of plan.blocks) {
    const c = blockCut(b);
    if (b.keep.length === b.channels) continue;
    const e = layer(b.expand, 'Conv2D');
    if (Number(e.config.groups ?? 1) !== 1) throw new HeadstartError('BAD_MODEL', `slimming the TF.js model: ${b.expand} is a grouped convolution`);
    e.config.filters = b.keep.length;
    w.cut(`${b.expand}/kernel`, 3, c);
    bias(b.expand, c);
    const d = layer(b.depthwise, 'DepthwiseConv2D');
    if (Number(d.config.depth_multiplier ?? 1) !== 1) throw new HeadstartError('BAD_MODEL', `slimming the TF.js model: ${b.depthwise} has a depth multiplier above 1`);
    w.cut(`${b.depthwise}/depthwise_kernel`, 2, c);
    bias(b.depthwise, c);
    for (const bn of [b.expandBn, b.depthwiseBn]) if (bn !== undefined) bnCut(bn, c);
    layer(b.project, 'Conv2D');
    w.cut(`${b.project}/kernel`, 2, c);
    if (b.weights) reconstructedLayersProject(w, b);
  }
  const f = plan.features;
  if (!f || f.keep.length === f.channels) return;
  const c = featureCut(f);
  const conv = layer(f.conv, 'Conv2D');
  conv.config.filters = f.keep.length;
  w.cut(`${f.conv}/kernel`, 3, c);
  bias(f.conv, c);
  if (f.bn) bnCut(f.bn, c);
  // Layers past the feature layer (a source model's own classifier) would read the cut features: they go.
  if (featureNode) keepUpTo(t.model_config ?? t, layers as KerasLayer[], featureNode, w);
}

/** Drops every layer the feature layer does not depend on (and its weights), and makes the feature layer the model's output. */
function keepUpTo(model: { config?: { layers?: unknown; output_layers?: unknown } }, layers: KerasLayer[], featureNode: string, w: Weights): void {
  const byName = new Map(layers.map((l) => [l.name ?? String(l.config.name), l]));
  if (!byName.has(featureNode)) throw new HeadstartError('BAD_MODEL', `slimming the TF.js model: its feature layer ${featureNode} is missing`);
  const needed = new Set<string>();
  const visit = (name: string) => {
    if (needed.has(name)) return;
    needed.add(name);
    const l = byName.get(name) as (KerasLayer & { inbound_nodes?: unknown[][] }) | undefined;
    for (const node of l?.inbound_nodes ?? []) for (const ref of node as unknown[]) if (Array.isArray(ref)) visit(String(ref[0]));
  };
  visit(featureNode);
  const dropped = layers.filter((l) => !needed.has(l.name ?? String(l.config.name))).map((l) => l.name ?? String(l.config.name));
  if (!dropped.length) return;
  model.config!.layers = layers.filter((l) => needed.has(l.name ?? String(l.config.name)));
  model.config!.output_layers = [[featureNode, 0, 0]];
  for (const name of [...w.byName.keys()]) if (dropped.some((d) => name.startsWith(`${d}/`))) w.byName.delete(name);
}

/**
 * Writes the TF.js model in `srcDir` with each plan block's hidden channels
 * cut to its `keep` (and the features to `plan.features.keep`) into
 * `outDir`. A layers model whose feature layer `featureNode` is not its
 * output loses the layers past it when the features are cut.
 */
export async function writeSlimTfjsModel(srcDir: string, outDir: string, plan: SlimPlan, featureNode?: string): Promise<void> {
  const { json, entries } = await readModelDir(srcDir);
  const w = new Weights(entries);
  // writeModelDir writes a new manifest over the cloned one.
  const rest = structuredClone(json);
  if (Array.isArray((rest.modelTopology as GraphTopology | undefined)?.node)) slimGraph(rest.modelTopology as GraphTopology, w, plan);
  else slimLayers(rest.modelTopology, w, plan, featureNode);
  await writeModelDir(outDir, rest, entries.filter((e) => w.byName.has(e.spec.name)).map((e) => w.byName.get(e.spec.name)!));
}

/** The run with its TF.js backbone replaced by a slimmed copy written into `dir` (for writeFullModel). */
export async function slimmedTfjsRun(run: LoadedRun, plan: SlimPlan, dir: string): Promise<LoadedRun> {
  await writeSlimTfjsModel(run.record.backbone.dir, dir, plan, run.record.backbone.featureNode);
  const featureSize = plan.features?.keep.length ?? run.record.backbone.featureSize;
  return { ...run, record: { ...run.record, backbone: { ...run.record.backbone, dir, featureSize } } };
}
