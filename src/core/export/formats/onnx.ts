/**
 * The ONNX format plug-in: the full model (backbone + head, softmax output)
 * as one .onnx file, converted by Headstart's converter (or a slimmed ONNX
 * backbone with the head appended), in float32, float16 or uint8 weights, or
 * static int8 (QDQ, calibrated on training images); every variant is measured
 * in ONNX Runtime.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { loadOrt } from '../../onnx/engine';
import type { OnnxInputSpec } from '../../backbones/catalogue';
import { HeadstartError, throwIfAborted } from '../../errors';
import type { Progress } from '../../events';
import type { LoadedRun } from '../../runFolder';
import { accuracyInterval } from '../../train/metrics';
import { runAsOnnx, slimBudgetSpent, slimSearch } from '../../compress/slim';
import { type Int8Info, quantizeInt8 } from '../../onnx/calibrate';
import { type OnnxWeights, compressOnnx } from '../../onnx/compress';
import { SPARSIFY_MIN_WEIGHTS, type SparsityReport, sparsifyOnnx } from '../../compress/sparsify';
import { type PrunedRefit, pruneSource, pruneWithRefit } from '../../compress/sparseRefit';
import { type Int8Speed, compareOnnxSpeed } from '../../onnx/speed';
import { type TestSet, measureVariant, sizeOf } from '../common';
import { type ExportFormat, type FormatSession, type VariantSpec, slimmingBudget } from '../format';
import type { ExportReport, ResolvedExportOptions } from '../report';

/** An ONNX variant: weight storage, or int8 (static QDQ: int8 weights and uint8 activations). */
type OnnxVariant = OnnxWeights | 'int8';

const MODEL_FILE = 'model.onnx';

/**
 * Sparse int8 candidates of --quantize auto, tried before dense int8, the
 * sparsest first (the first within budget wins; a refit costs one
 * re-extraction of the training and validation images). Measured on the
 * default run (MobileNetV2 1.4, bench data, int8, 48 test images; README):
 * with the head refit on the pruned backbone's features, 30% / 50% sparsity
 * keep 98% / 96% test accuracy (without it 83% / 25%; 70% falls to 42%
 * either way); at 20% the run's own head on the pruned backbone keeps
 * float32's predictions where a refit head, fit again from scratch, moves a
 * few (validation 100% vs 98%), so 20% goes without a refit.
 */
export const ONNX_AUTO_SPARSE: ReadonlyArray<{ sparsity: number; refit: boolean }> = [
  { sparsity: 0.5, refit: true },
  { sparsity: 0.3, refit: true },
  { sparsity: 0.2, refit: false },
];

/** The sparsities of ONNX_AUTO_SPARSE, in order. */
export const ONNX_AUTO_SPARSITIES = ONNX_AUTO_SPARSE.map((c) => c.sparsity);

/** An ONNX candidate: a variant, and for a pruned one whether the head is refit on the pruned backbone's features. */
export interface OnnxVariantSpec extends VariantSpec {
  refit?: boolean;
}

/** A variant's name: its weights, `-sparseNN` when its kernels were pruned, `-asis` when the head was kept as trained. */
const variantName = (w: OnnxVariant, sparsity: number, refit: boolean): string => `${w}${sparsity ? `-sparse${Math.round(sparsity * 100)}${refit ? '' : '-asis'}` : ''}`;

/**
 * Candidates in order. auto: int8 at each of ONNX_AUTO_SPARSE above --prune,
 * then int8, uint8 and float16 at --prune; otherwise the storage asked for at
 * --prune. --prune always refits the head.
 */
export function onnxCandidates(opts: Pick<ResolvedExportOptions, 'quantize' | 'prune'>): OnnxVariantSpec[] {
  const at = (w: OnnxVariant, sparsity: number, refit = sparsity > 0): OnnxVariantSpec => ({ name: variantName(w, sparsity, refit), policy: w, sparsity, refit });
  if (opts.quantize !== 'auto') return [at(opts.quantize === 'none' ? 'float32' : (opts.quantize as OnnxVariant), opts.prune)];
  const sparse = ONNX_AUTO_SPARSE.filter((c) => c.sparsity > opts.prune).map((c) => at('int8', c.sparsity, c.refit));
  return [...sparse, ...(['int8', 'uint8', 'float16'] as const).map((w) => at(w, opts.prune))];
}

