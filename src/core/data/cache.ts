import { mkdirSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../fsutil';

/**
 * On-disk cache of float32 vectors (features, thumbnails), one file per
 * image content hash, in a folder per key. The key names everything that
 * shapes the vector (backbone model hash, preprocessing version, engine), and
 * the file name is the image's content hash: a changed file or a changed
 * model can never be served old features.
 */
export class VectorCache {
  readonly dir: string;
  /** Sub-folders this cache made or found: one mkdir per folder, not one per vector. */
  private readonly made = new Set<string>();
  constructor(cacheRoot: string, readonly key: string, readonly length: number) {
    this.dir = path.join(cacheRoot, 'embeddings', key);
  }

  private file(hash: string): string {
    return path.join(this.dir, hash.slice(0, 2), `${hash}.f32`);
  }

  /** The cached vector, or undefined (absent, or the wrong length: treated as absent). */
  async get(hash: string): Promise<Float32Array | undefined> {
    let buf: Buffer;
    try {
      buf = await fs.readFile(this.file(hash));
    } catch {
      return undefined; // not cached yet
    }
    if (buf.length !== this.length * 4) return undefined;
    const out = new Float32Array(this.length);
    new Uint8Array(out.buffer).set(buf);
    return out;
  }

  /**
   * Writes one vector atomically. Synchronously on purpose: a vector is a few
   * kilobytes into the page cache (~0.1 ms of CPU), while the async way
   * (mkdir, open, write, close, rename through libuv's thread pool) cost 3-5
   * times that per file and queued behind sharp's decodes on the same pool:
   * the largest cost of a cold extraction after decoding (issue 12).
   */
  async put(hash: string, v: Float32Array): Promise<void> {
    const file = this.file(hash);
    const dir = path.dirname(file);
    const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    if (!this.made.has(dir)) {
      mkdirSync(dir, { recursive: true });
      this.made.add(dir);
    }
    try {
      writeFileAtomicSync(file, bytes);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // The folder went away since it was made (the cache was cleared meanwhile): make it again, once.
      mkdirSync(dir, { recursive: true });
      writeFileAtomicSync(file, bytes);
    }
  }
}
