/**
 * The TF.js format plug-in: the full model (backbone + head) as a layers or
 * graph model, with weight policies per role and, under auto or --prune,
 * pruned heads (gradual magnitude pruning, fine-tuned on the run's vectors).
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { EngineOptions } from '../../engine';
import { HeadstartError } from '../../errors';
import type { Progress } from '../../events';
import { type LoadedRun, openRunBackbone, toHeadInput } from '../../runFolder';
import type { VectorSet } from '../../train/head';
import { type PolicyName, POLICIES } from '../../compress/quantize';
import { pruneHead } from '../../compress/prune';
import { SPARSIFY_MIN_WEIGHTS } from '../../compress/sparsify';
import { type SlimResult, slimBudgetSpent, slimPlanOf, slimSearch } from '../../compress/slim';
import { slimmedTfjsRun } from '../../compress/slimTfjs';
import { accuracyInterval } from '../../train/metrics';
import { type WrittenModel, loadExportedModel, writeFullModel } from '../fullModel';
import { browserSnippet, nodeSnippet } from '../snippet';
import { type TestSet, measureVariant, sizeOf } from '../common';
import { loadOrt } from '../../onnx/engine';
import { convertTfjsModel } from '../../onnx/convert';
import { type ExportFormat, type FormatSession, type VariantSpec, slimmingBudget } from '../format';
import type { ResolvedExportOptions, RuntimeLatency } from '../report';

/** Test images the ONNX Runtime latency of a TF.js export is timed on, at most. */
const ORT_LATENCY_IMAGES = 9;

/**
 * The written TF.js export converted by Headstart's converter and timed in
 * ONNX Runtime as the ONNX export is (one thread, batch 1), so the card can
 * state both runtimes for the same weights.
 */
async function onnxRuntimeLatency(dir: string, test: TestSet, size: number): Promise<RuntimeLatency> {
  const ort = loadOrt();
  if (!ort) return { msPerImage: null, note: 'onnxruntime-node did not load here' };
  let bytes: Uint8Array;
  try {
    bytes = (await convertTfjsModel(dir, { inputName: 'image', outputName: 'probabilities' })).bytes;
  } catch (err) {
    if (!(err instanceof HeadstartError)) throw err;
    return { msPerImage: null, note: `not converted to ONNX: ${err.message}` }; // a model the converter does not cover is stated, not fatal
  }
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, extra: { session: { intra_op: { allow_spinning: '0' } } } });
  try {
    const images = test.images.slice(0, ORT_LATENCY_IMAGES);
    let ms = 0;
    for (const [i, im] of images.entries()) {
      const t0 = performance.now();
      await session.run({ image: new ort.Tensor('float32', Float32Array.from(im.rgb), [1, size, size, 3]) });
      if (i > 0) ms += performance.now() - t0;
    }
    return images.length > 1 ? { msPerImage: ms / (images.length - 1), images: images.length, where: '1 thread (converted by Headstart)' } : { msPerImage: null, note: 'fewer than 2 test images' };
  } finally {
    await session.release();
  }
}

/** Candidate policies from smallest to largest, for --quantize auto. */
const AUTO_ORDER: PolicyName[] = ['uint8', 'mixedLight', 'mixed', 'float16'];

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

/**
 * Sparsities --quantize auto tries per policy, largest first, before the
 * dense variant. A variant's sparsity prunes the head (fine-tuned) and the
 * backbone's convolution kernels (magnitude only: no gradients through the
 * backbone here), so it stays where the backbone keeps its predictions;
 * picked from measurement (bench/prune.mjs, README).
 */
export const TFJS_AUTO_SPARSITIES = [0.3, 0.2] as const;

/** Sparsities to try: auto also tries TFJS_AUTO_SPARSITIES (never less than asked), largest first. */
function sparsitiesOf(opts: ResolvedExportOptions): number[] {
  return opts.quantize === 'auto' ? [...new Set([opts.prune, ...TFJS_AUTO_SPARSITIES, 0].filter((x) => x >= opts.prune))].sort((a, b) => b - a) : [opts.prune];
}

/**
 * Prunes the head to each sparsity above 0; the run's own head stands for 0.
 * None with --slim: its head is refit on the slimmed features, which the
 * head pruning's cached vectors are not (its sparse variants prune the backbone only).
 */
