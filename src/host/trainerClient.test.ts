/**
 * The host <-> worker protocol end to end: the host's TrainerClient forks a
 * real child process and talks vscode-jsonrpc over its IPC channel. The child
 * is this file run again as a stub worker: serveWorker with handlers typed by
 * the protocol map (src/worker/serve.ts), so routing, events, cancellation
 * and crashes go through the real plumbing of both ends. A last test forks
 * the built dist/worker.js (real handlers) for 'backbones'.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { IPCMessageReader, IPCMessageWriter, createMessageConnection } from 'vscode-jsonrpc/node';
import { CancellationTokenSource } from 'vscode-jsonrpc';
import type { EngineEvent } from '../shared/events';
import { DEFAULT_TEXT_BACKBONE, MAX_TEXT_BYTES } from '../shared/options';
import type { BackboneInfo, RunRecord } from '../shared/records';
import type { WorkerError } from '../shared/workerProtocol';
import { type WorkerHandlers, serveWorker } from '../worker/serve';
import { type ClientLog, TrainerClient, WorkerRequestError } from './trainerClient';

const STUB_ENV = 'HEADSTART_STUB_WORKER';

class Cancelled extends Error {}

/** Resolves when `signal` aborts, rejecting with Cancelled (what core does within one batch). */
const untilAborted = (signal: AbortSignal): Promise<never> =>
  new Promise((_, reject) => {
    if (signal.aborted) reject(new Cancelled());
    signal.addEventListener('abort', () => reject(new Cancelled()), { once: true });
  });

const BACKBONE: BackboneInfo = { id: 'stub', title: 'Stub', format: 'layers', featureSize: 4, inputSize: 8, bundled: true, cached: true, approxBytes: 10 };

/** The stub worker's handlers: each returns its request's result type (tsc checks it). */
const stubHandlers: WorkerHandlers = {
  async backbones(params) {
    return [{ ...BACKBONE, title: `cache ${params.settings.cacheDir ?? 'default'}` }];
  },
  async scan({ data }, { signal, onEvent }) {
    // Events for this request only, then work until cancelled (data 'quick': answer at once).
    onEvent({ type: 'phase', phase: 'scan', message: `scanning ${data}` });
    onEvent({ type: 'progress', phase: 'scan', done: 1, total: 2 });
    if (data === 'quick') return { root: data, kind: 'folders', counts: { a: 1 }, examples: { a: 'a.jpg' }, skipped: [], total: 1 };
    return untilAborted(signal);
  },
  async train(_p, { signal }) {
    return untilAborted(signal);
  },
  async export({ runDir }) {
    throw Object.assign(new Error(`no run.json in ${runDir}`), { code: 'BAD_INPUT' });
  },
  async predict(_p, { signal }) {
    return untilAborted(signal);
  },
  async predictText(_p, { signal }) {
    return untilAborted(signal);
  },
  async modality({ data }) {
    return data.endsWith('.txt') ? 'text' : 'image';
  },
  async onnxPreprocessing({ backbone }) {
    return { ok: false, reason: `stub: ${backbone}` };
  },
  async distill(_p, { signal }) {
    return untilAborted(signal);
  },
};

function stubError(err: unknown): WorkerError {
  if (err instanceof Cancelled) return { message: 'cancelled', code: 'CANCELLED' };
  const code = (err as { code?: unknown }).code;
  return { message: err instanceof Error ? err.message : String(err), code: typeof code === 'string' ? code : 'INTERNAL' };
}

/** A log that keeps its lines (the client reports crashes and worker output there). */
function memoryLog(): ClientLog & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (m) => lines.push(`info ${m}`), warn: (m) => lines.push(`warn ${m}`), error: (m) => lines.push(`error ${m}`) };
}

function stubClient(): { client: TrainerClient; log: ReturnType<typeof memoryLog> } {
  const log = memoryLog();
  process.env[STUB_ENV] = '1';
  return { client: new TrainerClient(__filename, log), log };
}

/** Resolves with the first event `pred` accepts. */
function waitFor(events: EngineEvent[], pred: (e: EngineEvent) => boolean): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (events.some(pred)) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
}

