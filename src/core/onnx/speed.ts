import { loadOrt } from './engine';
import { throwIfAborted } from '../errors';
import type { Progress } from '../events';

/** Speed of one ONNX model in ONNX Runtime. */
export interface OnnxSpeed {
  /** Milliseconds per single image (batch 1), best of the repetitions. */
  batch1Ms: number;
  /** Images per second at batch 32, best of the repetitions. */
  batch32ImagesPerSecond: number;
  /**
   * Process CPU milliseconds per image at batch 32, least of the repetitions:
   * what the model costs the machine, which other jobs on a shared machine
   * move far less than they move the wall clock.
   */
  batch32CpuMs: number;
}

/** Two models timed side by side (`base` is the reference, float32). */
export interface SpeedComparison {
  threads: number;
  repetitions: number;
  base: OnnxSpeed;
  other: OnnxSpeed;
  /** base.batch1Ms / other.batch1Ms: above 1 means `other` is faster. */
  batch1Speedup: number;
  batch32Speedup: number;
  /** base.batch32CpuMs / other.batch32CpuMs: the speed-up on an idle machine with these threads. */
  batch32CpuSpeedup: number;
}

/** Process CPU milliseconds (user + system: ONNX Runtime's threads included). */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Times two ONNX models in the same process on the same pixels (`images`,
 * 0..255 RGB, `size` square): batch-1 latency and batch-32 throughput on
 * `threads` intra-op threads. The two sessions alternate within each
 * repetition so background load hits both alike; the best repetition counts
 * (the least disturbed one on a shared machine).
 */
export async function compareOnnxSpeed(baseFile: string, otherFile: string, images: Uint8Array[], size: number, { threads = 2, repetitions = 3 } = {}, progress: Progress = {}): Promise<SpeedComparison> {
  const ort = loadOrt()!;
  const px = size * size * 3;
  const one = images.map((im) => new ort.Tensor('float32', Float32Array.from(im), [1, size, size, 3]));
  const batch = new Float32Array(32 * px);
  for (let i = 0; i < 32; i++) batch.set(images[i % images.length]!, i * px);
  const big = new ort.Tensor('float32', batch, [32, size, size, 3]);
  const opts = { intraOpNumThreads: threads, interOpNumThreads: 1 };
  const sessions = [await ort.InferenceSession.create(baseFile, opts), await ort.InferenceSession.create(otherFile, opts)];
  const best: OnnxSpeed[] = sessions.map(() => ({ batch1Ms: Infinity, batch32ImagesPerSecond: 0, batch32CpuMs: Infinity }));
  try {
    for (const s of sessions) await s.run({ [s.inputNames[0]!]: one[0]! }); // warm-up: kernels, buffers
    for (let r = 0; r < repetitions; r++)
      for (const [i, s] of sessions.entries()) {
        throwIfAborted(progress.signal);
        const name = s.inputNames[0]!;
        const n = Math.min(8, one.length);
        let t = performance.now();
        for (let k = 0; k < n; k++) await s.run({ [name]: one[k]! });
        best[i]!.batch1Ms = Math.min(best[i]!.batch1Ms, (performance.now() - t) / n);
        t = performance.now();
        const c = cpuMs();
        await s.run({ [name]: big });
        best[i]!.batch32CpuMs = Math.min(best[i]!.batch32CpuMs, (cpuMs() - c) / 32);
        best[i]!.batch32ImagesPerSecond = Math.max(best[i]!.batch32ImagesPerSecond, 32000 / (performance.now() - t));
      }
  } finally {
    for (const s of sessions) await s.release();
  }
  const [base, other] = best as [OnnxSpeed, OnnxSpeed];
  return { threads, repetitions, base, other, batch1Speedup: base.batch1Ms / other.batch1Ms, batch32Speedup: other.batch32ImagesPerSecond / base.batch32ImagesPerSecond, batch32CpuSpeedup: base.batch32CpuMs / other.batch32CpuMs };
}

/** int8 against float32 (report.json's `quantization.speed`). */
export interface Int8Speed {
  threads: number;
  float32: OnnxSpeed;
  int8: OnnxSpeed;
  /** float32 batch-1 ms / int8 batch-1 ms (above 1: int8 is faster). */
  batch1Speedup: number;
  /** int8 batch-32 images/s / float32 batch-32 images/s. */
  batch32Speedup: number;
  /** float32 / int8 CPU ms per image at batch 32. */
  batch32CpuSpeedup: number;
}
