import * as tf from '@tensorflow/tfjs';
import type { GraphNode, GraphTopology } from '../backbones/bundled';
import { inputNodeName } from '../backbones/bundled';
import { type Policy, POLICIES, type RoledEntry, type WeightDtype, type WeightRole, applyPolicy } from '../compress/quantize';
import { type SparsityReport, sparsifyEntries } from '../compress/sparsify';
import { HeadstartError } from '../errors';
import { readJson } from '../fsutil';
import type { LoadedRun } from '../runFolder';
import { type ModelJson, decodeEntries, dirLoader, readModelDir, storedByteLength, writeModelDir } from '../tfjsio';

/** Name of the exported model's input and output. */
export const INPUT_NAME = 'image';
export const OUTPUT_NAME = 'probabilities';

/** Dense layers of a head, in order: kernel [in, out], bias [out], activation. */
export function headDense(head: tf.LayersModel): Array<{ name: string; kernel: tf.Tensor; bias: tf.Tensor; activation: string }> {
  return head.layers
    .filter((l) => l.getClassName() === 'Dense')
    .map((l) => {
      const [kernel, bias] = l.getWeights();
      const activation = String((l.getConfig() as { activation?: string }).activation ?? 'linear');
      return { name: l.name, kernel: kernel!, bias: bias!, activation };
    });
}

const T_FLOAT = { type: 'DT_FLOAT' };

function constNode(name: string, shape: number[], dtype = 'DT_FLOAT'): GraphNode {
  return { name, op: 'Const', attr: { value: { tensor: { dtype, tensorShape: shape.length ? { dim: shape.map((s) => ({ size: String(s) })) } : {} } }, dtype: { type: dtype } } };
}

/** A model ready to write: its JSON (no manifest) and float weights tagged with their role. */
interface BuiltModel {
  json: Omit<ModelJson, 'weightsManifest'>;
  weights: RoledEntry[];
  format: 'graph-model' | 'layers-model';
}

/** Role of a graph Const from the ops that consume it. */
function graphRoles(nodes: GraphNode[], inputName: string): Map<string, WeightRole> {
  const roles = new Map<string, WeightRole>();
  for (const n of nodes) {
    const weight = n.input?.[1] && inputNodeName(n.input[1]);
    if (!weight) continue;
    const first = n.input?.[0] && inputNodeName(n.input[0]) === inputName;
    if (/Depthwise/.test(n.op)) roles.set(weight, 'depthwise');
    else if (/Conv2D/.test(n.op)) roles.set(weight, first ? 'first' : 'conv');
    else if (/MatMul/.test(n.op)) roles.set(weight, 'dense');
  }
  return roles;
}

/**
 * Graph backbone + head as one graph model: a new `image` input taking 0..255
 * pixels, scaled onto the backbone's range, the backbone up to its feature
 * node, then the head as MatMul / BiasAdd / Relu / Softmax nodes.
 */
