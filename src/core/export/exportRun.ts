import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend';
import type { EngineOptions } from '../engine';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import type { Skipped } from '../data/dataset';
import { choiceItems, testSplitItems } from '../evaluate';
import { type OutOptions, outGuard, prepareOutDir, writeOutDir } from '../fsutil';
import { type LoadedRun, loadRun, openRunBackbone, toHeadInput } from '../run';
import { type VectorSet } from '../train/head';
import { type Policy, POLICIES, type PolicyName } from '../compress/quantize';
import { pruneHead } from '../compress/prune';
import { type WrittenModel, loadExportedModel, writeFullModel } from './fullModel';
import { browserSnippet, nodeSnippet } from './snippet';
import { type Measured, type TestSet, decodeTestSet, measureVariant, sizeOf, writeExportFiles } from './common';
import { type Agreement, type Interval, accuracyInterval, agreementOf } from '../train/metrics';
import { exportOnnx } from './exportOnnx';
import type { Int8Info } from './onnx/calibrate';
import type { Int8Speed } from './onnx/speed';
import { type SlimOption, type SlimReport, parseSlim } from '../compress/slim';

export const QUANTIZE_CHOICES = ['none', 'float16', 'uint16', 'uint8', 'int8', 'auto'] as const;
export type Quantize = (typeof QUANTIZE_CHOICES)[number];

export interface ExportOptions extends EngineOptions, OutOptions {
  /** Export folder to create. */
  out: string;
  /** Weight storage: none (float32), float16, uint16, uint8, or auto (smallest within --max-drop). Default none. */
  quantize?: Quantize;
  /** Target sparsity of the head's kernels, in [0, 1). Default 0 (auto also tries 0.5 and 0.8). */
  prune?: number;
  /** Accuracy budget of --quantize auto, in points below float32 (default 1). */
  maxDrop?: number;
  /** Model format: 'tfjs' (default) or 'onnx'. */
  format?: 'tfjs' | 'onnx';
  /** Slim the backbone for this task before compression (ONNX only): 'auto' or a fraction of hidden channels to remove. Default: no slimming. */
  slim?: SlimOption;
}

/** Size and quality of one model variant. */
export interface VariantReport {
  bytes: number;
  gzipBytes: number;
  /** Test-split accuracy 0..1 of this variant, loaded from its files. */
  accuracy: number;
  /** 95% Wilson interval of `accuracy` over the test images. */
  interval: Interval;
  macroF1: number;
  perClassF1: Record<string, number>;
  /** Mean milliseconds per single image in the exporting process (backbone + head). */
  msPerImage: number;
}

/**
 * One variant tried by --quantize auto (or the one asked for), judged on the
 * choice images (auto: the run's validation split, never the test split; an
 * explicit --quantize: the test split, where nothing is chosen).
 */
export interface Candidate extends Agreement {
  name: string;
  /** Weight policy (TF.js) or ONNX variant; int8 is ONNX's static QDQ quantization. */
  policy: PolicyName | 'int8';
  sparsity: number;
  bytes: number;
  gzipBytes: number;
  /** Within --max-drop: top-1 predictions differ from float32's on at most max-drop % of the choice images. */
  withinBudget: boolean;
}

/** Where --quantize auto decided, and by what rule. */
export interface ChoiceInfo {
  split: 'val' | 'train' | 'test';
  images: number;
  rule: string;
}

/** The budget rule, in words (CLI help, README and report say the same). */
export const BUDGET_RULE = 'a variant is within --max-drop P when its top-1 prediction differs from float32\'s on at most P% of the choice images (the run\'s validation split, or its training split when it has none; never the test split); each changed prediction can cost at most one correct answer, so its accuracy on those images is at most P points below float32\'s';

/** Judges a candidate against float32 on the same images. */
export function judge(ref: Pick<Measured, 'predicted'>, rep: Pick<Measured, 'predicted'>, set: TestSet, auto: boolean, maxDrop: number): Agreement & { withinBudget: boolean } {
  const a = agreementOf(ref.predicted, rep.predicted, set.images.map((im) => im.label));
  return { ...a, withinBudget: !auto || (1 - a.agreement) * 100 <= maxDrop + 1e-9 };
}

