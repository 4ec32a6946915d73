import * as path from 'node:path';
import { loadOrt } from './engine';
import { DecodeError, readAndDecode } from '../data/decode';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { Rng } from '../rng';
import type { Int8Speed } from './speed';
import { type QdqStats, type Range, qdqTensors, quantizeQdq, withOutputs } from './qdq';


/** What calibration reads of a run record (run.json): its samples, labels, data root, seed and input size. */
export interface CalibrationSource {
  samples: Array<{ rel: string; label: string; split: string }>;
  labels: string[];
  dataset: { root: string };
  config: { seed: number };
  backbone: { inputSize: number };
}

/**
 * Training images the int8 export calibrates its activation ranges on, at
 * most. ONNX Runtime's examples use a few hundred; 100 images through the
 * float model take a few seconds here and the ranges of a ReLU6 network
 * settle well before that.
 */
export const CALIBRATION_IMAGES = 100;

/**
 * The calibration images of a run: from its TRAINING split only (never
 * validation or test images, which measure the export), balanced across
 * classes (round-robin over each class's seeded shuffle), at most `limit`.
 */
export function calibrationItems(record: Omit<CalibrationSource, 'backbone'>, limit = CALIBRATION_IMAGES): Array<{ path: string; label: string }> {
  const rng = new Rng(record.config.seed + 101);
  const byClass = record.labels.map((label) => {
    const list = record.samples.filter((s) => s.split === 'train' && s.label === label);
    for (let i = list.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [list[i], list[j]] = [list[j]!, list[i]!];
    }
    return list;
  });
  const out: Array<{ path: string; label: string }> = [];
  for (let round = 0; out.length < limit && byClass.some((l) => l.length > round); round++)
    for (const list of byClass) if (list[round] && out.length < limit) out.push({ path: path.join(record.dataset.root, list[round]!.rel), label: list[round]!.label });
  return out;
}

/** Calibrated ranges and what they came from. */
export interface Calibration {
  ranges: Map<string, Range>;
  /** Images that went through the model. */
  images: number;
  skipped: number;
}

/**
 * Runs the float32 model in ONNX Runtime over `inputs` (one float tensor
 * each, fed to the model's first input) with every tensor of `tensors` as an
 * extra output, and keeps each one's minimum and maximum over all inputs
 * (ONNX Runtime's MinMax method). `unit` names the inputs in progress events.
 */
