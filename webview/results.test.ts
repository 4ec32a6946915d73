/// <reference types="node" />
/**
 * The results and export markup: accuracies carry n and their 95% interval,
 * the selection table and the baseline's verdict show what the engine chose,
 * int8 and slimming figures show, and every value from run.json / report.json
 * (any JSON a repository ships) comes out escaped or as '–'.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DatasetPreview, ExportView, ResultView } from '../src/shared/panelProtocol';
import { baselineVerdict, clip, exportDetails, headline, intervalText, mistakesSection, selectionTable, slimmingSection, textDatasetSummary } from './results';

const iv = (low: number, high: number, n: number) => ({ low, high, n, level: 0.95 });

const result: ResultView = {
  runDir: '/r',
  accuracy: 5 / 6,
  interval: iv(0.4365, 0.97, 6),
  warning: 'only 3 evaluation images in class a',
  macroF1: 0.8,
  count: 6,
  labels: ['a', 'b'],
  perClass: [],
  confusion: [],
  mistakes: [],
  baseline: { accuracy: 1, interval: iv(0.61, 1, 6), cvAccuracy: 0.95, wins: true, advice: 'try another backbone', verdict: 'raw pixels win' },
  selection: {
    method: 'stratified-k-fold', folds: 5, sources: 30, epochs: 'early stopping in each fold', chosen: 'linear l2=0.0001', reason: 'within 0.5 points', refitEpochs: 20,
    rows: [{ name: 'linear l2=0.0001', meanAccuracy: 0.9, stdAccuracy: 0.05, folds: 5, chosen: true }, { name: 'mlp128 l2=0.0001', meanAccuracy: 0.92, stdAccuracy: 0.04, folds: 5, chosen: false }],
    baseline: { meanAccuracy: 0.95, stdAccuracy: 0.03 }, baselineWins: true, advice: 'raw pixels (95.0%) beat the backbone; try --unfreeze 1',
  },
  backend: 'wasm',
  headTrainer: 'onnxruntime',
  engine: 'onnxruntime',
  seconds: 3,
};

const exported: ExportView = {
  outDir: '/ws/m', bytes: 1e6, gzipBytes: 9e5, accuracy: 0.9, interval: iv(0.6, 0.98, 10), float32Bytes: 4e6, float32GzipBytes: 3.6e6, float32Accuracy: 0.9, float32Interval: iv(0.6, 0.98, 10), testImages: 10, msPerImage: 4, modelFormat: 'onnx', chosen: 'int8',
  choice: { split: 'val', images: 8, rule: 'at most 1% of predictions change' },
  candidates: [{ name: 'int8', bytes: 1e6, gzipBytes: 9e5, accuracy: 0.875, accuracyInterval: iv(0.53, 0.98, 8), withinBudget: true }, { name: 'float16', bytes: 2e6, gzipBytes: 1.8e6, accuracy: 0.875, withinBudget: true }],
  quantization: { calibrationImages: 24, calibrationSplit: 'train', threads: 2, int8Ms: 4, float32Ms: 8.5, speedup: 2.125, batch32Speedup: 1.8 },
  slimming: { asked: 'auto', chosen: 0.25, budgetPoints: 1, validationImages: 8, threads: 2, steps: [0, 0.25, 0.4].map((fraction, i) => ({ fraction, hiddenKept: 100 - fraction * 100, hiddenTotal: 100, bytes: 4e6, msPerImage: 10 - i, speedup: 10 / (10 - i), valAccuracy: 0.9 - i * 0.05, dropPoints: i * 5, withinBudget: i < 2 })) },
};

test('every accuracy carries its n and 95% interval; the small-split warning and the baseline show', () => {
  assert.equal(intervalText(iv(0.4365, 0.97, 6)), '95% CI 43.6–97.0%, n=6');
  assert.equal(intervalText(undefined, 6), 'n=6', 'a run of an early version still says n');
  const h = headline(result).value;
  assert.match(h, /83\.3% <span class="muted">test accuracy on 6 images \(95% CI 43\.6–97\.0%\)/);
  assert.match(headline({ ...result, interval: undefined }).value, /test accuracy on 6 images \(no interval recorded\)/);
  assert.match(h, /id="test-warning">⚠ only 3 evaluation images/);
  assert.match(h, /test 100\.0% \(95% CI 61\.0–100\.0%, n=6\); cross-validated 95\.0% against the chosen head's 90\.0% — raw pixels win\./);
  const e = exportDetails(exported).value;
  assert.match(e, /test accuracy 90\.0% \(95% CI 60\.0–98\.0%, n=10\); float32 90\.0% \(95% CI 60\.0–98\.0%, n=10\)/);
  assert.match(e, /87\.5% \(95% CI 53\.0–98\.0%, n=8\)/, 'candidates on the choice images');
  assert.match(e, /87\.5% \(no interval recorded\)/);
});

test('the selection table: mean ± std per configuration, the chosen one marked, the baseline on the same folds, and why', () => {
  const t = selectionTable(result.selection).value;
  assert.match(t, /Head chosen by 5-fold cross-validation on 30 non-test images/);
  assert.match(t, /<tr class="chosen"><th scope="row">linear l2=0\.0001 ✓<\/th><td>90\.0% ± 5\.0<\/td>/);
  assert.match(t, /mlp128 l2=0\.0001<\/th><td>92\.0% ± 4\.0/);
  assert.match(t, /<tr class="wins"><th scope="row">raw pixels \(baseline\)<\/th><td>95\.0% ± 3\.0/);
  assert.match(t, /Chose <strong>linear l2=0\.0001<\/strong>: within 0\.5 points\. Epochs: early stopping in each fold\. Refit on all non-test images for 20 epochs/);
  assert.match(selectionTable(undefined).value, /No cross-validated head choice/);
});

test('where the baseline wins, the verdict says so with what to try; otherwise nothing', () => {
  assert.match(baselineVerdict(result).value, /Raw pixels beat this backbone here.*try --unfreeze 1/);
  assert.equal(baselineVerdict({ ...result, selection: { ...result.selection!, baselineWins: false } }).value, '');
  assert.match(baselineVerdict({ ...result, selection: undefined }).value, /try another backbone/, 'without selection the test figures decide');
});

test('int8: calibration images and the speed-up; auto: where it decided; slimming: a table and two curves', () => {
  const e = exportDetails(exported).value;
  assert.match(e, /int8: calibrated on 24 training images; 4\.0 ms\/image against float32's 8\.5 \(<strong>2\.13×<\/strong> at batch 1, 1\.80× at batch 32\) in ONNX Runtime on 2 threads/);
  assert.match(e, /Decided on 8 validation images, never the test split<\/summary>at most 1% of predictions change/);
  const s = slimmingSection(exported).value;
  assert.match(s, /<tr class="chosen"><th scope="row">25% ✓<\/th><td>75 \/ 100<\/td>/);
  assert.match(s, /40%<\/th>.*10\.0 ✗<\/td>/s);
  assert.equal((s.match(/<svg /g) ?? []).length, 2, 'accuracy and ms/image curves');
  assert.equal((s.match(/<polyline /g) ?? []).length, 2);
  assert.match(s, />25%<\/text>/, 'steps labelled on the x axis');
  assert.match(s, /budget 1\.0 points on 8 validation images\)/, 'a report of an earlier version: validation images only');
  assert.match(slimmingSection({ ...exported, slimming: { ...exported.slimming!, oofTrainImages: 40 } }).value, /on 8 validation images \+ 40 training images out of fold\)/, 'the out-of-fold training images are counted');
  assert.doesNotMatch(s, /<script|on\w+=/i);
});

const EVIL = '<img src=x onerror=alert(1)>"\'&';

/** Every string replaced by EVIL and every number by EVIL too (a run.json can hold any JSON). */
function poison<T>(v: T): T {
  return poisonAny(v) as T;
}
function poisonAny(v: unknown): unknown {
  if (typeof v === 'string' || typeof v === 'number') return EVIL;
  if (Array.isArray(v)) return v.map(poisonAny);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, typeof x === 'boolean' ? x : poisonAny(x)]));
  return v;
}

