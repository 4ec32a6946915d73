import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { initBackend } from '../backend';
import { loadOrt } from '../backbones/onnxEngine';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { testSplitItems } from '../evaluate';
import { outGuard, prepareOutDir, writeOutDir } from '../fsutil';
import { type LoadedRun, loadRun } from '../run';
import { type TestSet, decodeTestSet, measureVariant, sizeOf, writeExportFiles } from './common';
import { type Candidate, type ExportOptions, type ExportReport, type Measurement, BUDGET_RULE, decodeChoiceSet, judge, plain } from './exportRun';
import { type Int8Info, quantizeInt8 } from './onnx/calibrate';
import { accuracyInterval } from '../train/metrics';
import { type OnnxWeights, compressOnnx } from './onnx/compress';
import { type Int8Speed, compareOnnxSpeed } from './onnx/speed';
import { runAsOnnx, slimSearch } from '../compress/slim';

/** An ONNX variant: weight storage, or int8 (static QDQ: int8 weights and uint8 activations). */
type OnnxVariant = OnnxWeights | 'int8';

/** int8 against float32 in ONNX Runtime, 2 threads, same process and pixels (at most 32 test images). */
async function int8Speed(f32File: string, int8File: string, run: LoadedRun, test: TestSet, progress: Progress): Promise<Int8Speed> {
  progress.onEvent?.({ type: 'phase', phase: 'export', message: 'timing int8 against float32 in ONNX Runtime (2 threads, batch 1 and batch 32)' });
  const c = await compareOnnxSpeed(f32File, int8File, test.images.slice(0, 32).map((im) => im.rgb), run.record.backbone.inputSize, { threads: 2, repetitions: 3 }, progress);
  return { threads: c.threads, float32: c.base, int8: c.other, batch1Speedup: c.batch1Speedup, batch32Speedup: c.batch32Speedup };
}

/** Runs an ONNX export in ONNX Runtime over the test images: size, accuracy and single-image latency. */
async function measureOnnx(file: string, run: LoadedRun, test: TestSet, progress: Progress, label: string): Promise<Measurement> {
  const ort = loadOrt()!;
  const size = run.record.backbone.inputSize;
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1, extra: { session: { intra_op: { allow_spinning: '0' } } } });
  try {
    const m = await measureVariant(run, test, progress, `onnx ${label}`, async (x) => (await session.run({ image: new ort.Tensor('float32', x, [1, size, size, 3]) })).probabilities!.data as Float32Array);
    return { ...(await sizeOf(path.dirname(file), [path.basename(file)])), ...m, interval: accuracyInterval(m.accuracy, test.images.length) };
  } finally {
    await session.release();
  }
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

/** The model card's int8 section: calibration and speed against float32. */
function int8Card(r: ExportReport): string {
  const q = r.quantization;
  if (!q) return '';
  const { float32: f, int8: i } = q.speed;
  return `## int8 (static QDQ)
Activation ranges calibrated (${q.rangeMethod}) on ${q.calibrationImages} images of the run's **training** split (never validation or test images); weights ${q.reduceRange ? '7-bit (reduce_range, for x86 CPUs without VNNI)' : '8-bit'} int8 per channel; activations uint8 per tensor; the softmax output stays float32. ${q.stats.conv} Conv, ${q.stats.matmul} MatMul and ${q.stats.add} Add nodes quantized.

| ONNX Runtime, ${q.speed.threads} threads | batch 1 (ms / image) | batch 32 (images / s) |
|---|---|---|
| float32 | ${f.batch1Ms.toFixed(1)} | ${f.batch32ImagesPerSecond.toFixed(1)} |
| int8 | ${i.batch1Ms.toFixed(1)} | ${i.batch32ImagesPerSecond.toFixed(1)} |
| int8 speed-up | ${q.speed.batch1Speedup.toFixed(2)}x | ${q.speed.batch32Speedup.toFixed(2)}x |

`;
}

/** The model card's slimming section: the table of steps and the one chosen. */
function slimCard(r: ExportReport): string {
  const s = r.slimming;
  if (!s) return '';
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  return `## Slimmed backbone
${s.chosen ? `${Math.round(s.chosen * 100)}% of the hidden channels of each of its ${s.blocks} inverted-residual blocks removed` : 'No slimming step met the budget: the backbone is unslimmed'} (asked: ${s.asked}; budget ${s.budgetPoints} points on ${s.validationImages} validation images). Channels ranked on ${s.rankImages} **training** images by mean activation x project-weight norm; the head was refit on the slimmed features at each step. Bytes are the float32 model before any quantization; ms per image is the backbone at batch 1 on ${s.threads} ONNX Runtime threads, timed alternating with the unslimmed one.

| removed | hidden channels kept | bytes | gzipped | ms / image | speed-up | validation accuracy |
|---|---|---|---|---|---|---|
${s.steps.map((x) => `| ${Math.round(x.fraction * 100)}%${x.fraction === s.chosen ? ' (this file)' : ''} | ${x.hiddenKept} / ${x.hiddenTotal} | ${x.bytes} | ${x.gzipBytes} | ${x.msPerImage.toFixed(1)} | ${x.speedup.toFixed(2)}x | ${pct(x.valAccuracy)} |`).join('\n')}

`;
}

