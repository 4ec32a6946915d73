import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { BackendPreference } from '../backend';
import type { FeatureExtractor } from '../backbones/extractor';
import type { ResolvedBackbone } from '../backbones/store';
import { HeadstartError } from '../errors';

/** What a pool thread runs: a TF.js backend, or ONNX Runtime on a converted backbone. */
export type PoolEngine = { kind: 'tfjs'; backend: BackendPreference } | { kind: 'onnx'; onnxPath: string; threads: number };

export type PoolRequest =
  | { type: 'init'; backbone: ResolvedBackbone; engine: PoolEngine }
  | { type: 'extract'; id: number; pixels: Float32Array; n: number }
  | { type: 'close' };

export type PoolReply =
  | { type: 'ready'; featureSize: number; backend: string }
  | { type: 'result'; id: number; features: Float32Array }
  | { type: 'error'; id: number; message: string };

interface Slot {
  worker: Worker;
  busy: boolean;
}

/**
 * A pool of worker threads, each with its own engine and copy of the
 * backbone: data-parallel extraction for single-threaded backends (wasm in
 * Node), or one thread running ONNX Runtime (whose run() would block the
 * event loop). Implements FeatureExtractor; concurrent extract() calls run on
 * different threads.
 */
export class ExtractorPool implements FeatureExtractor {
  private readonly slots: Slot[] = [];
  /** Every thread started, ready or not (a failed start is closed too). */
  private readonly all: Worker[] = [];
  private readonly waiting: Array<(s: Slot) => void> = [];
  private readonly pending = new Map<number, { resolve: (f: Float32Array) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  featureSize = 0;
  readonly inputSize: number;

  private constructor(private readonly backbone: ResolvedBackbone) {
    this.inputSize = backbone.entry.inputSize;
  }

  /** Starts `size` threads and waits until each has loaded the backbone. */
  static async start(backbone: ResolvedBackbone, size: number, engine: PoolEngine): Promise<ExtractorPool> {
    const pool = new ExtractorPool(backbone);
    const script = path.join(__dirname, 'extractWorker.js');
    try {
      await Promise.all(
        Array.from({ length: size }, () => pool.spawn(script, engine)),
      );
    } catch (err) {
      pool.dispose();
      throw err;
    }
    return pool;
  }

  private spawn(script: string, engine: PoolEngine): Promise<void> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(script);
      this.all.push(worker);
      const slot: Slot = { worker, busy: false };
      let ready = false;
      worker.on('message', (msg: PoolReply) => {
        if (msg.type === 'ready') {
          ready = true;
          this.featureSize = msg.featureSize;
          this.slots.push(slot);
          resolve();
          return;
        }
        if (msg.type === 'error' && msg.id === -1) {
          reject(new HeadstartError('BACKEND', `extraction thread failed to start: ${msg.message}`));
          return;
        }
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        if (msg.type === 'result') p.resolve(msg.features);
        else p.reject(new HeadstartError('INTERNAL', `feature extraction failed in a worker thread: ${msg.message}`));
      });
      worker.on('error', (err) => {
        if (!ready) reject(err);
        for (const [, p] of this.pending) p.reject(err);
        this.pending.clear();
      });
      worker.postMessage({ type: 'init', backbone: this.backbone, engine } satisfies PoolRequest);
    });
  }

  private acquire(): Promise<Slot> {
    const free = this.slots.find((s) => !s.busy);
    if (free) {
      free.busy = true;
      return Promise.resolve(free);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(slot: Slot): void {
    const next = this.waiting.shift();
    if (next) next(slot);
    else slot.busy = false;
  }

  async extract(pixels: Float32Array, n: number): Promise<Float32Array> {
    const slot = await this.acquire();
    try {
      const id = this.nextId++;
      return await new Promise<Float32Array>((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        slot.worker.postMessage({ type: 'extract', id, pixels, n } satisfies PoolRequest, [pixels.buffer as ArrayBuffer]);
      });
    } finally {
      this.release(slot);
    }
  }

  get size(): number {
    return this.slots.length;
  }

  /**
   * Asks every thread to release its engine and end. Threads are not
   * terminated: a terminate() in the middle of native ONNX Runtime code
   * aborts the process. A thread busy with a batch ends after it.
   */
  dispose(): void {
    for (const w of this.all) {
      w.postMessage({ type: 'close' } satisfies PoolRequest);
      w.unref();
    }
    this.all.length = 0;
    this.slots.length = 0;
  }
}
