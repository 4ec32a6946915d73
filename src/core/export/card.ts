/**
 * The one model-card writer (README.md of an export folder, image or text): the data, the
 * metrics measured after the choice, the variants tried, the int8 and
 * slimming sections when the report has them, and the format's own parts
 * (files, how to load it) from its plug-in.
 */
import type { LoadedRun } from '../runFolder';
import type { CardParts } from './format';
import { BUDGET_RULE, type ExportReport, type RuntimeLatency, type VariantReport } from './report';
import type { TextExportReport } from '../text/export';
import type { LengthStats } from '../../shared/records';
import { LOW_COVERAGE } from '../../shared/options';

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

const cpuCell = (ms: number | undefined): string => (ms === undefined ? '–' : ms.toFixed(1));

/** The model card's int8 section: calibration and speed against float32. */
function int8Card(r: ExportReport): string {
  const q = r.quantization;
  if (!q) return '';
  const { float32: f, int8: i } = q.speed;
  return `## int8 (static QDQ)
Activation ranges calibrated (${q.rangeMethod}) on ${q.calibrationImages} images of the run's **training** split (never validation or test images); weights ${q.reduceRange ? '7-bit (reduce_range, for x86 CPUs without VNNI)' : '8-bit'} int8 per channel; activations uint8 per tensor; the softmax output stays float32. ${q.stats.conv} Conv, ${q.stats.matmul} MatMul and ${q.stats.add} Add nodes quantized.

| ONNX Runtime, ${q.speed.threads} threads | batch 1 (ms / image) | batch 32 (images / s) | batch 32 (CPU ms / image) |
|---|---|---|---|
| float32 | ${f.batch1Ms.toFixed(1)} | ${f.batch32ImagesPerSecond.toFixed(1)} | ${cpuCell(f.batch32CpuMs)} |
| int8 | ${i.batch1Ms.toFixed(1)} | ${i.batch32ImagesPerSecond.toFixed(1)} | ${cpuCell(i.batch32CpuMs)} |
| int8 speed-up | ${q.speed.batch1Speedup.toFixed(2)}x | ${q.speed.batch32Speedup.toFixed(2)}x | ${q.speed.batch32CpuSpeedup === undefined ? '–' : `${q.speed.batch32CpuSpeedup.toFixed(2)}x`} |

Wall-clock times move with whatever else the machine runs; CPU time per image is what the model costs the machine (on an idle machine with these threads, the speed-ups agree).

`;
}

/** The model card's slimming section: the table of steps and the one chosen. */
function slimCard(r: ExportReport): string {
  const s = r.slimming;
  if (!s) return '';
  return `## Slimmed backbone
${s.chosen ? slimChosenLine(s) : 'No slimming step met the budget: the backbone is unslimmed'} (asked: ${s.asked}; budget ${s.budgetPoints} points of top-1 agreement with the unslimmed backbone on ${s.validationImages} validation images${s.oofTrainImages ? ` and ${s.oofTrainImages} training images predicted out of fold (${s.folds} folds; never test images)` : ''}). Channels ranked on ${s.rankImages} **training** images by mean activation x project-weight norm; each slimmed block's project convolution was refit by least squares to reproduce the unslimmed block's output on the same training images, block after block from what the slimmed network itself feeds it (its weights are float32, not the source's quantization grid); the head was refit on the slimmed features at each step. Bytes are the float32 model before any quantization; ms per image is the backbone at batch 1 on ${s.threads} ONNX Runtime threads, timed alternating with the unslimmed one.

| removed | hidden channels kept | features kept | bytes | gzipped | ms / image | speed-up | validation accuracy |
|---|---|---|---|---|---|---|---|
${s.steps.map((x) => `| ${Math.round(x.fraction * 100)}%${x.fraction === s.chosen ? ' (this file)' : ''} | ${x.hiddenKept} / ${x.hiddenTotal} | ${x.featuresKept ? `${x.featuresKept} / ${x.featuresTotal}` : 'all'} | ${x.bytes} | ${x.gzipBytes} | ${x.msPerImage.toFixed(1)} | ${x.speedup.toFixed(2)}x | ${pct(x.valAccuracy)} |`).join('\n')}

`;
}

/** What the chosen slimming step removed: its share, how it was spread over the blocks, and the features. */
function slimChosenLine(s: NonNullable<ExportReport['slimming']>): string {
  const step = s.steps.find((x) => x.fraction === s.chosen);
  const pctOf = `${Math.round(s.chosen * 100)}%`;
  const spread = s.allocation === 'sensitivity' ? `${pctOf} of the slimmable cost (an equal blend of the hidden channels' parameters and multiply-adds) removed from its ${s.blocks} inverted-residual blocks, spread where the held-out block error grows least${step?.keptPerBlock ? ` (hidden channels kept per block: ${step.keptPerBlock.join(', ')})` : ''}` : `${pctOf} of the hidden channels of each of its ${s.blocks} inverted-residual blocks removed`;
  return `${spread}${step?.featuresKept ? `; ${step.featuresKept} of its ${step.featuresTotal} features kept` : ''}`;
}

