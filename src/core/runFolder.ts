/**
 * The run folder (RUN_DIR): its record (run.json), read without starting
 * TF.js; its trained head and tuned top, loaded with TF.js; its backbone,
 * opened and checked to be the one the run was trained on; and the writer
 * the trainer and distillation use. Evaluate, predict, export, distill and
 * sweep read runs through this module, never through the trainer.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type BackendPreference, initBackend } from './backend';
import { type EngineOptions, type OpenedBackbone, openBackbone } from './engine';
import { HeadstartError } from './errors';
import type { EpochMetrics, Progress } from './events';
import type { AugmentOptions } from './data/augment';
import type { DatasetSummary, SplitName } from './data/split';
import { type OutOptions, readJson } from './fsutil';
import type { HeadOptions } from './train/head';
import type { OnnxInputSpec } from './backbones/catalogue';
import type { HeadChoice, Selection } from './train/select';
import { loadTop, topFeatures } from './train/finetune';
import type { EvalResult, Interval } from './train/metrics';
import { dirLoader, dirSaver } from './tfjsio';
import type { QueueOptions } from './queue';
import type * as shared from '../shared/records';

/** The record's file name inside RUN_DIR. */
export const RUN_FILE = 'run.json';

export const RUN_VERSION = 1;

export interface TrainConfig extends HeadOptions, EngineOptions, OutOptions {
  /** DATA: class folders or a CSV / JSONL manifest. */
  data: string;
  /** Catalogue id or path to a model.json; default mobilenet-v2-140. */
  backbone?: string;
  /** Validation / test fractions, default 0.15 each. */
  val?: number;
  test?: number;
  /** Top layers of a layers backbone to fine-tune (0: frozen). Moved down to the nearest single-tensor boundary. */
  unfreeze?: number;
  /** Augmented views of training images, drawn once and cached. */
  augment?: AugmentOptions;
  /** Head family: auto (cross-validated choice, the default), linear or mlp. --hidden / --l2 / --epochs fix their part. */
  head?: HeadChoice;
  /** RUN_DIR to create. */
  out: string;
  /** Spread extraction over `headstart worker` processes on this queue (run.json records the URL redacted). */
  queue?: QueueOptions;
  /** Force the modality instead of deciding it from DATA (text: src/core/text/). */
  modality?: 'image' | 'text';
  /** Text manifests (CSV / JSONL): the text column and the label column, found by header name when absent. */
  textColumn?: string;
  labelColumn?: string;
}

/** Baseline on raw pixels, to show what the pretrained backbone bought. */
export interface BaselineResult extends shared.BaselineResult {
  description: string;
  /** Test accuracy of the baseline refit on all non-test images. */
  accuracy: number;
  /** 95% Wilson interval of `accuracy` on the test images. */
  interval: Interval;
  /** Mean accuracy across the same cross-validation folds as the head (absent without selection). */
  cvAccuracy?: number;
  /** True when raw pixels beat the chosen head in cross-validation. */
  wins: boolean;
  /** What to try when it wins. */
  advice?: string;
  macroF1: number;
  /** Backbone test accuracy minus baseline test accuracy, in points (0..100). */
  gainPoints: number;
  verdict: string;
}

/** The content of run.json. */
export interface RunRecord extends shared.RunRecord {
  version: number;
  createdAt: string;
  config: Omit<TrainConfig, 'out' | 'force' | 'protectedRoots' | 'cacheDir' | 'val' | 'test'> & Required<HeadOptions> & { val: number; test: number };
  backend: string;
  engine: string;
  backbone: { id: string; title: string; format: string; inputSize: number; inputRange: [number, number]; featureNode: string; pool: boolean; featureSize: number; licence: string; source: string; modelHash: string; dir: string; onnxInput?: OnnxInputSpec };
  labels: string[];
  dataset: DatasetSummary;
  /** Every sample used: path relative to dataset.root, label, content hash, split. */
  samples: Array<{ rel: string; label: string; hash: string; split: SplitName }>;
  history: EpochMetrics[];
  bestEpoch: number;
  stoppedEarly: boolean;
  test: EvalResult;
  baseline: BaselineResult;
  /** Cross-validated head choice (absent for --unfreeze runs, whose head trains on the validation split). */
  selection?: Selection;
  /** Fine-tuning of the backbone's top layers, when --unfreeze was given. */
  unfreeze?: { layers: number; boundary: string; boundaryShape: number[]; trainable: string[]; headEpochs: number; fineTuneEpochs: number; fineTuneBackend: string; fineTuneSeconds: number };
  /** What augmentation made: options and the number of augmented training vectors. */
  augmentation?: Required<AugmentOptions> & { vectors: number };
  timings: { scanSeconds: number; extractSeconds: number; trainSeconds: number; totalSeconds: number; imagesPerSecond: number; extracted: number; cached: number; workers: number };
}

/** A run folder read back: its record and trained head. */
export interface LoadedRun {
  dir: string;
  record: RunRecord;
  head: tf.LayersModel;
  /** The fine-tuned top layers (boundary activations → features), for --unfreeze runs. */
  top?: tf.LayersModel;
}

