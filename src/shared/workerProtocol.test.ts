/**
 * The protocol maps: every worker request has a jsonrpc definition named as
 * in the map, with params and a result type (the type checks below fail
 * `npm run check-types` when a request lacks one); and the panel's message
 * handler settles each request with its own reply.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { OnnxPreprocessingResult } from './onnxInput';
import { MessageHandler, type ReplyMessage, type RequestMessage, replyTo } from './messageHandler';
import { DEFAULT_FORM, type FromWebview, type PanelRequests, type PanelState, type ToWebview } from './panelProtocol';
import type { BackboneInfo, DistillReport, ExportReport, PredictionLine, ScanSummary, TrainReport } from './records';
import { type ParamsOf, type ResultOf, WORKER_METHODS, WORKER_REQUESTS, type WorkerMethod } from './workerProtocol';

/** Compiles only when A and B are the same type. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const expectTrue = <T extends true>(): T | undefined => undefined;

// Each request's result is the record the host expects (a change of the map fails type checks here).
expectTrue<Same<ResultOf<'train'>, TrainReport>>();
expectTrue<Same<ResultOf<'export'>, ExportReport>>();
expectTrue<Same<ResultOf<'predict'>, PredictionLine[]>>();
expectTrue<Same<ResultOf<'scan'>, ScanSummary>>();
expectTrue<Same<ResultOf<'backbones'>, BackboneInfo[]>>();
expectTrue<Same<ResultOf<'distill'>, DistillReport>>();
expectTrue<Same<ResultOf<'onnxPreprocessing'>, OnnxPreprocessingResult>>();
// No request's params or result is `unknown` or `any`.
type Loose<T> = unknown extends T ? true : false;
expectTrue<Same<{ [M in WorkerMethod]: Loose<ParamsOf<M>> | Loose<ResultOf<M>> }[WorkerMethod], false>>();

test('every request of the map has a jsonrpc definition of the same method, taking one params object', () => {
  assert.deepEqual([...WORKER_METHODS].sort(), ['backbones', 'distill', 'export', 'modality', 'onnxPreprocessing', 'predict', 'predictText', 'scan', 'train']);
  for (const m of WORKER_METHODS) {
    assert.equal(WORKER_REQUESTS[m].method, m);
    assert.equal(WORKER_REQUESTS[m].numberOfParams, 1);
  }
});

const STATE: PanelState = { options: { ...DEFAULT_FORM, data: '', backbone: 'b' }, backbones: [], unfreezeSupported: false, running: false, phase: 'idle', phaseMessage: '', history: [], totalEpochs: 0, exportDefault: '', exporting: false, runs: [], trusted: true };

test('the message handler: a request settles with the reply of its own id; other messages go to the handler', async () => {
  const sent: Array<FromWebview> = [];
  const received: ToWebview[] = [];
  const channel = new MessageHandler<PanelRequests, Exclude<FromWebview, RequestMessage<PanelRequests>>, ToWebview>((m) => sent.push(m), (m) => received.push(m));
  const first = channel.request('ready', {});
  const second = channel.request('ready', {});
  channel.notify({ type: 'cancel' });
  assert.deepEqual(sent.map((m) => m.type), ['ready', 'ready', 'cancel']);
  const [r1, r2] = sent as Array<RequestMessage<PanelRequests>>;
  assert.notEqual(r1!.requestId, r2!.requestId);
  // Replies out of order, and one for an id nobody asked for (ignored).
  const other: PanelState = { ...STATE, phase: 'train' };
  channel.handle(replyTo<PanelRequests, 'ready'>(r2!, other));
  channel.handle({ type: 'reply', method: 'ready', requestId: 999, result: STATE } satisfies ReplyMessage<PanelRequests>);
  channel.handle(replyTo<PanelRequests, 'ready'>(r1!, STATE));
  assert.equal((await first).phase, 'idle');
  assert.equal((await second).phase, 'train');
  channel.handle({ type: 'progress', phase: 'extract', done: 1, total: 2, detail: '' });
  assert.deepEqual(received, [{ type: 'progress', phase: 'extract', done: 1, total: 2, detail: '' }]);
});
