import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { type OutGuard, writeOutDir } from '../fsutil';
import { sizeOf } from '../export/common';
import { chooseVariant } from '../export/choose';
import { modelCard } from '../export/card';
import { type VariantSource, type VariantSpec } from '../export/format';
import { type ExportReport, type Measurement, type ResolvedExportOptions, BUDGET_RULE, plain } from '../export/report';
import { CHOICE_MAX } from '../evaluate';
import { type PolicyName, type RoledEntry, POLICIES, applyPolicy } from '../compress/quantize';
import { type Int8Info, calibrationItems, quantizeInt8Features } from '../onnx/calibrate';
import { type OnnxWeights, compressOnnx } from '../onnx/compress';
import { convertTfjsModel } from '../onnx/convert';
import type { LoadedRun } from '../runFolder';
import { readModelDir, writeModelDir } from '../tfjsio';
import { accuracyInterval, evaluatePredictions } from '../train/metrics';
import { PACKAGE_NAME, VERSION } from '../version';
import { VOCAB_FILES } from './vocab';
import { ENCODER_SIDECAR, type TextEmbedder } from './encoder';
import { openExportEmbedder, openTextHead, textSplitItems } from './predict';
import { textSnippet } from './snippet';
import { textCardParts } from './cardParts';

/** The export report of a text run: the pipeline's report, with the text parts beside it. */
export interface TextExportReport extends ExportReport {
  modality: 'text';
  backbone: string;
  /** Files of the model (head, vocabulary or encoder), and their bytes. */
  files: Array<{ path: string; bytes: number }>;
  /** Bytes of the head alone (raw and gzipped), float32 and the variant exported; the variants' `bytes` count the whole model (head + vocabulary or encoder). */
  head: { float32: { bytes: number; gzipBytes: number }; exported: { bytes: number; gzipBytes: number } };
  testTexts: number;
  /** Mean milliseconds per text, one at a time (tokenize, embed, head); msPerImage holds the same figure. */
  msPerText: number;
  /** int8 (ONNX): how the head was quantized, calibrated on training texts' embeddings. */
  headInt8?: Int8Info;
}

/** The texts a text export is measured on; `images` is the LabelledSet field the budget loop reads (texts here). */
interface TextSet {
  images: Array<{ label: number; text: string }>;
}

const HEAD_FILES = { tfjs: ['model.json', 'weights.bin'], onnx: ['model.onnx'] } as const;

/** What a text vocabulary is stored as (it is the same in every variant: nothing smaller keeps its figures). */
const VOCAB_PRECISION = 'int8 rows (one float32 scale per word), as bundled';

/**
 * Options a text export cannot honour, refused in one line: the head of a
 * text model is a dense layer or two on embeddings (nothing to prune or
 * slim), and its backbone ships as it is.
 */
export function refuseTextExportOptions(opts: ResolvedExportOptions): void {
  const given = [opts.prune ? '--prune' : '', opts.slim !== undefined ? '--slim' : ''].filter(Boolean);
  if (given.length) throw new HeadstartError('BAD_INPUT', `${given.join(', ')}: a text export compresses its head with --quantize only (the head is a dense layer or two on embeddings, the vocabulary already int8); drop ${given.join(' and ')}`);
}

/** Head variants in the order tried: under auto smallest first (ONNX: int8, uint8, float16; TF.js: uint8, float16), else the one asked for. */
export function textCandidates(opts: ResolvedExportOptions): VariantSpec[] {
  const asked = opts.quantize === 'none' ? 'float32' : opts.quantize;
  const names: Array<PolicyName | 'int8'> = opts.quantize !== 'auto' ? [asked as PolicyName | 'int8'] : opts.format === 'onnx' ? ['int8', 'uint8', 'float16'] : ['uint8', 'float16'];
  return names.map((n) => ({ name: n, policy: n, sparsity: 0 }));
}

/** Reads texts' labels into a set the budget loop and the measurements share. */
function textSet(run: LoadedRun, items: Array<{ label: string; text: string }>): TextSet {
  return { images: items.map((i) => ({ label: run.record.labels.indexOf(i.label), text: i.text })) };
}

