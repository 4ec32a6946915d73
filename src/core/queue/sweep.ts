import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { DEFAULT_BACKBONE } from '../backbones/catalogue';
import { scanDataset } from '../data/scan';
import { openBackbone } from '../engine';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { OUT_MARKER, type OutOptions, outGuard, prepareOutDir, readJson, sha256, writeOutDir } from '../fsutil';
import { type TrainConfig, readRunRecord } from '../runFolder';
import { accuracyInterval } from '../train/metrics';
import { EXPERIMENT_QUEUE, parseQueueUrl } from './connection';
import { type JobKind, type QueueOptions, Tally, jobBackboneId, queuedBackbone, runJobs } from './coordinator';
import { type TrialJobData, type TrialJobResult, runTrial, trialJobId, trialSettings, unpackFolder } from './trial';

/** The settings a grid can vary, by the name used in --grid. */
const AXES = {
  hidden: { field: 'hiddenUnits', int: true },
  lr: { field: 'learningRate', int: false },
  dropout: { field: 'dropout', int: false },
  epochs: { field: 'epochs', int: true },
  batch: { field: 'batchSize', int: true },
  augment: { field: 'augment', int: true },
  backbone: { field: 'backbone', int: false },
} as const;
type Axis = keyof typeof AXES;

export const gridUsage = 'hidden=0,128;lr=0.001,0.01;augment=0,2;backbone=mobilenet-v2-140,mobilenet-v2-100';
/** More trials than this is almost surely a typo in --grid. */
export const MAX_TRIALS = 256;

/** One point of the grid: axis name to value. */
export type Trial = Partial<Record<Axis, number | string>>;

/** Parses `name=v1,v2;name=v3` into every combination (first axis varies slowest). */
export function parseGrid(spec: string): Trial[] {
  const axes: Array<[Axis, Array<number | string>]> = [];
  for (const part of spec.split(';').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    const name = part.slice(0, eq).trim() as Axis;
    if (eq < 1 || !(name in AXES)) throw new HeadstartError('BAD_INPUT', `--grid: '${part}' is not NAME=V1,V2 with NAME one of ${Object.keys(AXES).join(', ')} (e.g. "${gridUsage}")`);
    if (axes.some(([n]) => n === name)) throw new HeadstartError('BAD_INPUT', `--grid names ${name} twice`);
    const raw = part.slice(eq + 1).split(',').map((v) => v.trim()).filter(Boolean);
    if (!raw.length) throw new HeadstartError('BAD_INPUT', `--grid: ${name} has no values`);
    const values = raw.map((v) => {
      if (name === 'backbone') return v;
      const n = Number(v);
      if (!Number.isFinite(n) || (AXES[name].int && !Number.isInteger(n))) throw new HeadstartError('BAD_INPUT', `--grid: ${name} expects ${AXES[name].int ? 'whole numbers' : 'numbers'} (got '${v}')`);
      return n;
    });
    axes.push([name, values]);
  }
  if (!axes.length) throw new HeadstartError('BAD_INPUT', `--grid is empty (e.g. "${gridUsage}")`);
  let trials: Trial[] = [{}];
  for (const [name, values] of axes) trials = trials.flatMap((t) => values.map((v) => ({ ...t, [name]: v })));
  if (trials.length > MAX_TRIALS) throw new HeadstartError('BAD_INPUT', `--grid makes ${trials.length} trials; at most ${MAX_TRIALS} (split the sweep)`);
  return trials;
}

/** trainRun settings of one trial on top of the sweep's base settings. */
function trialConfig(base: Omit<TrainConfig, 'out'>, t: Trial, out: string): TrainConfig {
  const cfg: TrainConfig = { ...base, out };
  for (const [name, v] of Object.entries(t) as Array<[Axis, number | string]>) {
    if (name === 'augment') cfg.augment = Number(v) > 0 ? { ...base.augment, views: Number(v) } : undefined;
    else Object.assign(cfg, { [AXES[name].field]: v });
  }
  return cfg;
}

/** 95% Wilson interval of an accuracy on n images, as [low, high]. */
function intervalPair(accuracy: number, n: number): [number, number] {
  const i = accuracyInterval(accuracy, n);
  return [i.low, i.high];
}

