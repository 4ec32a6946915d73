/**
 * The one export pipeline: checks the options, reads the run, decodes the
 * test split and (auto) the choice images, then for the format plug-in asked
 * for writes float32, tries the candidates in order on the choice images
 * (never the test split), keeps the first within --max-drop, measures what
 * was chosen on the test split, and writes the folder atomically with
 * labels, metadata, report, model card and an inference script.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { initBackend } from '../backend';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import type { Skipped } from '../data/dataset';
import { choiceItems, testSplitItems } from '../evaluate';
import { outGuard, prepareOutDir, writeOutDir } from '../fsutil';
import { type LoadedRun, loadRun } from '../runFolder';
import { parseSlim } from '../compress/slim';
import { type TestSet, decodeTestSet, writeExportFiles } from './common';
import { modelCard } from './card';
import type { ExportFormat } from './format';
import { type ExportOptions, type ExportReport, type ResolvedExportOptions, BUDGET_RULE, completeLatency, plain } from './report';
import { chooseVariant } from './choose';
import { FORMAT_CHOICES, QUANTIZE_CHOICES } from '../../shared/options';
import { tfjsFormat } from './formats/tfjs';
import { onnxFormat } from './formats/onnx';
import { exportTextRun } from '../text/export';

const FORMATS: Record<ResolvedExportOptions['format'], ExportFormat> = { tfjs: tfjsFormat, onnx: onnxFormat };

/** Fills in the defaults and refuses what no format can do; BAD_INPUT naming the flag. */
function resolveOptions(opts: ExportOptions): ResolvedExportOptions {
  const quantize = opts.quantize ?? 'none';
  if (!QUANTIZE_CHOICES.includes(quantize)) throw new HeadstartError('BAD_INPUT', `--quantize must be one of ${QUANTIZE_CHOICES.join(', ')} (got '${quantize}')`);
  const prune = opts.prune ?? 0;
  if (!(typeof prune === 'number' && prune >= 0 && prune < 1)) throw new HeadstartError('BAD_INPUT', `--prune must be a sparsity in [0, 1) (got ${opts.prune})`);
  const maxDrop = opts.maxDrop ?? 1;
  if (!(maxDrop >= 0 && maxDrop <= 100)) throw new HeadstartError('BAD_INPUT', `--max-drop must be a number of accuracy points from 0 to 100 (got ${opts.maxDrop})`);
  const format = opts.format ?? 'tfjs';
  if (!FORMAT_CHOICES.includes(format)) throw new HeadstartError('BAD_INPUT', `--format must be tfjs or onnx (got '${String(format)}')`);
  if (quantize === 'int8' && format !== 'onnx') throw new HeadstartError('BAD_INPUT', '--quantize int8 (static int8 for ONNX Runtime) needs --format onnx; for a smaller TF.js model use --quantize uint8, float16 or auto');
  const slim = opts.slim === undefined ? undefined : parseSlim(opts.slim);
  return { ...opts, quantize, prune, maxDrop, format, slim };
}

/** Decodes the images --quantize auto decides on (see choiceItems); an error when there are none. */
export async function decodeChoiceSet(run: LoadedRun, progress: Progress): Promise<{ set: TestSet; split: 'val' | 'train'; skipped: Skipped[] }> {
  const c = await choiceItems(run);
  const set = await decodeTestSet(run, c.items, progress);
  if (!set.images.length) throw new HeadstartError('NO_DATA', `${run.dir} has no readable validation or training images for --quantize auto to decide on; pick --quantize none, float16, uint16 or uint8`);
  return { set, split: c.split, skipped: [...c.skipped, ...set.skipped] };
}

/**
 * Exports a run as a full model (backbone + head) in the format asked for
 * (TF.js by default, or ONNX) with labels, metadata, report, model card and
 * an inference script, atomically. Every variant is loaded back and measured;
 * `auto` keeps the smallest within the accuracy budget, decided on the
 * validation images, and only then measures it on the test split.
 */