export interface ExportReport {
  outDir: string;
  format: 'tfjs' | 'onnx';
  modelFormat: 'graph-model' | 'layers-model' | 'onnx';
  quantize: Quantize;
  /** Storage dtype per weight role in the export. */
  precision: Policy | Record<string, string>;
  /** Bytes of weights per storage dtype in the export. */
  bytesByDtype: Record<string, number>;
  /** Head sparsity asked for / achieved per dense layer. */
  prune: { target: number; perLayer: Record<string, number> };
  maxDropPoints: number;
  candidates: Candidate[];
  chosen: string;
  /** What the choice rested on (auto) — the test split is measured only after it. */
  choice: ChoiceInfo;
  testImages: number;
  /** Accuracy of the run's own head on cached features (the engine's figure). */
  engineAccuracy: number;
  float32: VariantReport;
  exported: VariantReport;
  skipped: Skipped[];
  backend: string;
  /** int8 ONNX exports: calibration, quantization choices and speed against float32. */
  quantization?: Int8Info & { speed: Int8Speed };
  /** --slim: the slimming steps tried (size, speed, validation accuracy) and the one chosen. */
  slimming?: SlimReport;
}

/** A variant's report with its per-image top-1 classes (for agreement; left out of report.json). */
export type Measurement = VariantReport & { predicted: number[] };

/** The report without per-image predictions. */
export function plain(m: Measurement): VariantReport {
  const { predicted, ...rest } = m;
  void predicted;
  return rest;
}

/** Runs an exported model from its files over a set of decoded images: size, accuracy and latency. */
async function measure(dir: string, run: LoadedRun, test: TestSet, progress: Progress, label: string): Promise<Measurement> {
  const size = run.record.backbone.inputSize;
  const model = await loadExportedModel(dir);
  try {
    const m = await measureVariant(run, test, progress, label, async (x) => tf.tidy(() => model.predict(tf.tensor4d(x, [1, size, size, 3])).dataSync()));
    return { ...(await sizeOf(dir)), ...m, interval: accuracyInterval(m.accuracy, test.images.length) };
  } finally {
    model.dispose();
  }
}

/** Train / validation features of a run (through the embedding cache) for fine-tuning while pruning. */
async function runVectors(run: LoadedRun, opts: EngineOptions, progress: Progress): Promise<{ train: VectorSet; val: VectorSet; featureSize: number }> {
  const opened = await openRunBackbone(run, opts, progress);
  try {
    const pick = (split: string) => run.record.samples.filter((s) => s.split === split).map((s) => ({ path: path.join(run.record.dataset.root, s.rel), hash: s.hash, label: s.label }));
    const all = [...pick('train'), ...pick('val')];
    const ex = await opened.extract(all, progress);
    const fsz = opened.backbone.entry.featureSize;
    const gather = (list: typeof all): VectorSet => {
      const ok = list.filter((s) => ex.features.has(s.hash));
      const x = new Float32Array(ok.length * fsz);
      ok.forEach((s, i) => x.set(ex.features.get(s.hash)!, i * fsz));
      return { x, y: Int32Array.from(ok.map((s) => run.record.labels.indexOf(s.label))) };
    };
    const headIn = (v: VectorSet): VectorSet => ({ x: toHeadInput(run, v.x), y: v.y });
    return { train: headIn(gather(pick('train'))), val: headIn(gather(pick('val'))), featureSize: run.record.backbone.featureSize };
  } finally {
    opened.dispose();
  }
}

/** Decodes the images --quantize auto decides on (see choiceItems); an error when there are none. */
export async function decodeChoiceSet(run: LoadedRun, progress: Progress): Promise<{ set: TestSet; split: 'val' | 'train'; skipped: Skipped[] }> {
  const c = await choiceItems(run);
  const set = await decodeTestSet(run, c.items, progress);
  if (!set.images.length) throw new HeadstartError('NO_DATA', `${run.dir} has no readable validation or training images for --quantize auto to decide on; pick --quantize none, float16, uint16 or uint8`);
  return { set, split: c.split, skipped: [...c.skipped, ...set.skipped] };
}

/** Candidate policies from smallest to largest, for --quantize auto. */
const AUTO_ORDER: PolicyName[] = ['uint8', 'mixedLight', 'mixed', 'float16'];

