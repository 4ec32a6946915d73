import type { FeatureExtractor } from '../backbones/extractor';
import { throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { VectorCache } from './cache';
import type { Skipped } from './dataset';
import { type AugmentView, applyView } from './augment';
import { DecodeError, THUMB, readAndDecode, thumbnail } from './decode';

/** One image to extract: a path and its content hash (the cache key). */
export interface ExtractItem {
  path: string;
  /** Cache key: the content hash, or for an augmented view the view's key. */
  hash: string;
  /** An augmented view to apply after decoding (training images only). */
  view?: AugmentView;
}

export interface ExtractOptions extends Progress {
  /** Images per forward pass, default 16. */
  batchSize?: number;
  /** Images with more pixels are refused before decoding. */
  maxPixels?: number;
  /** Decodes in flight at once (sharp runs them on its own threads), default 4. */
  decodeConcurrency?: number;
}

export interface ExtractResult {
  /** Features by content hash. */
  features: Map<string, Float32Array>;
  /** THUMB x THUMB x 3 raw-pixel thumbnails by content hash (for the baseline). */
  thumbs: Map<string, Float32Array>;
  /** Files that could not be decoded, with the reason. */
  failed: Skipped[];
  /** Images run through the backbone / served from the cache. */
  computed: number;
  cached: number;
  /** Backbone images per second over the computed images (0 when all were cached). */
  imagesPerSecond: number;
  seconds: number;
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const run = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  return out;
}

/**
 * Computes features (and raw-pixel thumbnails) for every item, reading from
 * and writing to the caches. Decoding of the next batches overlaps with the
 * forward pass of the current ones; with an ExtractorPool several batches run
 * at once. Batches are formed the same way whatever the pool size, so results
 * do not depend on it. Cancellation takes effect within one batch.
 */
export async function extractAll(
  items: ExtractItem[],
  getExtractor: () => Promise<FeatureExtractor & { size?: number }>,
  featureCache: VectorCache,
  thumbCache: VectorCache,
  inputSize: number,
  opts: ExtractOptions = {},
): Promise<ExtractResult> {
  const started = Date.now();
  const emit = opts.onEvent ?? (() => undefined);
  const features = new Map<string, Float32Array>();
  const thumbs = new Map<string, Float32Array>();
  const failed: Skipped[] = [];
  const unique = new Map<string, string[]>();
  const views = new Map<string, AugmentView>();
  for (const it of items) {
    const paths = unique.get(it.hash);
    if (paths) paths.push(it.path);
    else unique.set(it.hash, [it.path]);
    if (it.view) views.set(it.hash, it.view);
  }

  const missing: Array<{ hash: string; path: string; view?: AugmentView }> = [];
  for (const [hash, paths] of unique) {
    throwIfAborted(opts.signal);
    const [f, t] = await Promise.all([featureCache.get(hash), thumbCache.get(hash)]);
    if (f && t) {
      features.set(hash, f);
      thumbs.set(hash, t);
    } else missing.push({ hash, path: paths[0]!, view: views.get(hash) });
  }
  const cached = features.size;
  emit({ type: 'phase', phase: 'extract', message: missing.length ? `extracting features of ${missing.length} images (${cached} cached)` : `all ${cached} images cached; no backbone pass needed` });
  if (!missing.length) return { features, thumbs, failed, computed: 0, cached, imagesPerSecond: 0, seconds: (Date.now() - started) / 1000 };

  const extractor = await getExtractor();
  const batchSize = opts.batchSize ?? 16;
  const batches: Array<typeof missing> = [];
  for (let i = 0; i < missing.length; i += batchSize) batches.push(missing.slice(i, i + batchSize));
  const px = inputSize * inputSize * 3;
  let done = 0;
  const t0 = Date.now();
  // Two batches decode while one runs per engine thread: the engine never waits for pixels.
  const inFlight = Math.max(1, extractor.size ?? 1) + 2;

  const decodeBatch = async (batch: typeof missing) => {
    const decoded = await mapLimit(batch, opts.decodeConcurrency ?? 4, async (it) => {
      try {
        const rgb = await readAndDecode(it.path, inputSize, opts.maxPixels);
        return { it, rgb: it.view ? await applyView(rgb, inputSize, it.view) : rgb };
      } catch (err) {
        if (!(err instanceof DecodeError)) throw err;
        for (const p of unique.get(it.hash)!) failed.push({ path: p, reason: err.message });
        return { it, rgb: undefined };
      }
    });
    return decoded.filter((d): d is { it: (typeof missing)[number]; rgb: Uint8Array } => d.rgb !== undefined);
  };

  const runBatch = async (batch: typeof missing): Promise<void> => {
    throwIfAborted(opts.signal);
    const ok = await decodeBatch(batch);
    throwIfAborted(opts.signal);
    if (ok.length) {
      const pixels = new Float32Array(ok.length * px);
      ok.forEach((d, i) => pixels.set(d.rgb, i * px));
      const out = await extractor.extract(pixels, ok.length);
      const fs = out.length / ok.length;
      await Promise.all(
        ok.map(async (d, i) => {
          const f = out.slice(i * fs, (i + 1) * fs);
          const t = thumbnail(d.rgb, inputSize);
          features.set(d.it.hash, f);
          thumbs.set(d.it.hash, t);
          await featureCache.put(d.it.hash, f);
          await thumbCache.put(d.it.hash, t);
        }),
      );
    }
    done += batch.length;
    const rate = done / Math.max(0.001, (Date.now() - t0) / 1000);
    emit({ type: 'progress', phase: 'extract', done, total: missing.length, rate, unit: 'images', eta: (missing.length - done) / Math.max(rate, 1e-6) });
  };

  // A bounded window of batches in flight: decode of later batches overlaps the forward pass.
  let next = 0;
  let failure: { err: unknown } | undefined;
  const lanes = Array.from({ length: Math.min(inFlight, batches.length) }, async () => {
    while (next < batches.length && !failure) {
      const b = batches[next++]!;
      try {
        await runBatch(b);
      } catch (err) {
        failure ??= { err };
      }
    }
  });
  // Every lane settles before this returns or throws: no batch is left running
  // in an engine thread when the caller disposes of it (or the process exits).
  await Promise.all(lanes);
  if (failure) throw failure.err;
  const computed = missing.length - failed.length;
  const seconds = (Date.now() - t0) / 1000;
  return { features, thumbs, failed, computed, cached, imagesPerSecond: computed / Math.max(seconds, 0.001), seconds: (Date.now() - started) / 1000 };
}

export { THUMB };
