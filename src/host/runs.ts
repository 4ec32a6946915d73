import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { RunSummary } from '../shared/panelProtocol';

/** Minimal view of run.json that the host reads (no engine import on the host). */
export interface RunJson {
  version: number;
  createdAt: string;
  config: { data: string; epochs: number; batchSize: number; learningRate: number; hiddenUnits: number; dropout: number; val: number; test: number; seed: number; backbone: string; unfreeze?: number; augment?: { views: number } };
  backend: string;
  engine?: string;
  backbone: { id: string; title: string };
  labels: string[];
  dataset: { root: string; total: number; counts: Record<string, { total: number }>; skipped: Array<{ path: string; reason: string }>; warnings: string[] };
  history: Array<{ epoch: number; loss: number; accuracy: number; valLoss: number; valAccuracy: number }>;
  test: { accuracy: number; macroF1: number; count: number; labels: string[]; perClass: Array<{ label: string; precision: number; recall: number; f1: number; support: number }>; confusion: number[][]; mistakes: Array<{ path: string; label: string; predicted: string; probability: number }> };
  baseline: { accuracy: number; verdict: string };
  timings: { totalSeconds: number };
}

/** The run.json of `runDir`, or undefined when there is none or it lacks the parts the host reads. */
export async function readRun(runDir: string): Promise<RunJson | undefined> {
  let r: RunJson;
  try {
    r = JSON.parse(await fs.readFile(path.join(runDir, 'run.json'), 'utf8')) as RunJson;
  } catch {
    return undefined; // not a run folder (or one being written)
  }
  // A run.json is any JSON a repository ships: values are escaped in the panel, the shape is checked here.
  const obj = (v: unknown) => typeof v === 'object' && v !== null;
  const shaped = obj(r) && obj(r.config) && obj(r.backbone) && obj(r.dataset) && obj(r.test) && obj(r.baseline) && obj(r.timings) && Array.isArray(r.labels) && Array.isArray(r.history) && Array.isArray(r.test.mistakes) && Array.isArray(r.test.perClass) && Array.isArray(r.test.confusion) && typeof r.dataset.root === 'string';
  return shaped ? r : undefined;
}

/** Past runs in the runs folder, newest first. */
export async function listRuns(folder: string | undefined): Promise<RunSummary[]> {
  if (!folder) return [];
  let names: string[];
  try {
    names = await fs.readdir(folder);
  } catch {
    return []; // no runs yet
  }
  const out: RunSummary[] = [];
  for (const name of names) {
    if (name.startsWith('.')) continue;
    const runDir = path.join(folder, name);
    const r = await readRun(runDir);
    if (r) out.push({ runDir, name, createdAt: r.createdAt, accuracy: r.test.accuracy, backbone: r.backbone.id, classes: r.labels.length });
  }
  return out.sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
}
