import * as path from 'node:path';
import { Job, Queue, QueueEvents } from 'bullmq';
import IORedis from 'ioredis';
import type { ExtractItem, ExtractResult } from '../data/extract';
import { findBackbone } from '../backbones/catalogue';
import type { OpenedBackbone } from '../engine';
import { CancelledError, HeadstartError, describeError } from '../errors';
import type { Phase, Progress } from '../events';
import { EXTRACT_QUEUE, QUEUE_PREFIX, type QueueTarget, parseQueueUrl } from './connection';
import { DEFAULT_SHARD_SIZE, type ExtractJobData, type ExtractJobResult, type JobProgress, extractJobId, shard } from './jobs';

/** `--queue` on train / sweep. */
export interface QueueOptions {
  /** redis://[user:password@]host:port; written to run.json only redacted. */
  url: string;
  /** Images per job, default 256; rounded up to a multiple of the extraction batch. */
  shardSize?: number;
  /** Seconds without a reachable Redis before the coordinator gives up, default 20. */
  timeoutSeconds?: number;
}

/** The images of `items` whose features or thumbnail are not cached yet (one per content hash). */
export async function missingItems(opened: OpenedBackbone, items: ExtractItem[]): Promise<ExtractItem[]> {
  const seen = new Set<string>();
  const out: ExtractItem[] = [];
  for (const it of items) {
    if (seen.has(it.hash)) continue;
    seen.add(it.hash);
    const [f, t] = await Promise.all([opened.caches.features.get(it.hash), opened.caches.thumbs.get(it.hash)]);
    if (!f || !t) out.push({ path: it.path, hash: it.hash, ...(it.view ? { view: it.view } : {}) });
  }
  return out;
}

interface Tracked<R> {
  total: number;
  done: number;
  state: 'pending' | 'completed' | 'failed';
  result?: R;
  reason?: string;
}

/** Live figures across workers (items done, rate, workers seen, ETA), turned into the usual progress events. */
export class Tally<R extends { worker: string } = ExtractJobResult> {
  readonly jobs = new Map<string, Tracked<R>>();
  readonly workers = new Set<string>();
  private readonly t0 = Date.now();
  /** `unit`: what is counted ('images', 'trials'); `phase`: the phase the progress events belong to. */
  constructor(private readonly progress: Progress, private readonly total: number, private readonly unit = 'images', private readonly phase: Phase = 'extract') {}

  get finished(): boolean {
    return [...this.jobs.values()].every((j) => j.state !== 'pending');
  }

  seeWorker(w: string | undefined): void {
    if (!w || this.workers.has(w)) return;
    this.workers.add(w);
    this.progress.onEvent?.({ type: 'log', message: `worker ${w} is working on this run (${this.workers.size} seen)` });
  }

  update(id: string, done: number): void {
    const j = this.jobs.get(id);
    if (!j || j.state !== 'pending') return;
    j.done = Math.min(j.total, Math.max(0, done));
    this.emit();
  }

  finish(id: string, state: 'completed' | 'failed', result?: R, reason?: string): void {
    const j = this.jobs.get(id);
    if (!j || j.state !== 'pending') return;
    Object.assign(j, { state, result, reason, done: j.total });
    this.seeWorker(result?.worker);
    this.emit();
  }

  emit(): void {
    const done = [...this.jobs.values()].reduce((a, j) => a + j.done, 0);
    const rate = done / Math.max(0.001, (Date.now() - this.t0) / 1000);
    this.progress.onEvent?.({ type: 'progress', phase: this.phase, done, total: this.total, rate, unit: `${this.unit} (${this.workers.size} worker${this.workers.size === 1 ? '' : 's'})`, eta: (this.total - done) / Math.max(rate, 1e-6) });
  }

