import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { type OutGuard, writeOutDir } from '../fsutil';
import { sizeOf } from '../export/common';
import type { ExportReport, ResolvedExportOptions, VariantReport } from '../export/report';
import { convertTfjsModel } from '../onnx/convert';
import type { LoadedRun } from '../runFolder';
import { evaluatePredictions } from '../train/metrics';
import { PACKAGE_NAME, VERSION } from '../version';
import { VOCAB_FILES } from './vocab';
import { ENCODER_SIDECAR } from './encoder';
import { loadTextExport, textEvalItems } from './predict';
import { textSnippet } from './snippet';

/** The export report of a text run: the pipeline's report, with the text parts beside it. */
export interface TextExportReport extends ExportReport {
  modality: 'text';
  backbone: string;
  /** Files of the model (head, vocabulary or encoder), and their bytes. */
  files: Array<{ path: string; bytes: number }>;
  testTexts: number;
  /** Mean milliseconds per text, one at a time (tokenize, embed, head); msPerImage holds the same figure. */
  msPerText: number;
}

/**
 * Options a text export cannot honour, refused in one line: the head of a
 * text model is a few hundred KB and the bundled vocabulary is int8 already,
 * so there is nothing worth compressing or slimming.
 */
export function refuseTextExportOptions(opts: ResolvedExportOptions): void {
  const given = [opts.quantize !== 'none' ? `--quantize ${opts.quantize}` : '', opts.prune ? '--prune' : '', opts.slim !== undefined ? '--slim' : ''].filter(Boolean);
  if (given.length) throw new HeadstartError('BAD_INPUT', `${given.join(', ')}: a text export is float32 (its head is a few hundred KB, its vocabulary already int8); export with --quantize none and no --prune or --slim`);
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
 * (TF.js layers model, or ONNX with a `features` input), the backbone's
 * vocabulary or encoder, labels.json, metadata.json, inference.mjs
 * (tokenizes, embeds, runs the head) and report.json, measured from the
 * written files on the run's test split, as a user loads them.
 */
export async function exportTextRun(run: LoadedRun, opts: ResolvedExportOptions, guard: OutGuard, progress: Progress = {}): Promise<TextExportReport> {
  refuseTextExportOptions(opts);
  const format = opts.format;
  const { items, skipped } = await textEvalItems(run, undefined, progress);
  if (!items.length) throw new HeadstartError('NO_DATA', `${run.dir} has no test texts left to measure the export on`);
  return await writeOutDir(opts.out, guard, async (tmp) => {
    const modelFiles = format === 'onnx' ? ['model.onnx'] : ['model.json', 'weights.bin'];
    if (format === 'onnx') {
      const conv = await convertTfjsModel(path.join(run.dir, 'head'), { inputName: 'features', outputName: 'probabilities' });
      await fs.writeFile(path.join(tmp, 'model.onnx'), conv.bytes);
    } else for (const f of modelFiles) await fs.copyFile(path.join(run.dir, 'head', f), path.join(tmp, f));
    const backboneFiles = await copyBackbone(run, tmp);
    const b = run.record.backbone;
    const meta = { labels: run.record.labels, modelName: `headstart-text-${b.id}`, packageName: PACKAGE_NAME, packageVersion: VERSION, tfjsVersion: tf.version.tfjs, timeStamp: new Date().toISOString(), headstart: { modality: 'text', format, backbone: b.id, kind: b.format, featureSize: b.featureSize, tokenizer: run.record.text?.tokenizer ?? '' } };
    await fs.writeFile(path.join(tmp, 'labels.json'), JSON.stringify(run.record.labels, null, 2));
    await fs.writeFile(path.join(tmp, 'metadata.json'), JSON.stringify(meta, null, 2));
    await fs.writeFile(path.join(tmp, 'inference.mjs'), textSnippet(b.format === 'onnx-encoder' ? 'onnx-encoder' : 'word-average', format));
    throwIfAborted(progress.signal);
    progress.onEvent?.({ type: 'phase', phase: 'evaluate', message: `measuring the export on ${items.length} test texts` });
    const all = [...modelFiles, ...backboneFiles];
    const variant = await measureTextExport(tmp, all, run, items, opts);
    const files = await Promise.all(all.map(async (f) => ({ path: f, bytes: (await fs.stat(path.join(tmp, f))).size })));
    const report: TextExportReport = {
      outDir: path.resolve(opts.out),
      format,
      modelFormat: format === 'onnx' ? 'onnx' : 'layers-model',
      quantize: 'none',
      precision: { head: 'float32', vocabulary: b.format === 'onnx-encoder' ? 'as downloaded' : 'int8 rows, float32 scales' },
      bytesByDtype: {},
      prune: { target: 0, perLayer: {} },
      maxDropPoints: opts.maxDrop,
      candidates: [],
      chosen: 'float32',
      choice: { split: 'test', images: items.length, rule: 'no choice: a text export is float32, measured on the test split' },
      testImages: items.length,
      engineAccuracy: run.record.test.accuracy,
      float32: variant,
      exported: variant,
      skipped,
      backend: format === 'onnx' ? 'onnxruntime' : tf.getBackend(),
      modality: 'text',
      backbone: b.id,
      files,
      testTexts: items.length,
      msPerText: variant.msPerImage,
    };
    await fs.writeFile(path.join(tmp, 'report.json'), JSON.stringify(report, null, 2));
    return report;
  });
}

/** Accuracy on the test texts and latency (one text at a time, up to 50) of the written export. */
async function measureTextExport(dir: string, files: string[], run: LoadedRun, items: Array<{ label: string; text: string }>, opts: ResolvedExportOptions): Promise<VariantReport> {
  const exp = await loadTextExport(dir, opts);
  try {
    const labels = run.record.labels;
    const { probs } = await exp.classify(items.map((i) => i.text));
    const ev = evaluatePredictions(labels, Int32Array.from(items.map((i) => labels.indexOf(i.label))), probs);
    const n = Math.min(items.length, 50);
    const t0 = performance.now();
    for (const it of items.slice(0, n)) await exp.classify([it.text]);
    const ms = (performance.now() - t0) / n;
    return { ...(await sizeOf(dir, files)), accuracy: ev.accuracy, interval: ev.interval, macroF1: ev.macroF1, perClassF1: Object.fromEntries(ev.perClass.map((c) => [c.label, c.f1])), msPerImage: ms };
  } finally {
    exp.dispose();
  }
}