export async function exportRun(runDir: string, options: ExportOptions, progress: Progress = {}): Promise<ExportReport> {
  const opts = resolveOptions(options);
  const guard = outGuard('export', [{ path: runDir, what: 'the run being exported' }], opts);
  // Before the run is read: a bad --out costs nothing.
  await prepareOutDir(opts.out, guard);
  const format = FORMATS[opts.format];
  format.check(opts);
  const run = await loadRun(runDir, opts.backend);
  try {
    // A text run carries its vocabulary or encoder and a head on embeddings: its own branch (src/core/text/export.ts).
    if (run.record.modality === 'text') return await exportTextRun(run, opts, guard, progress);
    const backend = await initBackend(opts.backend ?? 'auto');
    const { items, skipped } = await testSplitItems(run);
    progress.onEvent?.({ type: 'phase', phase: 'export', message: format.phaseMessage(items.length) });
    const test = await decodeTestSet(run, items, progress);
    if (!test.images.length) throw new HeadstartError('NO_DATA', `${runDir} has no readable test images to measure the export on`);
    const auto = opts.quantize === 'auto';
    const choice = auto ? await decodeChoiceSet(run, progress) : undefined;
    return await writeOutDir(opts.out, guard, async (tmp) => {
      const work = path.join(tmp, '.candidates');
      const session = await format.open(run, opts, backend.name, work, progress);
      try {
        // A lossy step of the format's own (slimming) used part of the budget: the candidates get the rest.
        const budget = Math.max(0, opts.maxDrop - (session.budgetSpent ?? 0));
        const { chosen, f32, tried } = await chooseVariant(session, (name) => path.join(work, name), test, choice?.set ?? test, { ...opts, maxDrop: budget }, progress, 'images');
        const fields = await session.describe(chosen.spec, chosen.dir, f32.dir, test);
        for (const f of session.modelFiles) await fs.rename(path.join(chosen.dir, f), path.join(tmp, f));
        await fs.rm(work, { recursive: true, force: true });
        await writeExportFiles(tmp, run, fields.modelFormat, session.snippet(fields));
        const report: ExportReport = {
          outDir: path.resolve(opts.out),
          format: opts.format,
          modelFormat: fields.modelFormat,
          quantize: opts.quantize,
          precision: fields.precision,
          bytesByDtype: fields.bytesByDtype,
          prune: fields.prune,
          maxDropPoints: opts.maxDrop,
          candidates: tried,
          chosen: chosen.spec.name,
          choice: choice ? { split: choice.split, images: choice.set.images.length, rule: BUDGET_RULE, ...(budget < opts.maxDrop ? { budgetPoints: budget, budgetNote: `slimming used ${(opts.maxDrop - budget).toFixed(2)} of the ${opts.maxDrop} points; the candidates were judged against the remaining ${budget.toFixed(2)}` } : {}) } : { split: 'test', images: test.images.length, rule: 'no choice: the variant asked for, measured on the test split' },
          testImages: test.images.length,
          engineAccuracy: run.record.test.accuracy,
          float32: plain(f32.report),
          exported: plain(chosen.report),
          skipped: [...skipped, ...test.skipped, ...(choice?.skipped ?? [])],
          backend: fields.backend,
          ...(fields.quantization ? { quantization: fields.quantization } : {}),
          ...(fields.slimming ? { slimming: fields.slimming } : {}),
          latency: completeLatency(opts.format, fields.latency, { msPerImage: chosen.report.msPerImage, images: test.images.length, where: opts.format === 'tfjs' ? fields.backend : '1 thread' }),
        };
        await fs.writeFile(path.join(tmp, 'report.json'), JSON.stringify(report, null, 2));
        await fs.writeFile(path.join(tmp, 'README.md'), modelCard(run, report, session.card(report)));
        throwIfAborted(progress.signal); // a cancel that came during the last step still wins
        return report;
      } finally {
        session.dispose();
      }
    });
  } finally {
    run.head.dispose();
    run.top?.dispose();
  }
}