  get seconds(): number {
    return (Date.now() - this.t0) / 1000;
  }
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/** An extraction job's return value as QueueEvents reports it (typed as a string, delivered as the worker's object). */
function extractResult(v: unknown): ExtractJobResult | undefined {
  return typeof v === 'object' && v !== null && typeof (v as Partial<ExtractJobResult>).computed === 'number' ? (v as ExtractJobResult) : undefined;
}

/** `p`, or a rejection after `ms` (a command to an unreachable Redis may never settle). */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** One queue's jobs as runJobs sees them: its name, the job name, how to read a result, and what a result that was removed from Redis means. */
export interface JobKind<R> {
  queue: string;
  name: string;
  /** The worker's return value, or undefined when it is not one of this kind. */
  result(v: unknown): R | undefined;
  /** A completed job that is gone from Redis: extraction's work is in the cache ('completed'); a trial's result is lost ('failed'). */
  removed: 'completed' | 'failed';
  /** Seconds a completed job is kept in Redis. */
  keepSeconds: number;
}

/** Extraction shards: results live in the cache, so a removed job counts as done. */
const EXTRACT_KIND: JobKind<ExtractJobResult> = { queue: EXTRACT_QUEUE, name: 'extract', result: extractResult, removed: 'completed', keepSeconds: 3600 };

/**
 * Queues jobs (reusing jobs already queued under the same ids: a restarted
 * coordinator does not queue twice, and takes finished results as they are),
 * follows them through the queue's events, and waits for all of them. Redis
 * unreachable for longer than --queue-timeout is a one-line error.
 */
export async function runJobs<D, R extends { worker: string }>(target: QueueTarget, kind: JobKind<R>, jobs: Array<{ id: string; data: D }>, tally: Tally<R>, opts: QueueOptions, progress: Progress): Promise<void> {
  const timeoutMs = (opts.timeoutSeconds ?? 20) * 1000;
  let lastError = '';
  const noteError = (err: unknown): void => {
    lastError = describeError(err);
  };
  // Our own clients: every error has a listener (no ioredis "Unhandled error" dumps), and they can be dropped however Redis is.
  // Commands fail fast while Redis is away (no offline queue, one retry): the loop below decides when to give up.
  const base = { ...target.connection, connectTimeout: Math.min(timeoutMs, 10_000) };
  const qc = new IORedis({ ...base, maxRetriesPerRequest: 1, enableOfflineQueue: false });
  const ec = new IORedis({ ...base, maxRetriesPerRequest: null });
  qc.on('error', noteError);
  ec.on('error', noteError);
  const queue = new Queue<D, R>(kind.queue, { connection: qc, prefix: QUEUE_PREFIX });
  const events = new QueueEvents(kind.queue, { connection: ec, prefix: QUEUE_PREFIX });
  queue.on('error', noteError);
  events.on('error', noteError);
  events.on('progress', ({ jobId, data }) => {
    const p = data as Partial<JobProgress>;
    tally.seeWorker(typeof p?.worker === 'string' ? p.worker : undefined);
    if (typeof p?.done === 'number') tally.update(jobId, p.done);
  });
  events.on('completed', ({ jobId, returnvalue }) => {
    const r = kind.result(returnvalue);
    // A result the events could not carry whole is read from the job in the loop below.
    if (r) tally.finish(jobId, 'completed', r);
  });
  events.on('stalled', ({ jobId }) => {
    if (tally.jobs.has(jobId)) progress.onEvent?.({ type: 'warning', message: `job ${jobId} stalled (its worker stopped answering); it goes back to the queue for another worker` });
  });
  let lastContact = Date.now();
  const withDeadline = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    for (;;) {
      if (progress.signal?.aborted) throw new CancelledError();
      try {
        const r = await within(f(), Math.min(timeoutMs, 5000));
        lastContact = Date.now();
        return r;
      } catch (err) {
        noteError(err);
        if (Date.now() - lastContact > timeoutMs) {
          throw new HeadstartError('BACKEND', `lost the queue at ${target.redacted} while ${what} (${lastError}) for ${Math.round(timeoutMs / 1000)} s; what workers finished is in the cache: start Redis and run the same command again to resume`);
        }
        await sleep(500, progress.signal);
      }
    }
  };
  try {
    await withDeadline('connecting', async () => {
      await queue.waitUntilReady();
      await queue.count(); // a real round trip: waitUntilReady alone does not prove Redis answers
    });
    await withDeadline('waiting for queue events', () => events.waitUntilReady().then(() => undefined));
    await withDeadline('queueing jobs', () =>
      // Casts: BullMQ's generic job name and data types do not follow a generic D.
      queue.addBulk(jobs.map((j) => ({ name: kind.name as never, data: j.data as never, opts: { jobId: j.id, attempts: 3, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: { age: kind.keepSeconds }, removeOnFail: { age: 24 * 3600 } } }))).then(() => undefined),
    );
    // A job id that failed for good in an earlier run is still there, and an add under its id is ignored: retry it.
    await withDeadline('retrying failed jobs', async () => {
      for (const id of tally.jobs.keys()) {
        if ((await queue.getJobState(id)) !== 'failed') continue;
        const job = await Job.fromId<D, R>(queue, id);
        if (!job) continue;
        progress.onEvent?.({ type: 'log', message: `job ${id} had failed in an earlier run (${job.failedReason}); retrying it` });
        await job.retry('failed');
      }
    });
    progress.onEvent?.({ type: 'log', message: `queued ${jobs.length} job(s) on ${target.redacted}; waiting for workers` });
    let reconciled = 0;
    while (!tally.finished) {
      if (progress.signal?.aborted) throw new CancelledError();
      // Events can be missed (a reconnect); the job states in Redis are the truth.
      await withDeadline('waiting for workers', async () => {
        for (const [id, j] of tally.jobs) {
          if (j.state !== 'pending') continue;
          const state = await queue.getJobState(id);
          if (state === 'completed') {
            const job = await Job.fromId<D, R>(queue, id);
            const r = kind.result(job?.returnvalue);
            if (r || kind.removed === 'completed') tally.finish(id, 'completed', r);
            else tally.finish(id, 'failed', undefined, `job ${id} completed without a readable result`);
          } else if (state === 'failed') {
            const job = await Job.fromId<D, R>(queue, id);
            tally.finish(id, 'failed', undefined, job?.failedReason ?? 'failed');
          } else if (state === 'unknown') {
            // Removed after completion: extraction's work is in the cache; a trial's result went with it.
            tally.finish(id, kind.removed, undefined, `job ${id} was removed from the queue before its result was read; run again`);
          }
        }
      });
      reconciled++;
      if (!tally.finished) await sleep(reconciled < 5 ? 200 : 1000, progress.signal);
      if (Date.now() - lastContact > timeoutMs) throw new HeadstartError('BACKEND', `lost the queue at ${target.redacted} (${lastError || 'no answer'}); start Redis and run the same command again to resume`);
    }
  } finally {
    // close() waits for Redis to answer; with Redis gone it would wait for ever.
    await within(Promise.allSettled([queue.close(), events.close()]), 2000).catch(noteError);
    qc.disconnect();
    ec.disconnect();
  }
}

