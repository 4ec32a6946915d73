import * as os from 'node:os';
import { type BackendInfo, type BackendPreference, initBackend } from './backend';
import { type FeatureExtractor, loadTfjsExtractor } from './backbones/extractor';
import { type DownloadOptions, type ResolvedBackbone, defaultCacheDir, resolveBackbone } from './backbones/store';
import { VectorCache } from './data/cache';
import { PREPROCESS_VERSION, THUMB } from './data/decode';
import { type ExtractItem, type ExtractResult, extractAll } from './data/extract';
import { ExtractorPool } from './data/pool';
import { sha256 } from './fsutil';
import { HeadstartError } from './errors';
import { ENGINE_CHOICES } from '../shared/options';
import { onnxBackboneDir, resolveOnnxBackbone } from './onnx/backbone';
import { defaultOrtThreads, ensureOnnxBackbone, loadOrt, ortUnavailableReason } from './onnx/engine';
import { CONVERTER_VERSION } from './onnx/convert';
import { type OnnxInputFlags, isForeignOnnx, resolveForeignOnnx } from './onnx/foreign';
import type { Progress } from './events';

/** Settings shared by every command that runs a backbone. */
export interface EngineOptions {
  /** Cache folder for backbones and embeddings; default HEADSTART_CACHE_DIR or the user cache dir. */
  cacheDir?: string;
  /** TensorFlow.js backend, default 'auto'. */
  backend?: BackendPreference;
  /** Which engine runs the frozen backbone: 'auto' (ONNX Runtime when it loads, else TF.js), 'onnx' or 'tfjs'. */
  engine?: EngineChoice;
  /**
   * TF.js on a single-threaded backend: extraction threads (default: cores, at most 4; 1 runs in-process).
   * ONNX Runtime: intra-op threads (default: cores).
   */
  workers?: number;
  /** Pixel limit per image, default 64 M. */
  maxPixels?: number;
  /** Images per forward pass, default 16. */
  batchSize?: number;
  /** Extract at another node than the catalogue's feature node (the boundary of a fine-tuned top), unpooled. */
  cut?: { featureNode: string; pool: boolean };
  /** Foreign ONNX backbones (`--backbone model.onnx` or a URL): preprocessing given by flags, over the sidecar and the graph. */
  onnxInput?: OnnxInputFlags;
}

export interface OpenedBackbone {
  backbone: ResolvedBackbone;
  backend: BackendInfo;
  cacheDir: string;
  /** Which engine extracts features: 'onnxruntime' or 'tfjs-<backend>'. */
  engine: string;
  /** Threads extracting: pool size (TF.js) or intra-op threads (ONNX Runtime). */
  workers: number;
  /** Why the engine asked for was not used, if it was not. */
  engineNote?: string;
  /** The embedding caches extract() reads and fills (features under this backbone's key; raw-pixel thumbnails). */
  caches: { features: VectorCache; thumbs: VectorCache };
  /** Extracts (through the caches) features of the given images. */
  extract(items: ExtractItem[], progress?: Progress): Promise<ExtractResult>;
  /** Releases the pool and the model. */
  dispose(): void;
}

export type EngineChoice = (typeof ENGINE_CHOICES)[number];

export function defaultWorkers(): number {
  return Math.max(1, Math.min(4, os.availableParallelism?.() ?? os.cpus().length));
}

/**
 * Starts the backend, resolves (downloads if needed) the backbone, and returns
 * an extractor bound to the embedding cache. The extractor itself is loaded
 * lazily: a fully cached dataset never loads the backbone.
 */