/** The texts --quantize auto decides on: the run's validation texts, else its training texts (never the test split), at most CHOICE_MAX. */
async function textChoiceSet(run: LoadedRun, progress: Progress): Promise<{ set: TextSet; split: 'val' | 'train'; skipped: ExportReport['skipped'] }> {
  const split = run.record.samples.some((s) => s.split === 'val') ? 'val' : 'train';
  const { items, skipped } = await textSplitItems(run, split, undefined, progress);
  if (!items.length) throw new HeadstartError('NO_DATA', `${run.dir} has no readable validation or training texts for --quantize auto to decide on; pick --quantize none, float16 or uint8`);
  return { set: textSet(run, items.slice(0, CHOICE_MAX)), split, skipped };
}

/** Embeddings of the run's training texts int8 calibrates on (calibrationItems' balanced, seeded pick), through the export's own embedder. */
async function calibrationFeatures(run: LoadedRun, embedder: TextEmbedder, progress: Progress): Promise<Float32Array[]> {
  const { items } = await textSplitItems(run, 'train', undefined, progress);
  const byPath = new Map(items.map((i) => [path.join(run.record.dataset.root, i.rel), i.text]));
  const texts = calibrationItems(run.record).flatMap((c) => (byPath.has(c.path) ? [byPath.get(c.path)!] : []));
  return (await embedder.embed(texts)).map((e) => e.vector);
}

function argmax(p: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < p.length; j++) if (p[j]! > p[best]!) best = j;
  return best;
}

/**
 * The text head's variants for the budget loop: written from the run's head
 * (TF.js weights-manifest quantization, or the head converted to ONNX and
 * compressed: float16 / uint8 weights-only, int8 static QDQ calibrated on
 * training texts), measured from the written files with the export's own
 * vocabulary or encoder (in the export folder `exportDir`).
 */
async function textVariants(run: LoadedRun, opts: ResolvedExportOptions, exportDir: string, backboneBytes: { bytes: number; gzipBytes: number }, progress: Progress): Promise<VariantSource<TextSet> & { dispose(): void; int8?: Int8Info; bytesByDtype: Map<string, Record<string, number>> }> {
  const format = opts.format;
  const b = run.record.backbone;
  const d = b.featureSize;
  const embedder = await openExportEmbedder(exportDir, b.format === 'onnx-encoder' ? 'onnx-encoder' : 'word-average');
  const vectors = new WeakMap<TextSet, Float32Array>();
  let floatOnnx: Uint8Array | undefined;
  const src = format === 'tfjs' ? await readModelDir(path.join(run.dir, 'head')) : undefined;
  const out: VariantSource<TextSet> & { dispose(): void; int8?: Int8Info; bytesByDtype: Map<string, Record<string, number>> } = {
    listsReference: format === 'onnx',
    bytesByDtype: new Map(),
    candidates: () => textCandidates(opts),
    async write(v, dir) {
      await fs.mkdir(dir, { recursive: true });
      if (src) {
        // Kernels are the 'head' role, biases 'vector' (applyPolicy keeps tensors under 64 values at 16 bits).
        const roled: RoledEntry[] = src.entries.map((e) => ({ name: e.spec.name, shape: e.spec.shape, values: new Float32Array(Uint8Array.from(e.bytes).buffer), role: e.spec.shape.length >= 2 ? 'head' : 'vector' }));
        const { entries } = applyPolicy(roled, POLICIES[v.policy as PolicyName]);
        const { weightsManifest, ...json } = src.json;
        void weightsManifest;
        await writeModelDir(dir, json, entries);
        const by: Record<string, number> = {};
        for (const e of entries) by[e.spec.quantization?.dtype ?? e.spec.dtype] = (by[e.spec.quantization?.dtype ?? e.spec.dtype] ?? 0) + e.bytes.length;
        out.bytesByDtype.set(v.name, by);
        return;
      }
      floatOnnx ??= (await convertTfjsModel(path.join(run.dir, 'head'), { inputName: 'features', outputName: 'probabilities' })).bytes;
      let bytes: Uint8Array;
      if (v.name === 'int8') {
        const q = await quantizeInt8Features(floatOnnx, await calibrationFeatures(run, embedder, progress), d, progress);
        out.int8 = q.info;
        bytes = q.bytes;
      } else bytes = compressOnnx(floatOnnx, v.name as OnnxWeights).bytes;
      await fs.writeFile(path.join(dir, 'model.onnx'), bytes);
    },
    async measure(dir, set, label) {
      throwIfAborted(progress.signal);
      const texts = set.images.map((t) => t.text);
      const unit = `texts (${label})`;
      // A start and an end event per set and variant: what is embedded in between belongs to this measurement.
      progress.onEvent?.({ type: 'progress', phase: 'export', done: 0, total: texts.length, unit });
      let x = vectors.get(set);
      if (!x) {
        // The vocabulary is the same in every variant: each set is embedded once, the head runs per variant.
        x = new Float32Array(texts.length * d);
        const emb = await embedder.embed(texts);
        emb.forEach((e, i) => x!.set(e.vector, i * d));
        vectors.set(set, x);
      }
      const head = await openTextHead(dir, format, d, opts);
      try {
        const probs = await head.run(x, texts.length);
        const labels = run.record.labels;
        progress.onEvent?.({ type: 'progress', phase: 'export', done: texts.length, total: texts.length, unit });
        const ev = evaluatePredictions(labels, Int32Array.from(set.images.map((t) => t.label)), probs);
        const predicted = set.images.map((_, i) => argmax(probs.subarray(i * labels.length, (i + 1) * labels.length)));
        // One text at a time (tokenize, embed, head) over at most 50; the first call warms up and is not counted.
        const n = Math.min(texts.length, 51);
        let ms = 0;
        for (let i = 0; i < n; i++) {
          const t0 = performance.now();
          await head.run((await embedder.embed([texts[i]!]))[0]!.vector, 1);
          if (i > 0) ms += performance.now() - t0;
        }
        const headSize = await sizeOf(dir, [...HEAD_FILES[format]]);
        return { bytes: headSize.bytes + backboneBytes.bytes, gzipBytes: headSize.gzipBytes + backboneBytes.gzipBytes, accuracy: ev.accuracy, interval: accuracyInterval(ev.accuracy, texts.length), macroF1: ev.macroF1, perClassF1: Object.fromEntries(ev.perClass.map((c) => [c.label, c.f1])), msPerImage: n > 1 ? ms / (n - 1) : 0, predicted } satisfies Measurement;
      } finally {
        head.dispose();
      }
    },
    dispose: () => embedder.dispose(),
  };
  return out;
}

