import { initBackend } from '../backend';
import { defaultCacheDir } from '../backbones/store';
import { HeadstartError } from '../errors';
import type { Progress } from '../events';
import type { SplitSample } from '../data/split';
import { outGuard, prepareOutDir } from '../fsutil';
import { RUN_VERSION, type RunRecord, type TrainConfig } from '../runFolder';
import { type BaselineFeatures, type TrainReport, type TrainSet, evaluateStep, fitHeadStep, gather, recordConfig, resolveHeadOptions, splitStep, trainReport, writeRun } from '../train/pipeline';
import type { VectorSet } from '../train/head';
import { type TextSample, discoverTextDataset, snippet, textStats } from './dataset';
import { coverageOf, coverageWarning, embedTexts } from './embed';
import { openTextBackbone } from './encoder';
import { fitTfidf, transformTfidf } from './tfidf';

/** Characters of a mistake's text kept in run.json. */
const MISTAKE_SNIPPET = 200;

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
      short: 'TF-IDF',
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

/** Options of `train` that only images have: a text run refuses them in one line. */
function refuseImageOptions(cfg: TrainConfig): void {
  const given = [cfg.unfreeze ? '--unfreeze' : '', cfg.augment?.views ? '--augment' : '', cfg.queue ? '--queue' : ''].filter(Boolean);
  if (given.length) throw new HeadstartError('BAD_INPUT', `${given.join(', ')} ${given.length > 1 ? 'apply' : 'applies'} to images only: a text run trains a head on frozen text embeddings; drop ${given.length > 1 ? 'them' : 'it'}`);
}

/**
 * The text job, the counterpart of the image job: read DATA, embed the texts
 * through the cache, then the pipeline's steps: split (duplicates by
 * normalised content), head by cross-validation beside the TF-IDF baseline on
 * the same folds, evaluation on the test split, RUN_DIR written atomically.
 */
export async function trainTextRun(cfg: TrainConfig, progress: Progress = {}): Promise<TrainReport> {
  const t0 = Date.now();
  const head = resolveHeadOptions(cfg);
  refuseImageOptions(cfg);
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
    const split = splitStep(ds.samples, { root: ds.root, kind: ds.kind, skipped: ds.skipped }, cfg, head.seed, progress, 'text');
    const { labels, summary } = split;
    // From here a sample's hash is its exact text's (the feature and cache key); the split used the normalised one.
    const byRel = new Map(ds.samples.map((s) => [s.rel, s]));
    const samples = split.samples.map((s) => ({ ...s, hash: byRel.get(s.rel)!.exact, text: byRel.get(s.rel)!.text }));
    const coverage = coverageOf(samples.map((s) => ex.counts.get(s.hash)!));
    const low = coverageWarning(coverage, embedder.id);
    if (low) {
      summary.warnings.push(low);
      progress.onEvent?.({ type: 'warning', message: low });
    }
    const fsz = embedder.featureSize;
    const sources = samples.filter((s) => s.split !== 'test');
    const ts: TrainSet = { train: gather(sources, undefined, ex.features, labels, fsz), viewGroups: [], timings: { seconds: 0, computed: 0, cached: 0 } };
    const test = gather(samples, 'test', ex.features, labels, fsz);
    const tfidf = tfidfBaseline(samples);
    const same = (v: VectorSet): VectorSet => v;
    const noVal: VectorSet = { x: new Float32Array(0), y: new Int32Array(0) };
    const fitted = await fitHeadStep(ts, noVal, sources, tfidf.base, labels, fsz, head, cfg, undefined, same, fsz, progress, 'text');
    try {
      const { testEval, baseline } = await evaluateStep(fitted, test, samples, tfidf.base, labels, head, cfg, same, fsz, progress, 'text');
      // The panel shows a text mistake as its words, not a thumbnail: run.json carries a one-line excerpt.
      const textOf = new Map(samples.map((s) => [s.path, s.text]));
      testEval.mistakes = testEval.mistakes.map((m) => ({ ...m, text: snippet(textOf.get(m.path) ?? '', MISTAKE_SNIPPET) }));
      const record: RunRecord = {
        version: RUN_VERSION,
        createdAt: new Date().toISOString(),
        modality: 'text',
        config: recordConfig(cfg, head, fitted.used, embedder.id),
        backend: backend.name,
        engine: embedder.kind === 'onnx-encoder' ? 'onnxruntime' : 'word-vectors',
        headTrainer: fitted.res.trainer,
        backbone: { id: embedder.id, title: embedder.title, format: embedder.kind, inputSize: 0, inputRange: [0, 0], featureNode: '', pool: false, featureSize: fsz, licence: embedder.licence, source: embedder.source, modelHash: embedder.modelHash, dir: embedder.dir },
        labels,
        dataset: summary,
        samples: samples.map((s) => ({ rel: s.rel, label: s.label, hash: s.hash, split: s.split })),
        history: fitted.res.history,
        bestEpoch: fitted.res.bestEpoch,
        stoppedEarly: fitted.res.stoppedEarly,
        test: testEval,
        baseline,
        selection: fitted.selection,
        text: { kind: embedder.kind, tokenizer: embedder.tokenizer, coverage, columns: ds.columns, stats: textStats(samples), tfidfTerms: tfidf.terms },
        timings: { scanSeconds, extractSeconds: ex.seconds, trainSeconds: fitted.seconds, totalSeconds: 0, imagesPerSecond: ex.textsPerSecond, extracted: ex.computed, cached: ex.cached, workers: 1 },
      };
      await writeRun(runDir, guard, record, fitted.res.model, undefined, t0, progress);
      return { ...trainReport(runDir, record, fitted.res), modality: 'text', coverage };
    } finally {
      fitted.res.model.dispose();
    }
  } finally {
    embedder.dispose();
  }
}
