import * as os from 'node:os';
import * as path from 'node:path';
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import { type Skipped, discoverDataset } from '../data/dataset';
import type { ExtractItem } from '../data/extract';
import { DEFAULT_BACKBONE, findBackbone } from '../backbones/catalogue';
import { type EngineOptions, type OpenedBackbone, openBackbone } from '../engine';
import { HeadstartError, describeError } from '../errors';
import type { EventSink } from '../events';
import { UnreadableFileError, hashRegularFile } from '../data/files';
import { EXPERIMENT_QUEUE, EXTRACT_QUEUE, QUEUE_PREFIX, parseQueueUrl } from './connection';
import { type ExtractJobData, type JobProgress, type ExtractJobResult, checkExtractJob } from './jobs';
import { placeOf, resolveRoots } from './roots';
import { type TrialJobData, type TrialJobResult, checkTrialJob, runTrialPacked } from './trial';

export interface WorkerOptions extends Pick<EngineOptions, 'cacheDir' | 'backend' | 'workers'> {
  /** redis://[user:password@]host:port */
  queue: string;
  /** Folders this worker may read images (and local backbones) from. */
  dataRoots: string[];
  /** Jobs processed at once per queue (extraction, experiments), default 1 (one job already uses every extraction thread). */
  concurrency?: number;
  /**
   * Seconds a job's lock lives without renewal, default 30. A worker that dies
   * loses its lock after this long; another worker then takes the job again.
   */
  lockSeconds?: number;
}

/** A running worker: `closed` resolves after close() once the current jobs have finished. */
export interface RunningWorker {
  id: string;
  close(): Promise<void>;
}

/** Refuses a job whose paths leave the roots; returns the items to extract and the per-item failures. */
async function admit(items: ExtractItem[], roots: string[]): Promise<{ ok: ExtractItem[]; failed: Skipped[] }> {
  const ok: ExtractItem[] = [];
  const failed: Skipped[] = [];
  for (const it of items) {
    const place = await placeOf(it.path, roots);
    if (place.where === 'outside') throw new UnrecoverableError(`refused: ${it.path} is outside this worker's --data-root (${roots.join(', ')})`);
    if (place.where === 'missing') {
      failed.push({ path: it.path, reason: `cannot read file on worker (${place.code})` });
      continue;
    }
    // A plain item's key is its content hash: check it, so changed bytes are never cached under the old key.
    if (!it.view) {
      let hash: string;
      try {
        // Regular files only, opened without blocking and under the size cap: a FIFO or a giant named in a job fails its item.
        hash = await hashRegularFile(it.path);
      } catch (err) {
        const why = err instanceof UnreadableFileError ? err.message : ((err as NodeJS.ErrnoException).code ?? describeError(err));
        failed.push({ path: it.path, reason: `cannot read file on worker (${why})` });
        continue;
      }
      if (hash !== it.hash) {
        failed.push({ path: it.path, reason: 'file changed since the coordinator scanned it (content hash differs); run again' });
        continue;
      }
    }
    ok.push(it);
  }
  return { ok, failed };
}

/**
 * A job's backbone is a catalogue id, or a model file under the roots given by
 * its absolute path (an ONNX file may carry the `onnx:` prefix): nothing
 * relative, no URL (a job must not make a worker fetch from the network), and
 * nothing outside --data-root, before anything is opened.
 */
async function admitBackbone(backbone: string, roots: string[]): Promise<void> {
  if (findBackbone(backbone)) return;
  const file = backbone.replace(/^(onnx|local):/, '');
  if (!path.isAbsolute(file)) throw new UnrecoverableError(`refused: backbone ${backbone} is neither a catalogue id nor an absolute path under this worker's --data-root`);
  if ((await placeOf(file, roots)).where !== 'inside') throw new UnrecoverableError(`refused: backbone ${backbone} is outside this worker's --data-root (${roots.join(', ')})`);
}

/**
 * Refuses a trial whose DATA lies outside the roots (as written or through
 * links), or any image it lists. Discovery already keeps manifest rows and
 * class-folder entries inside DATA; the per-image check keeps the rule in
 * this one place should that ever change. Listing only: the trial itself
 * hashes and reads.
 */
async function admitTrial(d: TrialJobData, roots: string[]): Promise<void> {
  const refuse = (what: string): never => {
    throw new UnrecoverableError(`refused: ${what} is outside this worker's --data-root (${roots.join(', ')})`);
  };
  if ((await placeOf(d.settings.data, roots)).where !== 'inside') refuse(`DATA ${d.settings.data}`);
  const found = await discoverDataset(d.settings.data);
  for (const s of found.samples) if ((await placeOf(s.path, roots)).where === 'outside') refuse(`${s.path} (listed by DATA)`);
}

/**
 * Starts `headstart worker`: takes extraction jobs from the queue, extracts
 * each shard through the embedding cache in `cacheDir` (atomic writes: a
 * worker killed mid-write leaves no entry that is ever served), and reports
 * progress per batch. A file it cannot read fails that item, not the job; a
 * job naming a path outside the data roots is refused without retries.
 * It also takes experiment jobs (one sweep trial on the cached vectors): it
 * trains in a private temp folder and returns the run folder's files.
 */
