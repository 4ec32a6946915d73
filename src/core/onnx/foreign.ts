/**
 * Bring your own backbone: any ONNX image model (a local .onnx file, a URL,
 * or a catalogue entry by URL) as a frozen feature extractor. The model's
 * preprocessing comes from flags, a sidecar JSON beside it, the catalogue,
 * and its input shape; Headstart wraps the model into an ONNX backbone folder
 * (model.onnx + backbone.json, the same contract as a slimmed backbone:
 * 0..255 RGB NHWC pixels in `image`, a feature vector out of `features`) with
 * the preprocessing as graph ops in front and the pooling behind. Extraction,
 * the embedding cache and the ONNX export then treat it like any ONNX
 * backbone.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { HeadstartError, describeError } from '../errors';
import type { Progress } from '../events';
import { exists, readJson, sha256 } from '../fsutil';
import { type BackboneEntry, type OnnxInputSpec, findBackbone } from '../backbones/catalogue';
import { type DownloadOptions, type ResolvedBackbone, REMOTE_ONNX_FILE, resolveRemoteOnnx } from '../backbones/store';
import { CHANNEL_ORDER_CHOICES, LAYOUT_CHOICES, NUMERIC_OPTIONS, POOLING_CHOICES, RANGE_CHOICES } from '../../shared/options';
import { ONNX_INPUT_FIELDS, type OnnxInputField, type OnnxInputSource, isOnnxModelFile } from '../../shared/onnxInput';
import { ONNX_BACKBONE_FILE, ONNX_BACKBONE_META, type OnnxBackboneMeta, writeOnnxBackbone } from './backbone';
import { OnnxBuilder } from './builder';
import { loadOrt, ortUnavailableReason } from './engine';

/** What a caller may fix of the preprocessing (flags, sidecar, catalogue); the rest is detected. */
export type OnnxInputFlags = Partial<Omit<OnnxInputSpec, 'channels' | 'batch'>>;

/** Bumped when the wrapper graph changes: wrapped models of an older version are rebuilt. */
export const WRAP_VERSION = 1;

/** Sidecar file names looked for beside a local model: `<file>.json` first, then `headstart.json`. */
export const sidecarNames = (file: string): string[] => [`${file}.json`, path.join(path.dirname(file), 'headstart.json')];

/** True when a --backbone value names a foreign ONNX model: a .onnx path or URL, or a catalogue entry of format onnx. */
export function isForeignOnnx(idOrPath: string): boolean {
  const entry = findBackbone(idOrPath);
  if (entry) return entry.format === 'onnx';
  return /^https?:\/\//i.test(idOrPath) || /\.onnx$/i.test(idOrPath) || idOrPath.startsWith('onnx:');
}

const RANGES: Record<(typeof RANGE_CHOICES)[number], [number, number]> = { '0-1': [0, 1], '0-255': [0, 255], '-1-1': [-1, 1] };

/** `--range` text (0-1, 0-255, -1-1) or a [lo, hi] pair onto the pair; BAD_INPUT naming `where` otherwise. */
export function parseRange(v: unknown, where: string): [number, number] {
  if (typeof v === 'string' && v in RANGES) return RANGES[v as keyof typeof RANGES];
  if (Array.isArray(v) && v.length === 2) {
    const hit = Object.values(RANGES).find((r) => r[0] === v[0] && r[1] === v[1]);
    if (hit) return hit;
  }
  throw new HeadstartError('BAD_INPUT', `${where} must be one of ${RANGE_CHOICES.join(', ')} (got ${JSON.stringify(v)})`);
}

/** A comma list (flag) or an array (sidecar) of per-channel numbers, each within the option's range. */
export function parseChannelList(v: unknown, name: 'mean' | 'std', where: string): number[] {
  const items = typeof v === 'string' ? v.split(',').map((s) => s.trim()) : Array.isArray(v) ? v : [v];
  const o = NUMERIC_OPTIONS[name];
  const nums = items.map((s) => (typeof s === 'number' ? s : /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(String(s)) ? Number(s) : NaN));
  const ok = (x: number) => Number.isFinite(x) && (o.minExclusive ? x > o.min : x >= o.min) && x <= o.max;
  if (!nums.length || nums.length > 3 || !nums.every(ok)) throw new HeadstartError('BAD_INPUT', `${where} must be 1 or 3 numbers ${o.minExclusive ? `greater than ${o.min}` : `from ${o.min}`} to ${o.max}, comma-separated (got ${JSON.stringify(v)})`);
  return nums;
}

