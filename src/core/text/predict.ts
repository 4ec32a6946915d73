import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend';
import { defaultCacheDir } from '../backbones/store';
import type { EngineOptions } from '../engine';
import { HeadstartError } from '../errors';
import type { Progress } from '../events';
import { type Skipped } from '../data/dataset';
import { UnreadableFileError, withRegularFile } from '../data/files';
import { exists, readJson } from '../fsutil';
import { loadOrt, ortUnavailableReason } from '../onnx/engine';
import { type LoadedRun, headProbs, loadRun } from '../runFolder';
import { type EvalResult, evaluatePredictions } from '../train/metrics';
import { dirLoader } from '../tfjsio';
import { MAX_TEXT_BYTES, decodeText, textExactHash, textRefusal } from './decode';
import { discoverTextDataset, snippet } from './dataset';
import { type TextEmbedder, openGlove, openOnnxEncoder, openTextBackbone } from './encoder';
import { embedTexts } from './embed';

/** One text to classify: given on the command line / stdin (`text`), or read from `path`. */
export interface TextInput {
  path?: string;
  text: string;
}

/** A text prediction line: `text` is a one-line snippet of the input; `path` when it came from a file. */
export interface TextPrediction {
  path?: string;
  text: string;
  label: string;
  probability: number;
  top: Array<{ label: string; probability: number }>;
  /** Word tokens with a vector over all word tokens of this text. */
  coverage: number;
}

export type TextPredictLine = TextPrediction | { path?: string; text?: string; error: string };

/** True when MODEL_DIR is a text run or a text export. */
export async function isTextModel(modelDir: string): Promise<boolean> {
  if (await exists(path.join(modelDir, 'run.json'))) return (await readJson<{ modality?: string }>(path.join(modelDir, 'run.json'), 'run record')).modality === 'text';
  if (await exists(path.join(modelDir, 'metadata.json'))) return (await readJson<{ headstart?: { modality?: string } }>(path.join(modelDir, 'metadata.json'), 'export metadata')).headstart?.modality === 'text';
  return false;
}

/** Reads text files to classify (regular files, decoded like the dataset's); a bad one gives an error line. */
export async function readTextInputs(files: string[]): Promise<Array<TextInput | { path: string; error: string }>> {
  const out: Array<TextInput | { path: string; error: string }> = [];
  for (const f of files) {
    try {
      const buf = await withRegularFile(f, async (fh, st) => {
        if (st.size > 4 * MAX_TEXT_BYTES + 4) throw new UnreadableFileError(`file is ${st.size} bytes, over the ${MAX_TEXT_BYTES}-byte limit for one text`);
        return (await fh.readFile()) as Buffer;
      });
      const d = decodeText(buf);
      const why = d.ok ? textRefusal(d.text) : d.reason;
      out.push(why ? { path: f, error: why } : { path: f, text: (d as { text: string }).text.trim() });
    } catch (err) {
      if (!(err instanceof UnreadableFileError)) throw err;
      out.push({ path: f, error: err.message });
    }
  }
  return out;
}

function line(input: TextInput, labels: string[], probs: ArrayLike<number>, c: { known: number; words: number }): TextPrediction {
  const top = Array.from(probs, (p, i) => ({ label: labels[i]!, probability: p })).sort((a, b) => b.probability - a.probability);
  return { ...(input.path ? { path: input.path } : {}), text: snippet(input.text, 80), label: top[0]!.label, probability: top[0]!.probability, top: top.slice(0, 5), coverage: c.words ? c.known / c.words : 1 };
}

/** Text export metadata (metadata.json → headstart). */
interface TextExportMeta {
  labels: string[];
  headstart: { modality: 'text'; format: 'tfjs' | 'onnx'; backbone: string; kind: TextEmbedder['kind']; featureSize: number };
}

/**
 * Classifies texts with a text run (embeddings through the cache + head) or
 * a text export folder (its own vocabulary or encoder, and its head in TF.js
 * or ONNX).
 */
