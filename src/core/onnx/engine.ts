import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { HeadstartError, throwIfAborted } from '../errors';
import { exists, sha256, writeFileAtomic } from '../fsutil';
import { CONVERTER_VERSION, convertTfjsModel } from './convert';
import type { FeatureExtractor } from '../backbones/extractor';
import { ONNX_BACKBONE_FILE } from './backbone';
import { type PixelPrefix, splitPixelPrefix, toNchw } from './pixelInput';
import type { ResolvedBackbone } from '../backbones/store';

type Ort = typeof import('onnxruntime-node');
let ortModule: Ort | null | undefined;
let ortError = '';

/** onnxruntime-node if it is installed and loads on this platform (no Intel-mac build, say). */
export function loadOrt(): Ort | undefined {
  if (ortModule === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      ortModule = require('onnxruntime-node') as Ort;
    } catch (err) {
      ortModule = null;
      ortError = String((err as Error).message ?? err).split('\n')[0]!;
    }
  }
  return ortModule ?? undefined;
}

/** Why ONNX Runtime is unavailable ('' when it loads). */
export function ortUnavailableReason(): string {
  loadOrt();
  return ortError;
}

/** Default intra-op threads: every core (spinning is off, so a busy machine loses little). */
export function defaultOrtThreads(): number {
  return Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
}

/**
 * The backbone converted to ONNX, cut at its feature node with the input
 * normalisation and pooling built in: 0..255 NHWC pixels in, features out.
 * Converted once per (backbone, model hash, converter version) into the cache.
 */
export async function ensureOnnxBackbone(b: ResolvedBackbone, cacheDir: string): Promise<string> {
  if (b.entry.format === 'onnx') return path.join(b.dir, ONNX_BACKBONE_FILE); // already ONNX (a slimmed backbone)
  const cut = sha256(`${b.entry.featureNode}|${b.entry.pool ? 'pool' : ''}|${b.entry.inputRange.join(',')}`).slice(0, 8);
  const file = path.join(cacheDir, 'onnx', `${b.entry.id.replace(/[^\w.-]/g, '_').slice(0, 60)}-${b.modelHash.slice(0, 16)}-${cut}-c${CONVERTER_VERSION}.onnx`);
  if (await exists(file)) return file;
  const [lo, hi] = b.entry.inputRange;
  const conv = await convertTfjsModel(b.dir, { output: b.entry.featureNode, normalise: { scale: (hi - lo) / 255, offset: lo }, pool: b.entry.pool, inputName: 'image', outputName: 'features' });
  await fs.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, conv.bytes);
  return file;
}

/** Session options of every extraction session (and the benchmark's, so both sides run alike). */
export function ortSessionOptions(threads: number): import('onnxruntime-node').InferenceSession.SessionOptions {
  return {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Spinning threads fight any other job for the cores; sleeping ones do not.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
}

/**
 * The model an extractor runs for an ONNX backbone file: with the converter's
 * pixel prefix split off (the extractor lays the pixels out as NCHW on the
 * network's range itself), or the file as it is (a foreign model).
 */
export async function extractionModel(onnxPath: string): Promise<{ bytes: Uint8Array; prefix?: PixelPrefix }> {
  const bytes = new Uint8Array(await fs.readFile(onnxPath));
  return splitPixelPrefix(bytes) ?? { bytes };
}

/** A feature extractor on ONNX Runtime (CPU). `run()` blocks its thread: use it in a worker thread. */
export async function loadOnnxExtractor(onnxPath: string, inputSize: number, threads = defaultOrtThreads()): Promise<FeatureExtractor> {
  const ort = loadOrt();
  if (!ort) throw new HeadstartError('BACKEND', `ONNX Runtime is not available here (${ortError}); use --engine tfjs`);
  const model = await extractionModel(onnxPath);
  const session = await ort.InferenceSession.create(model.bytes, ortSessionOptions(threads));
  const pre = model.prefix;
  const runBatch = async (pixels: Float32Array, n: number): Promise<Float32Array> => {
    const x = pre ? new ort.Tensor('float32', toNchw(pixels, n, inputSize, pre.scale, pre.offset), [n, 3, inputSize, inputSize]) : new ort.Tensor('float32', pixels, [n, inputSize, inputSize, 3]);
    const out = await session.run({ [pre?.inputName ?? 'image']: x });
    return out.features!.data as Float32Array;
  };
  // A foreign model whose graph fixes the batch to 1 is wrapped with a [1, …] input: feed it one image at a time.
  const meta = session.inputMetadata?.[0];
  const oneAtATime = !!meta?.isTensor && meta.shape[0] === 1;
  const px = inputSize * inputSize * 3;
  const run = async (pixels: Float32Array, n: number): Promise<Float32Array> => {
    if (!oneAtATime || n === 1) return runBatch(pixels, n);
    const rows: Float32Array[] = [];
    for (let i = 0; i < n; i++) rows.push(await runBatch(pixels.subarray(i * px, (i + 1) * px), 1));
    const out = new Float32Array(rows.reduce((a, r) => a + r.length, 0));
    rows.forEach((r, i) => out.set(r, i * r.length));
    return out;
  };
  const probe = await run(new Float32Array(inputSize * inputSize * 3), 1);
  return {
    featureSize: probe.length,
    inputSize,
    extract: (pixels, n) => run(pixels, n),
    dispose: () => void session.release(),
    close: () => session.release(),
  };
}

/**
 * Runs decoded images (`size` x `size` x 3 RGB bytes, HWC) through a model
 * whose one input takes 0..255 NHWC pixels, `batch` images per pass, fetching
 * `fetch` (statistics outputs a probe graph added); `each` gets every pass's
 * outputs with the index of its first image and its length. Cancellation is
 * checked before each pass; the session is released however it ends. Callers
 * check loadOrt() first (with their own reason when it is missing).
 */
export async function runImageBatches(model: Uint8Array, images: Uint8Array[], size: number, batch: number, fetch: string[], each: (out: Record<string, { data: unknown }>, start: number, n: number) => void, signal?: AbortSignal): Promise<void> {
  const ort = loadOrt()!;
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 2, interOpNumThreads: 1 });
  try {
    const px = size * size * 3;
    for (let i = 0; i < images.length; i += batch) {
      throwIfAborted(signal);
      const part = images.slice(i, i + batch);
      const x = new Float32Array(part.length * px);
      part.forEach((im, j) => x.set(im, j * px));
      each(await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', x, [part.length, size, size, 3]) }, fetch), i, part.length);
    }
  } finally {
    await session.release();
  }
}