/** One row of the leaderboard. */
export interface SweepRow {
  rank: number;
  trial: Trial;
  /** The trial's run folder inside the sweep folder (relative). */
  run: string;
  /** What the ranking uses (the test split stays out of the choice): the cross-validated accuracy where the trial ran selection, else validation accuracy. */
  score: number;
  /** Validation accuracy at the kept epoch (0 when the head was refit on every non-test image, with no validation split). */
  valAccuracy: number;
  /** Mean and spread of the chosen head's accuracy across the folds, where the trial ran cross-validated selection. */
  cvAccuracy?: number;
  cvStd?: number;
  testAccuracy: number;
  /** 95% Wilson interval of the test accuracy. */
  testInterval: [number, number];
  testCount: number;
  macroF1: number;
  /** Bytes of the trained head's weights. */
  headBytes: number;
  /** Milliseconds per image of the head on feature vectors, measured where the trial ran (backbone time not included). */
  headMsPerImage: number;
  seconds: number;
  /** The worker that ran the trial (queued sweeps). */
  worker?: string;
}

export interface SweepReport {
  dir: string;
  trials: number;
  /** Where the trials trained: 'local', or the queue's URL (redacted). */
  ranOn: string;
  leaderboard: SweepRow[];
  /** The leaderboard as a text table. */
  table: string;
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    total += e.isDirectory() ? await folderBytes(p) : (await fs.stat(p)).size;
  }
  return total;
}

function table(rows: SweepRow[]): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const cv = (r: SweepRow) => (r.cvAccuracy === undefined ? '—' : `${pct(r.cvAccuracy)}±${(r.cvStd! * 100).toFixed(1)}`);
  const head = `${'#'.padStart(3)}  ${'trial'.padEnd(40)} ${'cv'.padStart(11)} ${'val'.padStart(6)} ${'test'.padStart(6)}  ${'95% interval'.padEnd(13)} ${'head'.padStart(9)} ${'ms/img'.padStart(7)} ${'time'.padStart(7)}`;
  const lines = rows.map((r) => {
    const name = Object.entries(r.trial).map(([k, v]) => `${k}=${v}`).join(' ');
    return `${String(r.rank).padStart(3)}  ${name.padEnd(40)} ${cv(r).padStart(11)} ${pct(r.valAccuracy).padStart(6)} ${pct(r.testAccuracy).padStart(6)}  ${`${pct(r.testInterval[0])}–${pct(r.testInterval[1])}`.padEnd(13)} ${`${(r.headBytes / 1024).toFixed(1)} KB`.padStart(9)} ${r.headMsPerImage.toFixed(4).padStart(7)} ${`${r.seconds.toFixed(1)} s`.padStart(7)}`;
  });
  return [head, ...lines, 'cv: cross-validated accuracy of the chosen head (mean±std over folds); ms/img: the head alone on feature vectors, where the trial ran.'].join('\n');
}

/** A leaderboard row from a trial's run folder (written locally or unpacked from a worker's result). */
async function trialRow(dir: string, run: string, trial: Trial, headMsPerImage: number, seconds: number, worker?: string): Promise<Omit<SweepRow, 'rank'>> {
  const runDir = path.join(dir, run);
  const record = await readRunRecord(runDir);
  const sel = record.selection;
  const chosen = sel?.results.find((r) => r.name === sel.chosen);
  const valAccuracy = record.history[record.bestEpoch - 1]?.valAccuracy ?? 0;
  return {
    trial,
    run,
    score: chosen?.meanAccuracy ?? valAccuracy,
    valAccuracy,
    ...(chosen ? { cvAccuracy: chosen.meanAccuracy, cvStd: chosen.stdAccuracy } : {}),
    testAccuracy: record.test.accuracy,
    testInterval: intervalPair(record.test.accuracy, record.test.count),
    testCount: record.test.count,
    macroF1: record.test.macroF1,
    headBytes: await folderBytes(path.join(runDir, 'head')),
    headMsPerImage,
    seconds,
    ...(worker ? { worker } : {}),
  };
}

const trialName = (t: Trial): string => Object.entries(t).map(([k, v]) => `${k}=${v}`).join(' ');
const runName = (i: number): string => path.join('trials', String(i + 1).padStart(3, '0'));

/** Trains every trial in this process, one after the other, into `tmp`. */
async function localTrials(tmp: string, grid: Trial[], base: Omit<TrainConfig, 'out'>, progress: Progress): Promise<Array<Omit<SweepRow, 'rank'>>> {
  const rows: Array<Omit<SweepRow, 'rank'>> = [];
  for (const [i, trial] of grid.entries()) {
    throwIfAborted(progress.signal);
    progress.onEvent?.({ type: 'log', message: `trial ${i + 1}/${grid.length}: ${trialName(trial)}` });
    const t0 = Date.now();
    const { headMsPerImage } = await runTrial(trialConfig(base, trial, path.join(tmp, runName(i))), progress);
    rows.push(await trialRow(tmp, runName(i), trial, headMsPerImage, (Date.now() - t0) / 1000));
  }
  return rows;
}

