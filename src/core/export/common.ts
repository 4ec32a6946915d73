import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Skipped } from '../data/dataset';
import { DecodeError, readAndDecode } from '../data/decode';
import { throwIfAborted } from '../errors';
import { PACKAGE_NAME, VERSION } from '../version';
import type { Progress } from '../events';
import * as tf from '@tensorflow/tfjs';
import type { ExportMetadata } from '../predict';
import type { LoadedRun } from '../runFolder';
import { evaluatePredictions } from '../train/metrics';

/** Bytes of a model folder's files, raw and gzipped (what a web server sends). */
export async function sizeOf(dir: string, files = ['model.json', 'weights.bin']): Promise<{ bytes: number; gzipBytes: number }> {
  let bytes = 0;
  let gzipBytes = 0;
  for (const f of files) {
    const buf = await fs.readFile(path.join(dir, f));
    bytes += buf.length;
    gzipBytes += gzipSync(buf, { level: 9 }).length;
  }
  return { bytes, gzipBytes };
}

export interface TestSet {
  images: Array<{ path: string; label: number; rgb: Uint8Array }>;
  skipped: Skipped[];
}

/** Decodes the test images once; every candidate is measured on the same pixels. */
export async function decodeTestSet(run: LoadedRun, items: Array<{ path: string; label: string }>, progress: Progress): Promise<TestSet> {
  const size = run.record.backbone.inputSize;
  const images: TestSet['images'] = [];
  const skipped: Skipped[] = [];
  for (const it of items) {
    throwIfAborted(progress.signal);
    try {
      images.push({ path: it.path, label: run.record.labels.indexOf(it.label), rgb: await readAndDecode(it.path, size) });
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      skipped.push({ path: it.path, reason: err.message });
    }
  }
  return { images, skipped };
}


/** Writes labels.json, metadata.json (Teachable Machine's keys plus ours) and the inference script. */
export async function writeExportFiles(dir: string, run: LoadedRun, format: string, snippet: string): Promise<void> {
  const labels = run.record.labels;
  const meta: ExportMetadata = {
    tfjsVersion: tf.version.tfjs,
    tmVersion: '2.4.7',
    packageVersion: VERSION,
    packageName: PACKAGE_NAME,
    modelName: `headstart-${run.record.backbone.id}`,
    timeStamp: new Date().toISOString(),
    labels,
    imageSize: run.record.backbone.inputSize,
    userMetadata: {},
    headstart: { input: 'rgb-0-255-centre-crop', format, backbone: run.record.backbone.id },
  };
  await fs.writeFile(path.join(dir, 'labels.json'), JSON.stringify(labels, null, 2));
  await fs.writeFile(path.join(dir, 'metadata.json'), JSON.stringify(meta, null, 2));
  await fs.writeFile(path.join(dir, 'inference.mjs'), snippet);
}

function argmax(p: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < p.length; j++) if (p[j]! > p[best]!) best = j;
  return best;
}

/** Accuracy, macro F1, per-class F1 and single-image latency of one model variant. */
export interface Measured {
  accuracy: number;
  /** Top-1 class of each image, in the set's order (for agreement between variants). */
  predicted: number[];
  macroF1: number;
  perClassF1: Record<string, number>;
  msPerImage: number;
}

/**
 * Runs `predictOne` (0..255 pixels of one image in, probabilities out) over
 * the decoded test images: accuracy and mean latency, the first call (kernel
 * warm-up) left out of the timing. Shared by every export format.
 */
export async function measureVariant(run: LoadedRun, test: TestSet, progress: Progress, label: string, predictOne: (pixels: Float32Array) => Promise<ArrayLike<number>>): Promise<Measured> {
  const labels = run.record.labels;
  const probs = new Float32Array(test.images.length * labels.length);
  let ms = 0;
  for (const [i, im] of test.images.entries()) {
    throwIfAborted(progress.signal);
    const t0 = performance.now();
    const p = await predictOne(Float32Array.from(im.rgb));
    if (i > 0) ms += performance.now() - t0;
    probs.set(p, i * labels.length);
    if (i % 8 === 7 || i === test.images.length - 1) progress.onEvent?.({ type: 'progress', phase: 'export', done: i + 1, total: test.images.length, unit: `images (${label})` });
  }
  const ev = evaluatePredictions(labels, test.images.map((im) => im.label), probs, test.images.map((im) => im.path));
  const predicted = test.images.map((_, i) => argmax(probs.subarray(i * labels.length, (i + 1) * labels.length)));
  return { accuracy: ev.accuracy, predicted, macroF1: ev.macroF1, perClassF1: Object.fromEntries(ev.perClass.map((c) => [c.label, c.f1])), msPerImage: test.images.length > 1 ? ms / (test.images.length - 1) : 0 };
}
