import * as tf from '@tensorflow/tfjs';
import type { GraphNode, GraphTopology } from '../backbones/bundled';
import { inputNodeName } from '../backbones/bundled';
import { HeadstartError } from '../errors';
import type { LoadedRun } from '../run';
import { readJson } from '../fsutil';
import { type ModelJson, type WeightEntry, decodeEntries, dirLoader, dirSaver, floatEntry, readModelDir, writeModelDir } from '../tfjsio';

/** Name of the exported model's input and output. */
export const INPUT_NAME = 'image';
export const OUTPUT_NAME = 'probabilities';

/** Dense layers of the trained head, in order: kernel [in, out], bias [out], activation. */
function headDense(head: tf.LayersModel): Array<{ name: string; kernel: tf.Tensor; bias: tf.Tensor; activation: string }> {
  return head.layers
    .filter((l) => l.getClassName() === 'Dense')
    .map((l) => {
      const [kernel, bias] = l.getWeights();
      const activation = String((l.getConfig() as { activation?: string }).activation ?? 'linear');
      return { name: l.name, kernel: kernel!, bias: bias!, activation };
    });
}

const T_FLOAT = { type: 'DT_FLOAT' };

function constNode(name: string, shape: number[]): GraphNode {
  return { name, op: 'Const', attr: { value: { tensor: { dtype: 'DT_FLOAT', tensorShape: shape.length ? { dim: shape.map((s) => ({ size: String(s) })) } : {} } }, dtype: T_FLOAT } };
}

/**
 * Graph backbone + head as one graph model: a new `image` input taking 0..255
 * pixels, scaled onto the backbone's range, the backbone up to its feature
 * node, then the head as MatMul / BiasAdd / Relu / Softmax nodes. All
 * weights are written as float32.
 */
