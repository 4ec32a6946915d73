import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { HeadstartError } from '../errors';

/** Real paths (links resolved) of the folders a worker may read; each must exist. */
export async function resolveRoots(roots: string[]): Promise<string[]> {
  if (!roots.length) throw new HeadstartError('BAD_INPUT', 'worker needs --data-root DIR (the folder, as mounted on this machine, that holds the images); repeat it for several');
  return Promise.all(
    roots.map(async (r) => {
      try {
        const real = await fs.realpath(r);
        if (!(await fs.stat(real)).isDirectory()) throw new HeadstartError('BAD_INPUT', `--data-root ${r} is not a folder`);
        return real;
      } catch (err) {
        if (err instanceof HeadstartError) throw err;
        throw new HeadstartError('NOT_FOUND', `--data-root ${r} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
      }
    }),
  );
}

const inside = (root: string, p: string): boolean => {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
};

/**
 * Where `p` lies: 'inside' a root (as written and with links resolved),
 * 'outside' every root, or 'missing' (inside as written, but it cannot be
 * resolved: a per-item read failure, not a refusal).
 */
export async function placeOf(p: string, roots: string[]): Promise<{ where: 'inside' } | { where: 'outside' } | { where: 'missing'; code: string }> {
  if (!path.isAbsolute(p)) return { where: 'outside' };
  const lexical = path.resolve(p);
  // The written path must already name a root: `..` segments or another prefix are refused before touching the disk.
  let real: string;
  try {
    real = await fs.realpath(lexical);
  } catch (err) {
    if (!roots.some((r) => inside(r, lexical))) return { where: 'outside' };
    return { where: 'missing', code: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
  return roots.some((r) => inside(r, real)) ? { where: 'inside' } : { where: 'outside' };
}
