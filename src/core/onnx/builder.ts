import { onnx } from 'onnx-proto';
import { VERSION } from '../version';

/** ONNX opset the converter targets (ONNX Runtime 1.x runs it everywhere). */
export const OPSET = 13;

/** An attribute: a number is an int, `{ f }` a float, an array ints, `{ floats }` floats. */
export type AttrValue = number | { f: number } | string | number[] | { floats: number[] };

/**
 * Accumulates ONNX nodes and initializers and serialises a ModelProto with
 * the maintained generated schema (`onnx-proto`, protobufjs). Nothing here
 * knows TensorFlow.js.
 */
export class OnnxBuilder {
  readonly nodes: onnx.INodeProto[] = [];
  readonly initializers: onnx.ITensorProto[] = [];
  private readonly names = new Set<string>();
  private counter = 0;

  /** A fresh tensor name with the given stem. */
  fresh(stem: string): string {
    let name = stem;
    while (this.names.has(name)) name = `${stem}_${++this.counter}`;
    this.names.add(name);
    return name;
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  /** Adds an initializer (float32, float16 bits, uint8, int8, int32 or int64 values). */
  init(name: string, dims: number[], values: Float32Array | Uint16Array | Uint8Array | Int8Array | Int32Array | BigInt64Array, dataType?: onnx.TensorProto.DataType): string {
    this.names.add(name);
    const type =
      dataType ??
      (values instanceof Float32Array
        ? onnx.TensorProto.DataType.FLOAT
        : values instanceof BigInt64Array
          ? onnx.TensorProto.DataType.INT64
          : values instanceof Int32Array
            ? onnx.TensorProto.DataType.INT32
            : values instanceof Uint16Array
              ? onnx.TensorProto.DataType.FLOAT16
              : values instanceof Int8Array
                ? onnx.TensorProto.DataType.INT8
                : onnx.TensorProto.DataType.UINT8);
    this.initializers.push({ name, dims, dataType: type, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) });
    return name;
  }

  /** An int64 initializer (shapes, axes, pads). */
  ints(stem: string, values: number[]): string {
    return this.init(this.fresh(stem), [values.length], BigInt64Array.from(values.map((v) => BigInt(v))));
  }

  /** A float scalar initializer. */
  scalar(stem: string, v: number): string {
    return this.init(this.fresh(stem), [], new Float32Array([v]));
  }

  /** Adds a node; returns its (single) output name. */
  node(op: string, inputs: string[], stem: string, attrs: Record<string, AttrValue> = {}, outputs?: string[]): string {
    const outs = outputs ?? [this.fresh(stem)];
    for (const o of outs) this.names.add(o);
    const attribute: onnx.IAttributeProto[] = Object.entries(attrs).map(([name, v]) => {
      if (typeof v === 'number') return { name, type: onnx.AttributeProto.AttributeType.INT, i: v };
      if (typeof v === 'object' && 'f' in v) return { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: v.f };
      if (typeof v === 'string') return { name, type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(v) };
      if (Array.isArray(v)) return { name, type: onnx.AttributeProto.AttributeType.INTS, ints: v };
      return { name, type: onnx.AttributeProto.AttributeType.FLOATS, floats: v.floats };
    });
    this.nodes.push({ opType: op, input: inputs, output: outs, name: this.fresh(`${stem}/${op}`), attribute });
    return outs[0]!;
  }

  /** Serialises the model: one float input `[N, ...dims]`, float outputs. */
  build(input: { name: string; dims: Array<number | string> }, outputs: string[], docString = ''): Uint8Array {
    const valueInfo = (name: string, dims?: Array<number | string>): onnx.IValueInfoProto => ({
      name,
      type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: dims ? { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } : undefined } },
    });
    const model: onnx.IModelProto = {
      irVersion: 8,
      producerName: 'headstart',
      producerVersion: VERSION,
      docString,
      opsetImport: [{ domain: '', version: OPSET }],
      graph: {
        name: 'headstart',
        node: this.nodes,
        initializer: this.initializers,
        input: [valueInfo(input.name, input.dims)],
        output: outputs.map((o) => valueInfo(o)),
      },
    };
    return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
  }
}