function onnxCard(run: LoadedRun, r: ExportReport): string {
  const rec = run.record;
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const s = rec.backbone.inputSize;
  return `# Image classifier (ONNX): ${rec.labels.join(', ')}

Made with Headstart on ${rec.createdAt.slice(0, 10)}: ${rec.backbone.title} (frozen) with a trained dense head, converted to ONNX (opset 13) by Headstart's converter.

## Metrics (test split, ${r.testImages} images, measured in ONNX Runtime)
Accuracy of this export: **${pct(r.exported.accuracy)}** (float32: ${pct(r.float32.accuracy)}); ${r.exported.msPerImage.toFixed(1)} ms per image on one thread.

Variants judged on ${r.choice.images} ${r.choice.split} images${r.quantize === 'auto' ? ` (${BUDGET_RULE})` : ''}; the test figure above was measured after the choice.

| variant | bytes | gzipped | agreement with float32 | accuracy (95% CI) |
|---|---|---|---|---|
${r.candidates.map((c) => `| ${c.name}${c.name === r.chosen ? ' (this file)' : ''} | ${c.bytes} | ${c.gzipBytes} | ${pct(c.agreement)} | ${pct(c.accuracy)} (${pct(c.accuracyInterval.low)}–${pct(c.accuracyInterval.high)}) |`).join('\n')}

${int8Card(r)}${slimCard(r)}Weights: ${r.chosen === 'int8' ? 'int8 per output channel (Conv) / per column (MatMul), symmetric; activations uint8 per tensor; Conv biases int32 (static QDQ: ONNX Runtime runs QLinearConv / QLinearAdd); the normalisation, the head biases and the softmax stay float32' : r.chosen === 'uint8' ? 'uint8 per-tensor affine (DequantizeLinear), weights only: the arithmetic is float32' : r.chosen === 'float16' ? 'float16 (Cast to float32 at load)' : 'float32'}${r.chosen === 'int8' ? '' : '; biases and BatchNorm vectors stay float32'}.

## Files
\`model.onnx\` (input \`image\`: float32 [N, ${s}, ${s}, 3], RGB 0..255, centre-crop to a square then resize; output \`probabilities\`: [N, ${rec.labels.length}] in the order of \`labels.json\`), \`labels.json\`, \`metadata.json\`, \`report.json\`, \`inference.mjs\`.

## Run it
Node: \`npm install onnxruntime-node sharp\`, then \`node inference.mjs photo.jpg\`.

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
\`\`\`

## Backbone and licence
${rec.backbone.title} — ${rec.backbone.licence}. Source: ${rec.backbone.source}.

## Known limits
- Trained on ${rec.dataset.total} images; accuracy on images unlike them will be lower.
- The classifier always answers one of its ${rec.labels.length} classes.
- \`--quantize uint8\` is weights-only (smaller file, same float32 arithmetic); \`--quantize int8\` quantizes activations too (calibrated on training images) and runs 8-bit arithmetic.
`;
}

/**
 * `export --format onnx`: the full model (backbone + head, softmax output) as
 * one .onnx, in float32, float16 or uint8 weights (auto: the smallest within
 * the accuracy budget), each measured in ONNX Runtime on the run's test split.
 */