function modelCard(run: LoadedRun, report: ExportReport): string {
  const r = run.record;
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const counts = r.labels.map((l) => `| ${l} | ${r.dataset.counts[l]?.train ?? 0} | ${r.dataset.counts[l]?.val ?? 0} | ${r.dataset.counts[l]?.test ?? 0} |`).join('\n');
  const perClass = r.test.perClass.map((c) => `| ${c.label} | ${c.precision.toFixed(3)} | ${c.recall.toFixed(3)} | ${c.f1.toFixed(3)} |`).join('\n');
  return `# Image classifier: ${r.labels.join(', ')}

Made with Headstart on ${r.createdAt.slice(0, 10)}: a ${r.backbone.title} backbone (frozen) with a trained dense head.

## Data
${r.dataset.total} images from \`${r.dataset.root}\`, ${r.labels.length} classes, split ${Math.round((1 - r.config.val - r.config.test) * 100)}/${Math.round(r.config.val * 100)}/${Math.round(r.config.test * 100)} (seed ${r.config.seed}).

| class | train | val | test |
|---|---|---|---|
${counts}

## Metrics (test split, ${report.testImages} images)
Accuracy of this export: **${pct(report.exported.accuracy)}** (95% CI ${pct(report.exported.interval.low)}–${pct(report.exported.interval.high)}; float32: ${pct(report.float32.accuracy)}). ${r.baseline.verdict} (baseline ${pct(r.baseline.accuracy)}).

| class | precision | recall | F1 |
|---|---|---|---|
${perClass}

## Files
- \`model.json\` + \`weights.bin\`: TensorFlow.js ${report.modelFormat}, ${report.exported.bytes} bytes (${report.exported.gzipBytes} gzipped) — float32 would be ${report.float32.bytes} bytes (${report.float32.gzipBytes} gzipped).
- \`labels.json\`, \`metadata.json\` (Teachable Machine's keys: \`labels\`, \`imageSize\`, …), \`report.json\`, \`inference.mjs\`.

Input: a float32 tensor [batch, ${r.backbone.inputSize}, ${r.backbone.inputSize}, 3] of RGB pixels 0..255 (centre-crop to a square, then resize). Output: class probabilities in the order of \`labels.json\`. Latency here: ${report.exported.msPerImage.toFixed(1)} ms per image (${report.backend} backend).

## Compression
Variant \`${report.chosen}\` (asked: --quantize ${report.quantize}${report.quantize === 'auto' ? `, within ${report.maxDropPoints} points of float32` : ''}). Weights by storage: ${Object.entries(report.bytesByDtype).map(([d, b]) => `${d} ${b} B`).join(', ')}. Precision by role: ${Object.entries(report.precision).map(([k, v]) => `${k} ${v}`).join(', ')}.${report.prune.target ? ` Head pruned to ${Object.entries(report.prune.perLayer).map(([l, x]) => `${l} ${(x * 100).toFixed(0)}%`).join(', ')} zeros (gradual magnitude pruning, fine-tuned).` : ''}

Judged on ${report.choice.images} ${report.choice.split} images${report.quantize === 'auto' ? ` (${BUDGET_RULE})` : ''}; the test figure above was measured after the choice.

| variant | bytes | gzipped | agreement with float32 | accuracy (95% CI) |
|---|---|---|---|---|
${report.candidates.map((c) => `| ${c.name}${c.name === report.chosen ? ' (chosen)' : ''} | ${c.bytes} | ${c.gzipBytes} | ${pct(c.agreement)} | ${pct(c.accuracy)} (${pct(c.accuracyInterval.low)}–${pct(c.accuracyInterval.high)}) |`).join('\n')}

## Load it
Node: \`npm install @tensorflow/tfjs sharp\`, then \`node inference.mjs photo.jpg\`.

Browser:
\`\`\`js
${browserSnippet(report.modelFormat)}
\`\`\`

## Backbone and licence
${r.backbone.title} — ${r.backbone.licence}. Source: ${r.backbone.source}.

## Known limits
- Trained on ${r.dataset.total} images; accuracy on images unlike them (lighting, framing, cameras) will be lower.
- The classifier always answers one of its ${r.labels.length} classes; it has no "none of these" class unless you trained one.
${r.dataset.warnings.map((w) => `- ${w}`).join('\n')}
`;
}

