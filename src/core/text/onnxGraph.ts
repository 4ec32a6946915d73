import { onnx } from 'onnx-proto';
import { OPSET, OnnxBuilder } from '../onnx/builder';

/** A graph input or output: name, element type and dimensions (a string is a symbolic one). */
export interface TypedValue {
  name: string;
  type: 'float32' | 'int64';
  dims?: Array<number | string>;
}

const ELEM = { float32: onnx.TensorProto.DataType.FLOAT, int64: onnx.TensorProto.DataType.INT64 } as const;

/**
 * Serialises the nodes and initializers of `b` as a model with typed inputs
 * (token ids are int64; OnnxBuilder.build has one float input only).
 */
export function buildTypedModel(b: OnnxBuilder, inputs: TypedValue[], outputs: TypedValue[], docString = ''): Uint8Array {
  const info = (v: TypedValue): onnx.IValueInfoProto => ({
    name: v.name,
    type: { tensorType: { elemType: ELEM[v.type], shape: v.dims ? { dim: v.dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } : undefined } },
  });
  const model: onnx.IModelProto = {
    irVersion: 8,
    producerName: 'headstart',
    producerVersion: '0.1.0',
    docString,
    opsetImport: [{ domain: '', version: OPSET }],
    graph: { name: 'headstart', node: b.nodes, initializer: b.initializers, input: inputs.map(info), output: outputs.map(info) },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

/**
 * A token-embedding encoder in the shape of a Hugging Face sentence encoder:
 * inputs `input_ids` and `attention_mask` (int64 [batch, tokens]), output
 * `last_hidden_state` (float [batch, tokens, dims]) = the rows of `table`
 * for the ids. Small ones stand in for MiniLM in tests; the same loading
 * path (tokenizer, padding, mask, pooling) runs both.
 */
export function tokenEmbeddingEncoder(table: Float32Array, dims: number): Uint8Array {
  const b = new OnnxBuilder();
  const emb = b.init('embeddings', [table.length / dims, dims], table);
  // attention_mask is declared (the loader feeds it, as to any BERT export) and unused: padding is masked in pooling.
  b.node('Gather', [emb, 'input_ids'], 'gather', { axis: 0 }, ['last_hidden_state']);
  return buildTypedModel(b, [{ name: 'input_ids', type: 'int64', dims: ['batch', 'tokens'] }, { name: 'attention_mask', type: 'int64', dims: ['batch', 'tokens'] }], [{ name: 'last_hidden_state', type: 'float32', dims: ['batch', 'tokens', dims] }]);
}
