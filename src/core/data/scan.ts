import { isCancelled, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { type DiscoveredDataset, type Sample, type Skipped, discoverDataset } from './dataset';
import { UnreadableFileError, hashRegularFile } from './files';

export interface ScannedDataset extends DiscoveredDataset {
  /** Samples with the sha256 of their content. */
  hashed: Array<Sample & { hash: string }>;
}

/**
 * Discovers DATA and hashes every file's content (the embedding cache key).
 * Only regular files within MAX_FILE_BYTES are read; anything else is skipped
 * with a reason. Cancellation is checked between files and between the 1 MiB
 * chunks of one file.
 */
export async function scanDataset(data: string, progress: Progress = {}): Promise<ScannedDataset> {
  const emit = progress.onEvent ?? (() => undefined);
  emit({ type: 'phase', phase: 'scan', message: `scanning ${data}` });
  const found = await discoverDataset(data, progress.signal);
  throwIfAborted(progress.signal);
  const hashed: Array<Sample & { hash: string }> = [];
  const skipped: Skipped[] = [...found.skipped];
  let next = 0;
  let done = 0;
  const lane = async (): Promise<void> => {
    while (next < found.samples.length) {
      const s = found.samples[next++]!;
      throwIfAborted(progress.signal);
      try {
        hashed.push({ ...s, hash: await hashRegularFile(s.path, progress.signal) });
      } catch (err) {
        if (isCancelled(err) || !(err instanceof UnreadableFileError)) throw err;
        skipped.push({ path: s.path, reason: err.message });
      }
      if (++done % 200 === 0) emit({ type: 'progress', phase: 'scan', done, total: found.samples.length, unit: 'files' });
    }
  };
  await Promise.all(Array.from({ length: 8 }, lane));
  hashed.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  return { ...found, skipped, hashed };
}