function choice<T extends string>(v: unknown, choices: readonly T[], where: string): T {
  const hit = choices.find((c) => typeof v === 'string' && c.toLowerCase() === v.toLowerCase());
  if (!hit) throw new HeadstartError('BAD_INPUT', `${where} must be ${choices.join(' or ')} (got ${JSON.stringify(v)})`);
  return hit;
}

const SIDECAR_KEYS = ['input', 'size', 'layout', 'channelOrder', 'range', 'mean', 'std', 'resize', 'output', 'pooling'] as const;

/** Checks preprocessing fields from a sidecar (or the panel): known keys, each of its type. */
export function parseInputFlags(raw: unknown, where: string): OnnxInputFlags {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new HeadstartError('BAD_INPUT', `${where} must be a JSON object with some of: ${SIDECAR_KEYS.join(', ')}`);
  const r = raw as Record<string, unknown>;
  const unknown = Object.keys(r).filter((k) => !(SIDECAR_KEYS as readonly string[]).includes(k));
  if (unknown.length) throw new HeadstartError('BAD_INPUT', `${where} has unknown key '${unknown[0]}' (known: ${SIDECAR_KEYS.join(', ')})`);
  const f: OnnxInputFlags = {};
  const str = (k: 'input' | 'output') => {
    if (typeof r[k] !== 'string' || !r[k]) throw new HeadstartError('BAD_INPUT', `${where}: '${k}' must be a tensor name (got ${JSON.stringify(r[k])})`);
    return r[k] as string;
  };
  if (r.input !== undefined) f.input = str('input');
  if (r.output !== undefined) f.output = str('output');
  if (r.size !== undefined) {
    const o = NUMERIC_OPTIONS['input-size'];
    if (!(Number.isInteger(r.size) && (r.size as number) >= o.min && (r.size as number) <= o.max)) throw new HeadstartError('BAD_INPUT', `${where}: 'size' must be a whole number of pixels from ${o.min} to ${o.max} (got ${JSON.stringify(r.size)})`);
    f.size = r.size as number;
  }
  if (r.layout !== undefined) f.layout = choice(r.layout, LAYOUT_CHOICES, `${where}: 'layout'`);
  if (r.channelOrder !== undefined) f.channelOrder = choice(r.channelOrder, CHANNEL_ORDER_CHOICES, `${where}: 'channelOrder'`);
  if (r.range !== undefined) f.range = parseRange(r.range, `${where}: 'range'`);
  if (r.mean !== undefined) f.mean = parseChannelList(r.mean, 'mean', `${where}: 'mean'`);
  if (r.std !== undefined) f.std = parseChannelList(r.std, 'std', `${where}: 'std'`);
  if (r.pooling !== undefined) f.pooling = choice(r.pooling, POOLING_CHOICES, `${where}: 'pooling'`);
  if (r.resize !== undefined && r.resize !== 'centre-crop') throw new HeadstartError('BAD_INPUT', `${where}: 'resize' must be "centre-crop" (got ${JSON.stringify(r.resize)}); this version centre-crops to a square, then resizes, for every backbone`);
  return f;
}

/** The sidecar beside a local model, if there is one, and its path. */
async function readSidecar(file: string): Promise<{ flags: OnnxInputFlags; file?: string }> {
  for (const s of sidecarNames(file)) {
    if (await exists(s)) return { flags: parseInputFlags(await readJson<unknown>(s, 'ONNX preprocessing sidecar'), s), file: s };
  }
  return { flags: {} };
}

/** Reads bytes as an ONNX model; BAD_MODEL naming the file when they are not one. */
export function decodeOnnx(bytes: Uint8Array, where: string): onnx.ModelProto {
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new HeadstartError('BAD_MODEL', `${where} is not an ONNX model (${describeError(err)})`, { cause: err });
  }
  if (!model.graph || !model.graph.node?.length || !model.opsetImport?.length) throw new HeadstartError('BAD_MODEL', `${where} is not an ONNX model (no graph with nodes and an opset in it)`);
  if (model.graph.initializer?.some((t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL)) throw new HeadstartError('BAD_MODEL', `${where} keeps its weights in external data files; save it as one self-contained .onnx file`);
  return model;
}