async function prunedHeads(run: LoadedRun, opts: ResolvedExportOptions, progress: Progress): Promise<Map<number, { head: tf.LayersModel; perLayer: Record<string, number> }>> {
  const heads = new Map<number, { head: tf.LayersModel; perLayer: Record<string, number> }>([[0, { head: run.head, perLayer: {} }]]);
  const sparse = opts.slim === undefined ? sparsitiesOf(opts).filter((x) => x > 0) : [];
  if (!sparse.length) return heads;
  progress.onEvent?.({ type: 'phase', phase: 'export', message: 'pruning the head' });
  const vec = await runVectors(run, opts, progress);
  try {
    for (const sp of sparse) {
      const res = await pruneHead(run.head, vec.train, vec.val, vec.featureSize, run.record.labels.length, sp, { seed: run.record.config.seed }, progress);
      heads.set(sp, { head: res.head, perLayer: res.sparsity });
    }
  } catch (err) {
    for (const [sp, h] of heads) if (sp > 0) h.head.dispose();
    throw err;
  }
  return heads;
}

/**
 * --slim: the ONNX search (ranking, steps, refits, budget) decides the kept
 * channels; the run's TF.js backbone gets the same cut, and the chosen
 * step's refit head replaces the run's. Without a chosen step, the run as it is.
 */
async function slimmedSource(run: LoadedRun, opts: ResolvedExportOptions, work: string, progress: Progress): Promise<{ run: LoadedRun; slim?: SlimResult }> {
  if (opts.slim === undefined) return { run };
  // Before the search: an ONNX backbone has no TF.js form to cut (writeFullModel says so in full).
  if (run.record.backbone.format === 'onnx') throw new HeadstartError('BAD_INPUT', `${run.dir} runs an ONNX backbone, which has no TF.js form; export it with --format onnx --slim`);
  const slim = await slimSearch(run, { ...opts, slim: opts.slim, maxDrop: slimmingBudget(opts), work: path.join(work, 'slim') }, progress);
  if (!slim.keep || !slim.head) return { run, slim };
  try {
    const plan = slimPlanOf(new Uint8Array(await fs.readFile(slim.baseFile)), slim.keep, slim.project, slim.features);
    const slimRun = await slimmedTfjsRun(run, plan, path.join(work, 'slim-tfjs-backbone'));
    return { run: { ...slimRun, head: slim.head }, slim };
  } catch (err) {
    slim.head.dispose();
    throw err;
  }
}

/** The head's pruned layers as 'name NN%' (the backbone's are many: counted, not listed). */
function prunedHeadLine(perLayer: Record<string, number>): string {
  const head = Object.entries(perLayer).filter(([l]) => !l.includes('/'));
  return head.length ? `head ${head.map(([l, x]) => `${l} ${(x * 100).toFixed(0)}%`).join(', ')}` : 'backbone only';
}