/** int8 against float32 in ONNX Runtime, 2 threads, same process and pixels (at most 32 test images). */
async function int8Speed(f32File: string, int8File: string, run: LoadedRun, test: TestSet, progress: Progress): Promise<Int8Speed> {
  progress.onEvent?.({ type: 'phase', phase: 'export', message: 'timing int8 against float32 in ONNX Runtime (2 threads, batch 1 and batch 32)' });
  const c = await compareOnnxSpeed(f32File, int8File, test.images.slice(0, 32).map((im) => im.rgb), run.record.backbone.inputSize, { threads: 2, repetitions: 3 }, progress);
  return { threads: c.threads, float32: c.base, int8: c.other, batch1Speedup: c.batch1Speedup, batch32Speedup: c.batch32Speedup, batch32CpuSpeedup: c.batch32CpuSpeedup };
}

function onnxSnippet(): string {
  return `// Classify images with this exported Headstart model in Node.js (ONNX Runtime).
// Needs: npm install onnxruntime-node sharp
// Usage:  node inference.mjs photo1.jpg photo2.png
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';

const here = new URL('.', import.meta.url);
const meta = JSON.parse(await readFile(new URL('metadata.json', here), 'utf8'));
const session = await ort.InferenceSession.create(new URL('model.onnx', here).pathname);
const size = meta.imageSize;

for (const file of process.argv.slice(2)) {
  // RGB pixels 0..255, centre-cropped to a square, NHWC: [1, size, size, 3].
  const { data } = await sharp(file).rotate().flatten({ background: '#ffffff' }).toColourspace('srgb')
    .resize(size, size, { fit: 'cover' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const out = await session.run({ image: new ort.Tensor('float32', Float32Array.from(data), [1, size, size, 3]) });
  const probs = out.probabilities.data;
  const top = [...probs].map((p, i) => ({ label: meta.labels[i], probability: p })).sort((a, b) => b.probability - a.probability);
  console.log(JSON.stringify({ path: file, label: top[0].label, probability: top[0].probability, top: top.slice(0, 5) }));
}
`;
}


/** A foreign ONNX backbone's part of the model card: where it came from, its licence, the preprocessing baked in. */
function foreignMadeOf(title: string, source: string, licence: string, p: OnnxInputSpec): string {
  return `${title} (frozen; from ${source}, licence: ${licence}) with a trained dense head appended to its graph. Its preprocessing is baked in as graph ops, so the input is RGB 0..255 like every Headstart export: ${p.channelOrder} channels mapped onto [${p.range.join(', ')}], mean ${p.mean.join('/')} and std ${p.std.join('/')} per channel, ${p.layout}; features from \`${p.output}\`${p.batch === 1 ? '; the model runs one image at a time (its graph fixes the batch to 1)' : ''}.`;
}

/** Weight storage of the chosen variant, in words (model card). */
function weightsLine(chosen: string, prune: ExportReport['prune']): string {
  const how = prune.refit ? `the backbone magnitude-pruned, the kept weights of ${prune.refit.reconstructedKernels} pointwise kernels refit to reproduce the dense layers' outputs on ${prune.refit.momentImages} training images, then the head refit on the pruned backbone's features of ${prune.refit.trainImages} training images (validation accuracy ${(prune.refit.valAccuracy * 100).toFixed(1)}%)` : 'no fine-tuning of the backbone';
  const sparse = prune.target ? ` Magnitude-pruned (${how}): ${Object.keys(prune.perLayer).length} convolution${prune.refit ? '' : ' / dense'} kernels at ${(prune.target * 100).toFixed(0)}% zeros each (the first convolution, depthwise kernels and kernels under ${SPARSIFY_MIN_WEIGHTS} weights stay dense): ${((prune.overall ?? 0) * 100).toFixed(1)}% of all ${prune.refit ? 'backbone ' : ''}kernel weights are zero; the zeros are stored densely, so they shrink the gzipped file, not the raw one.` : '';
  chosen = chosen.replace(/-sparse\d+(-asis)?$/, '');
  const what = chosen === 'int8' ? 'int8 per output channel (Conv) / per column (MatMul), symmetric; activations uint8 per tensor; Conv biases int32 (static QDQ: ONNX Runtime runs QLinearConv / QLinearAdd); the normalisation, the head biases and the softmax stay float32' : chosen === 'uint8' ? 'uint8 per-tensor affine (DequantizeLinear), weights only: the arithmetic is float32' : chosen === 'float16' ? 'float16 (Cast to float32 at load)' : 'float32';
  return `Weights: ${what}${chosen === 'int8' ? '' : '; biases and BatchNorm vectors stay float32'}.${sparse}`;
}