async function buildGraphModel(run: LoadedRun, head: tf.LayersModel): Promise<BuiltModel> {
  const b = run.record.backbone;
  const { json, entries } = await readModelDir(b.dir);
  const topo = structuredClone(json.modelTopology) as GraphTopology;
  const placeholder = topo.node.find((n) => n.op === 'Placeholder');
  if (!placeholder) throw new HeadstartError('BAD_MODEL', `backbone ${b.id} has no input placeholder`);
  const [lo, hi] = b.inputRange;
  const nodes: GraphNode[] = topo.node.filter((n) => n !== placeholder);
  for (const n of nodes) n.input = n.input?.map((r) => (inputNodeName(r) === placeholder.name ? r.replace(placeholder.name, 'headstart/normalised') : r));
  const roles = graphRoles(nodes, 'headstart/normalised');
  const values = decodeEntries(entries);
  const weights: RoledEntry[] = entries.map((e) => ({
    name: e.spec.name,
    shape: e.spec.shape,
    values: values[e.spec.name]!.dataSync() as Float32Array,
    role: e.spec.shape.length <= 1 ? 'vector' : (roles.get(e.spec.name) ?? 'other'),
    source: e.spec.quantization,
  }));
  tf.dispose(values);
  const size = String(b.inputSize);
  nodes.unshift(
    { name: INPUT_NAME, op: 'Placeholder', attr: { shape: { shape: { dim: [{ size: '-1' }, { size }, { size }, { size: '3' }] } }, dtype: T_FLOAT } },
    constNode('headstart/scale', []),
    constNode('headstart/offset', []),
    { name: 'headstart/scaled', op: 'Mul', input: [INPUT_NAME, 'headstart/scale'], attr: { T: T_FLOAT } },
    { name: 'headstart/normalised', op: 'AddV2', input: ['headstart/scaled', 'headstart/offset'], attr: { T: T_FLOAT } },
  );
  weights.push({ name: 'headstart/scale', shape: [], values: new Float32Array([(hi - lo) / 255]), role: 'vector' }, { name: 'headstart/offset', shape: [], values: new Float32Array([lo]), role: 'vector' });
  let x = b.featureNode;
  if (b.pool) {
    nodes.push(constNode('headstart/pool_axes', [2], 'DT_INT32'));
    const axes = new Int32Array([1, 2]);
    weights.push({ name: 'headstart/pool_axes', shape: [2], values: new Float32Array(0), role: 'other', raw: { spec: { name: 'headstart/pool_axes', shape: [2], dtype: 'int32' }, bytes: new Uint8Array(axes.buffer) } });
    nodes.push({ name: 'headstart/pool', op: 'Mean', input: [x, 'headstart/pool_axes'], attr: { T: T_FLOAT, Tidx: { type: 'DT_INT32' }, keep_dims: { b: false } } });
    x = 'headstart/pool';
  }
  const dense = headDense(head);
  dense.forEach((d, i) => {
    const p = `headstart/${d.name}`;
    nodes.push(constNode(`${p}/kernel`, d.kernel.shape), constNode(`${p}/bias`, d.bias.shape));
    weights.push({ name: `${p}/kernel`, shape: d.kernel.shape, values: d.kernel.dataSync() as Float32Array, role: 'head' }, { name: `${p}/bias`, shape: d.bias.shape, values: d.bias.dataSync() as Float32Array, role: 'vector' });
    nodes.push({ name: `${p}/MatMul`, op: 'MatMul', input: [x, `${p}/kernel`], attr: { T: T_FLOAT, transpose_a: { b: false }, transpose_b: { b: false } } });
    nodes.push({ name: `${p}/BiasAdd`, op: 'BiasAdd', input: [`${p}/MatMul`, `${p}/bias`], attr: { T: T_FLOAT } });
    x = `${p}/BiasAdd`;
    const last = i === dense.length - 1;
    if (d.activation === 'relu') {
      nodes.push({ name: `${p}/Relu`, op: 'Relu', input: [x], attr: { T: T_FLOAT } });
      x = `${p}/Relu`;
    } else if (d.activation === 'softmax') {
      nodes.push({ name: last ? OUTPUT_NAME : `${p}/Softmax`, op: 'Softmax', input: [x], attr: { T: T_FLOAT } });
      x = last ? OUTPUT_NAME : `${p}/Softmax`;
    } else if (d.activation !== 'linear') {
      throw new HeadstartError('INTERNAL', `head activation ${d.activation} cannot be exported`);
    }
  });
  if (x !== OUTPUT_NAME) throw new HeadstartError('INTERNAL', 'the head does not end in a softmax');
  const k = run.record.labels.length;
  return {
    format: 'graph-model',
    weights,
    json: {
      format: 'graph-model',
      generatedBy: json.generatedBy,
      convertedBy: 'headstart',
      modelTopology: { ...topo, node: nodes },
      signature: {
        inputs: { [`${INPUT_NAME}:0`]: { name: `${INPUT_NAME}:0`, dtype: 'DT_FLOAT', tensorShape: { dim: [{ size: '-1' }, { size }, { size }, { size: '3' }] } } },
        outputs: { [`${OUTPUT_NAME}:0`]: { name: `${OUTPUT_NAME}:0`, dtype: 'DT_FLOAT', tensorShape: { dim: [{ size: '-1' }, { size: String(k) }] } } },
      },
    },
  };
}

