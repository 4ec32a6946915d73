import { constants as fsConstants } from 'node:fs';
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

/**
 * Limits on what a model may declare, checked before a byte of weights is read.
 * Far above every backbone Headstart supports (InceptionV3: 24 M parameters,
 * 1 M elements in its largest weight, 2048 filters), far below what would
 * exhaust memory.
 */
export const MODEL_LIMITS = {
  /** Parameters over all weights of a model. */
  maxParams: 200_000_000,
  /** Dimensions of one weight. */
  maxRank: 8,
  /** Bytes of model.json itself. */
  maxJsonBytes: 64 * 1024 * 1024,
  /** Any size a layer's config declares: units, filters, kernel size, input dimensions. */
  maxLayerDim: 65_536,
} as const;

function badModel(msg: string): never {
  throw new HeadstartError('BAD_MODEL', msg);
}

/** Elements of a weight, its shape checked: non-negative whole dimensions, within {@link MODEL_LIMITS}. */
function weightElements(spec: tf.io.WeightsManifestEntry): number {
  const name = typeof spec?.name === 'string' ? spec.name : '(unnamed)';
  if (!Array.isArray(spec?.shape) || spec.shape.length > MODEL_LIMITS.maxRank) badModel(`weight ${name} has no valid shape (a list of at most ${MODEL_LIMITS.maxRank} dimensions)`);
  let n = 1;
  for (const d of spec.shape) {
    if (!Number.isSafeInteger(d) || d < 0) badModel(`weight ${name} has an invalid dimension ${JSON.stringify(d)} in its shape ${JSON.stringify(spec.shape)}`);
    n *= d;
  }
  if (n > MODEL_LIMITS.maxParams) badModel(`weight ${name} of shape ${JSON.stringify(spec.shape)} has ${n} elements, over the limit of ${MODEL_LIMITS.maxParams}; this is not a model Headstart can load`);
  return n;
}

/** Bytes one weight occupies in a shard, quantization included. */
export function storedByteLength(spec: tf.io.WeightsManifestEntry): number {
  const n = weightElements(spec);
  const dtype = spec.quantization?.dtype ?? spec.dtype;
  const size = DTYPE_BYTES[dtype];
  if (size === undefined) throw new HeadstartError('BAD_MODEL', `weight ${spec.name} has unsupported dtype ${dtype}`);
  return n * size;
}

/** Expected byte size of each shard of each manifest group, from the weight specs. */
export function expectedGroupBytes(manifest: tf.io.WeightsManifestConfig): number[] {
  return manifest.map((g) => g.weights.reduce((a, w) => a + storedByteLength(w), 0));
}

/**
 * Checks a weights manifest's structure, shapes and parameter count, and
 * returns the byte size of each group. `where` names the model in messages.
 */
export function checkManifest(manifest: unknown, where: string): number[] {
  if (!Array.isArray(manifest)) badModel(`${where} is not a TF.js model.json (no weightsManifest)`);
  let params = 0;
  for (const g of manifest as tf.io.WeightsManifestConfig) {
    if (!Array.isArray(g?.paths) || !Array.isArray(g.weights)) badModel(`${where}: every weightsManifest group needs a list of paths and of weights`);
    for (const p of g.paths) checkWeightPath(p, where);
    for (const w of g.weights) {
      params += weightElements(w);
      if (params > MODEL_LIMITS.maxParams) badModel(`${where} declares over ${MODEL_LIMITS.maxParams} parameters (at weight ${w.name}); this is not a model Headstart can load`);
    }
  }
  return expectedGroupBytes(manifest as tf.io.WeightsManifestConfig);
}

/**
 * A weight file's path as named in a manifest: relative, inside the model's
 * folder, no URL scheme, also once percent-escapes are decoded (a download
 * decodes them). Throws BAD_MODEL otherwise.
 */
export function checkWeightPath(p: unknown, where: string): string {
  if (typeof p !== 'string' || !p || p.includes('\0')) badModel(`${where} names an invalid weight file path ${JSON.stringify(p)}`);
  let decoded: string;
  try {
    decoded = decodeURIComponent(p);
  } catch (err) {
    throw new HeadstartError('BAD_MODEL', `${where} names a weight file with a broken percent-escape: ${p}`, { cause: err });
  }
  for (const s of new Set([p, decoded])) {
    const unsafe = /^[a-z][a-z0-9+.-]*:/i.test(s) || s.startsWith('/') || s.startsWith('\\') || path.isAbsolute(s) || path.win32.isAbsolute(s) || s.split(/[\\/]/).includes('..') || s.includes('\0');
    if (unsafe) badModel(`${where} names a weight file outside its folder: ${p} (weight paths must be relative, without '..' or a URL scheme)`);
  }
  return p;
}

/** Config keys of Keras layers that size a layer's weights or tensors. */
const SIZE_KEYS = new Set(['units', 'filters', 'output_dim', 'input_dim', 'depth_multiplier', 'kernel_size', 'pool_size', 'strides', 'dilation_rate', 'size', 'batch_input_shape', 'batch_shape', 'target_shape', 'n']);

/**
 * Checks every size a layers model's topology declares (at any depth: nested
 * models too) against {@link MODEL_LIMITS}.maxLayerDim, naming the layer. TF.js
 * allocates a layer's weights from its config before it reads the manifest.
 */
