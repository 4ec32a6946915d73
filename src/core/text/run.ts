import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { initBackend } from '../backend';
import { defaultCacheDir } from '../backbones/store';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { type SplitSample, splitDataset, summarise } from '../data/split';
import { outGuard, prepareOutDir, writeOutDir } from '../fsutil';
import { checkSplit } from '../options';
import type { LoadedRun, RunRecord, TrainConfig, TrainReport } from '../run';
import { type BaselineFeatures, RUN_VERSION, gather, headProbs, selectAndRefit, trainBaseline, validateHead } from '../runParts';
import { type HeadOptions, type HeadResult, HEAD_DEFAULTS, evaluateSet, trainHead } from '../train/head';
import { type GroupedSet, type Selection, MIN_SOURCES, headGrid } from '../train/select';
import { evaluatePredictions } from '../train/metrics';
import { dirSaver } from '../tfjsio';
import { type TextStats, type TextSample, type Modality, discoverTextDataset, textStats } from './dataset';
import { type Coverage, coverageOf, coverageWarning, embedTexts } from './embed';
import { type TextEmbedder, openTextBackbone } from './encoder';
import { fitTfidf, transformTfidf } from './tfidf';
import { textExactHash } from './decode';

/** Text options of `train` (and of eval on another DATA). */
export interface TextDataChoice {
  /** Force the modality instead of deciding it from DATA. */
  modality?: Modality;
  /** Manifest column of the text (CSV / JSONL). */
  textColumn?: string;
  /** Manifest column of the label (CSV / JSONL). */
  labelColumn?: string;
}

/** What run.json records of a text run, beside the common fields (plain data for the panel). */
export interface TextRunInfo {
  kind: TextEmbedder['kind'];
  tokenizer: string;
  /** Vocabulary coverage of the run's texts. */
  coverage: Coverage;
  columns?: { text: string; label: string };
  stats: TextStats;
  /** TF-IDF terms the baseline used. */
  tfidfTerms: number;
}

/** Rows of TF-IDF scaled so a typical present term weighs about 1 (like a standardised feature); keyed by exact-text hash. */
function tfidfBaseline(samples: Array<SplitSample & { text: string }>): { base: BaselineFeatures; terms: number } {
  const fitOn = samples.filter((s) => s.split !== 'test');
  const m = fitTfidf(fitOn.map((s) => s.text));
  const x = transformTfidf(m, samples.map((s) => s.text));
  const dim = Math.max(1, m.terms.length);
  const meanTerms = fitOn.reduce((a, s) => a + new Set(s.text.toLowerCase().split(/\W+/u).filter(Boolean)).size, 0) / Math.max(1, fitOn.length);
  const k = Math.sqrt(Math.max(1, meanTerms));
  const vectors = new Map<string, Float32Array>();
  samples.forEach((s, i) => vectors.set(s.hash, m.terms.length ? x.subarray(i * dim, (i + 1) * dim).map((v) => v * k) : new Float32Array(1)));
  return {
    terms: m.terms.length,
    base: {
      vectors,
      dim,
      standardise: false,
      name: 'TF-IDF words',
      description: `logistic regression on TF-IDF of ${m.terms.length} words (fitted on the non-test texts)`,
      easyHint: 'the classes may be told apart by a few keywords, or the data is too small to tell',
      advice: (b, c) => `TF-IDF words (${(b * 100).toFixed(1)}%) beat the backbone's embeddings (${(c * 100).toFixed(1)}%) in cross-validation: the classes hinge on particular words the average embedding blurs. Try a sentence encoder (--backbone minilm-l6-v2, or a folder with model.onnx + tokenizer.json), or more texts per class`,
    },
  };
}

function checkTextClasses(samples: TextSample[], data: string, skipped: number): void {
  if (!samples.length) throw new HeadstartError('NO_DATA', `no usable texts in ${data}${skipped ? ` (${skipped} skipped; see the reasons with --json)` : ''}: DATA needs one sub-folder per class with .txt files, or a CSV / JSONL with text and label columns`);
  const labels = new Set(samples.map((s) => s.label));
  if (labels.size < 2) throw new HeadstartError('NO_DATA', `only one class found ('${[...labels][0]}'); a classifier needs at least two labels`);
}

/**
 * The text job, the counterpart of trainRun for images: read DATA, embed the
 * texts through the cache, split (duplicates by normalised content), choose
 * and train the head by cross-validation beside the TF-IDF baseline on the
 * same folds, evaluate on the test split and write RUN_DIR atomically.
 */