export async function startWorker(opts: WorkerOptions, onEvent: EventSink = () => undefined): Promise<RunningWorker> {
  const target = parseQueueUrl(opts.queue);
  const roots = await resolveRoots(opts.dataRoots);
  const concurrency = opts.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new HeadstartError('BAD_INPUT', '--concurrency must be a whole number from 1 to 64');
  const lockSeconds = opts.lockSeconds ?? 30;
  if (!(lockSeconds >= 1 && lockSeconds <= 3600)) throw new HeadstartError('BAD_INPUT', '--lock-seconds must be from 1 to 3600');
  const id = `${os.hostname()}:${process.pid}`;
  const opened = new Map<string, Promise<OpenedBackbone>>();

  const backboneFor = async (d: Pick<ExtractJobData, 'backbone' | 'engine' | 'key' | 'cut' | 'batchSize' | 'maxPixels'>): Promise<OpenedBackbone> => {
    await admitBackbone(d.backbone, roots);
    const k = JSON.stringify([d.backbone, d.engine, d.cut ?? null, d.batchSize, d.maxPixels ?? null]);
    let p = opened.get(k);
    if (!p) {
      p = openBackbone(d.backbone, { cacheDir: opts.cacheDir, backend: opts.backend, workers: opts.workers, engine: d.engine, cut: d.cut, batchSize: d.batchSize, maxPixels: d.maxPixels }, { onEvent });
      opened.set(k, p);
      p.catch(() => opened.delete(k)); // a failed open is retried by the next job, not cached
    }
    const b = await p;
    if (b.caches.features.key !== d.key) {
      throw new UnrecoverableError(`this worker's ${d.backbone} (${b.engine}) gives cache key ${b.caches.features.key}, the coordinator's is ${d.key}: the model files or Headstart versions differ`);
    }
    return b;
  };

  const process_ = async (job: Job<ExtractJobData, ExtractJobResult>): Promise<ExtractJobResult> => {
    const t0 = Date.now();
    const bad = checkExtractJob(job.data);
    if (bad) throw new UnrecoverableError(`malformed job: ${bad}`);
    const d = job.data;
    const { ok, failed } = await admit(d.items, roots);
    const b = await backboneFor(d);
    const total = d.items.length;
    const report = (done: number): Promise<void> => job.updateProgress({ done, total, worker: id } satisfies JobProgress);
    await report(failed.length);
    const res = await b.extract(ok, {
      onEvent: (e) => {
        // extract() counts only what it computes; add the cached and refused items for a count of the shard.
        if (e.type === 'progress') void report(failed.length + (ok.length - e.total) + e.done).catch((err: unknown) => onEvent({ type: 'warning', message: `progress not sent: ${describeError(err)}` }));
      },
    });
    failed.push(...res.failed);
    await report(total);
    onEvent({ type: 'log', message: `job ${job.id}: ${res.computed} extracted, ${res.cached} cached, ${failed.length} failed in ${((Date.now() - t0) / 1000).toFixed(2)} s` });
    return { computed: res.computed, cached: res.cached, failed, seconds: (Date.now() - t0) / 1000, worker: id };
  };

  const trial_ = async (job: Job<TrialJobData, TrialJobResult>): Promise<TrialJobResult> => {
    const t0 = Date.now();
    const bad = checkTrialJob(job.data);
    if (bad) throw new UnrecoverableError(`malformed job: ${bad}`);
    const d = job.data;
    await admitTrial(d, roots);
    const backbone = d.settings.backbone ?? DEFAULT_BACKBONE;
    // The key check: this worker's model files and version give the features the coordinator cached.
    await backboneFor({ backbone, engine: d.engine, key: d.key, batchSize: d.settings.batchSize ?? 16, maxPixels: d.settings.maxPixels });
    await job.updateProgress({ done: 0, total: 1, worker: id } satisfies JobProgress);
    const res = await runTrialPacked({ ...d.settings, engine: d.engine, cacheDir: opts.cacheDir, backend: opts.backend, workers: opts.workers }, { onEvent: (e) => (e.type === 'warning' ? onEvent(e) : undefined) });
    onEvent({ type: 'log', message: `job ${job.id}: trial ${d.trial} trained in ${((Date.now() - t0) / 1000).toFixed(2)} s` });
    return { ...res, seconds: (Date.now() - t0) / 1000, worker: id };
  };

  const workerOpts = {
    connection: { ...target.connection, maxRetriesPerRequest: null },
    prefix: QUEUE_PREFIX,
    concurrency,
    name: id,
    lockDuration: lockSeconds * 1000,
    stalledInterval: Math.max(500, (lockSeconds * 1000) / 2),
    maxStalledCount: 2,
    autorun: false,
  };
  const workers = [new Worker<ExtractJobData, ExtractJobResult>(EXTRACT_QUEUE, process_, workerOpts), new Worker<TrialJobData, TrialJobResult>(EXPERIMENT_QUEUE, trial_, workerOpts)];
  // Connection errors repeat while Redis is away; say so once per kind, without the URL's credentials.
  let lastError = '';
  for (const worker of workers) {
    worker.on('error', (err) => {
      const msg = describeError(err);
      if (msg !== lastError) onEvent({ type: 'warning', message: `queue ${target.redacted}: ${msg}` });
      lastError = msg;
    });
    worker.on('ready', () => {
      lastError = '';
    });
    worker.on('failed', (job, err) => onEvent({ type: 'warning', message: `job ${job?.id ?? '?'} failed: ${describeError(err)}` }));
  }
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  for (const w of workers) void w.run();
  onEvent({ type: 'log', message: `worker ${id} on ${target.redacted}, reading under ${roots.join(', ')}, ${concurrency} job(s) at once per queue (extraction, experiments)` });
  return {
    id,
    close: async () => {
      // close() waits for the jobs in hand; their results are then committed to the queue.
      await Promise.all(workers.map((w) => w.close()));
      for (const p of opened.values()) (await p).dispose();
    },
  };
}