test('every new value is escaped: markup in any string or number field comes out as text or –', () => {
  const r = poison(result);
  const e = poison(exported);
  const out = [headline(r), selectionTable(r.selection), baselineVerdict(r), exportDetails(e), slimmingSection(e), exportDetails({ ...e, choice: { ...e.choice!, split: 'test' } })].map((h) => h.value).join('\n');
  assert.doesNotMatch(out, /<img/, 'no element made from a value');
  assert.doesNotMatch(out, /onerror=alert\(1\)>"/, 'no raw quote after the payload');
  assert.match(out, /&#60;img src=x onerror=alert\(1\)&#62;&#34;&#39;&#38;/, 'strings shown as text');
  assert.match(out, /–%/, 'numbers that are not numbers show as –');
});

// Text runs and datasets: TF-IDF is the baseline, mistakes and examples are escaped, clipped excerpts that open their file.
const textResult: ResultView = {
  ...result,
  modality: 'text',
  text: { coverage: { tokens: 0.931, emptyTexts: 2, meanPerText: 0.9 }, tokenizer: 'lower-case <words>' },
  mistakes: [{ path: '/ws/t/a/1.txt', thumb: '', label: 'a', predicted: 'b', probability: 0.8, text: `<img src=x onerror=alert(1)> ${'long '.repeat(60)}` }],
};

test('a text run: counts texts, names TF-IDF as the baseline, shows coverage; mistakes are escaped, clipped excerpts linking their file', () => {
  const h = headline(textResult).value;
  assert.match(h, /test accuracy on 6 texts/);
  assert.match(h, /Baseline \(TF-IDF words, logistic regression\)/);
  assert.match(h, /Vocabulary of the run's texts: 93\.1% of the words known \(2 texts with none\) · tokenizer: lower-case &#60;words&#62;/);
  assert.match(selectionTable(textResult.selection, 'text').value, /TF-IDF words \(baseline\)/);
  assert.match(baselineVerdict(textResult).value, /TF-IDF words beat this backbone here/);
  const m = mistakesSection(textResult).value;
  assert.ok(!m.includes('<img'), 'no thumbnail, and the text is escaped');
  assert.match(m, /&#60;img src=x onerror=alert\(1\)&#62;/);
  assert.match(m, /data-action="open" data-arg="\/ws\/t\/a\/1\.txt"/);
  const q = /<q>(.*?)<\/q>/.exec(m)![1]!;
  assert.ok(q.endsWith('…') && q.replace(/&#\d+;/g, '.').length === 160, `clipped to 160 characters: ${q.length}`);
  assert.match(mistakesSection({ ...textResult, mistakes: [] }).value, /No test text was misclassified/);
  // Image runs keep thumbnails and the raw-pixel baseline.
  assert.match(mistakesSection({ ...result, mistakes: [{ ...textResult.mistakes[0]!, thumb: 'vscode-resource:/a.jpg', text: undefined }] }).value, /<img src="vscode-resource:\/a\.jpg"/);
  assert.match(headline(result).value, /on 6 images/);
  assert.match(headline(result).value, /Baseline \(logistic regression on raw pixels\)/);
});

test('a text dataset: counts, lengths, coverage and a few texts per class, escaped, each opening its file', () => {
  const d: DatasetPreview = {
    root: '/ws/t', total: 20, modality: 'text', skipped: [], warnings: [],
    classes: [{ label: 'bill<ing>', count: 12, example: '/ws/t/b/1.txt', texts: [{ path: '/ws/t.csv:4', text: 'charged "twice"' }] }, { label: 'ship', count: 8 }],
    text: { chars: { min: 10, median: 40, mean: 42.25, max: 90 }, words: { min: 2, median: 8, mean: 8.4, max: 17 }, coverage: { tokens: 0.5, emptyTexts: 0, meanPerText: 0.5, backbone: 'glove-100d-avg' } },
  };
  const h = textDatasetSummary(d).value;
  assert.match(h, /20 texts in 2 classes/);
  assert.match(h, /Characters: min 10 · median 40 · mean 42\.3 · max 90\. Words: min 2 · median 8 · mean 8\.4 · max 17\./);
  assert.match(h, /Vocabulary: 50\.0% of the words known to glove-100d-avg/);
  assert.match(h, /<strong>bill&#60;ing&#62;<\/strong> 12 texts/);
  assert.match(h, /data-arg="\/ws\/t\.csv:4"[^>]*><q>charged &#34;twice&#34;<\/q>/);
  assert.equal(clip('a\n  b'), 'a b');
  assert.equal(clip(42), '', 'not a string: nothing');
});