interface KerasLayerJson {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: Array<Array<[string, number, number, Record<string, unknown>]>>;
}

/** Role of a layers-model weight from its name and rank. */
function layersRole(name: string, rank: number, firstConv: boolean): WeightRole {
  if (name.startsWith('headstart_')) return rank <= 1 ? 'vector' : 'head';
  if (rank <= 1) return 'vector';
  if (/depthwise_kernel/.test(name)) return 'depthwise';
  if (rank === 4) return firstConv ? 'first' : 'conv';
  if (rank === 2) return 'dense';
  return 'other';
}

/**
 * Layers backbone + head as one layers model: a Rescaling layer maps 0..255
 * pixels onto the backbone's range, then the backbone up to its feature
 * layer, optional global average pooling, and the head's dense layers.
 */
async function buildLayersModel(run: LoadedRun, head: tf.LayersModel): Promise<BuiltModel> {
  const b = run.record.backbone;
  const source = await readModelDir(b.dir);
  const sourceQuant = new Map(source.entries.map((e) => [e.spec.name, e.spec.quantization]));
  const base = await tf.loadLayersModel(dirLoader(b.dir));
  // Layers added on top of the base belong to no model we dispose: they are freed one by one.
  const added: tf.layers.Layer[] = [];
  try {
    // A fine-tuned run carries its own weights for the top layers.
    for (const l of run.top?.layers ?? []) if (l.getWeights().length && !l.name.startsWith('headstart_')) base.getLayer(l.name).setWeights(l.getWeights());
    let x = base.getLayer(b.featureNode).output as tf.SymbolicTensor;
    if (b.pool && x.shape.length === 4) {
      const pool = tf.layers.globalAveragePooling2d({ name: 'headstart_pool' });
      x = pool.apply(x) as tf.SymbolicTensor;
      added.push(pool);
    }
    for (const d of headDense(head)) {
      const layer = tf.layers.dense({ units: d.kernel.shape[1]!, activation: d.activation as 'relu', name: `headstart_${d.name}` });
      x = layer.apply(x) as tf.SymbolicTensor;
      added.push(layer);
      layer.setWeights([d.kernel, d.bias]);
    }
    const full = tf.model({ inputs: base.inputs, outputs: x, name: 'headstart_model' });
    let artifacts: tf.io.ModelArtifacts | undefined;
    await full.save({
      save: async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      },
    });
    const a = artifacts!;
    // Saved by tfjs: {class_name, config}; converted from Keras: {model_config: {class_name, config}}.
    type Cfg = { config: { layers: KerasLayerJson[]; input_layers: Array<[string, number, number]> } };
    const topo = a.modelTopology as Cfg & { model_config?: Cfg };
    const cfg = (topo.model_config ?? topo).config;
    const inputName = cfg.input_layers[0]![0];
    for (const l of cfg.layers) for (const node of l.inbound_nodes) for (const ref of node) if (ref[0] === inputName) ref[0] = 'headstart_rescale';
    const [lo, hi] = b.inputRange;
    cfg.layers.splice(cfg.layers.findIndex((l) => l.name === inputName) + 1, 0, {
      name: 'headstart_rescale',
      class_name: 'Rescaling',
      config: { name: 'headstart_rescale', trainable: false, dtype: 'float32', scale: (hi - lo) / 255, offset: lo },
      inbound_nodes: [[[inputName, 0, 0, {}]]],
    });
    const data = new Uint8Array(tf.io.CompositeArrayBuffer.join(a.weightData!));
    let o = 0;
    let sawConv = false;
    const weights: RoledEntry[] = (a.weightSpecs ?? []).map((spec) => {
      const len = storedByteLength(spec);
      const bytes = data.slice(o, o + len);
      o += len;
      const first = spec.shape.length === 4 && !sawConv && !/depthwise/.test(spec.name);
      if (spec.shape.length === 4) sawConv = true;
      if (spec.dtype !== 'float32') return { name: spec.name, shape: spec.shape, values: new Float32Array(0), role: 'other', raw: { spec, bytes } };
      return { name: spec.name, shape: spec.shape, values: new Float32Array(bytes.buffer), role: layersRole(spec.name, spec.shape.length, first), source: sourceQuant.get(spec.name) };
    });
    return { format: 'layers-model', weights, json: { format: 'layers-model', generatedBy: a.generatedBy, convertedBy: 'headstart', modelTopology: a.modelTopology } };
  } finally {
    base.dispose();
    for (const l of added) l.dispose();
  }
}