/** report.json's `prune` for a pruned variant: what was pruned, and how the head was refit when it was. */
function pruneField(target: number, p: SparsityReport & { refit?: PrunedRefit['refit'] }): ExportReport['prune'] {
  const kernels = 'convolution (group 1, not the first, at least ' + SPARSIFY_MIN_WEIGHTS + ' weights)';
  return p.refit
    ? { target, perLayer: p.perLayer, overall: p.overall, scope: `backbone: ${kernels} kernels, the kept weights of ${p.refit.reconstructedKernels} pointwise kernels refit to the dense outputs (OBS update, ${p.refit.momentImages} training images); head refit on pruned features (${p.refit.trainImages} training images)`, refit: p.refit }
    : { target, perLayer: p.perLayer, overall: p.overall, scope: `backbone and head: ${kernels} and dense kernels; the head as trained (no refit)` };
}

export const onnxFormat: ExportFormat = {
  check(opts) {
    if (!loadOrt()) throw new HeadstartError('BACKEND', '--format onnx measures the export in ONNX Runtime, which is not available here (onnxruntime-node did not load); use --format tfjs');
    if (opts.quantize === 'uint16') throw new HeadstartError('BAD_INPUT', '--quantize uint16 has no ONNX Runtime weight format; use uint8, float16, none or auto with --format onnx');
  },
  phaseMessage: (n) => `converting the full model to ONNX and measuring it on ${n} test images`,
  async open(run, opts, backendName, work, progress): Promise<FormatSession> {
    // --slim: the slimmed backbone + its refit head replace the run's model as the float32 source.
    const slim = opts.slim === undefined ? undefined : await slimSearch(run, { ...opts, slim: opts.slim, maxDrop: slimmingBudget(opts), work: path.join(work, 'slim') }, progress);
    const floatBytes = slim?.modelBytes ?? (await runAsOnnx(run, work));
    slim?.head?.dispose();
    const int8 = new Map<string, Int8Info>();
    // The float32 model pruned to each sparsity, made once and shared by its variants (int8 calibrates on it):
    // the backbone pruned and the head refit on its features, or (a fine-tuned top) the whole model pruned as it is.
    // Keyed by the variant's name less its storage (`sparse30`, `sparse20-asis`).
    const sparse = new Map<string, SparsityReport & { bytes: Uint8Array; refit?: PrunedRefit['refit'] }>();
    const keyOf = (v: OnnxVariantSpec) => variantName('float32', v.sparsity, v.refit ?? true);
    let source: Awaited<ReturnType<typeof pruneSource>> | null = null;
    const pruned = async (v: OnnxVariantSpec) => {
      const key = keyOf(v);
      if (!sparse.has(key)) {
        if (v.refit !== false) source ??= await pruneSource(run, slim?.backboneDir, opts, progress);
        if (v.refit !== false && source) sparse.set(key, await pruneWithRefit(run, source, v.sparsity, path.join(work, `backbone-sparse${Math.round(v.sparsity * 100)}`), opts, progress));
        else {
          // Kept as trained (auto's light sparsity), or a fine-tuned top whose head reads no features to refit on.
          progress.onEvent?.({ type: 'phase', phase: 'export', message: `magnitude-pruning the model's convolution and dense kernels to ${Math.round(v.sparsity * 100)}% zeros (the head as trained)` });
          sparse.set(key, sparsifyOnnx(floatBytes, v.sparsity));
        }
      }
      return sparse.get(key)!;
    };
    const ort = loadOrt()!;
    const size = run.record.backbone.inputSize;
    const rec = run.record;
    return {
      listsReference: true,
      budgetSpent: slimBudgetSpent(slim?.report),
      modelFiles: [MODEL_FILE],
      candidates: () => onnxCandidates(opts),
      async write(v, dir) {
        await fs.mkdir(dir, { recursive: true });
        const file = path.join(dir, MODEL_FILE);
        // Pruning comes first: int8 calibrates its activation ranges on the pruned float model.
        const from = v.sparsity ? (await pruned(v)).bytes : floatBytes;
        throwIfAborted(progress.signal);
        if (v.policy === 'int8') {
          const q = await quantizeInt8(from, rec, progress);
          int8.set(v.name, q.info);
          await fs.writeFile(file, q.bytes);
        } else await fs.writeFile(file, compressOnnx(from, v.policy as OnnxWeights).bytes);
      },
      async measure(dir, set, label) {
        const session = await ort.InferenceSession.create(path.join(dir, MODEL_FILE), { intraOpNumThreads: 1, extra: { session: { intra_op: { allow_spinning: '0' } } } });
        try {
          const m = await measureVariant(run, set, progress, `onnx ${label}`, async (x) => (await session.run({ image: new ort.Tensor('float32', x, [1, size, size, 3]) })).probabilities!.data as Float32Array);
          return { ...(await sizeOf(dir, [MODEL_FILE])), ...m, interval: accuracyInterval(m.accuracy, set.images.length) };
        } finally {
          await session.release();
        }
      },
      async describe(chosen, chosenDir, f32Dir, test) {
        const info = int8.get(chosen.name);
        const quantization = info ? { ...info, speed: await int8Speed(path.join(f32Dir, MODEL_FILE), path.join(chosenDir, MODEL_FILE), run, test, progress) } : undefined;
        return {
          modelFormat: 'onnx',
          precision: { kernels: chosen.policy, vectors: chosen.policy === 'int8' ? 'int32 (Conv biases), float32' : 'float32', source: rec.backbone.format === 'graph' ? 'graph-model' : rec.backbone.format === 'layers' ? 'layers-model' : 'onnx' },
          bytesByDtype: {},
          prune: chosen.sparsity ? pruneField(chosen.sparsity, sparse.get(keyOf(chosen))!) : { target: 0, perLayer: {} },
          backend: `onnxruntime (tfjs ${backendName} for conversion)`,
          ...(quantization ? { quantization } : {}),
          ...(slim ? { slimming: slim.report } : {}),
        };
      },
      snippet: () => onnxSnippet(),
      card(r) {
        const s = size;
        return {
          titleSuffix: ' (ONNX)',
          madeOf: rec.backbone.onnxInput ? foreignMadeOf(rec.backbone.title, rec.backbone.source, rec.backbone.licence, rec.backbone.onnxInput) : `${rec.backbone.title} (frozen) with a trained dense head, converted to ONNX (opset 13) by Headstart's converter.`,
          measuredIn: `Measured in ONNX Runtime: ${r.exported.msPerImage.toFixed(1)} ms per image on one thread.`,
          weights: weightsLine(r.chosen, r.prune),
          files: `\`model.onnx\` (input \`image\`: float32 [N, ${s}, ${s}, 3], RGB 0..255, centre-crop to a square then resize; output \`probabilities\`: [N, ${rec.labels.length}] in the order of \`labels.json\`), \`labels.json\`, \`metadata.json\`, \`report.json\`, \`inference.mjs\`.`,
          loadIt: `Node: \`npm install onnxruntime-node sharp\`, then \`node inference.mjs photo.jpg\`.

Browser (onnxruntime-web):
\`\`\`js
import * as ort from 'onnxruntime-web';
const session = await ort.InferenceSession.create('/model/model.onnx');
// pixels: Float32Array of ${s}*${s}*3 RGB values 0..255 (e.g. from a canvas, alpha dropped)
const { probabilities } = await session.run({ image: new ort.Tensor('float32', pixels, [1, ${s}, ${s}, 3]) });
\`\`\`

Python:
\`\`\`python
import json, numpy as np, onnxruntime as ort
from PIL import Image
labels = json.load(open("labels.json"))
img = Image.open("photo.jpg").convert("RGB")
side = min(img.size); left, top = (img.width - side) // 2, (img.height - side) // 2
x = np.asarray(img.crop((left, top, left + side, top + side)).resize((${s}, ${s})), dtype=np.float32)[None]
probs = ort.InferenceSession("model.onnx").run(None, {"image": x})[0][0]
print(labels[int(probs.argmax())], float(probs.max()))
\`\`\``,
          limits: ['`--quantize uint8` is weights-only (smaller file, same float32 arithmetic); `--quantize int8` quantizes activations too (calibrated on training images) and runs 8-bit arithmetic.'],
        };
      },
      dispose() {
        // The slimmed head was disposed once the float32 model held it; nothing else is held.
      },
    };
  },
};
