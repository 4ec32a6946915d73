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

const closedError = (): HeadstartError => new HeadstartError('INTERNAL', 'the extraction pool was closed');

/** Every extraction thread of this process that has not exited, with its engine and a promise of its exit. */
const liveThreads = new Map<Worker, { kind: PoolEngine['kind']; exited: Promise<void> }>();

/**
 * Ends every extraction thread of the process and resolves when they are
 * gone: call it before process.exit(). A thread in the middle of ONNX
 * Runtime's native run must finish that batch first (ending it mid-run
 * aborts the process: 'terminate called … Napi::Error', exit 134), so ONNX
 * threads are asked to close and awaited; TF.js threads run no native code
 * and are terminated at once. After `timeoutMs` it resolves anyway.
 */
export async function closeAllThreads(timeoutMs = 60_000): Promise<void> {
  const waits: Array<Promise<void>> = [];
  for (const [w, t] of liveThreads) {
    if (t.kind === 'tfjs') void w.terminate();
    else w.postMessage({ type: 'close' } satisfies PoolRequest);
    waits.push(t.exited);
  }
  if (!waits.length) return;
  let timer: NodeJS.Timeout | undefined;
  // A referenced timer: the threads are unref'd, and the wait must keep the process alive.
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  await Promise.race([Promise.all(waits), late]);
  clearTimeout(timer);
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
  private readonly waiting: Array<{ resolve: (s: Slot) => void; reject: (e: Error) => void }> = [];
  private readonly pending = new Map<number, { resolve: (f: Float32Array) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private closed = false;
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
      liveThreads.set(worker, { kind: engine.kind, exited: new Promise((done) => worker.once('exit', () => done())) });
      worker.once('exit', () => liveThreads.delete(worker));
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
      worker.on('exit', () => {
        const gone = new HeadstartError('INTERNAL', 'an extraction thread ended');
        if (!ready) reject(gone);
        for (const [, p] of this.pending) p.reject(gone);
        this.pending.clear();
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
    if (this.closed) return Promise.reject(closedError());
    const free = this.slots.find((s) => !s.busy);
    if (free) {
      free.busy = true;
      return Promise.resolve(free);
    }
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  private release(slot: Slot): void {
    const next = this.waiting.shift();
    if (next) next.resolve(slot);
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
    this.closed = true;
    for (const w of this.all) {
      w.postMessage({ type: 'close' } satisfies PoolRequest);
      w.unref();
    }
    this.all.length = 0;
    this.slots.length = 0;
    for (const w of this.waiting.splice(0)) w.reject(closedError());
  }
}