/**
 * Exports a run as a full TF.js model (backbone + head) with labels,
 * metadata, report, model card and an inference script, atomically. Every
 * variant is loaded back with the stock loaders and measured on the run's own
 * test split; `auto` keeps the smallest within the accuracy budget.
 */
export async function exportRun(runDir: string, opts: ExportOptions, progress: Progress = {}): Promise<ExportReport> {
  const quantize = opts.quantize ?? 'none';
  if (!QUANTIZE_CHOICES.includes(quantize)) throw new HeadstartError('BAD_INPUT', `--quantize must be one of ${QUANTIZE_CHOICES.join(', ')} (got '${quantize}')`);
  const prune = opts.prune ?? 0;
  if (!(typeof prune === 'number' && prune >= 0 && prune < 1)) throw new HeadstartError('BAD_INPUT', `--prune must be a sparsity in [0, 1) (got ${opts.prune})`);
  const maxDrop = opts.maxDrop ?? 1;
  if (!(maxDrop >= 0 && maxDrop <= 100)) throw new HeadstartError('BAD_INPUT', `--max-drop must be a number of accuracy points from 0 to 100 (got ${opts.maxDrop})`);
  const format = opts.format ?? 'tfjs';
  if (format !== 'tfjs' && format !== 'onnx') throw new HeadstartError('BAD_INPUT', `--format must be tfjs or onnx (got '${String(format)}')`);
  if (quantize === 'int8' && format !== 'onnx') throw new HeadstartError('BAD_INPUT', '--quantize int8 (static int8 for ONNX Runtime) needs --format onnx; for a smaller TF.js model use --quantize uint8, float16 or auto');
  const slim = opts.slim === undefined ? undefined : parseSlim(opts.slim);
  if (slim !== undefined && format !== 'onnx') throw new HeadstartError('BAD_INPUT', '--slim needs --format onnx in this version (the TF.js export cannot remove channels yet); export with --format onnx --slim auto');
  // Before the run is read: a bad --out costs nothing.
  await prepareOutDir(opts.out, outGuard('export', [{ path: runDir, what: 'the run being exported' }], opts));
  if (format === 'onnx') return exportOnnx(runDir, { ...opts, quantize, maxDrop, slim }, progress);
  const run = await loadRun(runDir, opts.backend);
  const heads = new Map<number, { head: tf.LayersModel; perLayer: Record<string, number> }>();
  try {
    const backend = await initBackend(opts.backend ?? 'auto');
    const { items, skipped } = await testSplitItems(run);
    progress.onEvent?.({ type: 'phase', phase: 'export', message: `writing the full model and measuring it on ${items.length} test images` });
    const test = await decodeTestSet(run, items, progress);
    if (!test.images.length) throw new HeadstartError('NO_DATA', `${runDir} has no readable test images to measure the export on`);
    const choice = quantize === 'auto' ? await decodeChoiceSet(run, progress) : undefined;
    const sparsities = quantize === 'auto' ? [...new Set([prune, 0.8, 0.5, 0].filter((x) => x >= prune))].sort((a, b) => b - a) : [prune];
    heads.set(0, { head: run.head, perLayer: {} });
    if (sparsities.some((x) => x > 0)) {
      progress.onEvent?.({ type: 'phase', phase: 'export', message: 'pruning the head' });
      const vec = await runVectors(run, opts, progress);
      for (const sp of sparsities.filter((x) => x > 0)) {
        const res = await pruneHead(run.head, vec.train, vec.val, vec.featureSize, run.record.labels.length, sp, { seed: run.record.config.seed }, progress);
        heads.set(sp, { head: res.head, perLayer: res.sparsity });
      }
    }
    return await writeOutDir(
      opts.out,
      outGuard('export', [{ path: runDir, what: 'the run being exported' }], opts),
      async (tmp) => {
        const cand = (name: string) => path.join(tmp, '.candidates', name);
        await writeFullModel(run, cand('float32'), POLICIES.float32);
        const f32 = await measure(cand('float32'), run, test, progress, 'test float32');
        // auto decides on the choice images; the test split is measured only for float32 and what was chosen.
        const auto = quantize === 'auto';
        const judgeOn = auto ? choice!.set : test;
        const f32Judge = auto ? await measure(cand('float32'), run, judgeOn, progress, 'choice float32') : f32;
        const tried: Candidate[] = [];
        const order: Array<{ policy: PolicyName; sparsity: number }> =
          auto ? AUTO_ORDER.flatMap((policy) => sparsities.map((sparsity) => ({ policy, sparsity }))) : [{ policy: quantize === 'none' ? 'float32' : (quantize as PolicyName) /* int8 is ONNX-only, refused above */, sparsity: prune }];
        let chosen: { name: string; policy: PolicyName; sparsity: number; report: Measurement; written: WrittenModel } | undefined;
        for (const c of order) {
          const name = `${c.policy}${c.sparsity ? `-sparse${Math.round(c.sparsity * 100)}` : ''}`;
          const dir = name === 'float32' ? cand('float32-copy') : cand(name);
          const written = name === 'float32' ? await writeFullModel(run, dir, POLICIES.float32) : await writeFullModel(run, dir, POLICIES[c.policy], heads.get(c.sparsity)!.head);
          const rep = name === 'float32' ? f32Judge : await measure(dir, run, judgeOn, progress, `${auto ? 'choice' : 'test'} ${name}`);
          const j = judge(f32Judge, rep, judgeOn, auto, maxDrop);
          tried.push({ name, policy: c.policy, sparsity: c.sparsity, bytes: rep.bytes, gzipBytes: rep.gzipBytes, ...j });
          if (j.withinBudget) {
            const testRep = !auto || name === 'float32' ? (name === 'float32' ? f32 : rep) : await measure(dir, run, test, progress, `test ${name}`);
            chosen = { name, policy: c.policy, sparsity: c.sparsity, report: testRep, written };
            await fs.rename(path.join(dir, 'model.json'), path.join(tmp, 'model.json'));
            await fs.rename(path.join(dir, 'weights.bin'), path.join(tmp, 'weights.bin'));
            break;
          }
        }
        if (!chosen) {
          // Nothing met the budget: ship float32 and say so.
          const written = await writeFullModel(run, tmp, POLICIES.float32);
          chosen = { name: 'float32', policy: 'float32', sparsity: 0, report: f32, written };
          progress.onEvent?.({ type: 'warning', message: `no compressed variant kept float32's predictions on at least ${100 - maxDrop}% of the ${judgeOn.images.length} choice images; exported float32` });
        }
        await fs.rm(path.join(tmp, '.candidates'), { recursive: true, force: true });
        const modelFormat = chosen.written.modelFormat;
        await writeExportFiles(tmp, run, modelFormat, nodeSnippet());
        const report: ExportReport = {
          outDir: path.resolve(opts.out),
          format: 'tfjs',
          modelFormat,
          quantize,
          precision: chosen.written.policy,
          bytesByDtype: chosen.written.bytesByDtype,
          prune: { target: chosen.sparsity, perLayer: heads.get(chosen.sparsity)?.perLayer ?? {} },
          maxDropPoints: maxDrop,
          candidates: tried,
          chosen: chosen.name,
          choice: auto ? { split: choice!.split, images: choice!.set.images.length, rule: BUDGET_RULE } : { split: 'test', images: test.images.length, rule: 'no choice: the variant asked for, measured on the test split' },
          testImages: test.images.length,
          engineAccuracy: run.record.test.accuracy,
          float32: plain(f32),
          exported: plain(chosen.report),
          skipped: [...skipped, ...test.skipped, ...(choice?.skipped ?? [])],
          backend: backend.name,
        };
        await fs.writeFile(path.join(tmp, 'report.json'), JSON.stringify(report, null, 2));
        await fs.writeFile(path.join(tmp, 'README.md'), modelCard(run, report));
        throwIfAborted(progress.signal); // a cancel that came during the last step still wins
        return report;
      },
    );
  } finally {
    for (const [sp, h] of heads) if (sp > 0) h.head.dispose();
    run.head.dispose();
    run.top?.dispose();
  }
}