async function minMaxRanges(floatBytes: Uint8Array, tensors: string[], inputs: AsyncIterable<{ data: Float32Array; dims: number[] }>, total: number, unit: string, progress: Progress): Promise<{ ranges: Map<string, Range>; count: number }> {
  const ort = loadOrt();
  if (!ort) throw new HeadstartError('BACKEND', 'int8 calibration runs the model in ONNX Runtime, which is not available here (onnxruntime-node did not load)');
  const session = await ort.InferenceSession.create(withOutputs(floatBytes, tensors));
  const ranges = new Map<string, Range>(tensors.map((t) => [t, { min: Infinity, max: -Infinity }]));
  let count = 0;
  try {
    for await (const x of inputs) {
      throwIfAborted(progress.signal);
      const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', x.data, x.dims) }, tensors);
      for (const t of tensors) {
        const r = ranges.get(t)!;
        const data = out[t]!.data as Float32Array;
        let lo = r.min;
        let hi = r.max;
        for (let i = 0; i < data.length; i++) {
          const v = data[i]!;
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        r.min = lo;
        r.max = hi;
      }
      count++;
      if (count % 8 === 0 || count === total) progress.onEvent?.({ type: 'progress', phase: 'export', done: count, total, unit });
    }
  } finally {
    await session.release();
  }
  return { ranges, count };
}

/**
 * Calibrated ranges over the calibration images, decoded exactly as the
 * export's input (0..255 RGB, centre crop, `size` square); see minMaxRanges.
 */
export async function calibrate(floatBytes: Uint8Array, tensors: string[], items: Array<{ path: string }>, size: number, progress: Progress = {}): Promise<Calibration> {
  let skipped = 0;
  async function* images(): AsyncGenerator<{ data: Float32Array; dims: number[] }> {
    for (const it of items) {
      try {
        yield { data: Float32Array.from(await readAndDecode(it.path, size)), dims: [1, size, size, 3] };
      } catch (err) {
        if (!(err instanceof DecodeError)) throw err;
        skipped++; // an unreadable training image only means one calibration image fewer
      }
    }
  }
  const { ranges, count } = await minMaxRanges(floatBytes, tensors, images(), items.length, 'calibration images (training split)', progress);
  if (!count) throw new HeadstartError('NO_DATA', `int8 calibration needs readable training images; none of the ${items.length} tried decoded`);
  return { ranges, images: count, skipped };
}

/** How an int8 export was made (report.json's `quantization`). */
export interface Int8Info {
  method: 'static QDQ (ONNX Runtime format)';
  /** Training images (or texts, see calibrationUnit) the activation ranges came from (never validation or test ones). */
  calibrationImages: number;
  /** 'texts' when a text head was calibrated on training texts' embeddings; absent for images. */
  calibrationUnit?: 'texts';
  calibrationSplit: 'train';
  calibrationSkipped: number;
  rangeMethod: 'minmax';
  weights: 'int8 symmetric, per output channel (Conv) / per column (MatMul)';
  activations: 'uint8 asymmetric, per tensor';
  /** 7-bit weights, as ONNX Runtime documents for x86 CPUs without VNNI. */
  reduceRange: boolean;
  stats: QdqStats;
}

/**
 * Weights 7-bit by default: measured here (AVX2, no VNNI) on MobileNetV2 1.4
 * it was as fast as 8-bit and closer to float32 (max probability difference
 * 0.17 vs 0.27 on the test images), and it cannot saturate the u8 x s8
 * kernels of CPUs without VNNI.
 */
export const INT8_REDUCE_RANGE = true;

/** The int8 QDQ model of a float32 ONNX export, calibrated on the run's training images. */
export async function quantizeInt8(floatBytes: Uint8Array, record: CalibrationSource, progress: Progress = {}): Promise<{ bytes: Uint8Array; info: Int8Info }> {
  const tensors = qdqTensors(floatBytes);
  const items = calibrationItems(record);
  progress.onEvent?.({ type: 'phase', phase: 'export', message: `calibrating int8 activation ranges on ${items.length} training images` });
  const cal = await calibrate(floatBytes, tensors, items, record.backbone.inputSize, progress);
  const q = quantizeQdq(floatBytes, cal.ranges, { reduceRange: INT8_REDUCE_RANGE });
  return { bytes: q.bytes, info: int8Info(q.stats, cal.images, cal.skipped) };
}

function int8Info(stats: QdqStats, calibrated: number, skipped: number): Int8Info {
  return {
    method: 'static QDQ (ONNX Runtime format)',
    calibrationImages: calibrated,
    calibrationSplit: 'train',
    calibrationSkipped: skipped,
    rangeMethod: 'minmax',
    weights: 'int8 symmetric, per output channel (Conv) / per column (MatMul)',
    activations: 'uint8 asymmetric, per tensor',
    reduceRange: INT8_REDUCE_RANGE,
    stats,
  };
}

/**
 * The int8 QDQ model of a float32 ONNX model whose input is a feature vector
 * (a text head): activation ranges calibrated on `features` (rows of
 * `featureSize`, from the run's training split: the caller's duty).
 */
export async function quantizeInt8Features(floatBytes: Uint8Array, features: Float32Array[], featureSize: number, progress: Progress = {}): Promise<{ bytes: Uint8Array; info: Int8Info }> {
  if (!features.length) throw new HeadstartError('NO_DATA', 'int8 calibration needs training texts; the run has none left readable: pick --quantize uint8 or float16');
  const tensors = qdqTensors(floatBytes);
  progress.onEvent?.({ type: 'phase', phase: 'export', message: `calibrating int8 activation ranges on ${features.length} training texts` });
  async function* rows(): AsyncGenerator<{ data: Float32Array; dims: number[] }> {
    for (const f of features) yield { data: f, dims: [1, featureSize] };
  }
  const cal = await minMaxRanges(floatBytes, tensors, rows(), features.length, 'calibration texts (training split)', progress);
  const q = quantizeQdq(floatBytes, cal.ranges, { reduceRange: INT8_REDUCE_RANGE });
  return { bytes: q.bytes, info: { ...int8Info(q.stats, cal.count, 0), calibrationUnit: 'texts' } };
}

/** One line for the CLI: int8 against float32, measured in the same process. */
export function int8Summary(q: Int8Info & { speed: Int8Speed }): string {
  const { float32: f, int8: i } = q.speed;
  return `int8 vs float32 in ONNX Runtime (${q.speed.threads} threads): batch 1 ${i.batch1Ms.toFixed(1)} vs ${f.batch1Ms.toFixed(1)} ms/image (${q.speed.batch1Speedup.toFixed(2)}x), batch 32 ${i.batch32ImagesPerSecond.toFixed(1)} vs ${f.batch32ImagesPerSecond.toFixed(1)} images/s (${q.speed.batch32Speedup.toFixed(2)}x; CPU time ${q.speed.batch32CpuSpeedup.toFixed(2)}x); calibrated on ${q.calibrationImages} training images.`;
}
