/**
 * Magnitude pruning of a run's backbone with a head refit (issue 12): the
 * float32 ONNX backbone (the run's, or a slimmed one) is pruned layer by
 * layer (sparsify.ts), written as an ONNX backbone folder, the run's training
 * and validation images are re-extracted through it (the engine and its
 * embedding cache, keyed by the pruned model's hash), and a head is fit on
 * the training split's pruned features (early stopping on the validation
 * split, as the run's head was). The pruned backbone keeps the ImageNet
 * features it can; the head learns to read what is left. Test images are
 * never read here.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { type OnnxBackboneMeta, ONNX_BACKBONE_FILE, resolveOnnxBackbone, writeOnnxBackbone } from '../onnx/backbone';
import { ensureOnnxBackbone } from '../onnx/engine';
import { appendHead } from '../onnx/slim';
import type { ResolvedBackbone } from '../backbones/store';
import { type EngineOptions, openBackbone } from '../engine';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { sha256 } from '../fsutil';
import { type LoadedRun, type RunRecord, openRunBackbone } from '../runFolder';
import type { VectorSet } from '../train/head';
import { fitHead, headLayers } from './slim';
import { type SparsityReport, sparsifyOnnx } from './sparsify';

/** The float32 ONNX backbone a pruned candidate starts from (0..255 NHWC pixels in, `features` out). */
export interface PruneSource {
  backbone: ResolvedBackbone;
  bytes: Uint8Array;
}

/** How the head of a pruned candidate was refit (report.json `prune.refit`). */
export interface RefitInfo {
  /** sha256 of the pruned backbone's ONNX file: the key its features are cached under. */
  backboneHash: string;
  trainImages: number;
  valImages: number;
  /** The refit head's accuracy on the validation images (its early-stopping set). */
  valAccuracy: number;
  seconds: number;
}

/** A pruned backbone with its refit head, as one float32 ONNX model. */
export interface PrunedRefit extends SparsityReport {
  /** Pruned backbone + refit head (input `image`, output `probabilities`). */
  bytes: Uint8Array;
  refit: RefitInfo;
}

/**
 * The float32 ONNX backbone of a run, for pruning with a refit: the slimmed
 * backbone folder when slimming chose one, else the run's own backbone as
 * the engine runs it (converted once, cached). Undefined for a run that
 * fine-tuned its top layers (its head reads boundary activations, not
 * features: a refit on features does not apply).
 */
export async function pruneSource(run: LoadedRun, slimDir: string | undefined, opts: EngineOptions, progress: Progress): Promise<PruneSource | undefined> {
  if (run.record.unfreeze) return undefined;
  if (slimDir) return { backbone: await resolveOnnxBackbone(slimDir), bytes: new Uint8Array(await fs.readFile(path.join(slimDir, ONNX_BACKBONE_FILE))) };
  const opened = await openRunBackbone(run, opts, progress);
  try {
    const file = await ensureOnnxBackbone(opened.backbone, opts.cacheDir ?? opened.cacheDir);
    return { backbone: opened.backbone, bytes: new Uint8Array(await fs.readFile(file)) };
  } finally {
    opened.dispose();
  }
}

/** Feature rows of one split, labelled by class index (images the backbone could not read are left out). */
function splitRows(record: RunRecord, features: Map<string, Float32Array>, split: 'train' | 'val', dim: number): VectorSet {
  const sel = record.samples.filter((s) => s.split === split && features.has(s.hash));
  const x = new Float32Array(sel.length * dim);
  sel.forEach((s, i) => x.set(features.get(s.hash)!, i * dim));
  return { x, y: Int32Array.from(sel, (s) => record.labels.indexOf(s.label)) };
}

/**
 * Prunes `source`'s kernels to `sparsity` each, writes the pruned backbone to
 * `dir` (an ONNX backbone folder), re-extracts the run's training and
 * validation images through it and refits the head on them; returns the
 * pruned backbone + refit head as one float32 ONNX model, what was pruned,
 * and how the head was fit. Cancellation is honoured between the steps and
 * inside extraction and fitting.
 */
export async function pruneWithRefit(run: LoadedRun, source: PruneSource, sparsity: number, dir: string, opts: EngineOptions, progress: Progress = {}): Promise<PrunedRefit> {
  const t0 = performance.now();
  const rec = run.record;
  const pct = Math.round(sparsity * 100);
  const emit = progress.onEvent ?? (() => undefined);
  emit({ type: 'phase', phase: 'export', message: `magnitude-pruning the backbone's convolution kernels to ${pct}% zeros; re-extracting the training and validation images through it to refit the head` });
  const pruned = sparsifyOnnx(source.bytes, sparsity);
  throwIfAborted(progress.signal);
  const parent = source.backbone.entry;
  const meta: OnnxBackboneMeta = { entry: { ...parent, id: `${parent.id.replace(/^local:.*[\\/]/, 'local-')}-sparse${pct}`, title: `${parent.title}, magnitude-pruned to ${pct}% zeros per kernel`, format: 'onnx', featureNode: 'features', pool: false, bundled: false, approxBytes: pruned.bytes.length } };
  await writeOnnxBackbone(dir, pruned.bytes, meta);
  const opened = await openBackbone(dir, { ...opts, engine: 'onnx' }, progress);
  let features: Map<string, Float32Array>;
  try {
    const items = rec.samples.filter((s) => s.split === 'train' || s.split === 'val').map((s) => ({ path: path.join(rec.dataset.root, s.rel), hash: s.hash }));
    features = (await opened.extract(items, progress)).features;
  } finally {
    opened.dispose();
  }
  const dim = rec.backbone.featureSize;
  const train = splitRows(rec, features, 'train', dim);
  const val = splitRows(rec, features, 'val', dim);
  if (!train.y.length) throw new HeadstartError('NO_DATA', `${run.dir}: none of the training images could be read to refit the head of the pruned backbone`);
  emit({ type: 'phase', phase: 'export', message: `refitting the head on ${train.y.length} training images' pruned features (${pct}% sparsity)` });
  const fit = await fitHead(train, val, dim, rec.labels.length, rec.config, progress);
  try {
    const bytes = appendHead(pruned.bytes, headLayers(fit.model));
    const refit: RefitInfo = { backboneHash: sha256(pruned.bytes), trainImages: train.y.length, valImages: val.y.length, valAccuracy: fit.valAccuracy, seconds: (performance.now() - t0) / 1000 };
    return { bytes, perLayer: pruned.perLayer, overall: pruned.overall, kernelWeights: pruned.kernelWeights, refit };
  } finally {
    fit.model.dispose();
  }
}
