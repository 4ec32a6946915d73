import * as fs from 'node:fs/promises';
import { accuracyInterval } from '../train/metrics';
import * as path from 'node:path';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { writeDirAtomic } from '../fsutil';
import { type TrainConfig, readRunRecord } from '../runFolder';
import { trainRun } from '../train/trainRun';

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
  /** Validation accuracy at the kept epoch: what the ranking uses (the test split stays out of the choice). */
  valAccuracy: number;
  testAccuracy: number;
  /** 95% Wilson interval of the test accuracy. */
  testInterval: [number, number];
  testCount: number;
  macroF1: number;
  /** Bytes of the trained head's weights. */
  headBytes: number;
  seconds: number;
}

export interface SweepReport {
  dir: string;
  trials: number;
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
  const head = `${'#'.padStart(3)}  ${'trial'.padEnd(40)} ${'val'.padStart(6)} ${'test'.padStart(6)}  ${'95% interval'.padEnd(13)} ${'head'.padStart(9)} ${'time'.padStart(7)}`;
  const lines = rows.map((r) => {
    const name = Object.entries(r.trial).map(([k, v]) => `${k}=${v}`).join(' ');
    return `${String(r.rank).padStart(3)}  ${name.padEnd(40)} ${pct(r.valAccuracy).padStart(6)} ${pct(r.testAccuracy).padStart(6)}  ${`${pct(r.testInterval[0])}–${pct(r.testInterval[1])}`.padEnd(13)} ${`${(r.headBytes / 1024).toFixed(1)} KB`.padStart(9)} ${`${r.seconds.toFixed(1)} s`.padStart(7)}`;
  });
  return [head, ...lines].join('\n');
}

/**
 * `headstart sweep`: trains one run per grid point (each through trainRun, so
 * --queue spreads their extraction, and the embedding cache makes every trial
 * after the first cost only head training), ranks them by validation
 * accuracy, and writes the sweep folder atomically: `trials/NN/` (ordinary
 * run folders: eval, export and the panel read them) and `leaderboard.json`.
 */
export async function runSweep(opts: { grid: Trial[]; out: string; force?: boolean; base: Omit<TrainConfig, 'out'> }, progress: Progress = {}): Promise<SweepReport> {
  const dir = path.resolve(opts.out);
  const emit = progress.onEvent ?? (() => undefined);
  return writeDirAtomic(
    dir,
    async (tmp) => {
      const rows: Array<Omit<SweepRow, 'rank'>> = [];
      for (const [i, trial] of opts.grid.entries()) {
        throwIfAborted(progress.signal);
        const run = path.join('trials', String(i + 1).padStart(3, '0'));
        emit({ type: 'log', message: `trial ${i + 1}/${opts.grid.length}: ${Object.entries(trial).map(([k, v]) => `${k}=${v}`).join(' ')}` });
        const t0 = Date.now();
        const res = await trainRun(trialConfig(opts.base, trial, path.join(tmp, run)), progress);
        const record = await readRunRecord(res.runDir);
        rows.push({
          trial,
          run,
          valAccuracy: record.history[record.bestEpoch - 1]?.valAccuracy ?? 0,
          testAccuracy: res.test.accuracy,
          testInterval: intervalPair(res.test.accuracy, res.test.count),
          testCount: res.test.count,
          macroF1: res.test.macroF1,
          headBytes: await folderBytes(path.join(res.runDir, 'head')),
          seconds: (Date.now() - t0) / 1000,
        });
      }
      const leaderboard = rows
        .map((r, i) => ({ r, i }))
        .sort((a, b) => b.r.valAccuracy - a.r.valAccuracy || a.r.headBytes - b.r.headBytes || a.i - b.i)
        .map(({ r }, k) => ({ rank: k + 1, ...r }));
      await fs.writeFile(path.join(tmp, 'leaderboard.json'), JSON.stringify({ version: 1, createdAt: new Date().toISOString(), rankedBy: 'valAccuracy', leaderboard }, null, 2));
      return { dir, trials: rows.length, leaderboard, table: table(leaderboard) };
    },
    { overwrite: opts.force },
  );
}