export function checkTopology(topology: unknown, where: string): void {
  // Graph models (a GraphDef: {node: [...]}) take their sizes from the manifest's constants, checked there.
  if (Array.isArray((topology as { node?: unknown } | undefined)?.node)) return;
  const walk = (node: unknown, layer: string): void => {
    if (Array.isArray(node)) {
      for (const x of node) walk(x, layer);
      return;
    }
    if (!node || typeof node !== 'object') return;
    const obj = node as Record<string, unknown>;
    const cfg = obj.config as Record<string, unknown> | undefined;
    const name = typeof cfg?.name === 'string' ? cfg.name : typeof obj.name === 'string' ? obj.name : layer;
    for (const [k, v] of Object.entries(obj)) {
      if (SIZE_KEYS.has(k)) {
        for (const d of [v].flat(2)) {
          if (d === null || d === undefined) continue;
          if (typeof d !== 'number' || !Number.isFinite(d) || d < 0 || d > MODEL_LIMITS.maxLayerDim) {
            badModel(`${where}: layer ${name} declares ${k} ${JSON.stringify(v)}, over the limit of ${MODEL_LIMITS.maxLayerDim}; this is not a model Headstart can load`);
          }
        }
      } else walk(v, name);
    }
  };
  walk(topology, '(model)');
}

/** A model folder checked before its weights are read: its model.json and, per manifest group, its weight files. */
export interface CheckedModelDir {
  json: ModelJson;
  /** The bytes of model.json. */
  jsonBytes: Buffer;
  /** Absolute paths of each group's weight files, in manifest order. */
  groups: string[][];
  /** Byte size of each group. */
  groupBytes: number[];
}

/** Stats a path that must be a regular file; returns its size. */
async function regularFileSize(file: string, what: string): Promise<number> {
  let st: import('node:fs').Stats;
  try {
    st = await fs.stat(file);
  } catch (err) {
    throw new HeadstartError('BAD_MODEL', `${what} is missing (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
  if (!st.isFile()) badModel(`${what} is not a regular file (a FIFO, device, socket or folder); refusing to read it`);
  return st.size;
}

/**
 * Reads a model folder's model.json and checks everything about its weight
 * files that can be checked without reading them: paths relative and inside
 * the folder (links resolved), regular files, byte sizes equal to what the
 * manifest's shapes and dtypes declare, shapes and parameter count within
 * {@link MODEL_LIMITS}, and the layer sizes of the topology. Throws BAD_MODEL.
 */
export async function checkModelDir(dir: string): Promise<CheckedModelDir> {
  const file = path.join(dir, 'model.json');
  const size = await regularFileSize(file, `model file ${file}`);
  if (size > MODEL_LIMITS.maxJsonBytes) badModel(`${file} is ${size} bytes, over the ${MODEL_LIMITS.maxJsonBytes}-byte limit of a model.json`);
  const jsonBytes = await fs.readFile(file);
  let json: ModelJson;
  try {
    json = JSON.parse(jsonBytes.toString('utf8')) as ModelJson;
  } catch (err) {
    throw new HeadstartError('BAD_MODEL', `cannot read a TF.js model at ${file}: ${String((err as Error).message)}`, { cause: err });
  }
  if (!json || typeof json !== 'object' || !json.modelTopology || !Array.isArray(json.weightsManifest)) {
    badModel(`${file} is not a TF.js model.json (no modelTopology / weightsManifest)`);
  }
  const groupBytes = checkManifest(json.weightsManifest, file);
  checkTopology(json.modelTopology, file);
  const realDir = await fs.realpath(dir);
  const groups: string[][] = [];
  for (const [g, group] of json.weightsManifest.entries()) {
    const files: string[] = [];
    let got = 0;
    for (const p of group.paths) {
      const shard = path.resolve(dir, p);
      let real: string;
      try {
        real = await fs.realpath(shard);
      } catch (err) {
        throw new HeadstartError('BAD_MODEL', `model ${file} is missing its weights file ${p}`, { cause: err });
      }
      const rel = path.relative(realDir, real);
      if (!rel || rel.startsWith('..') || path.isAbsolute(rel)) badModel(`${file}: weights file ${p} links outside the model's folder (to ${real}); refusing to read it`);
      got += await regularFileSize(real, `weights file ${p} of ${file}`);
      files.push(real);
    }
    if (got !== groupBytes[g]) badModel(`weights of ${file} (${group.paths.join(', ')}) are ${got} bytes, but the manifest's shapes and dtypes need ${groupBytes[g]}; the files are truncated, padded or from another model`);
    groups.push(files);
  }
  return { json, jsonBytes, groups, groupBytes };
}

/**
 * Reads a file that must still be the regular file {@link checkModelDir} saw:
 * opened without blocking (a FIFO swapped in meanwhile cannot hang us) and
 * checked on the open handle before a byte is read.
 */
export async function readRegularFile(file: string): Promise<Buffer> {
  const fh = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    if (!(await fh.stat()).isFile()) badModel(`${file} is no longer a regular file; refusing to read it`);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

/** Reads model.json and its shards from a folder, after {@link checkModelDir}. */
export async function readModelDir(dir: string): Promise<{ json: ModelJson; entries: WeightEntry[] }> {
  const { json, groups } = await checkModelDir(dir);
  const entries: WeightEntry[] = [];
  for (const [g, group] of json.weightsManifest.entries()) {
    const data = Buffer.concat(await Promise.all(groups[g]!.map((f) => readRegularFile(f))));
    let offset = 0;
    for (const spec of group.weights) {
      const len = storedByteLength(spec);
      if (offset + len > data.length) throw new HeadstartError('BAD_MODEL', `weights of ${path.join(dir, 'model.json')} are truncated at ${spec.name}`);
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
