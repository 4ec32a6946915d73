/**
 * Magnitude pruning of a run's backbone with a head refit (issue 12): the
 * float32 ONNX backbone (the run's, or a slimmed one) is pruned layer by
 * layer (sparsify.ts), each pointwise kernel's kept weights refit to
 * reproduce the dense layer's output on training images (the OBS update,
 * sparseReconstruct.ts), written as an ONNX backbone folder; the run's
 * training and validation images are re-extracted through it (the engine and
 * its embedding cache, keyed by the pruned model's hash), and a head is fit
 * on the training split's pruned features (early stopping on the validation
 * split, as the run's head was). The pruned backbone keeps the ImageNet
 * features it can; the head learns to read what is left. Test images are
 * never read here.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { type OnnxBackboneMeta, ONNX_BACKBONE_FILE, resolveOnnxBackbone, writeOnnxBackbone } from '../onnx/backbone';
import { onnx } from 'onnx-proto';
import { ensureOnnxBackbone, loadOrt, runImageBatches } from '../onnx/engine';
import { appendHead } from '../onnx/slim';
import type { ResolvedBackbone } from '../backbones/store';
import { type EngineOptions, openBackbone } from '../engine';
import { HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { sha256 } from '../fsutil';
import { type LoadedRun, openRunBackbone } from '../runFolder';
import { SLIM_RANK_IMAGES, fitHead, headLayers, rankingImages, splitRows } from './slim';
import { type SparsityReport, prunableKernels, sparsifyOnnx } from './sparsify';
import { inverseHessianFactor, obsPrune, snapToLevels } from './sparseReconstruct';

/** The float32 ONNX backbone a pruned candidate starts from (0..255 NHWC pixels in, `features` out). */
export interface PruneSource {
  backbone: ResolvedBackbone;
  bytes: Uint8Array;
  /** Per prunable pointwise convolution (by ONNX node name): the factor of its inverse input second moments (sparseReconstruct.ts). */
  factors: Map<string, Float64Array>;
  /** Training images the second moments were measured on. */
  momentImages: number;
}

/** How the head of a pruned candidate was refit (report.json `prune.refit`). */
export interface RefitInfo {
  /** sha256 of the pruned backbone's ONNX file: the key its features are cached under. */
  backboneHash: string;
  trainImages: number;
  valImages: number;
  /** The refit head's accuracy on the validation images (its early-stopping set). */
  valAccuracy: number;
  /** Pointwise kernels whose kept weights were refit by the OBS update (the other pruned kernels: zeros only). */
  reconstructedKernels: number;
  /** Training images the reconstruction's input second moments were measured on. */
  momentImages: number;
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
  const src = slimDir ? { backbone: await resolveOnnxBackbone(slimDir), bytes: new Uint8Array(await fs.readFile(path.join(slimDir, ONNX_BACKBONE_FILE))) } : await runBackboneBytes(run, opts, progress);
  progress.onEvent?.({ type: 'phase', phase: 'export', message: `pruning: measuring the inputs of the backbone's pointwise convolutions on up to ${SLIM_RANK_IMAGES} training images (for the reconstruction)` });
  const images = await rankingImages(run.record, progress);
  const grams = await inputGrams(src.bytes, images, run.record.backbone.inputSize, progress);
  const factors = new Map<string, Float64Array>();
  for (const [layer, g] of grams) {
    throwIfAborted(progress.signal); // a wide layer takes about a second
    factors.set(layer, inverseHessianFactor(g.gram, g.channels));
  }
  return { ...src, factors, momentImages: images.length };
}

/** The run's own backbone as the engine runs it, as ONNX bytes (converted once, cached). */
async function runBackboneBytes(run: LoadedRun, opts: EngineOptions, progress: Progress): Promise<{ backbone: ResolvedBackbone; bytes: Uint8Array }> {
  const opened = await openRunBackbone(run, opts, progress);
  try {
    const file = await ensureOnnxBackbone(opened.backbone, opts.cacheDir ?? opened.cacheDir);
    return { backbone: opened.backbone, bytes: new Uint8Array(await fs.readFile(file)) };
  } finally {
    opened.dispose();
  }
}

/** Images per forward pass of inputGrams. */
const GRAM_BATCH = 8;

/**
 * A copy of the model that also outputs, for each named NCHW tensor of C
 * channels, the sum over the batch and the spatial positions of x x^T
 * ([C, C]: Reshape to [N, C, P], MatMul with its transpose, ReduceSum over N).
 */
