import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, rmSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { HeadstartError } from './errors';

/** sha256 of a file's bytes, hex. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false; // absence is the answer, not an error
  }
}

/** Writes a file atomically: a temp file beside it, then rename. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/** Temp folders being filled right now; removed on SIGINT / exit by {@link cleanupPendingDirs}. */
const pendingDirs = new Set<string>();

export function cleanupPendingDirs(): void {
  for (const dir of pendingDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch (err) {
      process.stderr.write(`headstart: could not remove ${dir}: ${String(err)}\n`);
    }
  }
  pendingDirs.clear();
}

/**
 * Fills a folder atomically: `fill` writes into a temp folder next to
 * `target`, which is renamed to `target` only when `fill` resolves. On any
 * error (or cancellation) the temp folder is removed and `target` is untouched.
 * With `overwrite`, an existing target is replaced; otherwise it is an error.
 */
export async function writeDirAtomic<T>(
  target: string,
  fill: (tmpDir: string) => Promise<T>,
  opts: { overwrite?: boolean } = {},
): Promise<T> {
  const parent = path.dirname(path.resolve(target));
  await fs.mkdir(parent, { recursive: true });
  if (!opts.overwrite && (await exists(target))) {
    throw new HeadstartError('EXISTS', `${target} already exists; choose another --out folder or pass --force to replace it`);
  }
  const tmp = path.join(parent, `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  await fs.mkdir(tmp);
  pendingDirs.add(tmp);
  try {
    const result = await fill(tmp);
    if (opts.overwrite && (await exists(target))) {
      const old = `${tmp}.old`;
      await fs.rename(target, old);
      await fs.rename(tmp, target);
      await fs.rm(old, { recursive: true, force: true });
    } else {
      await fs.rename(tmp, target);
    }
    return result;
  } finally {
    pendingDirs.delete(tmp);
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

export async function readJson<T>(file: string, what: string): Promise<T> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new HeadstartError('NOT_FOUND', `cannot read ${what} at ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new HeadstartError('BAD_INPUT', `${what} at ${file} is not valid JSON: ${String(err)}`, { cause: err });
  }
}
