import { createHash, randomBytes } from 'node:crypto';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { UnreadableFileError, hashRegularFile, readRegularFile } from './data/files';
import { HeadstartError } from './errors';

/**
 * sha256 of a file's bytes, hex: a regular file within the size cap, opened
 * without blocking (a FIFO or device is refused with UnreadableFileError, it
 * cannot hang the caller).
 */
export function sha256File(file: string, signal?: AbortSignal): Promise<string> {
  return hashRegularFile(file, signal);
}

/** The reason a file could not be read, for a skip list. */
export function readFailure(err: unknown): string {
  return err instanceof UnreadableFileError ? err.message : `cannot read file (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
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

/**
 * writeFileAtomic without the thread pool, for small files in a folder that
 * exists: a temp file beside `file`, then a rename. Throws the fs error (the
 * temp file removed), ENOENT when the folder is gone.
 */
export function writeFileAtomicSync(file: string, data: Uint8Array): void {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
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
 * Low level (the backbone cache uses it): user-facing output folders go
 * through {@link writeOutDir}, which decides whether a target may be replaced.
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
      try {
        await fs.rename(tmp, target);
      } catch (err) {
        await fs.rename(old, target); // the previous output goes back where it was
        throw err;
      }
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

// ---------------------------------------------------------------------------
// Output folders (RUN_DIR, export folders): the one place that decides what
// `--out` may be and what `--force` may replace.

/** What a Headstart output folder holds; written into its marker file. */
export type OutKind = 'run' | 'export' | 'sweep';

/** Marker file inside every folder Headstart writes as a command's output. */
export const OUT_MARKER = '.headstart.json';
export const OUT_MARKER_VERSION = 1;

/** An input of a command: its path and its name in messages ('DATA', 'the run being exported'). */
export interface OutInput {
  path: string;
  what: string;
}

/** Where an output folder may go and what `--force` may replace. */
export interface OutGuard {
  kind: OutKind;
  /** Replace an existing folder, only if Headstart wrote it as this kind. */
  force?: boolean;
  /** The command's inputs (DATA, the run being exported), each with what to call it: the output may not be, contain or lie inside one. A file counts as its folder. */
  inputs?: OutInput[];
  /** More folders the output may not be or contain (the extension passes its workspace folders). The current folder, the home folder and the file-system root always count. */
  protectedRoots?: string[];
}

/** Output options of every command that writes a folder (train, export, distill). */
export interface OutOptions {
  /** Replace an existing output folder, only one that Headstart wrote as the same kind (run or export). */
  force?: boolean;
  /** Folders an output may never be or contain, besides the current, home and root folders: the extension passes its workspace folders. */
  protectedRoots?: string[];
}

/** The guard of a command's output of `kind`, given its inputs (DATA, the run it reads) and its options. */
export function outGuard(kind: OutKind, inputs: OutInput[], opts: OutOptions): OutGuard {
  return { kind, force: opts.force, inputs, protectedRoots: opts.protectedRoots };
}

/** Files and folders Headstart writes into an output folder of each kind (legacy folders without a marker must hold nothing else). */
const OUT_ENTRIES: Record<OutKind, string[]> = {
  run: ['run.json', 'head', 'top'],
  export: ['model.json', 'weights.bin', 'model.onnx', 'labels.json', 'metadata.json', 'inference.mjs', 'report.json', 'README.md'],
  sweep: ['leaderboard.json', 'trials'],
};

/** True when `inner` is `outer` or lies inside it (both absolute, real). */
export function isInside(inner: string, outer: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

async function statOrUndefined(p: string): Promise<import('node:fs').Stats | undefined> {
  try {
    return await fs.stat(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ENOTDIR: a file on the way; the caller walks up and names it.
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/**
 * The real path of `p` (symlinks resolved, case as the file system gives
 * it), also for a path that does not exist yet: its nearest existing
 * ancestor, resolved, plus the rest. A file where a folder is needed on the
 * way is a one-line error.
 */
async function realOutPath(p: string, shown: string): Promise<{ real: string; exists: boolean; isDir: boolean }> {
  const abs = path.resolve(p);
  const rest: string[] = [];
  let at = abs;
  for (;;) {
    const st = await statOrUndefined(at);
    if (st) {
      if (rest.length && !st.isDirectory()) throw new HeadstartError('BAD_INPUT', `cannot create ${shown}: ${at} is a file, not a folder`);
      const real = path.join(await fs.realpath(at), ...rest.reverse());
      return { real, exists: rest.length === 0, isDir: st.isDirectory() };
    }
    const up = path.dirname(at);
    if (up === at) return { real: abs, exists: false, isDir: false };
    rest.push(path.basename(at));
    at = up;
  }
}

/** Real path of an input; a file (a manifest) stands for its folder. */
async function realInput(p: string): Promise<string> {
  const r = await realOutPath(p, p);
  return r.exists && !r.isDir ? path.dirname(r.real) : r.real;
}

/** Largest marker / legacy record read when judging a folder (a run.json of a large dataset fits). */
const MAX_RECORD_BYTES = 256 << 20;

/** A folder's marker: a regular file opened without blocking (a FIFO named like it cannot hang the check). */
async function readMarker(dir: string): Promise<{ kind?: unknown; host?: unknown }> {
  return JSON.parse((await readRegularFile(path.join(dir, OUT_MARKER), 64 << 10)).toString('utf8')) as { kind?: unknown; host?: unknown };
}

/** Why Headstart may not replace this existing folder, or undefined when it may (it carries the marker of `kind`, or is a legacy output of that kind). */
async function notOurs(dir: string, kind: OutKind): Promise<string | undefined> {
  let marker: { kind?: unknown } | undefined;
  if (await exists(path.join(dir, OUT_MARKER))) {
    try {
      marker = await readMarker(dir);
    } catch (err) {
      return `its ${OUT_MARKER} is unreadable (${describeErrno(err)})`;
    }
  }
  if (marker) return marker.kind === kind ? undefined : `it is a Headstart ${String(marker.kind)} folder, not a ${kind} folder`;
  // Outputs of versions before the marker: accepted only when they hold nothing but what Headstart writes, so nothing of the user's can go with them.
  const names = await fs.readdir(dir);
  const shape = kind === 'run' ? 'run.json' : 'report.json';
  // Sweep folders carried the marker from their first version with a guard: none is legacy.
  if (kind !== 'sweep' && names.includes(shape) && names.every((n) => OUT_ENTRIES[kind].includes(n))) {
    try {
      const j = JSON.parse((await readRegularFile(path.join(dir, shape), MAX_RECORD_BYTES)).toString('utf8')) as Record<string, unknown>;
      const ok = kind === 'run' ? typeof j.version === 'number' && Array.isArray(j.labels) && Array.isArray(j.samples) : typeof j.outDir === 'string' && typeof j.exported === 'object' && typeof j.float32 === 'object';
      if (ok) return undefined;
    } catch (err) {
      return `its ${shape} is not Headstart's (${describeErrno(err)})`;
    }
  }
  return `it was not written by Headstart (no ${OUT_MARKER} marker)`;
}