const dimOf = (d: onnx.TensorShapeProto.IDimension): number | string => (d.dimValue !== undefined && d.dimValue !== null && Number(d.dimValue) > 0 ? Number(d.dimValue) : d.dimParam || '?');
const shapeText = (dims: Array<number | string>): string => `[${dims.join(', ')}]`;
const isChannels = (d: number | string): boolean => d === 1 || d === 3;

/** The graph's image input and its dims (inputs that are initializers are weights of old exports, not inputs). */
function imageInput(graph: onnx.IGraphProto, name: string | undefined, where: string): { name: string; dims: Array<number | string> } {
  const weights = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((i) => !weights.has(i.name));
  const names = inputs.map((i) => i.name).join(', ');
  const input = name ? inputs.find((i) => i.name === name) : inputs.length === 1 ? inputs[0] : undefined;
  if (!input) throw new HeadstartError('BAD_MODEL', name ? `${where} has no input '${name}' (inputs: ${names})` : `${where} has ${inputs.length} inputs (${names}); name the image input in the sidecar ('input')`);
  const t = input.type?.tensorType;
  if (!t) throw new HeadstartError('BAD_MODEL', `${where}: input '${input.name}' is not a tensor`);
  if (t.elemType !== onnx.TensorProto.DataType.FLOAT) throw new HeadstartError('BAD_MODEL', `${where}: input '${input.name}' is ${onnx.TensorProto.DataType[t.elemType ?? 0] ?? t.elemType}, not float32; Headstart feeds float32 images`);
  return { name: input.name!, dims: (t.shape?.dim ?? []).map(dimOf) };
}

/** Layout, channels and size from the input's dims and what was given; BAD_MODEL / BAD_INPUT naming what was found. */
function detectInput(dims: Array<number | string>, f: OnnxInputFlags, input: string, where: string): Pick<OnnxInputSpec, 'layout' | 'channels' | 'size'> {
  const shape = shapeText(dims);
  if (dims.length !== 4) throw new HeadstartError('BAD_MODEL', `${where}: input '${input}' has shape ${shape} (rank ${dims.length}), not an image tensor [N, C, H, W] or [N, H, W, C]`);
  let layout = f.layout;
  if (!layout) {
    if (isChannels(dims[1]!) && !isChannels(dims[3]!)) layout = 'NCHW';
    else if (isChannels(dims[3]!) && !isChannels(dims[1]!)) layout = 'NHWC';
    else if (typeof dims[1] === 'number' && typeof dims[3] === 'number' && !isChannels(dims[1]) && !isChannels(dims[3])) throw new HeadstartError('BAD_MODEL', `${where}: input '${input}' has shape ${shape}: neither dim 1 nor dim 3 is 1 or 3 channels, not an image tensor`);
    else throw new HeadstartError('BAD_INPUT', `${where}: input '${input}' has shape ${shape}, whose layout is ambiguous; give --layout NCHW or NHWC (or 'layout' in the sidecar)`);
  }
  const [c, h, w] = layout === 'NCHW' ? [dims[1]!, dims[2]!, dims[3]!] : [dims[3]!, dims[1]!, dims[2]!];
  if (typeof c === 'number' && !isChannels(c)) throw new HeadstartError('BAD_MODEL', `${where}: input '${input}' has ${c} channels in ${layout} ${shape}; an image input has 1 or 3`);
  if (typeof h === 'number' && typeof w === 'number' && h !== w) throw new HeadstartError('BAD_MODEL', `${where}: input '${input}' is ${h}x${w} pixels ${shape}; Headstart feeds square images`);
  const fixed = typeof h === 'number' ? h : typeof w === 'number' ? w : undefined;
  if (fixed !== undefined && f.size !== undefined && f.size !== fixed) throw new HeadstartError('BAD_INPUT', `--input-size ${f.size} conflicts with ${where}'s fixed input of ${fixed} pixels ${shape}`);
  const size = fixed ?? f.size;
  if (size === undefined) throw new HeadstartError('BAD_INPUT', `${where}: input '${input}' has a dynamic spatial size ${shape}; give --input-size N (or 'size' in the sidecar)`);
  const o = NUMERIC_OPTIONS['input-size'];
  if (size < o.min || size > o.max) throw new HeadstartError('BAD_MODEL', `${where}: input '${input}' is ${size} pixels a side; a backbone's input must be from ${o.min} to ${o.max}`);
  return { layout, channels: typeof c === 'number' ? (c as 1 | 3) : 3, size };
}

