import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Skipped } from '../data/dataset';
import { DecodeError, readAndDecode } from '../data/decode';
import { throwIfAborted } from '../errors';
import type { Progress } from '../events';
import type { LoadedRun } from '../run';

/** Bytes of a model folder's files, raw and gzipped (what a web server sends). */
export async function sizeOf(dir: string, files = ['model.json', 'weights.bin']): Promise<{ bytes: number; gzipBytes: number }> {
  let bytes = 0;
  let gzipBytes = 0;
  for (const f of files) {
    const buf = await fs.readFile(path.join(dir, f));
    bytes += buf.length;
    gzipBytes += gzipSync(buf, { level: 9 }).length;
  }
  return { bytes, gzipBytes };
}

export interface TestSet {
  images: Array<{ path: string; label: number; rgb: Uint8Array }>;
  skipped: Skipped[];
}

/** Decodes the test images once; every candidate is measured on the same pixels. */
export async function decodeTestSet(run: LoadedRun, items: Array<{ path: string; label: string }>, progress: Progress): Promise<TestSet> {
  const size = run.record.backbone.inputSize;
  const images: TestSet['images'] = [];
  const skipped: Skipped[] = [];
  for (const it of items) {
    throwIfAborted(progress.signal);
    try {
      images.push({ path: it.path, label: run.record.labels.indexOf(it.label), rgb: await readAndDecode(it.path, size) });
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      skipped.push({ path: it.path, reason: err.message });
    }
  }
  return { images, skipped };
}

