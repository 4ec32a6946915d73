import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from './backend';
import type { EngineOptions } from './engine';
import { HeadstartError } from './errors';
import type { Progress } from './events';
import { DecodeError, readAndDecode } from './data/decode';
import { loadExportedModel } from './export/fullModel';
import { loadOrt, ortUnavailableReason } from './onnx/engine';
import { exists, readFailure, readJson, sha256File } from './fsutil';
import { loadRun, openRunBackbone, runProbs } from './runFolder';
import type { Prediction, PredictionLine as PredictLine } from '../shared/records';

export type { Prediction } from '../shared/records';
/** A line of `predict`: a prediction, or why the file could not be classified. */
export type { PredictionLine as PredictLine } from '../shared/records';

/** What an export folder's metadata.json holds (Teachable Machine's keys plus ours). */
export interface ExportMetadata {
  labels: string[];
  imageSize: number;
  modelName: string;
  tfjsVersion: string;
  tmVersion: string;
  packageName: string;
  packageVersion: string;
  timeStamp: string;
  userMetadata: Record<string, unknown>;
  headstart: { input: string; format: string; backbone: string };
}

function toPrediction(file: string, labels: string[], probs: ArrayLike<number>, topK = 5): Prediction {
  const top = Array.from(probs, (p, i) => ({ label: labels[i]!, probability: p })).sort((a, b) => b.probability - a.probability);
  return { path: file, label: top[0]!.label, probability: top[0]!.probability, top: top.slice(0, topK) };
}

/**
 * Classifies files with an export folder (loaded with the stock TF.js
 * loaders) or a run folder (backbone through the embedding cache + head).
 * A file that cannot be decoded gives an `error` line, not a failure.
 */
export async function predictFiles(modelDir: string, files: string[], opts: EngineOptions = {}, progress: Progress = {}): Promise<PredictLine[]> {
  if (!files.length) throw new HeadstartError('BAD_INPUT', 'give at least one image file to classify');
  if (await exists(path.join(modelDir, 'run.json'))) {
    const run = await loadRun(modelDir, opts.backend);
    try {
      const opened = await openRunBackbone(run, opts, progress);
      try {
        const items: Array<{ path: string; hash: string }> = [];
        const lines: PredictLine[] = [];
        for (const f of files) {
          try {
            items.push({ path: f, hash: await sha256File(f) });
          } catch (err) {
            lines.push({ path: f, error: readFailure(err) });
          }
        }
        const ex = await opened.extract(items, progress);
        for (const it of items) {
          const f = ex.features.get(it.hash);
          if (!f) lines.push({ path: it.path, error: ex.failed.find((x) => x.path === it.path)?.reason ?? 'not decoded' });
          else lines.push(toPrediction(it.path, run.record.labels, runProbs(run, f)));
        }
        const byPath = new Map(lines.map((l) => [l.path, l]));
        return files.map((f) => byPath.get(f)!);
      } finally {
        opened.dispose();
      }
    } finally {
      run.head.dispose();
      run.top?.dispose();
    }
  }
  if (!(await exists(path.join(modelDir, 'metadata.json')))) throw new HeadstartError('BAD_INPUT', `${modelDir} is neither a RUN_DIR (run.json) nor an export folder (metadata.json + model.json or model.onnx)`);
  const meta = await readJson<ExportMetadata>(path.join(modelDir, 'metadata.json'), 'export metadata');
  if (await exists(path.join(modelDir, 'model.onnx'))) {
    const ort = loadOrt();
    if (!ort) throw new HeadstartError('BACKEND', `this export is ONNX and ONNX Runtime is not available here (${ortUnavailableReason()})`);
    const session = await ort.InferenceSession.create(path.join(modelDir, 'model.onnx'), { intraOpNumThreads: opts.workers ?? 1 });
    return classifyEach(files, meta, opts, async (x) => (await session.run({ image: new ort.Tensor('float32', x, [1, meta.imageSize, meta.imageSize, 3]) })).probabilities!.data as Float32Array).finally(() => session.release());
  }
  await initBackend(opts.backend ?? 'auto');
  const model = await loadExportedModel(modelDir);
  return classifyEach(files, meta, opts, async (x) => tf.tidy(() => model.predict(tf.tensor4d(x, [1, meta.imageSize, meta.imageSize, 3])).dataSync() as Float32Array)).finally(() => model.dispose());
}

/** Decodes each file and classifies it with `run` (0..255 pixels in, probabilities out); a file that fails gives an error line. */
async function classifyEach(files: string[], meta: ExportMetadata, opts: EngineOptions, run: (pixels: Float32Array) => Promise<Float32Array>): Promise<PredictLine[]> {
  const out: PredictLine[] = [];
  for (const f of files) {
    let rgb: Uint8Array;
    try {
      rgb = await readAndDecode(f, meta.imageSize, opts.maxPixels);
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      out.push({ path: f, error: err.message });
      continue;
    }
    out.push(toPrediction(f, meta.labels, await run(Float32Array.from(rgb))));
  }
  return out;
}