/** Trial jobs: a result is the run folder's files, so a job removed from Redis before it was read has lost it. */
const TRIAL_KIND: JobKind<TrialJobResult> = {
  queue: EXPERIMENT_QUEUE,
  name: 'trial',
  result: (v) => (typeof v === 'object' && v !== null && Array.isArray((v as Partial<TrialJobResult>).files) ? (v as TrialJobResult) : undefined),
  removed: 'failed',
  keepSeconds: 24 * 3600,
};

/** A backbone id as every machine reads it: a local model path made absolute, a catalogue id as it is. */
/**
 * Trains every trial on the queue's workers: scans DATA, spreads the
 * extraction of every backbone the grid names (extraction jobs, first),
 * then queues one experiment job per trial and writes each returned run
 * folder into `tmp`.
 */
async function queuedTrials(tmp: string, grid: Trial[], base: Omit<TrainConfig, 'out'>, queue: QueueOptions, progress: Progress): Promise<Array<Omit<SweepRow, 'rank'>>> {
  const emit = progress.onEvent ?? (() => undefined);
  if (base.unfreeze) throw new HeadstartError('BAD_INPUT', 'sweep --queue trains frozen heads only: drop --unfreeze, or sweep without --queue');
  const target = parseQueueUrl(queue.url);
  const scan = await scanDataset(base.data, progress);
  const dataDigest = sha256(scan.hashed.map((s) => `${s.rel}\t${s.label}\t${s.hash}`).join('\n'));
  const configs = grid.map((t) => trialConfig(base, t, ''));
  // Extraction first, once per backbone, with the batches the first trial on it would use locally.
  const keys = new Map<string, { key: string; engine: 'onnx' | 'tfjs' }>();
  for (const cfg of configs) {
    const id = jobBackboneId(cfg.backbone ?? DEFAULT_BACKBONE);
    if (keys.has(id)) continue;
    throwIfAborted(progress.signal);
    const opened = await openBackbone(id, { ...cfg, cut: undefined }, progress);
    try {
      await queuedBackbone(opened, id, queue, undefined, cfg.batchSize ?? 16, cfg.maxPixels).extract(scan.hashed, progress);
      keys.set(id, { key: opened.caches.features.key, engine: opened.engine === 'onnxruntime' ? 'onnx' : 'tfjs' });
    } finally {
      opened.dispose();
    }
  }
  const jobs = configs.map((cfg, i) => {
    const id = jobBackboneId(cfg.backbone ?? DEFAULT_BACKBONE);
    const settings = trialSettings({ ...cfg, data: path.resolve(cfg.data), backbone: id });
    const d: TrialJobData = { trial: i + 1, settings, ...keys.get(id)!, dataDigest };
    return { id: trialJobId(d), data: d };
  });
  if (new Set(jobs.map((j) => j.id)).size !== jobs.length) throw new HeadstartError('BAD_INPUT', '--grid names the same trial twice');
  const tally = new Tally<TrialJobResult>(progress, jobs.length, 'trials', 'train');
  for (const j of jobs) tally.jobs.set(j.id, { total: 1, done: 0, state: 'pending' });
  emit({ type: 'phase', phase: 'train', message: `queued ${jobs.length} trial(s) on ${target.redacted}; workers train them on the cached vectors` });
  await runJobs(target, TRIAL_KIND, jobs, tally, queue, progress);
  const failed = jobs.filter((j) => tally.jobs.get(j.id)!.state === 'failed');
  if (failed.length) throw new HeadstartError('BACKEND', `${failed.length} of ${jobs.length} trial job(s) failed for good: trial ${failed[0]!.data.trial}: ${tally.jobs.get(failed[0]!.id)!.reason}. Fix what the worker log says and run again (finished trials are kept in the queue for a day)`);
  const rows: Array<Omit<SweepRow, 'rank'>> = [];
  for (const [i, j] of jobs.entries()) {
    const r = tally.jobs.get(j.id)!.result!;
    await unpackFolder(r.files, path.join(tmp, runName(i)));
    rows.push(await trialRow(tmp, runName(i), grid[i]!, r.headMsPerImage, r.seconds, r.worker));
  }
  return rows;
}

/**
 * `headstart sweep`: trains one run per grid point through trainRun (the
 * embedding cache makes every trial after the first cost only head
 * training); with `base.queue` the extraction and then the trials
 * themselves run on the queue's workers. Ranks them by cross-validated
 * accuracy (validation accuracy where there was no selection), and writes
 * the sweep folder atomically: `trials/NNN/` (ordinary run folders: eval,
 * export and the panel read them; `promote` copies one out) and
 * `leaderboard.json`.
 */
