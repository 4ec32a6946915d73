/**
 * Progress events the engine emits. JSON data only: they cross the worker
 * boundary unchanged, the panel draws them and the CLI prints them.
 */
export type Phase = 'backend' | 'download' | 'scan' | 'extract' | 'train' | 'evaluate' | 'export';

export interface EpochMetrics {
  epoch: number;
  loss: number;
  accuracy: number;
  valLoss: number;
  valAccuracy: number;
  /** Seconds the epoch took. */
  seconds: number;
  /** 'fine-tune' for the second phase of an --unfreeze run (top layers and head together); 'prune' for the fine-tuning epochs of each pruning step. */
  stage?: 'head' | 'fine-tune' | 'prune';
}

export type EngineEvent =
  | { type: 'phase'; phase: Phase; message: string }
  /** Progress within the current phase; `total` 0 when unknown. `eta` in seconds. */
  | { type: 'progress'; phase: Phase; done: number; total: number; rate?: number; unit?: string; eta?: number }
  | { type: 'epoch'; metrics: EpochMetrics; totalEpochs: number }
  | { type: 'batch'; epoch: number; batch: number; batches: number; loss: number; accuracy: number; imagesPerSecond: number; eta: number }
  | { type: 'warning'; message: string }
  | { type: 'log'; message: string };
