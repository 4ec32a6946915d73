import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { outGuard, prepareOutDir, writeOutDir } from '../fsutil';
import { sizeOf } from '../export/common';
import type { ExportOptions } from '../export/exportRun';
import { convertTfjsModel } from '../export/onnx/convert';
import { type LoadedRun, loadRun } from '../run';
import { accuracyInterval, evaluatePredictions } from '../train/metrics';
import { VOCAB_FILES } from './vocab';
import { ENCODER_SIDECAR } from './encoder';
import { loadTextExport, textEvalItems } from './predict';
import { textSnippet } from './snippet';

/** Size, accuracy on the test split and latency of a text export. */
export interface TextVariantReport {
  bytes: number;
  gzipBytes: number;
  accuracy: number;
  interval: ReturnType<typeof accuracyInterval>;
  macroF1: number;
  /** Mean milliseconds per text, one at a time, in the exporting process (tokenize, embed, head). */
  msPerText: number;
  /** The same figure under the key image exports use (scripts read `msPerImage`). */
  msPerImage: number;
}

export interface TextExportReport {
  outDir: string;
  runDir: string;
  modality: 'text';
  modelFormat: 'tfjs' | 'onnx';
  backbone: string;
  /** Files of the model (head, vocabulary or encoder), and their bytes. */
  files: Array<{ path: string; bytes: number }>;
  /** Text exports are not compressed yet: `exported` is the float32 model. */
  float32: TextVariantReport;
  exported: TextVariantReport;
  quantize: 'none';
  testTexts: number;
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
 * Exports a text run: the head (TF.js layers model, or ONNX with a `features`
 * input), the backbone's vocabulary or encoder, labels.json, metadata.json,
 * inference.mjs (tokenizes, embeds, runs the head) and report.json, with the
 * accuracy of the written files on the run's test split.
 */
export async function exportTextRun(runDir: string, opts: ExportOptions, progress: Progress = {}): Promise<TextExportReport> {
  if ((opts.quantize && opts.quantize !== 'none') || opts.prune || opts.slim) throw new HeadstartError('BAD_INPUT', 'text exports are float32 for now (--quantize none, no --prune or --slim): the head of a text model is a few hundred KB; the vocabulary is already int8');
  const format = opts.format ?? 'tfjs';
  const guard = outGuard('export', [{ path: runDir, what: 'the run being exported' }], opts);
  const outDir = await prepareOutDir(opts.out, guard);
  const run = await loadRun(runDir, opts.backend);
  try {
    const { items } = await textEvalItems(run, undefined, progress);
    if (!items.length) throw new HeadstartError('NO_DATA', `${runDir} has no test texts left to measure the export on`);
    return await writeOutDir(outDir, guard, async (tmp) => {
      const modelFiles = format === 'onnx' ? ['model.onnx'] : ['model.json', 'weights.bin'];
      if (format === 'onnx') {
        const conv = await convertTfjsModel(path.join(run.dir, 'head'), { inputName: 'features', outputName: 'probabilities' });
        await fs.writeFile(path.join(tmp, 'model.onnx'), conv.bytes);
      } else for (const f of modelFiles) await fs.copyFile(path.join(run.dir, 'head', f), path.join(tmp, f));
      const backboneFiles = await copyBackbone(run, tmp);
      const b = run.record.backbone;
      const meta = { labels: run.record.labels, modelName: `headstart-text-${b.id}`, packageName: 'headstart', packageVersion: '0.1.0', tfjsVersion: tf.version.tfjs, timeStamp: new Date().toISOString(), headstart: { modality: 'text', format, backbone: b.id, kind: b.format, featureSize: b.featureSize, tokenizer: run.record.text?.tokenizer ?? '' } };
      await fs.writeFile(path.join(tmp, 'labels.json'), JSON.stringify(run.record.labels, null, 2));
      await fs.writeFile(path.join(tmp, 'metadata.json'), JSON.stringify(meta, null, 2));
      await fs.writeFile(path.join(tmp, 'inference.mjs'), textSnippet(b.format === 'onnx-encoder' ? 'onnx-encoder' : 'word-average', format));
      throwIfAborted(progress.signal);
      // Measured from the written files, as a user loads them.
      progress.onEvent?.({ type: 'phase', phase: 'evaluate', message: `measuring the export on ${items.length} test texts` });
      const exp = await loadTextExport(tmp, opts);
      let report: TextExportReport;
      try {
        const labels = run.record.labels;
        const { probs } = await exp.classify(items.map((i) => i.text));
        const ev = evaluatePredictions(labels, Int32Array.from(items.map((i) => labels.indexOf(i.label))), probs);
        const n = Math.min(items.length, 50);
        const t0 = performance.now();
        for (const it of items.slice(0, n)) await exp.classify([it.text]);
        const ms = (performance.now() - t0) / n;
        const all = [...modelFiles, ...backboneFiles];
        const size = await sizeOf(tmp, all);
        const variant: TextVariantReport = { ...size, accuracy: ev.accuracy, interval: ev.interval, macroF1: ev.macroF1, msPerText: ms, msPerImage: ms };
        const files = await Promise.all(all.map(async (f) => ({ path: f, bytes: (await fs.stat(path.join(tmp, f))).size })));
        report = { outDir, runDir: path.resolve(runDir), modality: 'text', modelFormat: format, backbone: b.id, files, float32: variant, exported: variant, quantize: 'none', testTexts: items.length };
      } finally {
        exp.dispose();
      }
      await fs.writeFile(path.join(tmp, 'report.json'), JSON.stringify(report, null, 2));
      return report;
    });
  } finally {
    run.head.dispose();
  }
}