export async function trainTextRun(cfg: TrainConfig, progress: Progress = {}): Promise<TrainReport> {
  const t0 = Date.now();
  const emit = progress.onEvent ?? (() => undefined);
  const head: Required<HeadOptions> = { ...HEAD_DEFAULTS, ...Object.fromEntries(Object.entries(cfg).filter(([k, v]) => k in HEAD_DEFAULTS && v !== undefined)) } as Required<HeadOptions>;
  validateHead(head);
  checkSplit(cfg.val, cfg.test);
  if (cfg.unfreeze || cfg.augment?.views || cfg.queue) throw new HeadstartError('BAD_INPUT', '--unfreeze, --augment and --queue apply to images; a text run trains a head on frozen text embeddings');
  const guard = outGuard('run', [{ path: cfg.data, what: 'DATA' }], cfg);
  const runDir = await prepareOutDir(cfg.out, guard);
  const cacheDir = cfg.cacheDir ?? defaultCacheDir();
  const ds = await discoverTextDataset(cfg.data, { ...progress, textColumn: cfg.textColumn, labelColumn: cfg.labelColumn });
  const scanSeconds = (Date.now() - t0) / 1000;
  checkTextClasses(ds.samples, cfg.data, ds.skipped.length);
  const backend = await initBackend(cfg.backend ?? 'auto');
  const embedder = await openTextBackbone(cfg.backbone, cacheDir, progress);
  try {
    const ex = await embedTexts(embedder, ds.samples, cacheDir, progress);
    const split = splitDataset(ds.samples, { val: cfg.val, test: cfg.test, seed: head.seed, noun: 'text' });
    const labels = [...new Set(split.samples.map((s) => s.label))].sort();
    if (labels.length < 2) throw new HeadstartError('NO_DATA', 'after removing texts with conflicting labels fewer than two classes remain');
    // From here a sample's hash is its exact text's (the feature and cache key); the split used the normalised one.
    const byRel = new Map(ds.samples.map((s) => [s.rel, s]));
    const samples = split.samples.map((s) => ({ ...s, hash: byRel.get(s.rel)!.exact, text: byRel.get(s.rel)!.text }));
    const summary = summarise(path.resolve(ds.root), ds.kind, samples, [...ds.skipped, ...split.conflicts], split.duplicates, 'text');
    const coverage = coverageOf(samples.map((s) => ex.counts.get(s.hash)!));
    const low = coverageWarning(coverage, embedder.id);
    if (low) summary.warnings.push(low);
    for (const w of summary.warnings) emit({ type: 'warning', message: w });
    const fsz = embedder.featureSize;
    const sources = samples.filter((s) => s.split !== 'test');
    const train = gather(sources, undefined, ex.features, labels, fsz);
    const test = gather(samples, 'test', ex.features, labels, fsz);
    const tfidf = tfidfBaseline(samples);
    const headStarted = Date.now();
    const grid = headGrid(cfg.head ?? 'auto', { hiddenUnits: cfg.hiddenUnits, l2: cfg.l2 }, head.hiddenUnits);
    let res: HeadResult;
    let selection: Selection | undefined;
    let used = { hiddenUnits: head.hiddenUnits, l2: head.l2 };
    if (sources.length < MIN_SOURCES) {
      const pick = grid.find((g) => g.l2 === head.l2) ?? grid[grid.length - 1]!;
      emit({ type: 'warning', message: `only ${sources.length} non-test texts: too few to cross-validate (at least ${MIN_SOURCES}); training ${pick.name} without a model choice` });
      used = { hiddenUnits: pick.hiddenUnits, l2: pick.l2 };
      res = await trainHead(train, { x: new Float32Array(0), y: new Int32Array(0) }, fsz, labels.length, { ...head, ...used }, progress);
    } else {
      const grouped: GroupedSet = { ...train, group: Int32Array.from(sources.keys()), original: new Uint8Array(sources.length).fill(1) };
      emit({ type: 'phase', phase: 'train', message: `choosing the head by cross-validation over ${grid.length} configurations on ${sources.length} non-test texts, and the TF-IDF baseline on the same folds` });
      ({ res, selection } = await selectAndRefit(grouped, sources, tfidf.base, labels, fsz, head, grid, cfg.epochs, progress));
      const chosen = grid.find((g) => g.name === selection!.chosen)!;
      used = { hiddenUnits: chosen.hiddenUnits, l2: chosen.l2 };
    }
    const headSeconds = (Date.now() - headStarted) / 1000;
    try {
      emit({ type: 'phase', phase: 'evaluate', message: `evaluating on ${test.y.length} test texts` });
      const probs = evaluateSet(res.model, test, fsz, labels.length).probs;
      const testEval = evaluatePredictions(labels, test.y, probs, test.paths);
      const chosenCv = selection?.results.find((r) => r.name === selection.chosen);
      const cvArg = selection?.baseline && chosenCv ? { baseline: selection.baseline.meanAccuracy, chosen: chosenCv.meanAccuracy, epochs: cfg.epochs ?? Math.max(1, Math.round(selection.baseline.meanBestEpoch)) } : undefined;
      const baseline = await trainBaseline(samples, tfidf.base, labels, head, testEval, cvArg, progress);
      const timings = { scanSeconds, extractSeconds: ex.seconds, trainSeconds: headSeconds, totalSeconds: 0, imagesPerSecond: ex.textsPerSecond, extracted: ex.computed, cached: ex.cached, workers: 1 };
      const { out, force, protectedRoots, cacheDir: _c, queue, ...cfgRest } = cfg;
      void [out, force, protectedRoots, _c, queue]; // not part of run.json
      const record: RunRecord = {
        version: RUN_VERSION,
        createdAt: new Date().toISOString(),
        modality: 'text',
        config: { ...cfgRest, ...head, ...used, backbone: embedder.id, val: cfg.val ?? 0.15, test: cfg.test ?? 0.15, data: path.resolve(cfg.data) },
        backend: backend.name,
        engine: embedder.kind === 'onnx-encoder' ? 'onnxruntime' : 'word-vectors',
        backbone: { id: embedder.id, title: embedder.title, format: embedder.kind, inputSize: 0, inputRange: [0, 0], featureNode: '', pool: false, featureSize: fsz, licence: embedder.licence, source: embedder.source, modelHash: embedder.modelHash, dir: embedder.dir },
        labels,
        dataset: summary,
        samples: samples.map((s) => ({ rel: s.rel, label: s.label, hash: s.hash, split: s.split })),
        history: res.history,
        bestEpoch: res.bestEpoch,
        stoppedEarly: res.stoppedEarly,
        test: testEval,
        baseline,
        selection,
        text: { kind: embedder.kind, tokenizer: embedder.tokenizer, coverage, columns: ds.columns, stats: textStats(samples), tfidfTerms: tfidf.terms },
        timings,
      };
      throwIfAborted(progress.signal);
      await writeOutDir(runDir, guard, async (tmp) => {
        await res.model.save(dirSaver(path.join(tmp, 'head')));
        record.timings.totalSeconds = (Date.now() - t0) / 1000;
        await fs.writeFile(path.join(tmp, 'run.json'), JSON.stringify(record, null, 2));
      });
      const cvSummary = selection && chosenCv ? { chosen: selection.chosen, meanAccuracy: chosenCv.meanAccuracy, stdAccuracy: chosenCv.stdAccuracy, folds: selection.folds, method: selection.method, configurations: selection.results.length, reason: selection.reason } : undefined;
      return { runDir, backend: record.backend, engine: record.engine, dataset: summary, test: testEval, baseline, selection: cvSummary, bestEpoch: res.bestEpoch, epochs: res.history.length, timings: record.timings, modality: 'text', coverage };
    } finally {
      res.model.dispose();
    }
  } finally {
    embedder.dispose();
  }
}