/** The backbone's files the export carries: the vocabulary (vocab/) or the encoder (encoder/). */
async function copyBackbone(run: LoadedRun, tmp: string): Promise<string[]> {
  const b = run.record.backbone;
  const encoder = b.format === 'onnx-encoder';
  const sub = encoder ? 'encoder' : 'vocab';
  const names = encoder ? ['model.onnx', 'tokenizer.json', 'tokenizer_config.json', ENCODER_SIDECAR] : Object.values(VOCAB_FILES);
  await fs.mkdir(path.join(tmp, sub));
  const out: string[] = [];
  for (const n of names) {
    const src = path.join(b.dir, n);
    try {
      await fs.copyFile(src, path.join(tmp, sub, n));
      out.push(`${sub}/${n}`);
    } catch (err) {
      // tokenizer_config.json and the sidecar are optional parts of an encoder folder.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || (n !== 'tokenizer_config.json' && n !== ENCODER_SIDECAR)) throw new HeadstartError('NOT_FOUND', `cannot copy the backbone file ${src} into the export (${(err as Error).message}); train again`, { cause: err });
    }
  }
  return out;
}

/**
 * The text branch of the export pipeline (export/pipeline.ts): the head
 * (TF.js layers model, or ONNX with a `features` input) in the precision
 * --quantize asks for, or under auto the smallest within --max-drop by the
 * pipeline's budget rule on the validation (else training) texts; the
 * backbone's vocabulary or encoder as it is; labels.json, metadata.json,
 * inference.mjs (tokenizes, embeds, runs the head), report.json and the
 * model card (README.md, export/card.ts). Every
 * variant is measured from its written files; the test split only for
 * float32 and the variant chosen, after the choice.
 */
