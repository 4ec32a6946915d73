/**
 * Host <-> worker process protocol, over vscode-jsonrpc (the language-server
 * protocol's transport) on the forked child's IPC channel. {@link WorkerRequests}
 * is the one map from each request to its params and its result: the host's
 * client and the worker's handlers both derive their types from it. Engine
 * events of a request come back as `$/progress` notifications carrying the
 * request's `progressToken`; cancellation is jsonrpc's `$/cancelRequest`.
 * Only plain data crosses (params and results are JSON).
 */
import { NotificationType, ProgressType, RequestType } from 'vscode-jsonrpc';
import type { BackendChoice, EngineChoice, ExportFormat, HeadChoice, QuantizeChoice } from './choices';
import type { EngineEvent } from './events';
import type { OnnxInputOptions, OnnxPreprocessingResult } from './onnxInput';
import type { BackboneInfo, DistillReport, ExportReport, PredictionLine, ScanSummary, TextPredictionLine, TrainReport } from './records';

/**
 * Options of a training run, as the panel's form gives them. An absent field
 * is the engine's default; `epochs` and `hiddenUnits` given fix that part of
 * the head (no early stopping / no linear-vs-MLP choice).
 */
export interface TrainRequestOptions {
  data: string;
  backbone: string;
  out: string;
  /** Head family (absent: auto, chosen by cross-validation). */
  head?: HeadChoice;
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  hiddenUnits?: number;
  dropout?: number;
  val?: number;
  test?: number;
  seed?: number;
  unfreeze?: number;
  /** Augmented views per training image (flip, crop, rotation, brightness, contrast). */
  augment?: { views: number };
  /** Preprocessing of a foreign ONNX backbone the user fixed (over its sidecar and graph); only for a .onnx backbone. */
  onnxInput?: OnnxInputOptions;
  /** Spread feature extraction over `headstart worker` processes on this Redis queue (the engine logs it redacted). */
  queue?: { url: string };
  force?: boolean;
  /**
   * Folders the engine must never replace, contain in an output or write into
   * as a whole (the workspace folders); passed through to the engine's guard.
   */
  protectedRoots?: string[];
}

export interface EngineSettings {
  cacheDir?: string;
  backend?: BackendChoice;
  engine?: EngineChoice;
  workers?: number;
}

export interface ExportRequestOptions {
  out: string;
  quantize?: QuantizeChoice;
  prune?: number;
  maxDrop?: number;
  format?: ExportFormat;
  /** Slim the backbone before compression (ONNX only): 'auto' or a fraction of hidden channels to remove, (0, 0.9]. */
  slim?: 'auto' | number;
  /** Replace an existing `out`: only after the user confirmed it by name. */
  force?: boolean;
  /**
   * Folders the engine must never replace, contain in an output or write into
   * as a whole (the workspace folders); passed through to the engine's guard.
   */
  protectedRoots?: string[];
}

/** Each request of the worker: its params and its result. */
export interface WorkerRequests {
  train: { params: { options: TrainRequestOptions; settings: EngineSettings }; result: TrainReport };
  export: { params: { runDir: string; options: ExportRequestOptions; settings: EngineSettings }; result: ExportReport };
  predict: { params: { modelDir: string; files: string[]; settings: EngineSettings }; result: PredictionLine[] };
  /** Texts (not files) with a text run or export: one line per text, in order; a text over MAX_TEXT_BYTES or empty gets an error line. */
  predictText: { params: { modelDir: string; texts: string[]; settings: EngineSettings }; result: TextPredictionLine[] };
  /** Which modality DATA holds, as `train` would decide it (no files hashed or decoded). */
  modality: { params: { data: string }; result: 'image' | 'text' };
  scan: { params: { data: string }; result: ScanSummary };
  /** The preprocessing `train` would use for a local .onnx backbone with `onnxInput` over its sidecar and graph (where each value came from), or why the model is refused. */
  onnxPreprocessing: { params: { backbone: string; onnxInput?: OnnxInputOptions }; result: OnnxPreprocessingResult };
  backbones: { params: { settings: EngineSettings }; result: BackboneInfo[] };
  distill: { params: { runDir: string; student: string; out: string; force?: boolean; protectedRoots?: string[]; settings: EngineSettings }; result: DistillReport };
}

export type WorkerMethod = keyof WorkerRequests;
export type ParamsOf<M extends WorkerMethod> = WorkerRequests[M]['params'];
export type ResultOf<M extends WorkerMethod> = WorkerRequests[M]['result'];

/** Every request names the token its engine events come back with. */
export interface Traced {
  progressToken: number;
}

/** The error data of a failed request (a ResponseError's `data`). */
export interface WorkerError {
  message: string;
  /** HeadstartError code, or 'CANCELLED', 'CRASH' (the worker died), 'INTERNAL'. */
  code: string;
  stack?: string;
}

/** The jsonrpc definition of each request. */
export type WorkerRequestTypes = { [M in WorkerMethod]: RequestType<ParamsOf<M> & Traced, ResultOf<M>, WorkerError> };

/** The jsonrpc request definitions; a request missing here is a compile error. */
export const WORKER_REQUESTS: WorkerRequestTypes = {
  train: new RequestType('train'),
  export: new RequestType('export'),
  predict: new RequestType('predict'),
  predictText: new RequestType('predictText'),
  modality: new RequestType('modality'),
  scan: new RequestType('scan'),
  onnxPreprocessing: new RequestType('onnxPreprocessing'),
  backbones: new RequestType('backbones'),
  distill: new RequestType('distill'),
};

/** Every request method, in one list (tests and the worker's registration walk it). */
export const WORKER_METHODS = Object.keys(WORKER_REQUESTS) as WorkerMethod[];

/** Engine events of a request, sent with its `progressToken`. */
export const ENGINE_EVENT = new ProgressType<EngineEvent>();

/** An error outside any request; the worker exits non-zero after sending it. */
export const WORKER_FATAL = new NotificationType<WorkerError>('headstart/fatal');

/** jsonrpc error code of a failed request (the WorkerError in `data` says what failed). */
export const WORKER_ERROR_CODE = -32001;
