/**
 * Host <-> worker process messages (JSON only). The host sends requests; the
 * worker answers each with `{id, ok: true, result}` or `{id, ok: false, error}`,
 * and streams engine events for it in between.
 */
import type { EngineEvent } from './events';

/** Options of a training run, as the panel's form gives them. */
export interface TrainRequestOptions {
  data: string;
  backbone: string;
  out: string;
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
  force?: boolean;
  /**
   * Folders the engine must never replace, contain in an output or write into
   * as a whole (the workspace folders); passed through to the engine's guard.
   */
  protectedRoots?: string[];
}

export interface EngineSettings {
  cacheDir?: string;
  backend?: 'auto' | 'tensorflow' | 'wasm' | 'cpu';
  engine?: 'auto' | 'onnx' | 'tfjs';
  workers?: number;
}

export interface ExportRequestOptions {
  out: string;
  quantize?: 'none' | 'float16' | 'uint16' | 'uint8' | 'auto';
  prune?: number;
  maxDrop?: number;
  format?: 'tfjs' | 'onnx';
  /** Replace an existing `out`: only after the user confirmed it by name. */
  force?: boolean;
  /**
   * Folders the engine must never replace, contain in an output or write into
   * as a whole (the workspace folders); passed through to the engine's guard.
   */
  protectedRoots?: string[];
}

export type WorkerRequest =
  | { type: 'train'; id: number; options: TrainRequestOptions; settings: EngineSettings }
  | { type: 'export'; id: number; runDir: string; options: ExportRequestOptions; settings: EngineSettings }
  | { type: 'predict'; id: number; modelDir: string; files: string[]; settings: EngineSettings }
  | { type: 'scan'; id: number; data: string }
  | { type: 'backbones'; id: number; settings: EngineSettings }
  | { type: 'distill'; id: number; runDir: string; student: string; out: string; force?: boolean; protectedRoots?: string[]; settings: EngineSettings }
  | { type: 'cancel'; id: number; target: number };

/** The message types whose replies carry a result. */
export type WorkerRequestType = Exclude<WorkerRequest['type'], 'cancel'>;

export interface WorkerError {
  message: string;
  /** HeadstartError code, or 'CANCELLED', or 'INTERNAL'. */
  code: string;
  stack?: string;
}

export type WorkerMessage =
  | { type: 'ready'; pid: number }
  | { type: 'event'; id: number; event: EngineEvent }
  | { type: 'reply'; id: number; ok: true; result: unknown }
  | { type: 'reply'; id: number; ok: false; error: WorkerError }
  /** An error outside any request; the worker exits non-zero after sending it. */
  | { type: 'fatal'; error: WorkerError };