/** The full preprocessing of a decoded model: given fields first, then the graph; defaults [0,1], mean 0, std 1, average pooling. */
export function resolveInputSpec(model: onnx.ModelProto, f: OnnxInputFlags, where: string): { spec: OnnxInputSpec; assumed: boolean } {
  const graph = model.graph!;
  const input = imageInput(graph, f.input, where);
  const { layout, channels, size } = detectInput(input.dims, f, input.name, where);
  const outputs = (graph.output ?? []).map((o) => o.name!);
  const output = f.output ?? outputs.at(-1);
  if (!output) throw new HeadstartError('BAD_MODEL', `${where} has no outputs`);
  if (!outputs.includes(output) && !graph.node!.some((n) => n.output?.includes(output))) throw new HeadstartError('BAD_INPUT', `${where} has no tensor '${output}' (outputs: ${outputs.join(', ')})`);
  const perChannel = (v: number[] | undefined, dflt: number, name: string): number[] => {
    const list = v ?? [dflt];
    if (list.length === channels) return list;
    if (list.length === 1) return Array(channels).fill(list[0]) as number[];
    throw new HeadstartError('BAD_INPUT', `--${name} has ${list.length} values, but '${input.name}' has ${channels} channel${channels > 1 ? 's' : ''}`);
  };
  const spec: OnnxInputSpec = {
    input: input.name,
    size,
    layout,
    channels,
    channelOrder: channels === 3 ? (f.channelOrder ?? 'RGB') : 'RGB',
    range: f.range ?? [0, 1],
    mean: perChannel(f.mean, 0, 'mean'),
    std: perChannel(f.std, 1, 'std'),
    resize: 'centre-crop',
    output,
    pooling: f.pooling ?? 'avg',
  };
  return { spec, assumed: !f.range && !f.mean && !f.std };
}

/** Names Headstart's wrapper uses; a foreign tensor of the same name is renamed out of the way. */
const IMAGE = 'image';
const FEATURES = 'features';

function renameTensors(graph: onnx.IGraphProto, rename: Map<string, string>): void {
  const r = (n: string) => rename.get(n) ?? n;
  for (const node of graph.node ?? []) {
    node.input = (node.input ?? []).map(r);
    node.output = (node.output ?? []).map(r);
  }
  for (const t of graph.initializer ?? []) t.name = r(t.name!);
  for (const v of [...(graph.input ?? []), ...(graph.output ?? [])]) v.name = r(v.name!);
}

/**
 * The wrapped model: `image` [N|1, size, size, 3] float 0..255 RGB → channel
 * order, range, mean/std (one MatMul by a 3×C matrix and one Add) → layout →
 * the foreign graph → pooling of a 4-D output → `features` [N, D]. The
 * foreign graph's opset is kept (every op added exists since opset 1).
 */
