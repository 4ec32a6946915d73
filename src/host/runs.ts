import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import type { RunSummary } from '../shared/panelProtocol';
import type { RunRecord } from '../shared/records';

/** The run.json of `runDir`, or undefined when there is none or it lacks the parts the host reads. */
export async function readRun(runDir: string): Promise<RunRecord | undefined> {
  let r: RunRecord;
  try {
    r = JSON.parse(await fs.readFile(path.join(runDir, 'run.json'), 'utf8')) as RunRecord;
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
    if (r) out.push({ runDir, name, createdAt: r.createdAt, accuracy: r.test.accuracy, backbone: r.backbone.id, classes: r.labels.length, ...(r.modality === 'text' ? { modality: 'text' as const } : {}) });
  }
  return out.sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
}
