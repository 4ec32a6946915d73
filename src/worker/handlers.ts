/**
 * The worker's request handlers: the one place where core's results become
 * the plain shapes of src/shared/records.ts. Each result is assigned to its
 * shared type (`const r: ExportReport = …`), so a drift between core and the
 * protocol is a compile error here.
 */
import {
  CATALOGUE,
  HeadstartError,
  TEXT_CATALOGUE,
  defaultCacheDir,
  detectModality,
  distillRun,
  exportRun,
  isCached,
  isCancelled,
  isTextModel,
  parseInputFlags,
  previewForeignOnnx,
  predictFiles,
  predictTexts,
  scanDataset,
  scanTextDataset,
  textBackboneCached,
  textRefusal,
  trainRun,
} from '../core';
import type { BackboneInfo, DistillReport, ExportReport, PredictionLine, ScanSummary, TextPredictionLine, TrainReport } from '../shared/records';
import type { OnnxInputOptions, OnnxPreprocessingResult } from '../shared/onnxInput';
import type { WorkerError } from '../shared/workerProtocol';
import type { WorkerHandlers } from './serve';

/** What the host sees of a failure: cancelled, a HeadstartError's code, or an internal error with its stack. */
export function toWorkerError(err: unknown): WorkerError {
  if (isCancelled(err)) return { message: 'cancelled', code: 'CANCELLED' };
  if (err instanceof HeadstartError) return { message: err.message, code: err.code };
  return { message: err instanceof Error ? err.message : String(err), code: 'INTERNAL', stack: err instanceof Error ? err.stack : undefined };
}

/** The panel's preprocessing fields checked as a sidecar's are (the host checked them too; the engine takes no unchecked input). */
const checkedOnnxInput = (o: OnnxInputOptions | undefined) => (o === undefined ? undefined : parseInputFlags(o, "the panel's ONNX preprocessing"));

export const handlers: WorkerHandlers = {
  async train({ options, settings }, progress) {
    const onnxInput = checkedOnnxInput(options.onnxInput);
    const r: TrainReport = await trainRun({ ...options, ...settings, ...(onnxInput ? { onnxInput } : {}) }, progress);
    return r;
  },
  async onnxPreprocessing({ backbone, onnxInput }) {
    try {
      const p = await previewForeignOnnx(backbone, checkedOnnxInput(onnxInput));
      const s = p.spec;
      const r: OnnxPreprocessingResult = {
        ok: true,
        preprocessing: { input: s.input, size: s.size, layout: s.layout, channels: s.channels, channelOrder: s.channelOrder, range: s.range, mean: s.mean, std: s.std, output: s.output, pooling: s.pooling, featureSize: p.featureSize, outputs: p.outputs, from: p.from, ...(p.sidecar ? { sidecar: p.sidecar } : {}) },
      };
      return r;
    } catch (err) {
      // A model training would refuse is an answer for the panel (it shows why); anything else is a failure.
      if (err instanceof HeadstartError) return { ok: false, reason: err.message };
      throw err;
    }
  },
  async export({ runDir, options, settings }, progress) {
    const r: ExportReport = await exportRun(runDir, { ...options, ...settings }, progress);
    return r;
  },
  async predict({ modelDir, files, settings }, progress) {
    const r: PredictionLine[] = await predictFiles(modelDir, files, settings, progress);
    return r;
  },
  async predictText({ modelDir, texts, settings }, progress) {
    if (!(await isTextModel(modelDir))) throw new HeadstartError('BAD_INPUT', `${modelDir} is not a text model (a run or an export trained on texts): choose a text model, or classify images with it (Explorer → Classify with Headstart Model…)`);
    // Each text is refused as the dataset reader would (empty, over the size cap); the others are classified.
    const inputs = texts.map((text) => {
      const why = textRefusal(text);
      return why ? { path: '', error: why } : { text: text.trim() };
    });
    const lines = await predictTexts(modelDir, inputs, settings, progress);
    const r: TextPredictionLine[] = lines.map((l) => ('error' in l ? { error: l.error } : { text: l.text, label: l.label, probability: l.probability, top: l.top, coverage: l.coverage }));
    return r;
  },
  async modality({ data }) {
    return detectModality(data);
  },
  async scan({ data }, progress) {
    if ((await detectModality(data)) === 'text') {
      const r: ScanSummary = await scanTextDataset(data, progress);
      return r;
    }
    const s = await scanDataset(data, progress);
    const counts: Record<string, number> = {};
    const examples: Record<string, string> = {};
    for (const x of s.hashed) {
      counts[x.label] = (counts[x.label] ?? 0) + 1;
      examples[x.label] ??= x.path;
    }
    const r: ScanSummary = { root: s.root, kind: s.kind, counts, examples, skipped: s.skipped, total: s.hashed.length };
    return r;
  },
  async distill({ runDir, student, out, force, protectedRoots, settings }, progress) {
    const r: DistillReport = await distillRun({ runDir, student, out, force, protectedRoots, ...settings }, progress);
    return r;
  },
  async backbones({ settings }) {
    const cacheDir = settings.cacheDir || defaultCacheDir();
    const images = CATALOGUE.map(async (e): Promise<BackboneInfo> => ({ id: e.id, title: e.title, task: 'image', format: e.format, featureSize: e.featureSize, inputSize: e.inputSize, bundled: e.bundled, cached: await isCached(e, cacheDir), approxBytes: e.approxBytes }));
    const texts = TEXT_CATALOGUE.map(async (e): Promise<BackboneInfo> => ({ id: e.id, title: e.title, task: 'text', format: e.kind, featureSize: e.featureSize, inputSize: 0, bundled: e.bundled, cached: e.bundled || (await textBackboneCached(e, cacheDir)), approxBytes: e.approxBytes }));
    return Promise.all([...images, ...texts]);
  },
};