/** A latency cell: ms per image and where, or why it was not measured. */
function latencyCell(l: RuntimeLatency | undefined): string {
  if (!l) return '—';
  if (l.msPerImage === null) return `— (${l.note ?? 'not measured'})`;
  return `${l.msPerImage.toFixed(1)}${l.where || l.images ? ` (${[l.where, l.images ? `${l.images} images` : ''].filter(Boolean).join(', ')})` : ''}`;
}

/** The model card's size and speed table: bytes, gzipped bytes, latency in both runtimes, accuracy with its interval. */
function sizeSpeedCard(r: ExportReport): string {
  const acc = (v: VariantReport) => `${pct(v.accuracy)} (${pct(v.interval.low)}–${pct(v.interval.high)})`;
  const ownTfjs = r.format === 'tfjs';
  const f32Own: RuntimeLatency = { msPerImage: r.float32.msPerImage, images: r.testImages };
  const none: RuntimeLatency = { msPerImage: null, note: 'not measured' };
  return `## Size and speed
Test split, batch 1; the first image of each timing is a warm-up and not counted.${r.slimming?.chosen ? ' Both rows are the slimmed model; the slimming table below has the unslimmed figures.' : ''}

| model | bytes | gzipped | TF.js ms / image | ONNX Runtime ms / image | accuracy (95% CI) |
|---|---|---|---|---|---|
| this export (\`${r.chosen}\`) | ${r.exported.bytes} | ${r.exported.gzipBytes} | ${latencyCell(r.latency?.tfjs)} | ${latencyCell(r.latency?.onnxRuntime)} | ${acc(r.exported)} |
| float32 | ${r.float32.bytes} | ${r.float32.gzipBytes} | ${latencyCell(ownTfjs ? f32Own : none)} | ${latencyCell(ownTfjs ? none : f32Own)} | ${acc(r.float32)} |

`;
}

/** A length statistic: whole numbers as they are, others to one decimal. */
const num = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1));

/** The data section's text part: length statistics, vocabulary coverage and the tokenizer. */
function textDataCard(run: LoadedRun): string {
  const t = run.record.text;
  if (!t) return '';
  const row = (name: string, s: LengthStats) => `| ${name} | ${num(s.min)} | ${num(s.median)} | ${num(s.mean)} | ${num(s.max)} |`;
  const c = t.coverage;
  return `
Lengths of the ${run.record.dataset.total} texts:

| | min | median | mean | max |
|---|---|---|---|---|
${row('characters', t.stats.chars)}
${row('words', t.stats.words)}

Vocabulary coverage of \`${run.record.backbone.id}\`: ${pct(c.tokens)} of the word tokens are known (mean per text ${pct(c.meanPerText)}); ${c.emptyTexts} texts have no known word${c.tokens < LOW_COVERAGE ? ` (below ${pct(LOW_COVERAGE)}: see Known limits)` : ''}.

Tokenizer: ${t.tokenizer}.
`;
}

/** A text export's size and speed table: the whole model and the head alone, ms per text, accuracy with its interval. */
function textSizeSpeedCard(r: TextExportReport): string {
  const acc = (v: VariantReport) => `${pct(v.accuracy)} (${pct(v.interval.low)}–${pct(v.interval.high)})`;
  const where = r.format === 'onnx' ? 'ONNX Runtime' : `TF.js (${r.backend})`;
  return `## Size and speed
Bytes count the whole model (head + ${r.files.some((f) => f.path.startsWith('encoder/')) ? 'encoder' : 'vocabulary'}); ms per text is one text at a time (tokenize, embed, head) in ${where}, the mean over at most 50 test texts after one warm-up.

| model | bytes | gzipped | head bytes | head gzipped | ms / text | accuracy (95% CI) |
|---|---|---|---|---|---|---|
| this export (\`${r.chosen}\`) | ${r.exported.bytes} | ${r.exported.gzipBytes} | ${r.head.exported.bytes} | ${r.head.exported.gzipBytes} | ${r.exported.msPerImage.toFixed(2)} | ${acc(r.exported)} |
| float32 | ${r.float32.bytes} | ${r.float32.gzipBytes} | ${r.head.float32.bytes} | ${r.head.float32.gzipBytes} | ${r.float32.msPerImage.toFixed(2)} | ${acc(r.float32)} |

`;
}