export function wrapForeign(model: onnx.ModelProto, spec: OnnxInputSpec, outputRank: number): Uint8Array {
  const graph = model.graph!;
  const rename = new Map<string, string>();
  const taken = new Set((graph.node ?? []).flatMap((n) => [...(n.input ?? []), ...(n.output ?? [])]));
  for (const n of [IMAGE, FEATURES]) if (taken.has(n)) rename.set(n, `${n}__foreign`);
  renameTensors(graph, rename);
  const foreignInput = rename.get(spec.input) ?? spec.input;
  const output = rename.get(spec.output) ?? spec.output;
  const b = new OnnxBuilder();
  // The foreign graph's names are left alone: every name added below starts with headstart_pre/ or headstart_post/.
  const [lo, hi] = spec.range;
  const C = spec.channels;
  // Column c of the matrix picks the model's channel c from R, G, B (or mixes luma), scaled onto range/std.
  const w = new Float32Array(3 * C);
  const luma = [0.299, 0.587, 0.114];
  for (let c = 0; c < C; c++) {
    const scale = (hi - lo) / 255 / spec.std[c]!;
    for (let k = 0; k < 3; k++) {
      const pick = C === 1 ? luma[k]! : (spec.channelOrder === 'BGR' ? 2 - c : c) === k ? 1 : 0;
      w[k * C + c] = pick * scale;
    }
  }
  const bias = Float32Array.from({ length: C }, (_, c) => (lo - spec.mean[c]!) / spec.std[c]!);
  const mixed = b.node('MatMul', [IMAGE, b.init(b.fresh('headstart_pre/weights'), [3, C], w)], 'headstart_pre/mix');
  const nhwc = spec.layout === 'NHWC';
  b.node('Add', [mixed, b.init(b.fresh('headstart_pre/bias'), [C], bias)], 'headstart_pre/normalise', {}, nhwc ? [foreignInput] : undefined);
  if (!nhwc) b.node('Transpose', [b.nodes.at(-1)!.output![0]!], 'headstart_pre/layout', { perm: [0, 3, 1, 2] }, [foreignInput]);
  const preNodes = b.nodes.splice(0);
  if (outputRank === 4) {
    const nchw = nhwc ? b.node('Transpose', [output], 'headstart_post/layout', { perm: [0, 3, 1, 2] }) : output;
    const pooled = b.node(spec.pooling === 'max' ? 'GlobalMaxPool' : 'GlobalAveragePool', [nchw], 'headstart_post/pool');
    b.node('Flatten', [pooled], 'headstart_post/flatten', { axis: 1 }, [FEATURES]);
  } else b.node('Flatten', [output], 'headstart_post/flatten', { axis: 1 }, [FEATURES]);
  const floatInfo = (name: string, dims?: Array<number | string>): onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: dims ? { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } : undefined } },
  });
  const weights = new Set((graph.initializer ?? []).map((t) => t.name));
  const wrapped: onnx.IModelProto = {
    ...model,
    graph: {
      ...graph,
      node: [...preNodes, ...graph.node!, ...b.nodes],
      initializer: [...(graph.initializer ?? []), ...b.initializers],
      // Old exports list their weights as inputs too: those stay; the image input is now ours.
      input: [floatInfo(IMAGE, [spec.batch ?? 'N', spec.size, spec.size, 3]), ...(graph.input ?? []).filter((i) => weights.has(i.name))],
      output: [floatInfo(FEATURES)],
      // Shape hints of the foreign graph may fix the batch to 1; ONNX Runtime infers shapes itself.
      valueInfo: [],
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(wrapped)).finish();
}

/** The model with `output` as its only output (the probe reads its shape, even for an inner tensor). */
function withOutput(model: onnx.ModelProto, output: string): Uint8Array {
  const copy = onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  copy.graph!.output = [{ name: output, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } }];
  copy.graph!.valueInfo = [];
  return onnx.ModelProto.encode(copy).finish();
}

type Session = import('onnxruntime-node').InferenceSession;

async function createSession(bytes: Uint8Array, what: string): Promise<Session> {
  const ort = loadOrt();
  if (!ort) throw new HeadstartError('BACKEND', `ONNX models run in ONNX Runtime, which is not available here (${ortUnavailableReason()})`);
  try {
    return await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1, extra: { session: { intra_op: { allow_spinning: '0' } } } });
  } catch (err) {
    throw new HeadstartError('BAD_MODEL', `ONNX Runtime cannot load ${what}: ${describeError(err).split('\n')[0]}`, { cause: err });
  }
}

/** Runs `bytes` once on zeros of `dims`; returns the first output's dims, or the error's first line. */
async function probe(bytes: Uint8Array, what: string, feed: string, dims: number[]): Promise<{ dims?: number[]; error?: string }> {
  const ort = loadOrt()!;
  const session = await createSession(bytes, what);
  try {
    const out = await session.run({ [feed]: new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)), dims) });
    return { dims: [...(Object.values(out)[0]!.dims as readonly number[])] };
  } catch (err) {
    return { error: describeError(err).split('\n')[0] };
  } finally {
    await session.release();
  }
}

/**
 * Runs the model once on one zero image as `spec` says and reads the feature
 * output's shape: a vector [N, D] or a map [N, C, H, W] / [N, H, W, C];
 * BAD_MODEL naming what was found otherwise.
 */