/** What writeFullModel wrote. */
export interface WrittenModel {
  modelFormat: 'graph-model' | 'layers-model';
  /** Bytes of weights per storage dtype. */
  bytesByDtype: Record<string, number>;
  /** Precision chosen per role (the policy as applied). */
  policy: Policy;
  /** Largest reconstruction MSE among quantized weights, relative to their variance. */
  worstRelativeError: number;
  /** Zero fraction of each backbone kernel magnitude-pruned (`backboneSparsity` above 0) by weight name, and of every kernel weight overall. */
  sparsity: SparsityReport;
}

/**
 * Writes the full model (backbone + head, 0..255 pixels in, probabilities
 * out) into `outDir`, each weight stored at the precision `policy` gives its
 * role. `head` replaces the run's head (a pruned one, say).
 * `backboneSparsity` magnitude-prunes the backbone's convolution kernels
 * (sparsify.ts) before they are stored: zeros stay exact at every storage
 * precision whose grid holds zero (Headstart's uint8 / uint16 grids do, and
 * so do the TF.js converter's, which the bundled backbones were made with),
 * so the gzipped files shrink.
 */
export async function writeFullModel(run: LoadedRun, outDir: string, policy: Policy = POLICIES.float32, head: tf.LayersModel = run.head, backboneSparsity = 0): Promise<WrittenModel> {
  if (run.record.backbone.format === 'onnx') throw new HeadstartError('BAD_INPUT', `${run.dir} runs ${run.record.backbone.onnxInput ? `the ONNX backbone ${run.record.backbone.source}` : 'a slimmed ONNX backbone'}, which has no TF.js form (Headstart does not convert ONNX to TF.js); export it with --format onnx (backbone + head in one model.onnx, quantized with --quantize int8, uint8 or float16)`);
  const built = run.record.backbone.format === 'graph' ? await buildGraphModel(run, head) : await buildLayersModel(run, head);
  const sparsity = sparsifyEntries(built.weights, backboneSparsity);
  const { entries, choices } = applyPolicy(built.weights, policy);
  await writeModelDir(outDir, built.json, entries);
  const bytesByDtype: Record<string, number> = {};
  entries.forEach((e) => {
    const d: WeightDtype | string = e.spec.quantization?.dtype ?? e.spec.dtype;
    bytesByDtype[d] = (bytesByDtype[d] ?? 0) + e.bytes.length;
  });
  let worst = 0;
  for (const w of built.weights) {
    const c = choices[w.name];
    if (!c || !c.mse || w.values.length < 2) continue;
    let m = 0;
    for (const v of w.values) m += v;
    m /= w.values.length;
    let vr = 0;
    for (const v of w.values) vr += (v - m) ** 2;
    vr /= w.values.length;
    if (vr > 0) worst = Math.max(worst, c.mse / vr);
  }
  return { modelFormat: built.format, bytesByDtype, policy, worstRelativeError: worst, sparsity };
}

/** Loads an exported model folder with the stock TF.js loaders. */
export async function loadExportedModel(dir: string): Promise<{ predict(x: tf.Tensor4D): tf.Tensor2D; dispose(): void }> {
  const json = await readJson<ModelJson>(`${dir}/model.json`, 'exported model');
  if (json.format === 'graph-model') {
    const m = await tf.loadGraphModel(dirLoader(dir));
    return { predict: (x) => m.predict(x) as tf.Tensor2D, dispose: () => m.dispose() };
  }
  const m = await tf.loadLayersModel(dirLoader(dir));
  return { predict: (x) => m.predict(x) as tf.Tensor2D, dispose: () => m.dispose() };
}
