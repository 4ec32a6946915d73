import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend';
import type { EngineOptions } from '../engine';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import type { Skipped } from '../data/dataset';
import { DecodeError, readAndDecode } from '../data/decode';
import { testSplitItems } from '../evaluate';
import { writeDirAtomic } from '../fsutil';
import type { ExportMetadata } from '../predict';
import { type LoadedRun, loadRun } from '../run';
import { evaluatePredictions } from '../train/metrics';
import { loadExportedModel, writeFullModel } from './fullModel';
import { browserSnippet, nodeSnippet } from './snippet';

export const QUANTIZE_CHOICES = ['none', 'float16', 'uint16', 'uint8', 'auto'] as const;
export type Quantize = (typeof QUANTIZE_CHOICES)[number];

export interface ExportOptions extends EngineOptions {
  /** Export folder to create. */
  out: string;
  /** Weight storage; only 'none' (float32) so far. */
  quantize?: Quantize;
  /** Head sparsity in [0, 1); only 0 so far. */
  prune?: number;
  /** Accuracy budget in points for --quantize auto. */
  maxDrop?: number;
  /** Model format; only 'tfjs' so far. */
  format?: 'tfjs' | 'onnx';
  /** Replace an existing export folder. */
  force?: boolean;
}

/** Size and quality of one model variant. */
export interface VariantReport {
  bytes: number;
  gzipBytes: number;
  /** Test-split accuracy 0..1 of this variant, loaded from its files. */
  accuracy: number;
  macroF1: number;
  perClassF1: Record<string, number>;
  /** Mean milliseconds per single image in the exporting process (backbone + head). */
  msPerImage: number;
}

export interface ExportReport {
  outDir: string;
  format: 'tfjs';
  modelFormat: 'graph-model' | 'layers-model';
  quantize: Quantize;
  prune: number;
  testImages: number;
  /** Accuracy of the run's own head on cached features (the engine's figure). */
  engineAccuracy: number;
  float32: VariantReport;
  exported: VariantReport;
  skipped: Skipped[];
  backend: string;
}

/** Bytes of a model folder's files, raw and gzipped (what a web server sends). */
async function sizeOf(dir: string): Promise<{ bytes: number; gzipBytes: number }> {
  let bytes = 0;
  let gzipBytes = 0;
  for (const f of ['model.json', 'weights.bin']) {
    const buf = await fs.readFile(path.join(dir, f));
    bytes += buf.length;
    gzipBytes += gzipSync(buf, { level: 9 }).length;
  }
  return { bytes, gzipBytes };
}

/** Runs an exported model from its files over the test images: accuracy and latency. */
async function measure(dir: string, run: LoadedRun, items: Array<{ path: string; label: string }>, progress: Progress): Promise<Omit<VariantReport, 'bytes' | 'gzipBytes'> & { skipped: Skipped[] }> {
  const size = run.record.backbone.inputSize;
  const labels = run.record.labels;
  const model = await loadExportedModel(dir);
  const skipped: Skipped[] = [];
  try {
    const probs: number[] = [];
    const y: number[] = [];
    const paths: string[] = [];
    let ms = 0;
    let timed = 0;
    for (const [i, it] of items.entries()) {
      throwIfAborted(progress.signal);
      let rgb: Uint8Array;
      try {
        rgb = await readAndDecode(it.path, size);
      } catch (err) {
        if (!(err instanceof DecodeError)) throw err;
        skipped.push({ path: it.path, reason: err.message });
        continue;
      }
      const t0 = performance.now();
      const p = tf.tidy(() => model.predict(tf.tensor4d(Float32Array.from(rgb), [1, size, size, 3])).dataSync());
      if (i > 0 || items.length === 1) {
        ms += performance.now() - t0;
        timed++;
      }
      probs.push(...p);
      y.push(labels.indexOf(it.label));
      paths.push(it.path);
      progress.onEvent?.({ type: 'progress', phase: 'export', done: i + 1, total: items.length, unit: 'images' });
    }
    const ev = evaluatePredictions(labels, y, Float32Array.from(probs), paths);
    return { accuracy: ev.accuracy, macroF1: ev.macroF1, perClassF1: Object.fromEntries(ev.perClass.map((c) => [c.label, c.f1])), msPerImage: timed ? ms / timed : 0, skipped };
  } finally {
    model.dispose();
  }
}