export async function runSweep(opts: { grid: Trial[]; out: string; force?: boolean; base: Omit<TrainConfig, 'out'> }, progress: Progress = {}): Promise<SweepReport> {
  const emit = progress.onEvent ?? (() => undefined);
  // The output-folder guard: --force replaces only a sweep folder Headstart wrote, never DATA, the current or home folder.
  const guard = outGuard('sweep', [{ path: opts.base.data, what: 'DATA' }], { force: opts.force, protectedRoots: opts.base.protectedRoots });
  const dir = await prepareOutDir(opts.out, guard);
  return writeOutDir(
    dir,
    guard,
    async (tmp) => {
      const t0 = Date.now();
      const queue = opts.base.queue;
      const rows = queue ? await queuedTrials(tmp, opts.grid, opts.base, queue, progress) : await localTrials(tmp, opts.grid, opts.base, progress);
      const seconds = (Date.now() - t0) / 1000;
      emit({ type: 'log', message: `${rows.length} trial(s) in ${seconds.toFixed(1)} s (${(rows.length / seconds).toFixed(2)} trials/s)` });
      const leaderboard = rows
        .map((r, i) => ({ r, i }))
        .sort((a, b) => b.r.score - a.r.score || a.r.headBytes - b.r.headBytes || a.i - b.i)
        .map(({ r }, k) => ({ rank: k + 1, ...r }));
      const ranOn = queue ? parseQueueUrl(queue.url).redacted : 'local';
      await fs.writeFile(path.join(tmp, 'leaderboard.json'), JSON.stringify({ version: 2, createdAt: new Date().toISOString(), rankedBy: 'score: cvAccuracy where the trial ran cross-validated selection, else valAccuracy', ranOn, seconds, leaderboard }, null, 2));
      return { dir, trials: rows.length, ranOn, leaderboard, table: table(leaderboard) };
    },
  );
}

/** `headstart promote`: which trial, and where its run goes. */
export interface PromoteOptions extends OutOptions {
  /** The sweep folder (holds leaderboard.json and trials/). */
  sweepDir: string;
  /** Leaderboard rank to promote, default 1 (the best). */
  rank?: number;
  /** RUN_DIR to create. */
  out: string;
}

/**
 * Copies one trial's run folder out of a sweep as an ordinary run (through
 * the output-folder guard: a marker, --force only over a run Headstart
 * wrote). A trial folder is already a complete run that eval and export
 * read in place; promote gives it a place of its own, outside the sweep.
 */
export async function promoteTrial(opts: PromoteOptions): Promise<{ runDir: string; row: SweepRow }> {
  const sweepDir = path.resolve(opts.sweepDir);
  const board = await readJson<{ leaderboard?: SweepRow[] }>(path.join(sweepDir, 'leaderboard.json'), 'the sweep leaderboard');
  const rows = Array.isArray(board.leaderboard) ? board.leaderboard : [];
  if (!rows.length) throw new HeadstartError('BAD_INPUT', `${path.join(sweepDir, 'leaderboard.json')} lists no trials; is ${opts.sweepDir} a sweep folder?`);
  const rank = opts.rank ?? 1;
  const row = rows.find((r) => r.rank === rank);
  if (!row) throw new HeadstartError('BAD_INPUT', `--rank ${rank} is not on the leaderboard of ${opts.sweepDir} (ranks 1 to ${rows.length})`);
  const parts = typeof row.run === 'string' ? row.run.split(/[\\/]/) : [];
  if (parts.length !== 2 || parts[0] !== 'trials' || !/^\d+$/.test(parts[1]!)) throw new HeadstartError('BAD_INPUT', `leaderboard row ${rank} names the run ${JSON.stringify(row.run)}, not a trials/NNN folder`);
  const src = path.join(sweepDir, ...parts);
  const record = await readRunRecord(src);
  const guard = outGuard('run', [{ path: sweepDir, what: 'the sweep' }, { path: record.config.data, what: 'DATA' }], opts);
  await prepareOutDir(opts.out, guard);
  const runDir = await writeOutDir(opts.out, guard, async (tmp) => {
    // writeOutDir wrote the marker already; copy everything else.
    await fs.cp(src, tmp, { recursive: true, filter: (from) => path.basename(from) !== OUT_MARKER || path.dirname(from) !== src });
    return path.resolve(opts.out);
  });
  return { runDir, row };
}