async function probeFeatures(model: onnx.ModelProto, spec: OnnxInputSpec, where: string): Promise<{ rank: 2 | 4; featureSize: number }> {
  const dims = spec.layout === 'NCHW' ? [1, spec.channels, spec.size, spec.size] : [1, spec.size, spec.size, spec.channels];
  const raw = await probe(withOutput(model, spec.output), where, spec.input, dims);
  if (raw.error) throw new HeadstartError('BAD_MODEL', `ONNX Runtime cannot run ${where} on a ${shapeText(dims)} input: ${raw.error}`);
  const out = raw.dims!;
  if (out.length !== 2 && out.length !== 4) throw new HeadstartError('BAD_MODEL', `${where}: output '${spec.output}' has shape ${shapeText(out)}, neither a feature vector [N, D] nor a spatial map [N, C, H, W]; name another with --output`);
  return { rank: out.length as 2 | 4, featureSize: out.length === 2 ? out[1]! : spec.layout === 'NCHW' ? out[1]! : out[3]! };
}

/**
 * Checks that ONNX Runtime loads and runs the model as `spec` says, reads the
 * feature output's shape (a vector [N, D] or a map [N, C, H, W] / [N, H, W, C]),
 * and wraps it; a model that cannot take two images at once is wrapped with
 * a batch of 1. Returns the wrapped bytes and the feature size.
 */
export async function buildWrapped(model: onnx.ModelProto, spec: OnnxInputSpec, where: string): Promise<{ bytes: Uint8Array; spec: OnnxInputSpec; featureSize: number }> {
  const { rank, featureSize } = await probeFeatures(model, spec, where);
  const copy = () => onnx.ModelProto.decode(onnx.ModelProto.encode(model).finish());
  let bytes = wrapForeign(copy(), spec, rank);
  const two = await probe(bytes, `${where} (wrapped)`, IMAGE, [2, spec.size, spec.size, 3]);
  if (two.error) {
    // Some exports fix the batch to 1 inside the graph (a Reshape to [1, D]): run those one image at a time.
    const one: OnnxInputSpec = { ...spec, batch: 1 };
    bytes = wrapForeign(copy(), one, rank);
    const single = await probe(bytes, `${where} (wrapped)`, IMAGE, [1, spec.size, spec.size, 3]);
    if (single.error) throw new HeadstartError('BAD_MODEL', `ONNX Runtime cannot run ${where} behind Headstart's preprocessing: ${single.error}`);
    return { bytes, spec: one, featureSize };
  }
  return { bytes, spec, featureSize };
}

/** Where a foreign model comes from: its bytes, an id for the run record, a title, a source, a licence. */
interface ForeignSource {
  bytes: Buffer;
  id: string;
  title: string;
  source: string;
  licence: string;
  /** Preprocessing the source itself knows (sidecar, catalogue). */
  known: OnnxInputFlags;
  /** The sidecar file `known` was read from (a local model's). */
  sidecar?: string;
}

async function localSource(file: string): Promise<ForeignSource> {
  const abs = path.resolve(file);
  let bytes: Buffer;
  try {
    const st = await fs.stat(abs);
    if (!st.isFile()) throw new HeadstartError('BAD_INPUT', `--backbone ${file} is not a file; give a path to a .onnx file`);
    bytes = await fs.readFile(abs);
  } catch (err) {
    if (err instanceof HeadstartError) throw err;
    throw new HeadstartError('NOT_FOUND', `cannot read ONNX model ${file} (${(err as NodeJS.ErrnoException).code ?? describeError(err)})`, { cause: err });
  }
  const sidecar = await readSidecar(abs);
  return { bytes, id: `onnx:${abs}`, title: `ONNX model ${path.basename(abs)}`, source: abs, licence: 'as given by its owner', known: sidecar.flags, ...(sidecar.file ? { sidecar: sidecar.file } : {}) };
}

