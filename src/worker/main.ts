/**
 * The worker process: the extension host forks it (Node, or Electron run as
 * Node) and talks jsonrpc over the IPC channel (src/shared/workerProtocol.ts).
 * Training and extraction run here, never on the extension host thread.
 */
import { IPCMessageReader, IPCMessageWriter, createMessageConnection } from 'vscode-jsonrpc/node';
import { closeAllThreads } from '../core';
import { WORKER_FATAL } from '../shared/workerProtocol';
import { handlers, toWorkerError } from './handlers';
import { serveWorker } from './serve';

const connection = createMessageConnection(new IPCMessageReader(process), new IPCMessageWriter(process));
const running = serveWorker(connection, handlers, toWorkerError);

// The host going away (window closed, extension host crashed) ends the worker:
// cancel what runs, and let ONNX Runtime threads finish their batch first
// (exiting while a thread is inside session.run() aborts the process).
process.on('disconnect', () => {
  running.abortAll();
  void closeAllThreads().finally(() => process.exit(0));
});

for (const ev of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(ev, (err: unknown) => {
    void connection.sendNotification(WORKER_FATAL, toWorkerError(err));
    process.exitCode = 70;
    setTimeout(() => process.exit(70), 100);
  });
}

connection.listen();
