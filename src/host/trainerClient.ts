/**
 * The host's end of the worker protocol: forks the worker on first use (again
 * after a crash), sends typed jsonrpc requests, routes each request's engine
 * events, and turns a crash into an error for every request in flight. No
 * `vscode` import: node:test drives it against a real child process.
 */
import { type ChildProcess, fork } from 'node:child_process';
import * as path from 'node:path';
import { type CancellationToken, Emitter, type MessageConnection, ResponseError } from 'vscode-jsonrpc';
import { IPCMessageReader, IPCMessageWriter, createMessageConnection } from 'vscode-jsonrpc/node';
import type { EngineEvent } from '../shared/events';
import { ENGINE_EVENT, type ParamsOf, type ResultOf, WORKER_FATAL, WORKER_REQUESTS, type WorkerError, type WorkerMethod } from '../shared/workerProtocol';

/** Where the client writes what the user may need to read (the output channel in the extension). */
export interface ClientLog {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string, err?: unknown): void;
}

/** A failed request: the engine's message (code from HeadstartError), or a crash of the worker. */
export class WorkerRequestError extends Error {
  constructor(readonly error: WorkerError) {
    super(error.message);
    this.name = error.code === 'CANCELLED' ? 'CancelledError' : 'WorkerRequestError';
  }
  get cancelled(): boolean {
    return this.error.code === 'CANCELLED';
  }
}

/** A running worker: its process, its connection, and a promise that rejects when it dies. */
interface Worker {
  child: ChildProcess;
  connection: MessageConnection;
  died: Promise<never>;
}

/** The error of a reply: the worker's WorkerError, or jsonrpc's own (e.g. the connection was disposed). */
function toRequestError(err: unknown): WorkerRequestError {
  if (err instanceof WorkerRequestError) return err;
  if (err instanceof ResponseError && err.data && typeof err.data === 'object') return new WorkerRequestError(err.data as WorkerError);
  return new WorkerRequestError({ message: err instanceof Error ? err.message : String(err), code: 'INTERNAL' });
}

export class TrainerClient {
  private worker: Worker | undefined;
  private pending = 0;
  private nextToken = 1;
  private readonly crashed = new Emitter<string>();
  /** Fires with a description when the worker dies with requests in flight. */
  readonly onDidCrash = this.crashed.event;

  constructor(private readonly workerScript: string, private readonly log: ClientLog) {}

  /** PID of the running worker, if one runs. */
  get pid(): number | undefined {
    return this.worker?.child.pid;
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    // In desktop VS Code process.execPath is Electron: ELECTRON_RUN_AS_NODE makes it a plain Node.
    const child = fork(this.workerScript, [], {
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      cwd: path.dirname(this.workerScript),
    });
    child.stdout?.on('data', (d: Buffer) => this.log.info(`[worker] ${d.toString().trimEnd()}`));
    child.stderr?.on('data', (d: Buffer) => this.log.warn(`[worker] ${d.toString().trimEnd()}`));
    child.on('error', (err) => this.log.error(`worker process error: ${err.message}`, err));
    const connection = createMessageConnection(new IPCMessageReader(child), new IPCMessageWriter(child));
    connection.onNotification(WORKER_FATAL, (e) => this.log.error(`worker fatal error: ${e.message}${e.stack ? `\n${e.stack}` : ''}`));
    const died = new Promise<never>((_, reject) => {
      child.on('exit', (code, signal) => {
        if (this.worker?.child === child) this.worker = undefined;
        const why = `the Headstart worker process stopped unexpectedly (${signal ? `signal ${signal}` : `exit code ${code}`}); the run was lost — start it again`;
        // Rejected before the connection is disposed: requests in flight see this reason, not jsonrpc's.
        reject(new WorkerRequestError({ message: why, code: 'CRASH' }));
        connection.dispose();
        if (this.pending > 0) {
          this.log.error(why);
          this.crashed.fire(why);
        }
      });
    });
    // Nobody may be waiting when a worker ends (an idle exit): that is not an unhandled rejection.
    died.catch(() => undefined);
    connection.listen();
    this.worker = { child, connection, died };
    this.log.info(`worker started (pid ${child.pid})`);
    return this.worker;
  }

  /**
   * Sends a request; resolves with its result, typed by the protocol map.
   * `token` cancellation sends `$/cancelRequest` (the engine stops within one
   * batch and the request rejects with a cancelled WorkerRequestError).
   */
  async request<M extends WorkerMethod>(method: M, params: ParamsOf<M>, onEvent?: (e: EngineEvent) => void, token?: CancellationToken): Promise<ResultOf<M>> {
    const { connection, died } = this.start();
    const progressToken = this.nextToken++;
    const events = onEvent && connection.onProgress(ENGINE_EVENT, progressToken, onEvent);
    this.pending++;
    try {
      const reply = connection.sendRequest(WORKER_REQUESTS[method], { ...params, progressToken }, token);
      return await Promise.race([reply, died]);
    } catch (err) {
      const e = toRequestError(err);
      if (e.error.stack) this.log.error(`worker: ${e.message}\n${e.error.stack}`);
      throw e;
    } finally {
      this.pending--;
      events?.dispose();
    }
  }

  dispose(): void {
    this.worker?.child.kill();
    this.worker = undefined;
    this.crashed.dispose();
  }
}
