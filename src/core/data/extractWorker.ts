/**
 * worker_threads entry of the extraction pool: one engine (a TensorFlow.js
 * backend, or ONNX Runtime) and one backbone per thread. Messages: see PoolRequest / PoolReply in pool.ts.
 */
import { parentPort } from 'node:worker_threads';
import { initBackend } from '../backend';
import { type FeatureExtractor, loadTfjsExtractor } from '../backbones/extractor';
import { loadOnnxExtractor } from '../onnx/engine';
import { assertNever, describeError } from '../errors';
import type { PoolReply, PoolRequest } from './pool';

const port = parentPort!;
let extractor: FeatureExtractor | undefined;

function reply(msg: PoolReply, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

/**
 * Handles one request. Requests run one at a time, in order: a 'close' that
 * arrives while a batch runs waits for it, so a session is never released
 * (nor the thread ended) in the middle of ONNX Runtime's native run.
 */
async function handle(msg: PoolRequest): Promise<void> {
  switch (msg.type) {
    case 'init':
      try {
        if (msg.engine.kind === 'onnx') {
          extractor = await loadOnnxExtractor(msg.engine.onnxPath, msg.backbone.entry.inputSize, msg.engine.threads);
          reply({ type: 'ready', featureSize: extractor.featureSize, backend: 'onnxruntime' });
        } else {
          const backend = await initBackend(msg.engine.backend);
          extractor = await loadTfjsExtractor(msg.backbone);
          reply({ type: 'ready', featureSize: extractor.featureSize, backend: backend.name });
        }
      } catch (err) {
        reply({ type: 'error', id: -1, message: describeError(err) });
      }
      return;
    case 'extract':
      try {
        const features = await extractor!.extract(msg.pixels, msg.n);
        reply({ type: 'result', id: msg.id, features }, [features.buffer as ArrayBuffer]);
      } catch (err) {
        reply({ type: 'error', id: msg.id, message: describeError(err) });
      }
      return;
    case 'close':
      // Release native sessions before the thread ends: tearing ONNX Runtime down
      // with the thread (worker.terminate) aborts the whole process.
      if (extractor?.close) await extractor.close();
      else extractor?.dispose();
      extractor = undefined;
      port.close();
      return;
    default:
      assertNever(msg);
  }
}

let queue: Promise<void> = Promise.resolve();
port.on('message', (msg: PoolRequest) => {
  // handle() reports its own errors; the catch keeps the queue going after an unexpected one.
  queue = queue.then(() => handle(msg)).catch((err: unknown) => reply({ type: 'error', id: -1, message: describeError(err) }));
});