export async function openBackbone(id: string, opts: EngineOptions = {}, progress: Progress & DownloadOptions = {}): Promise<OpenedBackbone> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const choice = opts.engine ?? 'auto';
  if (!ENGINE_CHOICES.includes(choice)) throw new HeadstartError('BAD_INPUT', `--engine must be auto, onnx or tfjs (got '${String(choice)}')`);
  progress.onEvent?.({ type: 'phase', phase: 'backend', message: 'starting TensorFlow.js' });
  const backend = await initBackend(opts.backend ?? 'auto');
  const onnxDir = await onnxBackboneDir(id);
  const resolved = onnxDir ? await resolveOnnxBackbone(onnxDir) : isForeignOnnx(id) ? await resolveForeignOnnx(id, cacheDir, opts.onnxInput, progress) : await resolveBackbone(id, cacheDir, progress);
  // An ONNX backbone (a slimmed one) has no TF.js form: ONNX Runtime runs it or nothing does.
  if (resolved.entry.format === 'onnx' && (choice === 'tfjs' || opts.cut)) throw new HeadstartError('BAD_INPUT', `backbone ${resolved.entry.id} is an ONNX model: it runs in ONNX Runtime only (not with --engine tfjs or --unfreeze)`);
  const backbone: ResolvedBackbone = opts.cut ? { ...resolved, entry: { ...resolved.entry, featureNode: opts.cut.featureNode, pool: opts.cut.pool, featureSize: 0 } } : resolved;
  let engineNote: string | undefined;
  let useOnnx = false;
  if (choice !== 'tfjs') {
    if (loadOrt()) useOnnx = true;
    else if (choice === 'onnx' || resolved.entry.format === 'onnx') throw new HeadstartError('BACKEND', `--engine onnx: ONNX Runtime is not available here (${ortUnavailableReason()}); use --engine tfjs`);
    else engineNote = `ONNX Runtime unavailable (${ortUnavailableReason()}); using TensorFlow.js`;
  }
  let onnxPath: string | undefined;
  if (useOnnx) {
    try {
      onnxPath = await ensureOnnxBackbone(backbone, cacheDir);
    } catch (err) {
      if (choice === 'onnx' || backbone.entry.format === 'onnx' || !(err instanceof HeadstartError)) throw err;
      engineNote = `backbone could not be converted to ONNX (${err.message}); using TensorFlow.js`;
      useOnnx = false;
    }
  }
  if (engineNote) progress.onEvent?.({ type: 'warning', message: engineNote });
  const engine = useOnnx ? 'onnxruntime' : `tfjs-${backend.name}`;
  // The engines agree to ~1e-5 but are kept apart: a run's features are reproducible by its own engine.
  // Features of all TF.js backends agree to float rounding; they share one key.
  const key = sha256(`${backbone.modelHash}|${backbone.entry.featureNode}|${backbone.entry.pool ? 'pool' : ''}|${backbone.entry.inputRange.join(',')}|${PREPROCESS_VERSION}|${useOnnx ? `onnx-c${CONVERTER_VERSION}` : 'tfjs'}${backbone.entry.onnxInput ? `|${JSON.stringify(backbone.entry.onnxInput)}` : ''}`).slice(0, 24);
  const workers = useOnnx ? (opts.workers ?? defaultOrtThreads()) : backend.multiThreaded ? 1 : (opts.workers ?? defaultWorkers());
  let extractor: (FeatureExtractor & { size?: number }) | undefined;
  let featureSize = backbone.entry.featureSize;
  const getExtractor = async (): Promise<FeatureExtractor & { size?: number }> => {
    if (!extractor) {
      if (useOnnx) extractor = await ExtractorPool.start(backbone, 1, { kind: 'onnx', onnxPath: onnxPath!, threads: workers });
      else extractor = workers > 1 ? await ExtractorPool.start(backbone, workers, { kind: 'tfjs', backend: backend.name as BackendPreference }) : await loadTfjsExtractor(backbone);
      featureSize = extractor.featureSize;
    }
    return extractor;
  };
  if (!featureSize) await getExtractor(); // local models: measure the feature size
  const caches = {
    features: new VectorCache(cacheDir, key, featureSize),
    thumbs: new VectorCache(cacheDir, `thumb${THUMB}-${PREPROCESS_VERSION}-${backbone.entry.inputSize}`, THUMB * THUMB * 3),
  };
  return {
    backbone: { ...backbone, entry: { ...backbone.entry, featureSize } },
    backend,
    cacheDir,
    engine,
    workers,
    engineNote,
    caches,
    extract: (items, p = {}) =>
      extractAll(items, getExtractor, caches.features, caches.thumbs, backbone.entry.inputSize, {
        ...p,
        batchSize: opts.batchSize,
        maxPixels: opts.maxPixels,
      }),
    dispose: () => extractor?.dispose(),
  };
}