/** Opens a text run's backbone and checks it is the model the run was trained on. */
export async function openRunTextBackbone(run: LoadedRun, cacheDir: string, progress: Progress = {}): Promise<TextEmbedder> {
  const b = run.record.backbone;
  const e = await openTextBackbone(b.id.startsWith('local:') ? b.id.slice('local:'.length) : b.id, cacheDir, progress);
  if (e.modelHash !== b.modelHash) {
    e.dispose();
    throw new HeadstartError('BAD_MODEL', `text backbone ${b.id} changed since this run was trained (its files differ); train again`);
  }
  return e;
}

/** Class probabilities of texts with a text run (embeddings through the cache, then the head). */
export async function textRunProbs(run: LoadedRun, texts: string[], cacheDir: string, progress: Progress = {}): Promise<{ probs: Float32Array; coverage: Array<{ known: number; words: number }> }> {
  const e = await openRunTextBackbone(run, cacheDir, progress);
  try {
    const items = texts.map((text) => ({ text, exact: textExactHash(text) }));
    const ex = await embedTexts(e, items, cacheDir, progress);
    const fsz = e.featureSize;
    const x = new Float32Array(texts.length * fsz);
    items.forEach((it, i) => x.set(ex.features.get(it.exact)!, i * fsz));
    return { probs: headProbs(run.head, x, fsz), coverage: items.map((it) => ex.counts.get(it.exact)!) };
  } finally {
    e.dispose();
  }
}