/**
 * The backbone as a job names it: a catalogue id as it is, a model file by its
 * absolute path (keeping an `onnx:` prefix), so every worker opens the same
 * file under its --data-root. A URL is refused here: every worker would
 * download it, and workers refuse to fetch from the network for a job.
 */
export function jobBackboneId(id: string): string {
  if (findBackbone(id)) return id;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(id)) {
    throw new HeadstartError('BAD_INPUT', `--queue takes a catalogue backbone or a model file the workers can read, not a URL (${id.replace(/[?#].*$/, '')}): download the model into a folder under the workers' --data-root and pass its path`);
  }
  const m = /^(local|onnx):(.+)$/.exec(id);
  if (m) return m[1] === 'onnx' ? `onnx:${path.resolve(m[2]!)}` : path.resolve(m[2]!);
  return /[\\/]|\.(json|onnx)$/i.test(id) ? path.resolve(id) : id;
}

/**
 * Wraps an opened backbone so that its extract() first spreads the images that
 * are not cached over the queue's workers, waits for them, then reads
 * everything through the cache as a local run would (anything still missing,
 * such as a file no worker could read, is extracted here). Features are the
 * same bits as a local run's: same engine, same batches.
 */
export function queuedBackbone(opened: OpenedBackbone, backbone: string, opts: QueueOptions, cut?: { featureNode: string; pool: boolean }, batchSize = 16, maxPixels?: number): OpenedBackbone {
  const target = parseQueueUrl(opts.url);
  // Shards of whole batches: a worker then forms the batches a local run would.
  const shardSize = Math.ceil((opts.shardSize ?? DEFAULT_SHARD_SIZE) / batchSize) * batchSize;
  const engine = opened.engine === 'onnxruntime' ? 'onnx' : 'tfjs';
  const id = jobBackboneId(backbone);
  const extract = async (items: ExtractItem[], progress: Progress = {}): Promise<ExtractResult> => {
    const missing = await missingItems(opened, items);
    if (!missing.length) return opened.extract(items, progress);
    const tally = new Tally(progress, missing.length);
    const jobs = shard(missing, shardSize).map((s) => {
      const data: ExtractJobData = { backbone: id, engine, key: opened.caches.features.key, cut, batchSize, maxPixels, items: s };
      return { id: extractJobId(data), data };
    });
    for (const j of jobs) tally.jobs.set(j.id, { total: j.data.items.length, done: 0, state: 'pending' });
    progress.onEvent?.({ type: 'phase', phase: 'extract', message: `spreading ${missing.length} images over the queue's workers in ${jobs.length} job(s) of up to ${shardSize}` });
    await runJobs(target, EXTRACT_KIND, jobs, tally, opts, progress);
    const failed = [...tally.jobs.entries()].filter(([, j]) => j.state === 'failed');
    if (failed.length) throw new HeadstartError('BACKEND', `${failed.length} of ${jobs.length} queue job(s) failed for good: ${failed[0]![1].reason}${failed.length > 1 ? '; …' : ''}. Fix what the worker log says and run again (finished jobs are cached)`);
    const byWorkers = [...tally.jobs.values()].reduce((a, j) => a + (j.result?.computed ?? 0), 0);
    const local = await opened.extract(items, progress);
    if (local.computed > 0) progress.onEvent?.({ type: 'warning', message: `${local.computed} image(s) were not in the cache after the queue finished; extracted them here` });
    return { ...local, computed: local.computed + byWorkers, cached: local.cached - byWorkers, imagesPerSecond: (byWorkers + local.computed) / Math.max(tally.seconds, 0.001), seconds: tally.seconds + local.seconds };
  };
  return { ...opened, extract };
}
