import * as os from 'node:os';
import { type BackendInfo, type BackendPreference, initBackend } from './backend';
import { type FeatureExtractor, loadTfjsExtractor } from './backbones/extractor';
import { type DownloadOptions, type ResolvedBackbone, defaultCacheDir, resolveBackbone } from './backbones/store';
import { VectorCache } from './data/cache';
import { PREPROCESS_VERSION, THUMB } from './data/decode';
import { type ExtractItem, type ExtractResult, extractAll } from './data/extract';
import { ExtractorPool } from './data/pool';
import { sha256 } from './fsutil';
import type { Progress } from './events';

/** Settings shared by every command that runs a backbone. */
export interface EngineOptions {
  /** Cache folder for backbones and embeddings; default HEADSTART_CACHE_DIR or the user cache dir. */
  cacheDir?: string;
  /** TensorFlow.js backend, default 'auto'. */
  backend?: BackendPreference;
  /** Extraction threads for single-threaded backends; default: cores (at most 4). 1 runs in-process. */
  workers?: number;
  /** Pixel limit per image, default 64 M. */
  maxPixels?: number;
  /** Images per forward pass, default 16. */
  batchSize?: number;
}

export interface OpenedBackbone {
  backbone: ResolvedBackbone;
  backend: BackendInfo;
  cacheDir: string;
  /** Which engine extracts features: 'tfjs-<backend>'. */
  engine: string;
  /** Extracts (through the caches) features of the given images. */
  extract(items: ExtractItem[], progress?: Progress): Promise<ExtractResult>;
  /** Releases the pool and the model. */
  dispose(): void;
}

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
  progress.onEvent?.({ type: 'phase', phase: 'backend', message: 'starting TensorFlow.js' });
  const backend = await initBackend(opts.backend ?? 'auto');
  const backbone = await resolveBackbone(id, cacheDir, progress);
  const engine = `tfjs-${backend.name}`;
  // Features of all TF.js backends agree to float rounding; they share one cache key.
  const key = sha256(`${backbone.modelHash}|${backbone.entry.featureNode}|${backbone.entry.pool ? 'pool' : ''}|${backbone.entry.inputRange.join(',')}|${PREPROCESS_VERSION}|tfjs`).slice(0, 24);
  const workers = backend.multiThreaded ? 1 : (opts.workers ?? defaultWorkers());
  let extractor: (FeatureExtractor & { size?: number }) | undefined;
  let featureSize = backbone.entry.featureSize;
  const getExtractor = async (): Promise<FeatureExtractor & { size?: number }> => {
    if (!extractor) {
      extractor = workers > 1 ? await ExtractorPool.start(backbone, workers, backend.name as BackendPreference) : await loadTfjsExtractor(backbone);
      featureSize = extractor.featureSize;
    }
    return extractor;
  };
  if (!featureSize) await getExtractor(); // local models: measure the feature size
  const thumbs = new VectorCache(cacheDir, `thumb${THUMB}-${PREPROCESS_VERSION}-${backbone.entry.inputSize}`, THUMB * THUMB * 3);
  return {
    backbone: { ...backbone, entry: { ...backbone.entry, featureSize } },
    backend,
    cacheDir,
    engine,
    extract: (items, p = {}) =>
      extractAll(items, getExtractor, new VectorCache(cacheDir, key, featureSize), thumbs, backbone.entry.inputSize, {
        ...p,
        batchSize: opts.batchSize,
        maxPixels: opts.maxPixels,
      }),
    dispose: () => extractor?.dispose(),
  };
}
