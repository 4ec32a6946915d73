// Pruning figures (issue 12, "compact for real"): what the auto exports of the
// default run shipped, against float32 (raw and gzipped bytes, accuracy with
// the test image count), read from the export folders slimSection just wrote;
// then int8 ONNX at fixed sparsities (--prune S --quantize int8: the backbone
// magnitude-pruned with bias correction, the head refit on the pruned
// backbone's features) to show the size / accuracy curve.
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** Sparsities of the int8 curve. */
const CURVE = [0.3, 0.5, 0.7];

/**
 * `work`: the bench's scratch folder, holding `export-onnxAuto` and
 * `export-tfjsAuto` (slimSection's auto exports) and the run `runDir`.
 * `fig(key, value)` records a figure; `timeCli(argv)` runs the CLI with --json.
 */
export async function pruneBench({ work, runDir, cache, fig, timeCli }) {
  for (const name of ['onnxAuto', 'tfjsAuto']) {
    const r = JSON.parse(await readFile(path.join(work, `export-${name}`, 'report.json'), 'utf8'));
    const k = `prune.${name}`;
    fig(`${k}.chosen`, r.chosen);
    fig(`${k}.sparsity`, { target: r.prune.target, overallKernelZeros: r.prune.overall ?? 0, prunedKernels: Object.keys(r.prune.perLayer).length, refit: r.prune.refit ? { valAccuracy: r.prune.refit.valAccuracy, seconds: r.prune.refit.seconds } : null });
    fig(`${k}.candidates`, r.candidates.map((c) => `${c.name} agree ${(c.agreement * 100).toFixed(1)}%${c.withinBudget ? ' (within)' : ''}`));
    // Against the run's own float32 model: with slimming chosen, report.float32 is the slimmed one.
    const base = r.slimming?.steps?.[0] ?? r.float32;
    fig(`${k}.slimmed`, r.slimming ? r.slimming.chosen : 'not asked');
    fig(`${k}.gzipOverFloat32Bytes`, r.exported.gzipBytes / base.bytes);
    fig(`${k}.gzipOverFloat32Gzip`, r.exported.gzipBytes / base.gzipBytes);
    fig(`${k}.accuracy`, { exported: r.exported.accuracy, float32: r.float32.accuracy, testImages: r.testImages, choiceImages: r.choice.images });
  }
  for (const s of CURVE) {
    const r = timeCli(['export', runDir, '--out', path.join(work, `export-int8-sparse${s}`), '--format', 'onnx', '--quantize', 'int8', '--prune', String(s), '--cache', cache]).json;
    const k = `prune.int8Sparse${Math.round(s * 100)}`;
    fig(`${k}.gzipOverFloat32Bytes`, r.exported.gzipBytes / r.float32.bytes);
    fig(`${k}.gzipOverFloat32Gzip`, r.exported.gzipBytes / r.float32.gzipBytes);
    fig(`${k}.accuracy`, { exported: r.exported.accuracy, float32: r.float32.accuracy, testImages: r.testImages, overallKernelZeros: r.prune.overall, refitValAccuracy: r.prune.refit?.valAccuracy, valImages: r.prune.refit?.valImages });
  }
}