async function remoteSource(idOrUrl: string, cacheDir: string, opts: DownloadOptions): Promise<ForeignSource> {
  const entry = findBackbone(idOrUrl);
  const url = entry?.url ?? idOrUrl;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    throw new HeadstartError('BAD_INPUT', `--backbone ${url} is not a valid URL`, { cause: err });
  }
  const folder = entry ? entry.id : `url-${sha256(url).slice(0, 16)}`;
  const bytes = await resolveRemoteOnnx(url, path.join(cacheDir, 'backbones', folder), entry?.files?.find((f) => f.path === REMOTE_ONNX_FILE), opts);
  return {
    bytes,
    id: entry?.id ?? url,
    title: entry?.title ?? `ONNX model ${path.basename(parsed.pathname)}`,
    source: entry?.source ?? url,
    licence: entry?.licence ?? 'as given by its owner',
    known: entry?.onnxInput ?? {},
  };
}

/**
 * Resolves a foreign ONNX backbone: a path to a .onnx file (`onnx:` + path as
 * recorded in a run), a URL, or a catalogue entry of format onnx. `flags`
 * override the sidecar / catalogue; the graph supplies the rest. The wrapped
 * model is built once per (model sha256, preprocessing, wrapper version) in
 * `cacheDir/onnx/` as an ONNX backbone folder. `modelHash` is the sha256 of
 * the user's model file; the preprocessing is `entry.onnxInput`.
 */
export async function resolveForeignOnnx(idOrPath: string, cacheDir: string, flags: OnnxInputFlags = {}, progress: Progress & DownloadOptions = {}): Promise<ResolvedBackbone> {
  const isRemote = /^https?:\/\//i.test(idOrPath) || !!findBackbone(idOrPath);
  const src = isRemote ? await remoteSource(idOrPath, cacheDir, progress) : await localSource(idOrPath.replace(/^onnx:/, ''));
  const modelHash = sha256(src.bytes);
  const model = decodeOnnx(src.bytes, src.source);
  const { spec, assumed } = resolveInputSpec(model, { ...src.known, ...definedFlags(flags) }, src.source);
  if (assumed) progress.onEvent?.({ type: 'warning', message: `no preprocessing given for ${src.source}: assuming inputs in [0,1] without mean/std; give --range/--mean/--std or a sidecar ${path.basename(sidecarNames('model.onnx')[0]!)} if the model expects otherwise` });
  const dir = path.join(cacheDir, 'onnx', `byo-${modelHash.slice(0, 16)}-${sha256(JSON.stringify(spec)).slice(0, 12)}-w${WRAP_VERSION}`);
  let entry: BackboneEntry | undefined;
  if ((await exists(path.join(dir, ONNX_BACKBONE_FILE))) && (await exists(path.join(dir, ONNX_BACKBONE_META)))) {
    const meta = (await readJson<OnnxBackboneMeta>(path.join(dir, ONNX_BACKBONE_META), 'wrapped ONNX backbone')).entry;
    // The same file reached by another path or URL: the wrapped model is shared, the names are this source's.
    if (meta?.onnxInput && meta.featureSize > 0) entry = { ...meta, id: src.id, title: src.title, source: src.source, licence: src.licence };
  }
  if (!entry) {
    progress.onEvent?.({ type: 'phase', phase: 'backend', message: `preparing ONNX model ${src.source} (${shapeText([spec.batch ?? 'N', ...(spec.layout === 'NCHW' ? [spec.channels, spec.size, spec.size] : [spec.size, spec.size, spec.channels])])} ${spec.layout})` });
    const w = await buildWrapped(model, spec, src.source);
    entry = {
      id: src.id,
      title: src.title,
      task: 'image',
      format: 'onnx',
      inputSize: spec.size,
      inputRange: spec.range,
      featureNode: spec.output,
      pool: true,
      featureSize: w.featureSize,
      licence: src.licence,
      source: src.source,
      bundled: false,
      approxBytes: src.bytes.length,
      onnxInput: w.spec,
    };
    await fs.mkdir(dir, { recursive: true });
    await writeOnnxBackbone(dir, w.bytes, { entry });
  }
  return { entry, dir, modelHash };
}

const definedFlags = (flags: OnnxInputFlags): OnnxInputFlags => Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) as OnnxInputFlags;

/** A local foreign model's preprocessing as training would resolve it, where each value came from, and its feature size. */
export interface ForeignPreview {
  spec: OnnxInputSpec;
  from: Record<OnnxInputField, OnnxInputSource>;
  featureSize: number;
  /** The graph's outputs. */
  outputs: string[];
  /** The sidecar read, if any. */
  sidecar?: string;
}

