/**
 * The worker's side of the jsonrpc connection: registers one typed handler
 * per request of {@link WorkerRequests}, turns jsonrpc's cancellation into an
 * AbortSignal, sends engine events as `$/progress` with the request's token,
 * and replies to a failure with a ResponseError whose data is a WorkerError.
 * No engine import here: the handlers and the error mapping come in.
 */
import { type CancellationToken, type MessageConnection, ResponseError } from 'vscode-jsonrpc';
import type { EngineEvent } from '../shared/events';
import { ENGINE_EVENT, type ParamsOf, type ResultOf, WORKER_ERROR_CODE, WORKER_METHODS, WORKER_REQUESTS, type WorkerError, type WorkerMethod } from '../shared/workerProtocol';

/** What a handler gets besides its params. */
export interface RequestContext {
  /** Aborts when the host cancels the request (or goes away). */
  signal: AbortSignal;
  onEvent: (event: EngineEvent) => void;
}

/** One handler per request; each must return its request's result type. */
export type WorkerHandlers = { [M in WorkerMethod]: (params: ParamsOf<M>, ctx: RequestContext) => Promise<ResultOf<M>> };

/** Requests in flight, so that a disconnect can abort them all. */
export interface Running {
  abortAll(): void;
}

/** Registers `handlers` on `connection`; `toError` turns a thrown value into the error the host sees. */
export function serveWorker(connection: MessageConnection, handlers: WorkerHandlers, toError: (err: unknown) => WorkerError): Running {
  const running = new Set<AbortController>();
  const register = <M extends WorkerMethod>(method: M): void => {
    connection.onRequest(WORKER_REQUESTS[method], async (params, token: CancellationToken) => {
      const controller = new AbortController();
      running.add(controller);
      const sub = token.onCancellationRequested(() => controller.abort());
      const onEvent = (event: EngineEvent): void => void connection.sendProgress(ENGINE_EVENT, params.progressToken, event);
      try {
        // The params still carry progressToken; handlers read only their own fields.
        return await handlers[method](params, { signal: controller.signal, onEvent });
      } catch (err) {
        const data = toError(err);
        return new ResponseError<WorkerError>(WORKER_ERROR_CODE, data.message, data);
      } finally {
        sub.dispose();
        running.delete(controller);
      }
    });
  };
  for (const m of WORKER_METHODS) register(m);
  return { abortAll: () => running.forEach((c) => c.abort()) };
}
