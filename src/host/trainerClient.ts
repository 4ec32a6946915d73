import { type ChildProcess, fork } from 'node:child_process';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { EngineEvent } from '../shared/events';
import type { WorkerError, WorkerMessage, WorkerRequest, WorkerRequestType } from '../shared/workerProtocol';
import { Disposable } from './disposable';
import type { Log } from './log';

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

type Payload<T extends WorkerRequestType> = Omit<Extract<WorkerRequest, { type: T }>, 'id' | 'type'>;

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onEvent?: (e: EngineEvent) => void;
}

/**
 * Talks to the worker process: forks it on first use (again after a crash),
 * sends typed requests, routes events, and turns a crash into an error for
 * every request in flight.
 */
export class TrainerClient extends Disposable {
  private child: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly crashed = new vscode.EventEmitter<string>();
  /** Fires with a description when the worker dies with requests in flight. */
  readonly onDidCrash = this.crashed.event;

  constructor(private readonly workerScript: string, private readonly log: Log) {
    super();
    this.register(this.crashed);
  }

  /** PID of the running worker, if one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  private start(): ChildProcess {
    if (this.child) return this.child;
    // In desktop VS Code process.execPath is Electron: ELECTRON_RUN_AS_NODE makes it a plain Node.
    const child = fork(this.workerScript, [], {
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      cwd: path.dirname(this.workerScript),
    });
    child.stdout?.on('data', (d: Buffer) => this.log.info(`[worker] ${d.toString().trimEnd()}`));
    child.stderr?.on('data', (d: Buffer) => this.log.warn(`[worker] ${d.toString().trimEnd()}`));
    child.on('message', (msg: WorkerMessage) => this.onMessage(msg));
    child.on('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      if (this.pending.size === 0) return;
      const why = `the Headstart worker process stopped unexpectedly (${signal ? `signal ${signal}` : `exit code ${code}`}); the run was lost — start it again`;
      this.log.error(why);
      for (const [, p] of this.pending) p.reject(new WorkerRequestError({ message: why, code: 'CRASH' }));
      this.pending.clear();
      this.crashed.fire(why);
    });
    child.on('error', (err) => this.log.error(`worker process error: ${err.message}`, err));
    this.child = child;
    this.log.info(`worker started (pid ${child.pid})`);
    return child;
  }

  private onMessage(msg: WorkerMessage): void {
    switch (msg.type) {
      case 'ready':
        return;
      case 'event':
        this.pending.get(msg.id)?.onEvent?.(msg.event);
        return;
      case 'reply': {
        const p = this.pending.get(msg.id);
        if (!p) return;
        this.pending.delete(msg.id);
        if (msg.ok) p.resolve(msg.result);
        else {
          if (msg.error.stack) this.log.error(`worker: ${msg.error.message}\n${msg.error.stack}`);
          p.reject(new WorkerRequestError(msg.error));
        }
        return;
      }
      case 'fatal':
        this.log.error(`worker fatal error: ${msg.error.message}${msg.error.stack ? `\n${msg.error.stack}` : ''}`);
        return;
      default: {
        const never: never = msg;
        void never;
      }
    }
  }

  /**
   * Sends a request; resolves with its result. `token` cancellation sends a
   * cancel request (the engine stops within one batch and rejects with a
   * cancelled WorkerRequestError).
   */
  request<R, T extends WorkerRequestType>(type: T, payload: Payload<T>, onEvent?: (e: EngineEvent) => void, token?: vscode.CancellationToken): Promise<R> {
    const child = this.start();
    const id = this.nextId++;
    return new Promise<R>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, onEvent });
      const sub = token?.onCancellationRequested(() => this.cancel(id));
      const done = () => sub?.dispose();
      this.pending.get(id)!.resolve = (v) => {
        done();
        resolve(v as R);
      };
      this.pending.get(id)!.reject = (e) => {
        done();
        reject(e);
      };
      child.send({ ...payload, type, id } as unknown as WorkerRequest);
    });
  }

  /** Asks the worker to cancel request `target`. */
  cancel(target: number): void {
    this.child?.send({ type: 'cancel', id: this.nextId++, target } satisfies WorkerRequest);
  }

  override dispose(): void {
    this.child?.kill();
    this.child = undefined;
    super.dispose();
  }
}