function withInputGrams(bytes: Uint8Array, inputs: Array<{ tensor: string; channels: number }>): { bytes: Uint8Array; outputs: string[] } {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph!;
  const opset = Number(model.opsetImport?.find((o) => !o.domain)?.version ?? 13);
  const A = onnx.AttributeProto.AttributeType;
  const int64 = (name: string, v: number[]) => graph.initializer!.push({ name, dims: [v.length], dataType: onnx.TensorProto.DataType.INT64, int64Data: v });
  const node = (opType: string, input: string[], output: string, attribute: onnx.IAttributeProto[] = []) => graph.node!.push({ opType, input, output: [output], name: `${output}/${opType}`, attribute });
  const outputs = inputs.map((x, i) => {
    const p = `sparsify/gram/${i}`;
    int64(`${p}/to3d`, [0, x.channels, -1]);
    node('Reshape', [x.tensor, `${p}/to3d`], `${p}/x3`);
    node('Transpose', [`${p}/x3`], `${p}/x3t`, [{ name: 'perm', type: A.INTS, ints: [0, 2, 1] }]);
    node('MatMul', [`${p}/x3`, `${p}/x3t`], `${p}/outer`);
    const keep = { name: 'keepdims', type: A.INT, i: 0 };
    // ReduceSum takes its axes as an input from opset 13 on, as an attribute before.
    if (opset >= 13) {
      int64(`${p}/axes`, [0]);
      node('ReduceSum', [`${p}/outer`, `${p}/axes`], `${p}/gram`, [keep]);
    } else node('ReduceSum', [`${p}/outer`], `${p}/gram`, [{ name: 'axes', type: A.INTS, ints: [0] }, keep]);
    graph.output!.push({ name: `${p}/gram`, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } });
    return `${p}/gram`;
  });
  return { bytes: onnx.ModelProto.encode(model).finish(), outputs };
}

/** Input second moments (summed x x^T) of each prunable pointwise convolution over `images` (decoded training images), in ONNX Runtime. */
async function inputGrams(bytes: Uint8Array, images: Uint8Array[], size: number, progress: Progress): Promise<Map<string, { gram: Float64Array; channels: number }>> {
  const pointwise = prunableKernels(bytes).filter((k) => k.dims.length === 4 && k.dims[2] === 1 && k.dims[3] === 1);
  if (!pointwise.length) return new Map(); // nothing to reconstruct (every kernel is small, or none is pointwise)
  const ort = loadOrt();
  if (!ort) throw new HeadstartError('BACKEND', 'pruning measures the backbone in ONNX Runtime, which is not available here (onnxruntime-node did not load)');
  const probe = withInputGrams(bytes, pointwise.map((k) => ({ tensor: k.input, channels: k.dims[1]! })));
  const sums = pointwise.map((k) => new Float64Array(k.dims[1]! ** 2));
  await runImageBatches(probe.bytes, images, size, GRAM_BATCH, probe.outputs, (out) => {
    probe.outputs.forEach((name, k) => {
      const v = out[name]!.data as Float32Array;
      const s = sums[k]!;
      for (let j = 0; j < v.length; j++) s[j]! += v[j]!;
    });
  }, progress.signal);
  return new Map(pointwise.map((k, i) => [k.layer, { gram: sums[i]!, channels: k.dims[1]! }]));
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
  // Pointwise kernels with measured inputs: the kept weights refit by the OBS update; any other: zeros only.
  const reconstruct = (layer: string, dense: Float32Array, zeroed: Float32Array) => {
    const u = source.factors.get(layer);
    const c = u ? Math.round(Math.sqrt(u.length)) : 0;
    // Back on the source's levels: the update's values would otherwise gzip like noise (float32 exports).
    return u ? snapToLevels(obsPrune(dense, zeroed, dense.length / c, c, u), dense) : zeroed;
  };
  const pruned = sparsifyOnnx(source.bytes, sparsity, { reconstruct });
  throwIfAborted(progress.signal);
  const parent = source.backbone.entry;
  const meta: OnnxBackboneMeta = { entry: { ...parent, id: `${parent.id.replace(/^local:.*[\\/]/, 'local-')}-sparse${pct}`, title: `${parent.title}, magnitude-pruned to ${pct}% zeros per kernel`, format: 'onnx', featureNode: 'features', pool: false, bundled: false, approxBytes: pruned.bytes.length } };
  await writeOnnxBackbone(dir, pruned.bytes, meta);
  const opened = await openBackbone(dir, { ...opts, engine: 'onnx' }, progress);
  let features: Map<string, Float32Array>;
  // The pruned backbone's own feature size: a slimmed source may have cut its features.
  const dim = opened.backbone.entry.featureSize;
  try {
    const items = rec.samples.filter((s) => s.split === 'train' || s.split === 'val').map((s) => ({ path: path.join(rec.dataset.root, s.rel), hash: s.hash }));
    features = (await opened.extract(items, progress)).features;
  } finally {
    opened.dispose();
  }
  const train = splitRows(rec, features, 'train', dim);
  const val = splitRows(rec, features, 'val', dim);
  if (!train.y.length) throw new HeadstartError('NO_DATA', `${run.dir}: none of the training images could be read to refit the head of the pruned backbone`);
  emit({ type: 'phase', phase: 'export', message: `refitting the head on ${train.y.length} training images' pruned features (${pct}% sparsity)` });
  const fit = await fitHead(train, val, dim, rec.labels.length, rec.config, progress);
  try {
    const bytes = appendHead(pruned.bytes, headLayers(fit.model));
    const refit: RefitInfo = { backboneHash: sha256(pruned.bytes), trainImages: train.y.length, valImages: val.y.length, valAccuracy: fit.valAccuracy, reconstructedKernels: Object.keys(pruned.perLayer).filter((l) => source.factors.has(l)).length, momentImages: source.momentImages, seconds: (performance.now() - t0) / 1000 };
    return { bytes, perLayer: pruned.perLayer, overall: pruned.overall, kernelWeights: pruned.kernelWeights, refit };
  } finally {
    fit.model.dispose();
  }
}