export async function exportTextRun(run: LoadedRun, opts: ResolvedExportOptions, guard: OutGuard, progress: Progress = {}): Promise<TextExportReport> {
  refuseTextExportOptions(opts);
  const format = opts.format;
  const { items, skipped } = await textSplitItems(run, 'test', undefined, progress);
  if (!items.length) throw new HeadstartError('NO_DATA', `${run.dir} has no test texts left to measure the export on`);
  const test = textSet(run, items);
  const auto = opts.quantize === 'auto';
  const choice = auto ? await textChoiceSet(run, progress) : undefined;
  return await writeOutDir(opts.out, guard, async (tmp) => {
    const backboneFiles = await copyBackbone(run, tmp);
    const b = run.record.backbone;
    const backboneBytes = await sizeOf(tmp, backboneFiles);
    progress.onEvent?.({ type: 'phase', phase: 'export', message: `writing the head${auto ? ' variants' : ''} and measuring on ${items.length} test texts${choice ? ` (choosing on ${choice.set.images.length} ${choice.split === 'val' ? 'validation' : 'training'} texts)` : ''}` });
    const work = path.join(tmp, '.candidates');
    const variants = await textVariants(run, opts, tmp, backboneBytes, progress);
    let picked: Awaited<ReturnType<typeof chooseVariant<TextSet>>>;
    try {
      picked = await chooseVariant(variants, (name) => path.join(work, name), test, choice?.set ?? test, opts, progress, 'texts');
    } finally {
      variants.dispose();
    }
    const { chosen, f32, tried } = picked;
    const headFiles = [...HEAD_FILES[format]];
    const headSize = { float32: await sizeOf(f32.dir, headFiles), exported: await sizeOf(chosen.dir, headFiles) };
    for (const f of headFiles) await fs.rename(path.join(chosen.dir, f), path.join(tmp, f));
    await fs.rm(work, { recursive: true, force: true });
    const meta = { labels: run.record.labels, modelName: `headstart-text-${b.id}`, packageName: PACKAGE_NAME, packageVersion: VERSION, tfjsVersion: tf.version.tfjs, timeStamp: new Date().toISOString(), headstart: { modality: 'text', format, backbone: b.id, kind: b.format, featureSize: b.featureSize, tokenizer: run.record.text?.tokenizer ?? '', head: chosen.spec.name } };
    await fs.writeFile(path.join(tmp, 'labels.json'), JSON.stringify(run.record.labels, null, 2));
    await fs.writeFile(path.join(tmp, 'metadata.json'), JSON.stringify(meta, null, 2));
    await fs.writeFile(path.join(tmp, 'inference.mjs'), textSnippet(b.format === 'onnx-encoder' ? 'onnx-encoder' : 'word-average', format));
    const all = [...headFiles, ...backboneFiles];
    const files = await Promise.all(all.map(async (f) => ({ path: f, bytes: (await fs.stat(path.join(tmp, f))).size })));
    const int8 = chosen.spec.name === 'int8' ? variants.int8 : undefined;
    const report: TextExportReport = {
      outDir: path.resolve(opts.out),
      format,
      modelFormat: format === 'onnx' ? 'onnx' : 'layers-model',
      quantize: opts.quantize,
      precision: { head: chosen.spec.name, vocabulary: b.format === 'onnx-encoder' ? 'encoder as downloaded (float32)' : VOCAB_PRECISION },
      bytesByDtype: variants.bytesByDtype.get(chosen.spec.name) ?? {},
      prune: { target: 0, perLayer: {} },
      maxDropPoints: opts.maxDrop,
      candidates: tried,
      chosen: chosen.spec.name,
      choice: choice ? { split: choice.split, images: choice.set.images.length, rule: BUDGET_RULE.replace(/images/g, 'texts') } : { split: 'test', images: items.length, rule: 'no choice: the variant asked for, measured on the test split' },
      testImages: items.length,
      engineAccuracy: run.record.test.accuracy,
      float32: plain(f32.report),
      exported: plain(chosen.report),
      skipped: [...skipped, ...(choice?.skipped ?? [])],
      backend: format === 'onnx' ? 'onnxruntime' : tf.getBackend(),
      modality: 'text',
      backbone: b.id,
      files,
      head: headSize,
      testTexts: items.length,
      msPerText: chosen.report.msPerImage,
      ...(int8 ? { headInt8: int8 } : {}),
    };
    throwIfAborted(progress.signal);
    await fs.writeFile(path.join(tmp, 'report.json'), JSON.stringify(report, null, 2));
    await fs.writeFile(path.join(tmp, 'README.md'), modelCard(run, report, textCardParts(run, report)));
    return report;
  });
}
