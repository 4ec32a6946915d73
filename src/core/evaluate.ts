import * as path from 'node:path';
import type { EngineOptions } from './engine';
import { HeadstartError } from './errors';
import type { Progress } from './events';
import type { Skipped } from './data/dataset';
import type { SplitName } from './data/split';
import { scanDataset } from './data/scan';
import { readFailure, sha256File } from './fsutil';
import { type EvalResult, evaluatePredictions } from './train/metrics';
import { type LoadedRun, loadRun, openRunBackbone, runProbs } from './runFolder';
import { evalTextRun } from './text/predict';

export interface EvalReport extends EvalResult {
  runDir: string;
  /** 'test-split': the run's own test split; otherwise the DATA path evaluated. */
  source: string;
  skipped: Skipped[];
}

/** The test split of a run as paths, labels and (current) content hashes. */
export async function testSplitItems(run: LoadedRun): Promise<{ items: Array<{ path: string; label: string; hash: string }>; skipped: Skipped[] }> {
  return splitItems(run, 'test');
}

/** One split of a run as paths, labels and (current) content hashes; unreadable files are skipped with a reason. */
export async function splitItems(run: LoadedRun, split: SplitName): Promise<{ items: Array<{ path: string; label: string; hash: string }>; skipped: Skipped[] }> {
  const items: Array<{ path: string; label: string; hash: string }> = [];
  const skipped: Skipped[] = [];
  for (const s of run.record.samples.filter((x) => x.split === split)) {
    const p = path.join(run.record.dataset.root, s.rel);
    try {
      items.push({ path: p, label: s.label, hash: await sha256File(p) });
    } catch (err) {
      skipped.push({ path: p, reason: `${split} image no longer readable: ${readFailure(err)}` });
    }
  }
  return { items, skipped };
}

/** At most this many images decide `export --quantize auto` (bounds export time; every variant runs on each). */
export const CHOICE_MAX = 200;

/**
 * The images `export --quantize auto` decides on: the run's validation split,
 * or its training split when it has none; never the test split. Agreement
 * with float32 needs no held-out labels, so training images serve too.
 */
export async function choiceItems(run: LoadedRun): Promise<{ items: Array<{ path: string; label: string; hash: string }>; skipped: Skipped[]; split: 'val' | 'train' }> {
  const split = run.record.samples.some((s) => s.split === 'val') ? 'val' : 'train';
  const { items, skipped } = await splitItems(run, split);
  return { items: items.slice(0, CHOICE_MAX), skipped, split };
}

/** Metrics of a run's head on its test split, or on another labelled DATA. */
export async function evalRun(runDir: string, data: string | undefined, opts: EngineOptions = {}, progress: Progress = {}): Promise<EvalReport> {
  const run = await loadRun(runDir, opts.backend);
  try {
    // Text runs: texts re-read and embedded through the cache (src/core/text/).
    if (run.record.modality === 'text') return { runDir: path.resolve(runDir), source: data ? path.resolve(data) : 'test-split', ...(await evalTextRun(run, data, opts, progress)) };
    const labels = run.record.labels;
    let items: Array<{ path: string; label: string; hash: string }>;
    let skipped: Skipped[];
    if (data) {
      const scan = await scanDataset(data, progress);
      skipped = [...scan.skipped];
      items = [];
      for (const s of scan.hashed) {
        if (labels.includes(s.label)) items.push(s);
        else skipped.push({ path: s.path, reason: `label '${s.label}' is not one of the model's classes (${labels.join(', ')})` });
      }
    } else ({ items, skipped } = await testSplitItems(run));
    if (!items.length) throw new HeadstartError('NO_DATA', data ? `no images in ${data} carry one of the model's labels (${labels.join(', ')})` : `${runDir} has no test images left to evaluate`);
    const opened = await openRunBackbone(run, opts, progress);
    try {
      const ex = await opened.extract(items, progress);
      skipped.push(...ex.failed);
      const ok = items.filter((it) => ex.features.has(it.hash));
      const fsz = opened.backbone.entry.featureSize;
      const x = new Float32Array(ok.length * fsz);
      ok.forEach((it, i) => x.set(ex.features.get(it.hash)!, i * fsz));
      progress.onEvent?.({ type: 'phase', phase: 'evaluate', message: `evaluating ${ok.length} images` });
      const probs = runProbs(run, x);
      const res = evaluatePredictions(labels, Int32Array.from(ok.map((it) => labels.indexOf(it.label))), probs, ok.map((it) => it.path));
      return { runDir: path.resolve(runDir), source: data ? path.resolve(data) : 'test-split', skipped, ...res };
    } finally {
      opened.dispose();
    }
  } finally {
    run.head.dispose();
    run.top?.dispose();
  }
}