async function writeGraphModel(run: LoadedRun, outDir: string): Promise<void> {
  const b = run.record.backbone;
  const { json, entries } = await readModelDir(b.dir);
  const topo = structuredClone(json.modelTopology) as GraphTopology;
  const placeholder = topo.node.find((n) => n.op === 'Placeholder');
  if (!placeholder) throw new HeadstartError('BAD_MODEL', `backbone ${b.id} has no input placeholder`);
  const values = decodeEntries(entries);
  const out: WeightEntry[] = [];
  for (const e of entries) {
    const t = values[e.spec.name]!;
    out.push(floatEntry(e.spec.name, e.spec.shape, t.dataSync() as Float32Array));
  }
  tf.dispose(values);
  const [lo, hi] = b.inputRange;
  const nodes: GraphNode[] = topo.node.filter((n) => n !== placeholder);
  for (const n of nodes) n.input = n.input?.map((r) => (inputNodeName(r) === placeholder.name ? r.replace(placeholder.name, 'headstart/normalised') : r));
  const size = String(b.inputSize);
  nodes.unshift(
    { name: INPUT_NAME, op: 'Placeholder', attr: { shape: { shape: { dim: [{ size: '-1' }, { size }, { size }, { size: '3' }] } }, dtype: T_FLOAT } },
    constNode('headstart/scale', []),
    constNode('headstart/offset', []),
    { name: 'headstart/scaled', op: 'Mul', input: [INPUT_NAME, 'headstart/scale'], attr: { T: T_FLOAT } },
    { name: 'headstart/normalised', op: 'AddV2', input: ['headstart/scaled', 'headstart/offset'], attr: { T: T_FLOAT } },
  );
  out.push(floatEntry('headstart/scale', [], new Float32Array([(hi - lo) / 255])), floatEntry('headstart/offset', [], new Float32Array([lo])));
  let x = b.featureNode;
  if (b.pool) {
    nodes.push(constNode('headstart/pool_axes', [2]));
    out.push({ spec: { name: 'headstart/pool_axes', shape: [2], dtype: 'int32' }, bytes: new Uint8Array(new Int32Array([1, 2]).buffer) });
    (nodes.at(-1)!.attr!.value as { tensor: { dtype: string } }).tensor.dtype = 'DT_INT32';
    nodes.at(-1)!.attr!.dtype = { type: 'DT_INT32' };
    nodes.push({ name: 'headstart/pool', op: 'Mean', input: [x, 'headstart/pool_axes'], attr: { T: T_FLOAT, Tidx: { type: 'DT_INT32' }, keep_dims: { b: false } } });
    x = 'headstart/pool';
  }
  const dense = headDense(run.head);
  dense.forEach((d, i) => {
    const p = `headstart/${d.name}`;
    nodes.push(constNode(`${p}/kernel`, d.kernel.shape), constNode(`${p}/bias`, d.bias.shape));
    out.push(floatEntry(`${p}/kernel`, d.kernel.shape, d.kernel.dataSync() as Float32Array), floatEntry(`${p}/bias`, d.bias.shape, d.bias.dataSync() as Float32Array));
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
  const model: Omit<ModelJson, 'weightsManifest'> = {
    format: 'graph-model',
    generatedBy: json.generatedBy,
    convertedBy: 'headstart',
    modelTopology: { ...topo, node: nodes },
    signature: {
      inputs: { [`${INPUT_NAME}:0`]: { name: `${INPUT_NAME}:0`, dtype: 'DT_FLOAT', tensorShape: { dim: [{ size: '-1' }, { size }, { size }, { size: '3' }] } } },
      outputs: { [`${OUTPUT_NAME}:0`]: { name: `${OUTPUT_NAME}:0`, dtype: 'DT_FLOAT', tensorShape: { dim: [{ size: '-1' }, { size: String(k) }] } } },
    },
  };
  await writeModelDir(outDir, model, out);
}

interface KerasLayerJson {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: Array<Array<[string, number, number, Record<string, unknown>]>>;
}

/**
 * Layers backbone + head as one layers model: a Rescaling layer maps 0..255
 * pixels onto the backbone's range, then the backbone up to its feature
 * layer, optional global average pooling, and the head's dense layers.
 */
async function writeLayersModel(run: LoadedRun, outDir: string): Promise<void> {
  const b = run.record.backbone;
  const base = await tf.loadLayersModel(dirLoader(b.dir));
  try {
    let x = base.getLayer(b.featureNode).output as tf.SymbolicTensor;
    if (b.pool && x.shape.length === 4) x = tf.layers.globalAveragePooling2d({ name: 'headstart_pool' }).apply(x) as tf.SymbolicTensor;
    const created: tf.layers.Layer[] = [];
    for (const d of headDense(run.head)) {
      const layer = tf.layers.dense({ units: d.kernel.shape[1]!, activation: d.activation as 'relu', name: `headstart_${d.name}` });
      x = layer.apply(x) as tf.SymbolicTensor;
      layer.setWeights([d.kernel, d.bias]);
      created.push(layer);
    }
    const full = tf.model({ inputs: base.inputs, outputs: x, name: 'headstart_model' });
    const [lo, hi] = b.inputRange;
    const saver = dirSaver(outDir);
    await full.save({
      save: async (artifacts) => {
        // Saved by tfjs: {class_name, config}; converted from Keras: {model_config: {class_name, config}}.
        type Cfg = { config: { layers: KerasLayerJson[]; input_layers: Array<[string, number, number]> } };
        const topo = artifacts.modelTopology as Cfg & { model_config?: Cfg };
        const cfg = (topo.model_config ?? topo).config;
        const layers = cfg.layers;
        const inputName = cfg.input_layers[0]![0];
        for (const l of layers) for (const node of l.inbound_nodes) for (const ref of node) if (ref[0] === inputName) ref[0] = 'headstart_rescale';
        const at = layers.findIndex((l) => l.name === inputName);
        layers.splice(at + 1, 0, {
          name: 'headstart_rescale',
          class_name: 'Rescaling',
          config: { name: 'headstart_rescale', trainable: false, dtype: 'float32', scale: (hi - lo) / 255, offset: lo },
          inbound_nodes: [[[inputName, 0, 0, {}]]],
        });
        return saver.save!(artifacts);
      },
    });
  } finally {
    base.dispose();
  }
}

/** Writes the full model (backbone + head, 0..255 pixels in, probabilities out) into `outDir`. */
export async function writeFullModel(run: LoadedRun, outDir: string): Promise<'graph-model' | 'layers-model'> {
  if (run.record.backbone.format === 'graph') {
    await writeGraphModel(run, outDir);
    return 'graph-model';
  }
  await writeLayersModel(run, outDir);
  return 'layers-model';
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