function modelCard(run: LoadedRun, report: ExportReport): string {
  const r = run.record;
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const counts = r.labels.map((l) => `| ${l} | ${r.dataset.counts[l]?.train ?? 0} | ${r.dataset.counts[l]?.val ?? 0} | ${r.dataset.counts[l]?.test ?? 0} |`).join('\n');
  const perClass = r.test.perClass.map((c) => `| ${c.label} | ${c.precision.toFixed(3)} | ${c.recall.toFixed(3)} | ${c.f1.toFixed(3)} |`).join('\n');
  return `# Image classifier: ${r.labels.join(', ')}

Made with Headstart on ${r.createdAt.slice(0, 10)}: a ${r.backbone.title} backbone (frozen) with a trained dense head.

## Data
${r.dataset.total} images from \`${r.dataset.root}\`, ${r.labels.length} classes, split ${Math.round((1 - r.config.val - r.config.test) * 100)}/${Math.round(r.config.val * 100)}/${Math.round(r.config.test * 100)} (seed ${r.config.seed}).

| class | train | val | test |
|---|---|---|---|
${counts}

## Metrics (test split, ${report.testImages} images)
Accuracy of this export: **${pct(report.exported.accuracy)}** (float32: ${pct(report.float32.accuracy)}). ${r.baseline.verdict} (baseline ${pct(r.baseline.accuracy)}).

| class | precision | recall | F1 |
|---|---|---|---|
${perClass}

## Files
- \`model.json\` + \`weights.bin\`: TensorFlow.js ${report.modelFormat}, ${report.exported.bytes} bytes (${report.exported.gzipBytes} gzipped). Weights: ${report.quantize === 'none' ? 'float32' : report.quantize}.
- \`labels.json\`, \`metadata.json\` (Teachable Machine's keys: \`labels\`, \`imageSize\`, …), \`report.json\`, \`inference.mjs\`.

Input: a float32 tensor [batch, ${r.backbone.inputSize}, ${r.backbone.inputSize}, 3] of RGB pixels 0..255 (centre-crop to a square, then resize). Output: class probabilities in the order of \`labels.json\`. Latency here: ${report.exported.msPerImage.toFixed(1)} ms per image (${report.backend} backend).

## Load it
Node: \`npm install @tensorflow/tfjs sharp\`, then \`node inference.mjs photo.jpg\`.

Browser:
\`\`\`js
${browserSnippet(report.modelFormat)}
\`\`\`

## Backbone and licence
${r.backbone.title} — ${r.backbone.licence}. Source: ${r.backbone.source}.

## Known limits
- Trained on ${r.dataset.total} images; accuracy on images unlike them (lighting, framing, cameras) will be lower.
- The classifier always answers one of its ${r.labels.length} classes; it has no "none of these" class unless you trained one.
${r.dataset.warnings.map((w) => `- ${w}`).join('\n')}
`;
}

/**
 * Exports a run as a full TF.js model (backbone + head) with labels,
 * metadata, report, model card and an inference script, atomically. The
 * export is loaded back with the stock loaders and measured on the run's
 * own test split.
 */
export async function exportRun(runDir: string, opts: ExportOptions, progress: Progress = {}): Promise<ExportReport> {
  const quantize = opts.quantize ?? 'none';
  if (!QUANTIZE_CHOICES.includes(quantize)) throw new HeadstartError('BAD_INPUT', `--quantize must be one of ${QUANTIZE_CHOICES.join(', ')} (got '${quantize}')`);
  if (quantize !== 'none') throw new HeadstartError('BAD_INPUT', `--quantize ${quantize} is not available yet in this version; use --quantize none (float32)`);
  const prune = opts.prune ?? 0;
  if (!(prune >= 0 && prune < 1)) throw new HeadstartError('BAD_INPUT', `--prune must be a sparsity in [0, 1) (got ${opts.prune})`);
  if (prune > 0) throw new HeadstartError('BAD_INPUT', '--prune is not available yet in this version');
  if ((opts.format ?? 'tfjs') !== 'tfjs') throw new HeadstartError('BAD_INPUT', `--format ${opts.format} is not available yet in this version; use --format tfjs`);
  const run = await loadRun(runDir, opts.backend);
  try {
    const backend = await initBackend(opts.backend ?? 'auto');
    const { items, skipped } = await testSplitItems(run);
    progress.onEvent?.({ type: 'phase', phase: 'export', message: `writing the full model and measuring it on ${items.length} test images` });
    return await writeDirAtomic(
      path.resolve(opts.out),
      async (tmp) => {
        const modelFormat = await writeFullModel(run, tmp);
        const labels = run.record.labels;
        const meta: ExportMetadata = {
          tfjsVersion: tf.version.tfjs,
          tmVersion: '2.4.7',
          packageVersion: '0.1.0',
          packageName: 'headstart',
          modelName: `headstart-${run.record.backbone.id}`,
          timeStamp: new Date().toISOString(),
          labels,
          imageSize: run.record.backbone.inputSize,
          userMetadata: {},
          headstart: { input: 'rgb-0-255-centre-crop', format: modelFormat, backbone: run.record.backbone.id },
        } as ExportMetadata;
        await fs.writeFile(path.join(tmp, 'labels.json'), JSON.stringify(labels, null, 2));
        await fs.writeFile(path.join(tmp, 'metadata.json'), JSON.stringify(meta, null, 2));
        await fs.writeFile(path.join(tmp, 'inference.mjs'), nodeSnippet());
        const m = await measure(tmp, run, items, progress);
        const size = await sizeOf(tmp);
        const variant: VariantReport = { ...size, accuracy: m.accuracy, macroF1: m.macroF1, perClassF1: m.perClassF1, msPerImage: m.msPerImage };
        const report: ExportReport = {
          outDir: path.resolve(opts.out),
          format: 'tfjs',
          modelFormat,
          quantize,
          prune,
          testImages: items.length - m.skipped.length,
          engineAccuracy: run.record.test.accuracy,
          float32: variant,
          exported: variant,
          skipped: [...skipped, ...m.skipped],
          backend: backend.name,
        };
        await fs.writeFile(path.join(tmp, 'report.json'), JSON.stringify(report, null, 2));
        await fs.writeFile(path.join(tmp, 'README.md'), modelCard(run, report));
        return report;
      },
      { overwrite: opts.force },
    );
  } finally {
    run.head.dispose();
  }
}