/** The Known limits lines every card has: what the data covers, the closed set of classes. */
function commonLimits(run: LoadedRun, unit: string): string[] {
  const r = run.record;
  const unlike = r.modality === 'text' ? 'texts unlike them (topic, wording, length, language)' : 'images unlike them (lighting, framing, cameras)';
  return [`Trained on ${r.dataset.total} ${unit}; accuracy on ${unlike} will be lower.`, `The classifier always answers one of its ${r.labels.length} classes; it has no "none of these" class unless you trained one.`];
}

/**
 * The model card of an export, image or text (run.record.modality): a text
 * report is the pipeline's with the text fields beside it (TextExportReport),
 * and its card adds lengths, vocabulary coverage, the tokenizer, the TF-IDF
 * baseline and a size table with the head alone and ms per text.
 */
export function modelCard(run: LoadedRun, report: ExportReport, parts: CardParts): string {
  const r = run.record;
  const text = r.modality === 'text' ? (report as TextExportReport) : undefined;
  const unit = text ? 'texts' : 'images';
  const counts = r.labels.map((l) => `| ${l} | ${r.dataset.counts[l]?.train ?? 0} | ${r.dataset.counts[l]?.val ?? 0} | ${r.dataset.counts[l]?.test ?? 0} |`).join('\n');
  const perClass = r.test.perClass.map((c) => `| ${c.label} | ${c.precision.toFixed(3)} | ${c.recall.toFixed(3)} | ${c.f1.toFixed(3)} |`).join('\n');
  const limits = [...commonLimits(run, unit), ...parts.limits, ...r.dataset.warnings];
  const n = report.exported.interval.n;
  const baseline = text ? ` Baseline: ${r.baseline.description}, ${pct(r.baseline.accuracy)} (95% CI ${pct(r.baseline.interval.low)}–${pct(r.baseline.interval.high)}, n = ${r.baseline.interval.n}).` : '';
  return `# ${text ? 'Text' : 'Image'} classifier${parts.titleSuffix}: ${r.labels.join(', ')}

Made with Headstart on ${r.createdAt.slice(0, 10)}: ${parts.madeOf}

## Data
${r.dataset.total} ${unit} from \`${r.dataset.root}\`, ${r.labels.length} classes, split ${Math.round((1 - r.config.val - r.config.test) * 100)}/${Math.round(r.config.val * 100)}/${Math.round(r.config.test * 100)} (seed ${r.config.seed}).

| class | train | val | test |
|---|---|---|---|
${counts}
${textDataCard(run)}
## Metrics (test split, ${report.testImages} ${unit})
Accuracy of this export: **${pct(report.exported.accuracy)}** (95% CI ${pct(report.exported.interval.low)}–${pct(report.exported.interval.high)}${text ? `, n = ${n}` : ''}; float32: ${pct(report.float32.accuracy)}). ${r.baseline.verdict}${text ? `.${baseline}` : ` (baseline ${pct(r.baseline.accuracy)}).`} ${parts.measuredIn}

| class | precision | recall | F1 |
|---|---|---|---|
${perClass}

## Compression
Variant \`${report.chosen}\` (asked: --quantize ${report.quantize}${report.quantize === 'auto' ? `, within ${report.maxDropPoints} points of float32` : ''}). ${parts.weights}

${text && report.quantize !== 'auto' ? `No choice: --quantize ${report.quantize} asked for this variant, measured on the test split.` : `Judged on ${report.choice.images} ${report.choice.split} ${unit}${report.quantize === 'auto' ? ` (${text ? report.choice.rule : BUDGET_RULE})` : ''}; the test figure above was measured after the choice.${report.choice.budgetNote ? ` Budget: ${report.choice.budgetNote}.` : ''}`}

| variant | bytes | gzipped | agreement with float32 | accuracy (95% CI) |
|---|---|---|---|---|
${report.candidates.map((c) => `| ${c.name}${c.name === report.chosen ? ' (this file)' : ''} | ${c.bytes} | ${c.gzipBytes} | ${pct(c.agreement)} | ${pct(c.accuracy)} (${pct(c.accuracyInterval.low)}–${pct(c.accuracyInterval.high)}) |`).join('\n')}

${text ? textSizeSpeedCard(text) : sizeSpeedCard(report)}${int8Card(report)}${slimCard(report)}## Files
${parts.files}

## Load it
${parts.loadIt}

## Backbone and licence
${r.backbone.title} — ${r.backbone.licence}. Source: ${r.backbone.source}.${parts.backboneNote ? `\n\n${parts.backboneNote}` : ''}

## Known limits
${limits.map((w) => `- ${w}`).join('\n')}
`;
}
