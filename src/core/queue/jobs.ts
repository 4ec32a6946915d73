import { DEFAULT_MAX_PIXELS } from '../data/decode';
import type { AugmentView } from '../data/augment';
import type { Skipped } from '../data/dataset';
import type { ExtractItem } from '../data/extract';
import { sha256 } from '../fsutil';

/** Images per extraction job unless --shard says otherwise. A multiple of the extraction batch (16). */
export const DEFAULT_SHARD_SIZE = 256;

/**
 * One extraction job: a shard of images, and what the worker must open to
 * extract them exactly as the coordinator would. JSON only (BullMQ stores it).
 */
export interface ExtractJobData {
  /** Catalogue id, or the absolute path of a local model.json. */
  backbone: string;
  /** The engine the coordinator resolved: features of the two engines never share a cache key. */
  engine: 'onnx' | 'tfjs';
  /** The coordinator's embedding-cache key; a worker whose own key differs refuses the job. */
  key: string;
  /** Extract at another node, unpooled (the boundary of --unfreeze runs). */
  cut?: { featureNode: string; pool: boolean };
  /** Images per forward pass: the same batches as a local run, so the same bits. */
  batchSize: number;
  maxPixels?: number;
  items: ExtractItem[];
}

/** What a finished job reports back. */
export interface ExtractJobResult {
  /** Images run through the backbone / already in the cache. */
  computed: number;
  cached: number;
  /** Items that could not be read or decoded, with the reason (the job itself succeeds). */
  failed: Skipped[];
  seconds: number;
  worker: string;
}

/** What a worker reports as job progress: items done of the job's total (a trial is 1 item). */
export interface JobProgress {
  done: number;
  total: number;
  worker: string;
}

/**
 * The job id: a hash of what the job computes. The same shard of the same
 * backbone gets the same id, so a restarted coordinator finds the jobs it
 * queued before instead of queueing them twice (BullMQ ignores an add whose
 * id exists).
 */
export function extractJobId(d: Pick<ExtractJobData, 'key' | 'batchSize' | 'items'>): string {
  const parts = d.items.map((it) => `${it.hash}\t${it.path}\t${it.view ? JSON.stringify(it.view) : ''}`);
  return `x-${sha256(`${d.key}\n${d.batchSize}\n${parts.join('\n')}`).slice(0, 40)}`;
}

/** Splits items into shards of `size` in order (the last one shorter). */
export function shard<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function isView(v: unknown): v is AugmentView {
  const o = v as AugmentView;
  return !!o && typeof o === 'object' && typeof o.flip === 'boolean' && isNum(o.angle) && Array.isArray(o.crop) && o.crop.length === 3 && o.crop.every(isNum) && isNum(o.brightness) && isNum(o.contrast);
}

/** Why job data is malformed, or undefined when it is well-formed (a queue is shared: check what arrives). */
export function checkExtractJob(d: unknown): string | undefined {
  const o = d as Partial<ExtractJobData>;
  if (!o || typeof o !== 'object') return 'job data is not an object';
  if (typeof o.backbone !== 'string' || !o.backbone) return 'job has no backbone';
  if (o.engine !== 'onnx' && o.engine !== 'tfjs') return `job engine must be onnx or tfjs (got ${JSON.stringify(o.engine)})`;
  if (typeof o.key !== 'string' || !/^[0-9a-f]{8,64}$/.test(o.key)) return 'job has no valid cache key';
  if (!Number.isInteger(o.batchSize) || o.batchSize! < 1 || o.batchSize! > 1024) return 'job batchSize must be a whole number from 1 to 1024';
  if (o.maxPixels !== undefined && !(isNum(o.maxPixels) && o.maxPixels > 0 && o.maxPixels <= DEFAULT_MAX_PIXELS)) return `job maxPixels must be a positive number up to ${DEFAULT_MAX_PIXELS}`;
  if (o.cut !== undefined && !(o.cut && typeof o.cut.featureNode === 'string' && typeof o.cut.pool === 'boolean')) return 'job cut is malformed';
  if (!Array.isArray(o.items) || o.items.length === 0) return 'job has no items';
  for (const it of o.items) {
    if (!it || typeof it.path !== 'string' || typeof it.hash !== 'string' || !/^[0-9a-f]{16,128}$/.test(it.hash)) return 'job item needs a path and a hex content hash';
    if (it.view !== undefined && !isView(it.view)) return `job item ${it.path} has a malformed augmentation view`;
  }
  return undefined;
}
