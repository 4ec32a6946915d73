/**
 * The worker process: the extension host forks it (Node, or Electron run as
 * Node) and sends WorkerRequests over IPC. Training and extraction run here,
 * never on the extension host thread.
 */
import {
  CATALOGUE,
  HeadstartError,
  assertNever,
  closeAllThreads,
  defaultCacheDir,
  distillRun,
  exportRun,
  isCached,
  isCancelled,
  predictFiles,
  scanDataset,
  trainRun,
} from '../core';
import type { EngineEvent } from '../shared/events';
import type { WorkerError, WorkerMessage, WorkerRequest } from '../shared/workerProtocol';

const send = (msg: WorkerMessage): void => {
  process.send?.(msg);
};

function toWorkerError(err: unknown): WorkerError {
  if (isCancelled(err)) return { message: 'cancelled', code: 'CANCELLED' };
  if (err instanceof HeadstartError) return { message: err.message, code: err.code };
  return { message: err instanceof Error ? err.message : String(err), code: 'INTERNAL', stack: err instanceof Error ? err.stack : undefined };
}

const running = new Map<number, AbortController>();

async function handle(req: Exclude<WorkerRequest, { type: 'cancel' }>, signal: AbortSignal): Promise<unknown> {
  const onEvent = (event: EngineEvent): void => send({ type: 'event', id: req.id, event });
  switch (req.type) {
    case 'train':
      return trainRun({ ...req.options, ...req.settings }, { onEvent, signal });
    case 'export':
      return exportRun(req.runDir, { ...req.options, ...req.settings }, { onEvent, signal });
    case 'predict':
      return predictFiles(req.modelDir, req.files, req.settings, { onEvent, signal });
    case 'scan': {
      const s = await scanDataset(req.data, { onEvent, signal });
      const counts: Record<string, number> = {};
      const examples: Record<string, string> = {};
      for (const x of s.hashed) {
        counts[x.label] = (counts[x.label] ?? 0) + 1;
        examples[x.label] ??= x.path;
      }
      return { root: s.root, kind: s.kind, counts, examples, skipped: s.skipped, total: s.hashed.length };
    }
    case 'distill':
      return distillRun({ runDir: req.runDir, student: req.student, out: req.out, force: req.force, protectedRoots: req.protectedRoots, ...req.settings }, { onEvent, signal });
    case 'backbones': {
      const cacheDir = req.settings.cacheDir || defaultCacheDir();
      return Promise.all(CATALOGUE.map(async (e) => ({ id: e.id, title: e.title, format: e.format, featureSize: e.featureSize, inputSize: e.inputSize, bundled: e.bundled, cached: await isCached(e, cacheDir), approxBytes: e.approxBytes })));
    }
    default:
      return assertNever(req);
  }
}

process.on('message', (req: WorkerRequest) => {
  if (req.type === 'cancel') {
    running.get(req.target)?.abort();
    return;
  }
  const controller = new AbortController();
  running.set(req.id, controller);
  handle(req, controller.signal).then(
    (result) => send({ type: 'reply', id: req.id, ok: true, result }),
    (err: unknown) => send({ type: 'reply', id: req.id, ok: false, error: toWorkerError(err) }),
  ).finally(() => running.delete(req.id));
});

// The host going away (window closed, extension host crashed) ends the worker:
// cancel what runs, and let ONNX Runtime threads finish their batch first
// (exiting while a thread is inside session.run() aborts the process).
process.on('disconnect', () => {
  for (const c of running.values()) c.abort();
  void closeAllThreads().finally(() => process.exit(0));
});

for (const ev of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(ev, (err: unknown) => {
    send({ type: 'fatal', error: toWorkerError(err) });
    process.exitCode = 70;
    setTimeout(() => process.exit(70), 100);
  });
}

send({ type: 'ready', pid: process.pid });