export async function predictTexts(modelDir: string, inputs: Array<TextInput | { path: string; error: string }>, opts: EngineOptions = {}, progress: Progress = {}): Promise<TextPredictLine[]> {
  if (!inputs.length) throw new HeadstartError('BAD_INPUT', 'give at least one text to classify (arguments, --text, files or - for stdin)');
  const ok = inputs.filter((i): i is TextInput => !('error' in i));
  let probs: Float32Array = new Float32Array(0);
  let cov: Array<{ known: number; words: number }> = [];
  let labels: string[];
  if (await exists(path.join(modelDir, 'run.json'))) {
    const run = await loadRun(modelDir, opts.backend);
    try {
      labels = run.record.labels;
      if (ok.length) ({ probs, coverage: cov } = await textRunProbs(run, ok.map((i) => i.text), opts.cacheDir ?? defaultCacheDir(), progress));
    } finally {
      run.head.dispose();
    }
  } else {
    const exp = await loadTextExport(modelDir, opts);
    try {
      labels = exp.labels;
      if (ok.length) ({ probs, coverage: cov } = await exp.classify(ok.map((i) => i.text)));
    } finally {
      exp.dispose();
    }
  }
  const k = labels.length;
  let at = 0;
  return inputs.map((i) => ('error' in i ? i : line(i, labels, probs.subarray(at * k, (at + 1) * k), cov[at++]!)));
}

/** The vocabulary (vocab/) or encoder (encoder/) a text export folder carries. */
export async function openExportEmbedder(dir: string, kind: TextEmbedder['kind']): Promise<TextEmbedder> {
  return kind === 'onnx-encoder' ? await openOnnxEncoder(path.join(dir, 'encoder')) : await openGlove(path.join(dir, 'vocab'));
}

/** A text model's head, loaded from its files: features [n, d] in, probabilities out. */
export interface TextHead {
  run(x: Float32Array, n: number): Promise<Float32Array>;
  dispose(): void;
}

/** Loads the head of a text export from `dir`: model.onnx in ONNX Runtime, or model.json + weights with TF.js. */
export async function openTextHead(dir: string, format: 'tfjs' | 'onnx', d: number, opts: EngineOptions = {}): Promise<TextHead> {
  if (format === 'onnx') {
    const ort = loadOrt();
    if (!ort) throw new HeadstartError('BACKEND', `this export is ONNX and ONNX Runtime is not available here (${ortUnavailableReason()})`);
    const session = await ort.InferenceSession.create(path.join(dir, 'model.onnx'), { intraOpNumThreads: opts.workers ?? 1 });
    return { run: async (x, n) => (await session.run({ features: new ort.Tensor('float32', x, [n, d]) })).probabilities!.data as Float32Array, dispose: () => void session.release() };
  }
  await initBackend(opts.backend ?? 'auto');
  const model = await tf.loadLayersModel(dirLoader(dir));
  return { run: async (x, n) => tf.tidy(() => (model.predict(tf.tensor2d(x, [n, d])) as tf.Tensor).dataSync() as Float32Array), dispose: () => model.dispose() };
}

/** A text export folder, loaded: its labels and a classifier of texts. */
export async function loadTextExport(dir: string, opts: EngineOptions = {}): Promise<{ labels: string[]; classify(texts: string[]): Promise<{ probs: Float32Array; coverage: Array<{ known: number; words: number }> }>; dispose(): void }> {
  const meta = await readJson<TextExportMeta>(path.join(dir, 'metadata.json'), 'export metadata');
  if (meta.headstart?.modality !== 'text') throw new HeadstartError('BAD_INPUT', `${dir} is not a text export (metadata.json); predict images with it instead`);
  const embedder = await openExportEmbedder(dir, meta.headstart.kind);
  const d = meta.headstart.featureSize;
  let head: TextHead;
  try {
    head = await openTextHead(dir, meta.headstart.format, d, opts);
  } catch (err) {
    embedder.dispose();
    throw err;
  }
  const run = head.run;
  const release = head.dispose;
  return {
    labels: meta.labels,
    classify: async (texts) => {
      const emb = await embedder.embed(texts);
      const x = new Float32Array(texts.length * d);
      emb.forEach((e, i) => x.set(e.vector, i * d));
      return { probs: await run(x, texts.length), coverage: emb.map((e) => ({ known: e.known, words: e.words })) };
    },
    dispose: () => {
      release();
      embedder.dispose();
    },
  };
}

