/**
 * One sweep trial: a head configuration trained on cached vectors through
 * trainRun, run in-process by a local sweep and by `headstart worker` for a
 * queued one. A worker trains into a private temp folder and returns the
 * run folder's files in the job's result; the coordinator writes them into
 * the sweep folder it is building (atomically, with the rest of the sweep).
 * So a worker writes nowhere but its temp folder and the shared cache, and
 * no output path ever travels in a job.
 */
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { HeadstartError } from '../errors';
import type { Progress } from '../events';
import { sha256 } from '../fsutil';
import { type TrainConfig, headProbs, loadRunModels, readRunRecord } from '../runFolder';
import type { TrainReport } from '../train/pipeline';
import { trainRun } from '../train/trainRun';

/** The settings a trial job may carry: what shapes the result, never where outputs, caches or queues are. */
export const TRIAL_FIELDS = ['data', 'backbone', 'val', 'test', 'augment', 'head', 'epochs', 'batchSize', 'learningRate', 'hiddenUnits', 'dropout', 'l2', 'patience', 'seed', 'balanceClasses', 'maxPixels', 'engine'] as const;
export type TrialSettings = Pick<TrainConfig, (typeof TRIAL_FIELDS)[number]>;

/** An experiment job: one trial's settings (absolute DATA), and the cache key the coordinator extracted under. */
export interface TrialJobData {
  /** The trial's number in the sweep (1-based): for messages only. */
  trial: number;
  settings: TrialSettings;
  /** Resolved engine of the pre-extraction: the worker must extract with the same one. */
  engine: 'onnx' | 'tfjs';
  /** Feature-cache key of the trial's backbone on the coordinator; a worker whose own key differs refuses the job. */
  key: string;
  /** sha256 over the scanned dataset (relative path, label, content hash): part of the job id, so changed data is a new job. */
  dataDigest: string;
}

/** One file of a run folder, relative path and content. */
export interface PackedFile {
  path: string;
  base64: string;
}

/** What a trial returns: the run folder's files and the head's measured latency. */
export interface TrialJobResult {
  files: PackedFile[];
  headMsPerImage: number;
  seconds: number;
  worker: string;
}

/** Picks the trial settings out of a config (dropping out, cache, queue and the rest). */
export function trialSettings(cfg: Omit<TrainConfig, 'out'>): TrialSettings {
  const out: Record<string, unknown> = {};
  for (const k of TRIAL_FIELDS) if (cfg[k] !== undefined) out[k] = cfg[k];
  return out as TrialSettings;
}

/** The job id: a hash of what the trial computes (settings, backbone key, data). */
export function trialJobId(d: Omit<TrialJobData, 'trial'>): string {
  return `t-${sha256(JSON.stringify([d.settings, d.engine, d.key, d.dataDigest])).slice(0, 40)}`;
}

/** Why trial job data is malformed, or undefined when it is well-formed. */
export function checkTrialJob(d: unknown): string | undefined {
  const o = d as Partial<TrialJobData>;
  if (!o || typeof o !== 'object') return 'job data is not an object';
  if (!Number.isInteger(o.trial)) return 'job has no trial number';
  if (o.engine !== 'onnx' && o.engine !== 'tfjs') return `job engine must be onnx or tfjs (got ${JSON.stringify(o.engine)})`;
  if (typeof o.key !== 'string' || !/^[0-9a-f]{8,64}$/.test(o.key)) return 'job has no valid cache key';
  if (typeof o.dataDigest !== 'string' || !/^[0-9a-f]{64}$/.test(o.dataDigest)) return 'job has no data digest';
  const s = o.settings as Record<string, unknown> | undefined;
  if (!s || typeof s !== 'object') return 'job has no settings';
  const extra = Object.keys(s).filter((k) => !(TRIAL_FIELDS as readonly string[]).includes(k));
  if (extra.length) return `job settings carry fields a trial does not take: ${extra.join(', ')}`;
  if (typeof s.data !== 'string' || !path.isAbsolute(s.data)) return 'job DATA must be an absolute path';
  if (s.backbone !== undefined && typeof s.backbone !== 'string') return 'job backbone must be a string';
  return undefined;
}

/** Every file under `dir`, relative paths with '/' and contents, sorted. */
export async function packFolder(dir: string, rel = ''): Promise<PackedFile[]> {
  const out: PackedFile[] = [];
  for (const e of (await fs.readdir(path.join(dir, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await packFolder(dir, r)));
    else if (e.isFile()) out.push({ path: r, base64: (await fs.readFile(path.join(dir, r))).toString('base64') });
  }
  return out;
}

/** Writes packed files under `dir`; a path that would leave it (absolute, `..`) is refused: results come from a shared queue. */
export async function unpackFolder(files: PackedFile[], dir: string): Promise<void> {
  for (const f of files) {
    const parts = typeof f.path === 'string' ? f.path.split('/') : [];
    if (!parts.length || parts.some((p) => !p || p === '.' || p === '..' || p.includes('\\')) || typeof f.base64 !== 'string') {
      throw new HeadstartError('BACKEND', `a trial result names the file ${JSON.stringify(f.path)}, which is not a plain relative path; refusing it`);
    }
    const target = path.join(dir, ...parts);
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.writeFile(target, Buffer.from(f.base64, 'base64'));
  }
}

/**
 * Milliseconds per image of the run's head on feature vectors (the backbone
 * is the same for every trial on one backbone and is left out): the median
 * of 5 timed passes over 256 vectors, after one warm-up pass.
 */
export async function headLatencyMs(runDir: string): Promise<number> {
  const record = await readRunRecord(runDir);
  const { head, top } = await loadRunModels(runDir, record);
  try {
    const n = 256;
    const x = new Float32Array(n * record.backbone.featureSize).map((_, i) => Math.sin(i) * 0.5);
    headProbs(head, x, record.backbone.featureSize);
    const times: number[] = [];
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      headProbs(head, x, record.backbone.featureSize);
      times.push((performance.now() - t0) / n);
    }
    return times.sort((a, b) => a - b)[2]!;
  } finally {
    head.dispose();
    top?.dispose();
  }
}

/** Runs one trial into `out` (through trainRun) and measures its head's latency. */
export async function runTrial(cfg: TrainConfig, progress: Progress = {}): Promise<{ report: TrainReport; headMsPerImage: number }> {
  const report = await trainRun(cfg, progress);
  return { report, headMsPerImage: await headLatencyMs(report.runDir) };
}

/** A worker's side of a trial job: trains in a private temp folder, returns its files, removes the folder. */
export async function runTrialPacked(cfg: Omit<TrainConfig, 'out'>, progress: Progress = {}): Promise<{ files: PackedFile[]; headMsPerImage: number }> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'headstart-trial-'));
  try {
    const { report, headMsPerImage } = await runTrial({ ...cfg, out: path.join(tmp, 'run') }, progress);
    return { files: await packFolder(report.runDir), headMsPerImage };
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}