export async function exportOnnx(runDir: string, opts: ExportOptions & { quantize: NonNullable<ExportOptions['quantize']>; maxDrop: number }, progress: Progress = {}): Promise<ExportReport> {
  if (!loadOrt()) throw new HeadstartError('BACKEND', '--format onnx measures the export in ONNX Runtime, which is not available here (onnxruntime-node did not load); use --format tfjs');
  if (opts.quantize === 'uint16') throw new HeadstartError('BAD_INPUT', '--quantize uint16 has no ONNX Runtime weight format; use uint8, float16, none or auto with --format onnx');
  if (opts.prune) throw new HeadstartError('BAD_INPUT', '--prune applies to --format tfjs in this version');
  await prepareOutDir(opts.out, outGuard('export', [{ path: runDir, what: 'the run being exported' }], opts));
  const run = await loadRun(runDir, opts.backend);
  try {
    const backend = await initBackend(opts.backend ?? 'auto');
    const { items, skipped } = await testSplitItems(run);
    progress.onEvent?.({ type: 'phase', phase: 'export', message: `converting the full model to ONNX and measuring it on ${items.length} test images` });
    const test = await decodeTestSet(run, items, progress);
    if (!test.images.length) throw new HeadstartError('NO_DATA', `${runDir} has no readable test images to measure the export on`);
    const choice = opts.quantize === 'auto' ? await decodeChoiceSet(run, progress) : undefined;
    return await writeOutDir(
      opts.out,
      outGuard('export', [{ path: runDir, what: 'the run being exported' }], opts),
      async (tmp) => {
        const work = path.join(tmp, '.candidates');
        // --slim: the slimmed backbone + its refit head replace the run's model as the float32 source.
        const slim = opts.slim === undefined ? undefined : await slimSearch(run, { ...opts, slim: opts.slim, maxDrop: opts.maxDrop, work: path.join(work, 'slim') }, progress);
        const conv = { bytes: slim?.modelBytes ?? (await runAsOnnx(run, work)) };
        slim?.head?.dispose();
        const auto = opts.quantize === 'auto';
        const judgeOn = auto ? choice!.set : test;
        let int8: Int8Info | undefined;
        const variant = async (w: OnnxVariant, on: TestSet, phase: string): Promise<{ file: string; report: Measurement }> => {
          const file = path.join(work, `${w}.onnx`);
          if (w === 'int8') {
            const q = await quantizeInt8(conv.bytes, run.record, progress);
            int8 = q.info;
            await fs.writeFile(file, q.bytes);
          } else await fs.writeFile(file, compressOnnx(conv.bytes, w).bytes);
          return { file, report: await measureOnnx(file, run, on, progress, `${phase} ${w}`) };
        };
        // auto decides on the choice images; the test split is measured only for float32 and what was chosen.
        const f32 = await variant('float32', test, 'test');
        const f32Judge = auto ? { file: f32.file, report: await measureOnnx(f32.file, run, judgeOn, progress, 'choice float32') } : f32;
        const order: OnnxVariant[] = auto ? ['int8', 'uint8', 'float16'] : [opts.quantize === 'none' ? 'float32' : (opts.quantize as OnnxVariant)];
        const tried: Candidate[] = [];
        const row = (w: OnnxVariant, r: Measurement, j: ReturnType<typeof judge>): Candidate => ({ name: w, policy: w === 'float32' ? 'float32' : w === 'float16' ? 'float16' : w === 'int8' ? 'int8' : 'uint8', sparsity: 0, bytes: r.bytes, gzipBytes: r.gzipBytes, ...j });
        let chosen: { name: OnnxVariant; file: string; report: Measurement } | undefined;
        for (const w of order) {
          const v = w === 'float32' ? f32Judge : await variant(w, judgeOn, auto ? 'choice' : 'test');
          const j = judge(f32Judge.report, v.report, judgeOn, auto, opts.maxDrop);
          tried.push(row(w, v.report, j));
          if (j.withinBudget) {
            chosen = { name: w, file: v.file, report: !auto ? v.report : w === 'float32' ? f32.report : await measureOnnx(v.file, run, test, progress, `test ${w}`) };
            break;
          }
        }
        if (!chosen) {
          chosen = { name: 'float32', ...f32 };
          progress.onEvent?.({ type: 'warning', message: `no compressed ONNX variant kept float32's predictions on at least ${100 - opts.maxDrop}% of the ${judgeOn.images.length} choice images; exported float32` });
        }
        const quantization = chosen.name === 'int8' && int8 ? { ...int8, speed: await int8Speed(f32.file, chosen.file, run, test, progress) } : undefined;
        if (!tried.some((c) => c.name === 'float32')) tried.unshift(row('float32', f32Judge.report, judge(f32Judge.report, f32Judge.report, judgeOn, auto, opts.maxDrop)));
        await fs.rename(chosen.file, path.join(tmp, 'model.onnx'));
        await fs.rm(work, { recursive: true, force: true });
        await writeExportFiles(tmp, run, 'onnx', onnxSnippet());
        const report: ExportReport = {
          outDir: path.resolve(opts.out),
          format: 'onnx',
          modelFormat: 'onnx',
          quantize: opts.quantize,
          precision: { kernels: chosen.name, vectors: chosen.name === 'int8' ? 'int32 (Conv biases), float32' : 'float32', source: run.record.backbone.format === 'graph' ? 'graph-model' : run.record.backbone.format === 'layers' ? 'layers-model' : 'onnx' },
          bytesByDtype: {},
          prune: { target: 0, perLayer: {} },
          maxDropPoints: opts.maxDrop,
          candidates: tried,
          chosen: chosen.name,
          choice: auto ? { split: choice!.split, images: choice!.set.images.length, rule: BUDGET_RULE } : { split: 'test', images: test.images.length, rule: 'no choice: the variant asked for, measured on the test split' },
          testImages: test.images.length,
          engineAccuracy: run.record.test.accuracy,
          float32: plain(f32.report),
          exported: plain(chosen.report),
          skipped: [...skipped, ...test.skipped, ...(choice?.skipped ?? [])],
          backend: `onnxruntime (tfjs ${backend.name} for conversion)`,
          ...(quantization ? { quantization } : {}),
          ...(slim ? { slimming: slim.report } : {}),
        };
        await fs.writeFile(path.join(tmp, 'report.json'), JSON.stringify(report, null, 2));
        await fs.writeFile(path.join(tmp, 'README.md'), onnxCard(run, report));
        throwIfAborted(progress.signal);
        return report;
      },
    );
  } finally {
    run.head.dispose();
    run.top?.dispose();
  }
}