/** The test split of a text run (texts re-read from DATA, matched by place and exact content), or another labelled DATA. */
export async function textEvalItems(run: LoadedRun, data: string | undefined, progress: Progress = {}): Promise<{ items: Array<{ path: string; label: string; text: string }>; skipped: Skipped[] }> {
  return textSplitItems(run, 'test', data, progress);
}

/** One split of a text run (texts re-read from its DATA, matched by place and exact content); with `data`, every labelled text of that DATA instead. */
export async function textSplitItems(run: LoadedRun, split: 'train' | 'val' | 'test', data?: string, progress: Progress = {}): Promise<{ items: Array<{ path: string; label: string; text: string; rel: string }>; skipped: Skipped[] }> {
  const cols = run.record.text?.columns;
  const ds = await discoverTextDataset(data ?? run.record.config.data, { ...progress, textColumn: cols?.text, labelColumn: cols?.label });
  const skipped: Skipped[] = data ? [...ds.skipped] : [];
  const labels = run.record.labels;
  if (data) {
    const items = ds.samples.filter((s) => labels.includes(s.label) || (skipped.push({ path: s.path, reason: `label '${s.label}' is not one of the model's classes (${labels.join(', ')})` }), false));
    return { items, skipped };
  }
  const byRel = new Map(ds.samples.map((s) => [s.rel, s]));
  const items: Array<{ path: string; label: string; text: string; rel: string }> = [];
  for (const s of run.record.samples.filter((x) => x.split === split)) {
    const now = byRel.get(s.rel);
    const name = split === 'val' ? 'validation' : split === 'train' ? 'training' : 'test';
    if (!now || now.exact !== s.hash) skipped.push({ path: path.join(run.record.dataset.root, s.rel), reason: now ? `${name} text changed since training; left out` : `${name} text no longer readable` });
    else items.push({ path: now.path, label: s.label, text: now.text, rel: s.rel });
  }
  return { items, skipped };
}

/** `eval` of a text run: metrics on its test split or on DATA. */
export async function evalTextRun(run: LoadedRun, data: string | undefined, opts: EngineOptions, progress: Progress = {}): Promise<EvalResult & { skipped: Skipped[] }> {
  const { items, skipped } = await textEvalItems(run, data, progress);
  const labels = run.record.labels;
  if (!items.length) throw new HeadstartError('NO_DATA', data ? `no texts in ${data} carry one of the model's labels (${labels.join(', ')})` : `${run.dir} has no test texts left to evaluate`);
  const { probs } = await textRunProbs(run, items.map((i) => i.text), opts.cacheDir ?? defaultCacheDir(), progress);
  return { ...evaluatePredictions(labels, Int32Array.from(items.map((i) => labels.indexOf(i.label))), probs, items.map((i) => i.path)), skipped };
}


/** Opens a text run's backbone and checks it is the model the run was trained on. */
export async function openRunTextBackbone(run: LoadedRun, cacheDir: string, progress: Progress = {}): Promise<TextEmbedder> {
  const b = run.record.backbone;
  const e = await openTextBackbone(b.id.startsWith('local:') ? b.id.slice('local:'.length) : b.id, cacheDir, progress);
  if (e.modelHash !== b.modelHash) {
    e.dispose();
    throw new HeadstartError('BAD_MODEL', `text backbone ${b.id} changed since this run was trained (its files differ); train again`);
  }
  return e;
}

/** Class probabilities of texts with a text run (embeddings through the cache, then the head). */
export async function textRunProbs(run: LoadedRun, texts: string[], cacheDir: string, progress: Progress = {}): Promise<{ probs: Float32Array; coverage: Array<{ known: number; words: number }> }> {
  const e = await openRunTextBackbone(run, cacheDir, progress);
  try {
    const items = texts.map((text) => ({ text, exact: textExactHash(text) }));
    const ex = await embedTexts(e, items, cacheDir, progress);
    const fsz = e.featureSize;
    const x = new Float32Array(texts.length * fsz);
    items.forEach((it, i) => x.set(ex.features.get(it.exact)!, i * fsz));
    return { probs: headProbs(run.head, x, fsz), coverage: items.map((it) => ex.counts.get(it.exact)!) };
  } finally {
    e.dispose();
  }
}