export const tfjsFormat: ExportFormat = {
  check(opts) {
    // int8 was refused before (it needs ONNX).
    if (opts.slim !== undefined && opts.prune) throw new HeadstartError('BAD_INPUT', '--slim refits the head on the slimmed backbone\'s features; --prune does not apply to that head: drop --prune (or export twice)');
  },
  phaseMessage: (n) => `writing the full model and measuring it on ${n} test images`,
  async open(origRun, opts, backendName, work, progress): Promise<FormatSession> {
    const { run, slim } = await slimmedSource(origRun, opts, work, progress);
    const heads = await prunedHeads(run, opts, progress); // no pruning under --slim: nothing here can throw while the refit head is held
    const written = new Map<string, WrittenModel>();
    const size = run.record.backbone.inputSize;
    return {
      listsReference: false,
      budgetSpent: slimBudgetSpent(slim?.report),
      modelFiles: ['model.json', 'weights.bin'],
      candidates(): VariantSpec[] {
        const name = (policy: PolicyName, sparsity: number) => `${policy}${sparsity ? `-sparse${Math.round(sparsity * 100)}` : ''}`;
        const asked: PolicyName = opts.quantize === 'none' ? 'float32' : (opts.quantize as PolicyName); // int8 is ONNX-only, refused before
        const pairs = opts.quantize === 'auto' ? AUTO_ORDER.flatMap((policy) => sparsitiesOf(opts).map((sparsity) => ({ policy, sparsity }))) : [{ policy: asked, sparsity: opts.prune }];
        return pairs.map((p) => ({ ...p, name: name(p.policy, p.sparsity) }));
      },
      async write(v, dir) {
        written.set(v.name, await writeFullModel(run, dir, POLICIES[v.policy as PolicyName], (heads.get(v.sparsity) ?? heads.get(0)!).head, v.sparsity));
      },
      async measure(dir, set, label) {
        const model = await loadExportedModel(dir);
        try {
          const m = await measureVariant(run, set, progress, label, async (x) => tf.tidy(() => model.predict(tf.tensor4d(x, [1, size, size, 3])).dataSync()));
          return { ...(await sizeOf(dir)), ...m, interval: accuracyInterval(m.accuracy, set.images.length) };
        } finally {
          model.dispose();
        }
      },
      async describe(chosen, chosenDir, _f32Dir, test) {
        const w = written.get(chosen.name)!;
        progress.onEvent?.({ type: 'phase', phase: 'export', message: 'timing the export in ONNX Runtime (converted, 1 thread, batch 1)' });
        const onnxRuntime = await onnxRuntimeLatency(chosenDir, test, size);
        return {
          // The pipeline fills in the test-split TF.js figure.
          latency: { tfjs: { msPerImage: null }, onnxRuntime },
          modelFormat: w.modelFormat, precision: w.policy, bytesByDtype: w.bytesByDtype, prune: { target: chosen.sparsity, perLayer: { ...w.sparsity.perLayer, ...heads.get(chosen.sparsity)?.perLayer }, overall: w.sparsity.overall, scope: chosen.sparsity ? `${heads.has(chosen.sparsity) ? 'head (gradual magnitude pruning, fine-tuned) and ' : ''}backbone convolution kernels (magnitude, not fine-tuned; not the first convolution, depthwise kernels or kernels under ${SPARSIFY_MIN_WEIGHTS} weights)` : 'none' }, backend: backendName, ...(slim ? { slimming: slim.report } : {}),
        };
      },
      snippet: () => nodeSnippet(),
      card(r) {
        return {
          titleSuffix: '',
          madeOf: `a ${run.record.backbone.title} backbone (frozen) with a trained dense head.`,
          measuredIn: `Latency here: ${r.exported.msPerImage.toFixed(1)} ms per image (${r.backend} backend).`,
          weights: `Weights by storage: ${Object.entries(r.bytesByDtype).map(([d, b]) => `${d} ${b} B`).join(', ')}. Precision by role: ${Object.entries(r.precision).map(([k, v]) => `${k} ${v}`).join(', ')}.${r.prune.target ? ` Pruned to ${(r.prune.target * 100).toFixed(0)}% zeros per kernel: ${r.prune.scope}; ${Object.keys(r.prune.perLayer).length} kernels (${prunedHeadLine(r.prune.perLayer)}); ${((r.prune.overall ?? 0) * 100).toFixed(1)}% of all kernel weights are zero, stored densely (the gzipped file shrinks, the raw one does not).` : ''}`,
          files: `- \`model.json\` + \`weights.bin\`: TensorFlow.js ${r.modelFormat}, ${r.exported.bytes} bytes (${r.exported.gzipBytes} gzipped) — float32 would be ${r.float32.bytes} bytes (${r.float32.gzipBytes} gzipped).
- \`labels.json\`, \`metadata.json\` (Teachable Machine's keys: \`labels\`, \`imageSize\`, …), \`report.json\`, \`inference.mjs\`.

Input: a float32 tensor [batch, ${size}, ${size}, 3] of RGB pixels 0..255 (centre-crop to a square, then resize). Output: class probabilities in the order of \`labels.json\`.`,
          loadIt: `Node: \`npm install @tensorflow/tfjs sharp\`, then \`node inference.mjs photo.jpg\`.

Browser:
\`\`\`js
${browserSnippet(r.modelFormat)}
\`\`\``,
          limits: [],
        };
      },
      dispose() {
        for (const [sp, h] of heads) if (sp > 0) h.head.dispose();
        if (run !== origRun) run.head.dispose(); // the slimmed step's refit head
      },
    };
  },
};