function describeErrno(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err instanceof Error ? err.message.split('\n')[0]! : String(err));
}

/**
 * Checks an output folder before any work and again before the rename:
 * `--out ""` is refused; a file on the way is a one-line error; the folder
 * may not be, contain or lie inside an input (DATA, the run being read), nor
 * be or contain the current folder, the home folder, the file-system root or
 * an extra protected root; an existing folder is replaced only with `force`
 * and only when Headstart wrote it as this kind. Returns the absolute path.
 */
export async function checkOutDir(target: string, guard: OutGuard): Promise<string> {
  if (!target.trim()) throw new HeadstartError('BAD_INPUT', '--out is empty; name the folder to create');
  const abs = path.resolve(target);
  const out = await realOutPath(abs, target);
  const refuse = (why: string): never => {
    throw new HeadstartError(out.exists ? 'EXISTS' : 'BAD_INPUT', `refusing to ${out.exists ? 'replace' : 'write'} ${abs}: ${why}; choose another --out folder`);
  };
  for (const input of guard.inputs ?? []) {
    const inp = await realInput(input.path);
    const name = `${input.what} (${input.path})`;
    if (out.real === inp) refuse(`it is ${name}`);
    if (isInside(out.real, inp)) refuse(`it lies inside ${name}`);
    if (out.exists && isInside(inp, out.real)) refuse(`it contains ${name}`);
  }
  if (!out.exists) return abs;
  const roots: Array<[string, string]> = [
    [process.cwd(), 'the current folder'],
    [os.homedir(), 'the home folder'],
    [path.parse(out.real).root, 'the file-system root'],
    ...(guard.protectedRoots ?? []).map((r): [string, string] => [r, `the workspace folder ${r}`]),
  ];
  for (const [root, name] of roots) {
    const real = await realInput(root);
    if (isInside(real, out.real)) refuse(out.real === real ? `it is ${name}` : `it contains ${name}`);
  }
  if (!out.isDir) refuse('it is a file');
  if (!guard.force) throw new HeadstartError('EXISTS', `${target} already exists; choose another --out folder or pass --force to replace it`);
  const why = await notOurs(out.real, guard.kind);
  if (why) refuse(`${why}, so --force does not replace it`);
  return abs;
}

