import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { writeFileAtomic } from '../fsutil';

/**
 * On-disk cache of float32 vectors (features, thumbnails), one file per
 * image content hash, in a folder per key. The key names everything that
 * shapes the vector (backbone model hash, preprocessing version, engine), and
 * the file name is the image's content hash: a changed file or a changed
 * model can never be served old features.
 */
export class VectorCache {
  readonly dir: string;
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

  async put(hash: string, v: Float32Array): Promise<void> {
    await writeFileAtomic(this.file(hash), new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }
}
