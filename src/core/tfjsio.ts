import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { HeadstartError } from './errors';
import { writeFileAtomic } from './fsutil';

/** The parsed model.json of a TF.js model (layers or graph). */
export interface ModelJson {
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  modelTopology: unknown;
  weightsManifest: tf.io.WeightsManifestConfig;
  userDefinedMetadata?: Record<string, unknown>;
  signature?: unknown;
  [key: string]: unknown;
}

/** A weight's spec with its raw stored bytes (still quantized if it was). */
export interface WeightEntry {
  spec: tf.io.WeightsManifestEntry;
  bytes: Uint8Array;
}

const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2 };

/** Bytes one weight occupies in a shard, quantization included. */
export function storedByteLength(spec: tf.io.WeightsManifestEntry): number {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const dtype = spec.quantization?.dtype ?? spec.dtype;
  const size = DTYPE_BYTES[dtype];
  if (size === undefined) throw new HeadstartError('BAD_MODEL', `weight ${spec.name} has unsupported dtype ${dtype}`);
  return n * size;
}

/** Expected byte size of each shard of each manifest group, from the weight specs. */
export function expectedGroupBytes(manifest: tf.io.WeightsManifestConfig): number[] {
  return manifest.map((g) => g.weights.reduce((a, w) => a + storedByteLength(w), 0));
}

/** Reads model.json and its shards from a folder. */
export async function readModelDir(dir: string): Promise<{ json: ModelJson; entries: WeightEntry[] }> {
  const file = path.join(dir, 'model.json');
  let json: ModelJson;
  try {
    json = JSON.parse(await fs.readFile(file, 'utf8')) as ModelJson;
  } catch (err) {
    throw new HeadstartError('BAD_MODEL', `cannot read a TF.js model at ${file}: ${String((err as Error).message)}`, { cause: err });
  }
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new HeadstartError('BAD_MODEL', `${file} is not a TF.js model.json (no modelTopology / weightsManifest)`);
  }
  const entries: WeightEntry[] = [];
  for (const group of json.weightsManifest) {
    const buffers: Buffer[] = [];
    for (const p of group.paths) {
      const shard = path.resolve(dir, p);
      if (path.relative(dir, shard).startsWith('..')) throw new HeadstartError('BAD_MODEL', `${file} names a shard outside its folder: ${p}`);
      try {
        buffers.push(await fs.readFile(shard));
      } catch (err) {
        throw new HeadstartError('BAD_MODEL', `model ${file} is missing its weights file ${p}`, { cause: err });
      }
    }
    const data = Buffer.concat(buffers);
    let offset = 0;
    for (const spec of group.weights) {
      const len = storedByteLength(spec);
      if (offset + len > data.length) throw new HeadstartError('BAD_MODEL', `weights of ${file} are truncated at ${spec.name}`);
      entries.push({ spec, bytes: new Uint8Array(data.buffer, data.byteOffset + offset, len) });
      offset += len;
    }
  }
  return { json, entries };
}

/** Concatenates weight entries into one buffer (for tf.io model artifacts). */
export function concatEntries(entries: WeightEntry[]): ArrayBuffer {
  const total = entries.reduce((a, e) => a + e.bytes.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const e of entries) {
    out.set(e.bytes, o);
    o += e.bytes.length;
  }
  return out.buffer;
}

/** An IOHandler that loads a model folder (model.json + shards) from disk. */
export function dirLoader(dir: string): tf.io.IOHandler {
  return {
    load: async () => {
      const { json, entries } = await readModelDir(dir);
      return {
        modelTopology: json.modelTopology as tf.io.ModelArtifacts['modelTopology'],
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy ?? undefined,
        weightSpecs: entries.map((e) => e.spec),
        weightData: concatEntries(entries),
        userDefinedMetadata: json.userDefinedMetadata as Record<string, object> | undefined,
        signature: json.signature as object | undefined,
      };
    },
  };
}

/** Writes model.json + one shard file (`weights.bin`) into `dir`. Returns bytes written. */
export async function writeModelDir(dir: string, json: Omit<ModelJson, 'weightsManifest'>, entries: WeightEntry[]): Promise<number> {
  await fs.mkdir(dir, { recursive: true });
  const data = new Uint8Array(concatEntries(entries));
  const manifest: tf.io.WeightsManifestConfig = [{ paths: ['weights.bin'], weights: entries.map((e) => e.spec) }];
  const text = JSON.stringify({ ...json, weightsManifest: manifest });
  await writeFileAtomic(path.join(dir, 'weights.bin'), data);
  await writeFileAtomic(path.join(dir, 'model.json'), text);
  return data.length + Buffer.byteLength(text);
}

/** An IOHandler whose save() writes a layers model to a folder (model.json + weights.bin). */
export function dirSaver(dir: string, extra: Record<string, unknown> = {}): tf.io.IOHandler {
  return {
    save: async (artifacts) => {
      const specs = artifacts.weightSpecs ?? [];
      const raw = artifacts.weightData;
      const data = new Uint8Array(raw === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(raw));
      const entries: WeightEntry[] = [];
      let o = 0;
      for (const spec of specs) {
        const len = storedByteLength(spec);
        entries.push({ spec, bytes: data.subarray(o, o + len) });
        o += len;
      }
      await writeModelDir(
        dir,
        {
          format: artifacts.format ?? 'layers-model',
          generatedBy: artifacts.generatedBy,
          convertedBy: 'headstart',
          modelTopology: artifacts.modelTopology,
          ...extra,
        },
        entries,
      );
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    },
  };
}

/** Decodes every entry to float32 values (dequantizing uint8 / uint16 / float16). */
export function decodeEntries(entries: WeightEntry[]): tf.NamedTensorMap {
  const specs = entries.map((e) => e.spec);
  return tf.io.decodeWeights(concatEntries(entries), specs);
}

/** A float32 entry from a tensor's values. */
export function floatEntry(name: string, shape: number[], values: Float32Array): WeightEntry {
  return { spec: { name, shape, dtype: 'float32' }, bytes: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}