/** Writes Headstart's marker of `kind` into a folder. */
async function writeMarker(dir: string, kind: OutKind): Promise<void> {
  // The host tells a stale-temp sweep on a shared folder (NFS, a bind mount) whose PID this is.
  await fs.writeFile(path.join(dir, OUT_MARKER), `${JSON.stringify({ app: 'headstart', kind, version: OUT_MARKER_VERSION, host: os.hostname() })}\n`);
}

/**
 * Writes a command's output folder: checks it ({@link checkOutDir}), fills a
 * temp folder beside it that carries the marker from its first moment,
 * checks again right before the rename (the folder may have appeared or
 * changed meanwhile) and renames it into place.
 */
export async function writeOutDir<T>(target: string, guard: OutGuard, fill: (tmpDir: string) => Promise<T>): Promise<T> {
  const abs = await checkOutDir(target, guard);
  return writeDirAtomic(
    abs,
    async (tmp) => {
      await writeMarker(tmp, guard.kind);
      const result = await fill(tmp);
      await checkOutDir(target, guard);
      return result;
    },
    { overwrite: guard.force },
  );
}

const TEMP_NAME = /^\.(.+)\.tmp-(\d+)-[0-9a-f]{8}(\.old)?$/;

/** Whether process `pid` is gone (ESRCH); a process of another user (EPERM) is alive. */
function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Removes temp folders of earlier commands that were killed before they
 * finished (`.NAME.tmp-PID-HEX`) beside `target`: only those whose process
 * is gone and that are empty or carry Headstart's marker. A `.old` folder
 * (the previous output, moved aside while being replaced) goes back to its
 * name when that name is free, so a kill during --force loses nothing.
 * Returns the names removed.
 */
export async function removeStaleTemps(target: string): Promise<string[]> {
  const parent = path.dirname(path.resolve(target));
  let names: string[];
  try {
    names = await fs.readdir(parent);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return []; // nothing beside it yet
    throw err;
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m || !processGone(Number(m[2]))) continue;
    const dir = path.join(parent, name);
    const st = await fs.lstat(dir);
    if (!st.isDirectory()) continue;
    const entries = await fs.readdir(dir);
    if (entries.length && !entries.includes(OUT_MARKER)) continue; // not ours: leave it
    // A temp of another machine on a shared folder: its PID says nothing here.
    if (!m[3] && entries.length && (await markerHost(dir)) !== os.hostname()) continue;
    if (m[3] && !(await exists(path.join(parent, m[1]!)))) {
      await fs.rename(dir, path.join(parent, m[1]!));
      continue;
    }
    await fs.rm(dir, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** The host a temp folder's marker names ('' when it names none or cannot be read). */
async function markerHost(dir: string): Promise<string> {
  try {
    const h = (await readMarker(dir)).host;
    return typeof h === 'string' ? h : '';
  } catch (err) {
    void err; // unreadable: treated as another machine's, so it is left alone
    return '';
  }
}

/** The start of every command that writes an output folder: stale temps beside it go, then the folder is checked. */
export async function prepareOutDir(target: string, guard: OutGuard): Promise<string> {
  const abs = await checkOutDir(target, guard);
  await removeStaleTemps(abs);
  return abs;
}