/**
 * Reads RUN_DIR/run.json without starting TF.js; a folder from another
 * version or an incomplete record is a clear BAD_INPUT error.
 */
export async function readRunRecord(dir: string): Promise<RunRecord> {
  const record = await readJson<RunRecord>(path.join(dir, RUN_FILE), 'run record (is this a RUN_DIR made by `headstart train`?)');
  if (record.version !== RUN_VERSION) throw new HeadstartError('BAD_INPUT', `${dir} was made by another version of Headstart (run format ${record.version}, this one reads ${RUN_VERSION}); train again`);
  if (!Array.isArray(record.labels) || !record.backbone?.id || !Array.isArray(record.samples)) throw new HeadstartError('BAD_INPUT', `${dir}/run.json is incomplete; train again`);
  return record;
}

/** Loads a run's trained head (and, for --unfreeze runs, its tuned top layers) with TF.js. */
export async function loadRunModels(dir: string, record: RunRecord): Promise<{ head: tf.LayersModel; top?: tf.LayersModel }> {
  let head: tf.LayersModel;
  try {
    head = await tf.loadLayersModel(dirLoader(path.join(dir, 'head')));
  } catch (err) {
    throw new HeadstartError('BAD_INPUT', `${dir} has no readable trained head (head/model.json): ${String((err as Error).message)}; train again`, { cause: err });
  }
  let top: tf.LayersModel | undefined;
  if (record.unfreeze) {
    try {
      top = await loadTop(path.join(dir, 'top'));
    } catch (err) {
      head.dispose();
      throw new HeadstartError('BAD_INPUT', `${dir} was fine-tuned but its top layers (top/model.json) are unreadable: ${String((err as Error).message)}; train again`, { cause: err });
    }
  }
  return { head, top };
}

/** Reads RUN_DIR: starts the TF.js backend, reads run.json, loads the head (and top). */
export async function loadRun(dir: string, backend: BackendPreference = 'auto'): Promise<LoadedRun> {
  await initBackend(backend);
  const record = await readRunRecord(dir);
  return { dir, record, ...(await loadRunModels(dir, record)) };
}

/** Writes a run folder's files into `dir` (a temp folder of writeOutDir): the head, the tuned top, run.json. */
export async function writeRunFiles<R extends RunRecord>(dir: string, record: R, head: tf.LayersModel, top?: tf.LayersModel): Promise<void> {
  await head.save(dirSaver(path.join(dir, 'head')));
  if (top) await top.save(dirSaver(path.join(dir, 'top')));
  await fs.writeFile(path.join(dir, RUN_FILE), JSON.stringify(record, null, 2));
}

/** Opens the backbone a run was trained on and checks it is the same model. */
export async function openRunBackbone(run: LoadedRun, opts: EngineOptions, progress: Progress = {}): Promise<OpenedBackbone> {
  const b = run.record.backbone;
  // The run's own engine reproduces its features exactly; ONNX Runtime falls back to TF.js where it is missing.
  const engine = opts.engine ?? (run.record.engine === 'onnxruntime' ? 'auto' : 'tfjs');
  const cut = run.record.unfreeze ? { featureNode: run.record.unfreeze.boundary, pool: false } : undefined;
  // A foreign ONNX model is opened from its source with the recorded preprocessing; a slimmed ONNX backbone lives
  // inside the run folder, named relative to it.
  const id = b.onnxInput ? b.id : b.format === 'onnx' ? path.resolve(run.dir, b.dir) : b.id.startsWith('local:') ? b.id.slice('local:'.length) : b.id;
  const opened = await openBackbone(id, { ...opts, engine, cut, ...(b.onnxInput ? { onnxInput: b.onnxInput } : {}) }, progress);
  if (opened.backbone.modelHash !== b.modelHash) {
    opened.dispose();
    throw new HeadstartError('BAD_MODEL', `backbone ${b.id} changed since this run was trained (its ${b.onnxInput ? 'ONNX file' : 'model.json or weights'} differ${b.onnxInput ? 's' : ''}); train again`);
  }
  return opened;
}

/** What the head reads, from what the run's backbone extracts: features, or (fine-tuned runs) top(boundary activations). */
export function toHeadInput(run: LoadedRun, x: Float32Array): Float32Array {
  return run.top && run.record.unfreeze ? topFeatures(run.top, x, run.record.unfreeze.boundaryShape) : x;
}

/** Class probabilities for rows of what the run's backbone extracts. */
export function runProbs(run: LoadedRun, x: Float32Array): Float32Array {
  return headProbs(run.head, toHeadInput(run, x), run.record.backbone.featureSize);
}

/** Head probabilities for feature rows. */
export function headProbs(head: tf.LayersModel, x: Float32Array, featureSize: number): Float32Array {
  const n = x.length / featureSize;
  return tf.tidy(() => (head.predict(tf.tensor2d(x, [n, featureSize])) as tf.Tensor).dataSync() as Float32Array);
}