if (process.env[STUB_ENV]) {
  // Forked by a test below: be the worker.
  const connection = createMessageConnection(new IPCMessageReader(process), new IPCMessageWriter(process));
  serveWorker(connection, stubHandlers, stubError);
  connection.listen();
  process.on('disconnect', () => process.exit(0));
} else {
  /** A hang (a lost reply or cancel) fails the test instead of stalling the run. */
  const T = { timeout: 20_000 };

  test('a request returns its typed result from a real child process', T, async (t) => {
    const { client } = stubClient();
    t.after(() => client.dispose());
    const list = await client.request('backbones', { settings: { cacheDir: '/c' } });
    assert.deepEqual(list, [{ ...BACKBONE, title: 'cache /c' }]);
    assert.ok(client.pid, 'a worker runs');
  });

  test('events reach the onEvent of their own request only', T, async (t) => {
    const { client } = stubClient();
    t.after(() => client.dispose());
    const a: EngineEvent[] = [];
    const b: EngineEvent[] = [];
    const [ra, rb] = await Promise.all([client.request('scan', { data: 'quick' }, (e) => a.push(e)), client.request('scan', { data: 'quick' }, (e) => b.push(e))]);
    assert.equal(ra.total, 1);
    assert.equal(rb.root, 'quick');
    assert.deepEqual(a.map((e) => e.type), ['phase', 'progress']);
    assert.deepEqual(b.map((e) => e.type), ['phase', 'progress']);
  });

  test("cancelling a request aborts its handler's AbortSignal; it rejects as cancelled", T, async (t) => {
    const { client } = stubClient();
    t.after(() => client.dispose());
    const source = new CancellationTokenSource();
    const events: EngineEvent[] = [];
    const pending = client.request('scan', { data: 'slow' }, (e) => events.push(e), source.token);
    await waitFor(events, (e) => e.type === 'progress');
    source.cancel();
    await assert.rejects(pending, (err: unknown) => err instanceof WorkerRequestError && err.cancelled && err.error.code === 'CANCELLED');
    // The worker lives on: the next request is answered by the same process.
    const pid = client.pid;
    assert.equal((await client.request('scan', { data: 'quick' })).total, 1);
    assert.equal(client.pid, pid);
  });

  test('an engine error comes back with its code and message', T, async (t) => {
    const { client } = stubClient();
    t.after(() => client.dispose());
    await assert.rejects(client.request('export', { runDir: '/r', options: { out: '/o' }, settings: {} }), (err: unknown) => err instanceof WorkerRequestError && err.error.code === 'BAD_INPUT' && /no run.json in \/r/.test(err.message));
  });

  test('a crash rejects every pending request, is reported once, and the next request starts a new worker', T, async (t) => {
    const { client, log } = stubClient();
    t.after(() => client.dispose());
    const crashes: string[] = [];
    client.onDidCrash((why) => crashes.push(why));
    const events: EngineEvent[] = [];
    const first = client.request('scan', { data: 'slow' }, (e) => events.push(e));
    const second = client.request('train', { options: { data: 'd', backbone: 'b', out: 'o' }, settings: {} });
    await waitFor(events, (e) => e.type === 'progress');
    const pid = client.pid!;
    process.kill(pid, 'SIGKILL');
    for (const p of [first, second]) await assert.rejects(p, (err: unknown) => err instanceof WorkerRequestError && err.error.code === 'CRASH' && /stopped unexpectedly \(signal SIGKILL\)/.test(err.message));
    assert.equal(crashes.length, 1);
    assert.ok(log.lines.some((l) => l.startsWith('error the Headstart worker process stopped unexpectedly')));
    assert.equal((await client.request('scan', { data: 'quick' })).total, 1);
    assert.notEqual(client.pid, pid, 'a new worker process answered');
  });

  const workerJs = path.join(process.env.HEADSTART_REPO_ROOT ?? process.cwd(), 'dist', 'worker.js');
  test('the built worker (real handlers) answers backbones with the catalogue', { ...T, skip: existsSync(workerJs) ? false : `${workerJs} is not built (npm run build)` }, async (t) => {
    const client = new TrainerClient(workerJs, memoryLog());
    t.after(() => client.dispose());
    const list = await client.request('backbones', { settings: { cacheDir: path.join(process.env.TMPDIR ?? '/tmp', 'headstart-test-ts-cache') } });
    const bundled = list.find((b) => b.id === 'mobilenet-v2-140');
    assert.ok(bundled, list.map((b) => b.id).join(', '));
    assert.equal(bundled.format, 'graph');
    assert.equal(bundled.bundled, true);
    assert.equal(bundled.featureSize, 1792);
    // The panel's text default (shared/options) is the engine's bundled text backbone.
    const glove = list.find((b) => b.id === DEFAULT_TEXT_BACKBONE);
    assert.deepEqual(glove && { task: glove.task, format: glove.format, bundled: glove.bundled }, { task: 'text', format: 'word-average', bundled: true });
    assert.equal(list.find((b) => b.id === 'minilm-l6-v2')?.cached, false, 'a download not made is not cached');
  });

  const cli = path.join(process.env.HEADSTART_REPO_ROOT ?? process.cwd(), 'bin', 'headstart.js');
  test('the built worker: a text dataset scans as text; predictText classifies texts with a text run and refuses what it cannot read', { timeout: 120_000, skip: existsSync(workerJs) ? false : `${workerJs} is not built (npm run build)` }, async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'headstart-text-worker-'));
    const cacheDir = path.join(dir, 'cache');
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const data = path.join(dir, 'tickets');
    const sh = (args: string[]) => {
      const r = spawnSync(process.execPath, [cli, ...args, '--quiet', '--cache', cacheDir], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    };
    spawnSync(process.execPath, [cli, 'sample', '--text', data, '--per-class', '16', '--seed', '3'], { encoding: 'utf8' });
    sh(['train', data, '--out', path.join(dir, 'run')]);
    // run.json carries each test mistake's words (the panel shows them instead of a thumbnail); seeded: one mistake here.
    const record = JSON.parse(readFileSync(path.join(dir, 'run', 'run.json'), 'utf8')) as RunRecord;
    assert.ok(record.test.mistakes.length >= 1, 'the seeded sample has a mistake');
    for (const m of record.test.mistakes) assert.equal(m.text, readFileSync(m.path, 'utf8').replace(/\s+/g, ' ').trim().slice(0, 200));
    const client = new TrainerClient(workerJs, memoryLog());
    t.after(() => client.dispose());
    assert.equal(await client.request('modality', { data }), 'text');
    const scan = await client.request('scan', { data });
    assert.equal(scan.modality, 'text');
    assert.equal(scan.total, 64);
    assert.deepEqual(Object.keys(scan.counts).sort(), ['account', 'billing', 'shipping', 'technical']);
    assert.equal(scan.text?.examples.billing?.length, 3);
    assert.ok(scan.text!.examples.billing!.every((e) => e.path.startsWith(path.join(data, 'billing')) && e.text.length > 0), JSON.stringify(scan.text!.examples.billing));
    assert.ok(scan.text!.coverage.tokens > 0.8 && scan.text!.coverage.backbone === 'glove-100d-avg', JSON.stringify(scan.text!.coverage));
    assert.ok(scan.text!.words.min >= 1 && scan.text!.words.max >= scan.text!.words.median && scan.text!.chars.mean > scan.text!.words.mean);
    const settings = { cacheDir };
    const lines = await client.request('predictText', { modelDir: path.join(dir, 'run'), texts: ['my parcel never arrived and tracking is stuck', '   ', 'x'.repeat(MAX_TEXT_BYTES + 1), 'I was billed twice for my subscription'], settings });
    assert.equal(lines.length, 4);
    const [a, empty, big, b] = lines;
    assert.ok(a && !('error' in a) && a.label === 'shipping' && a.top.length === 4 && a.top[0]!.label === 'shipping', JSON.stringify(a));
    assert.ok(b && !('error' in b) && b.label === 'billing', JSON.stringify(b));
    assert.match(empty && 'error' in empty ? empty.error : '', /whitespace only/);
    assert.match(big && 'error' in big ? big.error : '', /over the 100000-byte limit/);
    await assert.rejects(client.request('predictText', { modelDir: dir, texts: ['hello'], settings }), /is not a text model/);
  });
}