/**
 * What `train --backbone FILE` with `flags` would feed a local .onnx model
 * (flags over its sidecar over its graph over the defaults), checked by
 * running it once in ONNX Runtime; nothing is written. Throws the same
 * one-line HeadstartError training would for a model it refuses.
 */
export async function previewForeignOnnx(file: string, flags: OnnxInputFlags = {}): Promise<ForeignPreview> {
  if (/^https?:\/\//i.test(file) || !isOnnxModelFile(file)) throw new HeadstartError('BAD_INPUT', `${file} is not a local .onnx file; the preprocessing is read from a model file`);
  const abs = path.resolve(file.replace(/^onnx:/, ''));
  const src = await localSource(abs);
  const given = definedFlags(flags);
  const model = decodeOnnx(src.bytes, src.source);
  const { spec } = resolveInputSpec(model, { ...src.known, ...given }, src.source);
  const { featureSize } = await probeFeatures(model, spec, src.source);
  const detected: Record<OnnxInputField, OnnxInputSource> = { input: 'graph', size: 'graph', layout: 'graph', output: 'graph', channelOrder: spec.channels === 1 ? 'graph' : 'default', range: 'default', mean: 'default', std: 'default', pooling: 'default' };
  const from = Object.fromEntries(ONNX_INPUT_FIELDS.map((k) => [k, given[k] !== undefined ? 'flag' : src.known[k] !== undefined ? 'sidecar' : detected[k]])) as Record<OnnxInputField, OnnxInputSource>;
  return { spec, from, featureSize, outputs: (model.graph!.output ?? []).map((o) => o.name!), ...(src.sidecar ? { sidecar: src.sidecar } : {}) };
}

/** The preprocessing flags of `train` as typed (strings), checked; messages name the flag. */
export interface OnnxInputFlagText {
  inputSize?: number;
  layout?: string;
  channelOrder?: string;
  range?: string;
  mean?: string;
  std?: string;
  output?: string;
  pooling?: string;
}

/** Parses --layout, --channel-order, --range, --mean, --std, --output, --pooling (and an already parsed --input-size). */
export function parseInputFlagText(t: OnnxInputFlagText): OnnxInputFlags | undefined {
  const f: OnnxInputFlags = {};
  if (t.inputSize !== undefined) f.size = t.inputSize;
  if (t.layout !== undefined) f.layout = choice(t.layout, LAYOUT_CHOICES, '--layout');
  if (t.channelOrder !== undefined) f.channelOrder = choice(t.channelOrder, CHANNEL_ORDER_CHOICES, '--channel-order');
  if (t.range !== undefined) f.range = parseRange(t.range, '--range');
  if (t.mean !== undefined) f.mean = parseChannelList(t.mean, 'mean', '--mean');
  if (t.std !== undefined) f.std = parseChannelList(t.std, 'std', '--std');
  if (t.pooling !== undefined) f.pooling = choice(t.pooling, POOLING_CHOICES, '--pooling');
  if (t.output !== undefined) {
    if (!t.output.trim()) throw new HeadstartError('BAD_INPUT', '--output needs the name of a tensor of the model (got an empty value)');
    f.output = t.output;
  }
  return Object.keys(f).length ? f : undefined;
}

/**
 * The wrapped model file of a run's foreign backbone (`dir` from run.json),
 * rebuilt from its source with the recorded preprocessing when the cache has
 * lost it; BAD_MODEL when the source is no longer the file the run was
 * trained on.
 */
export async function ensureForeignWrapped(b: { id: string; dir: string; modelHash: string; onnxInput: OnnxInputSpec }, progress: Progress = {}): Promise<string> {
  const file = path.join(b.dir, ONNX_BACKBONE_FILE);
  if ((await exists(file)) && (await exists(path.join(b.dir, ONNX_BACKBONE_META)))) return file;
  // dir is <cacheDir>/onnx/byo-…: rebuilt into the same place.
  const { batch: _batch, channels: _channels, ...flags } = b.onnxInput;
  const again = await resolveForeignOnnx(b.id, path.dirname(path.dirname(b.dir)), flags, progress);
  if (again.modelHash !== b.modelHash) throw new HeadstartError('BAD_MODEL', `backbone ${b.id} changed since this run was trained (its ONNX file differs); train again`);
  return path.join(again.dir, ONNX_BACKBONE_FILE);
}
