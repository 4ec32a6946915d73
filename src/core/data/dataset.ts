import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { HeadstartError, throwIfAborted } from '../errors';
import { UnreadableFileError, kindOf, readRegularFile } from './files';

/** File name extensions Headstart decodes. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.bmp'];

/** One labelled image file. `rel` is relative to the dataset root (manifest folder or class-folder root). */
export interface Sample {
  path: string;
  rel: string;
  label: string;
}

/** A file left out of the dataset, and why. */
export interface Skipped {
  path: string;
  reason: string;
}

export interface DiscoveredDataset {
  root: string;
  kind: 'folders' | 'csv' | 'jsonl';
  samples: Sample[];
  skipped: Skipped[];
}

function isImage(file: string): boolean {
  return IMAGE_EXTENSIONS.includes(path.extname(file).toLowerCase());
}

/** The files a class-folder walk keeps: by extension, and what to call them in skip reasons. */
export interface FileKind {
  extensions: string[];
  what: string;
}

const IMAGE_KIND: FileKind = { extensions: IMAGE_EXTENSIONS, what: 'an image type Headstart reads' };

const errCode = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? String(err);

/** True when `inner` is `outer` or lies inside it (real paths). */
function within(inner: string, outer: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * One class folder being walked: its label, its real path, and what the walk
 * must not enter (the dataset root and the other class folders).
 */
interface ClassWalk {
  label: string;
  real: string;
  rootReal: string;
  /** Real paths of every class folder, by label. */
  classes: Map<string, string>;
  /** Real paths of the folders of this class already walked (loops). */
  visited: Set<string>;
  /** Checked once per folder: a cancel stops discovery of a large tree. */
  signal?: AbortSignal;
  /** Which files are examples (images, or .txt for text). */
  accept: FileKind;
}

/**
 * Why a folder reached through a link inside class `c` is not walked, or
 * undefined when it may be. The rule that keeps labels right: a folder inside
 * this class folder is walked once (a second visit is a loop); a folder that
 * is, or lies inside, another class folder is skipped (its images belong to
 * that class, never to this one); the dataset root or anything above it is a
 * loop; a folder outside the dataset is walked as part of this class.
 */
function linkedFolderRefusal(real: string, c: ClassWalk): string | undefined {
  if (within(real, c.real)) return c.visited.has(real) ? 'folder link loop (already visited)' : undefined;
  for (const [label, classReal] of c.classes) {
    if (label !== c.label && within(real, classReal)) return `links into class folder '${label}': its images are read once, as '${label}', not as '${c.label}'`;
  }
  if (within(c.rootReal, real)) return 'folder link loop (it links to the dataset root or above)';
  if (within(real, c.rootReal)) return 'links to a folder of the dataset root that is not a class folder';
  return c.visited.has(real) ? 'folder link loop (already visited)' : undefined;
}

/** An entry's type, following a link: the stats, or the reason it cannot be followed. */
async function statEntry(p: string, e: import('node:fs').Dirent): Promise<{ dir: boolean; file: boolean; other?: string } | { reason: string }> {
  if (!e.isSymbolicLink()) {
    if (e.isDirectory() || e.isFile()) return { dir: e.isDirectory(), file: e.isFile() };
    return { dir: false, file: false, other: await fs.lstat(p).then((st) => kindOf(st), () => 'not a regular file') };
  }
  try {
    const st = await fs.stat(p);
    return { dir: st.isDirectory(), file: st.isFile(), other: st.isDirectory() || st.isFile() ? undefined : kindOf(st) };
  } catch (err) {
    const code = errCode(err);
    return { reason: code === 'ELOOP' ? 'symbolic link loop' : `broken link (${code})` };
  }
}

/** Walks a folder of class `c` at any depth, following links to folders by the rule of linkedFolderRefusal. */
async function walk(dir: string, c: ClassWalk, files: string[], skipped: Skipped[]): Promise<void> {
  let real: string;
  try {
    real = await fs.realpath(dir);
  } catch (err) {
    skipped.push({ path: dir, reason: `cannot resolve folder (${errCode(err)})` });
    return;
  }
  const refused = linkedFolderRefusal(real, c);
  if (refused) {
    skipped.push({ path: dir, reason: refused });
    return;
  }
  c.visited.add(real);
  throwIfAborted(c.signal);
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    skipped.push({ path: dir, reason: `cannot list folder (${errCode(err)})` });
    return;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.startsWith('.')) continue; // .DS_Store, .git, our own temp files
    const p = path.join(dir, e.name);
    const t = await statEntry(p, e);
    if ('reason' in t) skipped.push({ path: p, reason: t.reason });
    else if (t.dir) await walk(p, c, files, skipped);
    else if (!t.file) skipped.push({ path: p, reason: `not a regular file (${t.other}); only regular files are read` });
    else if (c.accept.extensions.includes(path.extname(p).toLowerCase())) files.push(p);
    else skipped.push({ path: p, reason: `not ${c.accept.what} (${c.accept.extensions.join(', ')})` });
  }
}

/**
 * The class folders of DATA: its sub-folders, sorted. A top-level link to a
 * folder is a class of its own, unless it resolves to the dataset root (or
 * above), into another class folder, or to the same folder as another class:
 * then it is skipped with a reason, so no image is read under two labels.
 */
async function classFolders(root: string, rootReal: string, skipped: Skipped[]): Promise<Map<string, { path: string; real: string }>> {
  const entries = (await fs.readdir(root, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
  const found: Array<{ name: string; path: string; real: string; link: boolean }> = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = path.join(root, e.name);
    const t = await statEntry(p, e);
    if ('reason' in t) skipped.push({ path: p, reason: t.reason });
    else if (!t.dir) skipped.push({ path: p, reason: 'not inside a class folder (DATA needs one sub-folder per class)' });
    else found.push({ name: e.name, path: p, real: await fs.realpath(p), link: e.isSymbolicLink() });
  }
  const classes = new Map<string, { path: string; real: string }>();
  // Real folders first: a link never takes a class folder's images from it.
  for (const f of [...found.filter((f) => !f.link), ...found.filter((f) => f.link)]) {
    const other = [...classes].find(([, c]) => within(f.real, c.real) || within(c.real, f.real));
    if (within(rootReal, f.real)) skipped.push({ path: f.path, reason: 'folder link loop (it links to the dataset root or above)' });
    else if (f.link && within(f.real, rootReal) && !other) skipped.push({ path: f.path, reason: 'links to a folder inside the dataset that is not a class folder' });
    else if (other) skipped.push({ path: f.path, reason: `links to the folder of class '${other[0]}' (or into it or around it): read once, as '${other[0]}'` });
    else classes.set(f.name.normalize('NFC'), { path: f.path, real: f.real });
  }
  return new Map([...classes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Walks a folder of class folders (links handled as above), keeping the files of `accept`. */
export async function discoverFolders(root: string, signal?: AbortSignal, accept: FileKind = IMAGE_KIND): Promise<DiscoveredDataset> {
  const samples: Sample[] = [];
  const skipped: Skipped[] = [];
  const rootReal = await fs.realpath(root);
  const classes = await classFolders(root, rootReal, skipped);
  const reals = new Map([...classes].map(([label, c]) => [label, c.real]));
  for (const [label, c] of classes) {
    const files: string[] = [];
    await walk(c.path, { label, real: c.real, rootReal, classes: reals, visited: new Set(), signal, accept }, files, skipped);
    for (const f of files) samples.push({ path: f, rel: path.relative(root, f), label });
  }
  return { root, kind: 'folders', samples, skipped };
}

/** Resolves a manifest path; refuses paths outside the manifest's folder (also through links). */
async function manifestPath(root: string, rootReal: string, p: string, line: number): Promise<{ ok: true; path: string } | { ok: false; reason: string }> {
  if (!p) return { ok: false, reason: `line ${line}: empty path` };
  const abs = path.resolve(root, p);
  const rel = path.relative(root, abs);
  if (rel.startsWith('..') || path.isAbsolute(rel)) return { ok: false, reason: `line ${line}: path is outside the manifest's folder` };
  try {
    const real = await fs.realpath(abs);
    if (!within(real, rootReal)) return { ok: false, reason: `line ${line}: path links outside the manifest's folder` };
    // Only regular files: opening a FIFO named here would wait for a writer for ever.
    const st = await fs.stat(real);
    if (!st.isFile()) return { ok: false, reason: `line ${line}: not a regular file (${kindOf(st)}); only regular files are read` };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, reason: `line ${line}: ${code === 'ENOENT' ? 'file not found' : code === 'ELOOP' ? 'symbolic link loop' : `cannot read (${code ?? String(err)})`}` };
  }
  return { ok: true, path: abs };
}

/** A JSONL label as text: a string as it is, a finite number as its string; anything else undefined. Absent: ''. */
function jsonLabel(v: unknown): string | undefined {
  if (v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return undefined;
}

function describeJson(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

async function discoverManifest(file: string): Promise<DiscoveredDataset> {
  const root = path.dirname(path.resolve(file));
  const rootReal = await fs.realpath(root);
  const kind = file.toLowerCase().endsWith('.jsonl') ? 'jsonl' : 'csv';
  let text: string;
  try {
    text = (await readRegularFile(file)).toString('utf8');
  } catch (err) {
    if (!(err instanceof UnreadableFileError)) throw err;
    throw new HeadstartError('BAD_INPUT', `manifest ${file}: ${err.message}`);
  }
  const rows: Array<{ path: string; label: string; line: number }> = [];
  const skipped: Skipped[] = [];
  if (kind === 'csv') {
    let records: string[][];
    try {
      records = parseCsv(text, { bom: true, skip_empty_lines: true, relax_column_count: true, trim: true }) as string[][];
    } catch (err) {
      throw new HeadstartError('BAD_INPUT', `${file} is not a valid CSV manifest: ${String((err as Error).message)}`);
    }
    let start = 0;
    const head = records[0]?.map((c) => c.toLowerCase());
    let pi = 0;
    let li = 1;
    if (head && head.includes('path') && head.includes('label')) {
      pi = head.indexOf('path');
      li = head.indexOf('label');
      start = 1;
    }
    for (let i = start; i < records.length; i++) rows.push({ path: records[i]![pi] ?? '', label: records[i]![li] ?? '', line: i + 1 });
  } else {
    const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
    lines.forEach((l, i) => {
      if (!l.trim()) return;
      try {
        const o = JSON.parse(l) as { path?: unknown; label?: unknown } | null;
        const label = jsonLabel(o?.label);
        if (label === undefined) skipped.push({ path: `${file}:${i + 1}`, reason: `line ${i + 1}: label must be a string or a number (got ${describeJson(o?.label)})` });
        else rows.push({ path: typeof o?.path === 'string' ? o.path : '', label, line: i + 1 });
      } catch (err) {
        skipped.push({ path: `${file}:${i + 1}`, reason: `line ${i + 1}: not valid JSON (${(err as Error).message})` });
      }
    });
  }
  const samples: Sample[] = [];
  for (const r of rows) {
    if (!r.label) {
      skipped.push({ path: r.path || `${file}:${r.line}`, reason: `line ${r.line}: no label` });
      continue;
    }
    const res = await manifestPath(root, rootReal, r.path, r.line);
    if (!res.ok) {
      skipped.push({ path: r.path, reason: res.reason });
      continue;
    }
    if (!isImage(res.path)) {
      skipped.push({ path: res.path, reason: `line ${r.line}: not an image type Headstart reads` });
      continue;
    }
    samples.push({ path: res.path, rel: path.relative(root, res.path), label: r.label.normalize('NFC') });
  }
  return { root, kind, samples, skipped };
}

/**
 * Finds the labelled images of DATA: a folder with one sub-folder per class,
 * or a CSV / JSONL manifest of `path,label`.
 */
export async function discoverDataset(data: string, signal?: AbortSignal): Promise<DiscoveredDataset> {
  let st: import('node:fs').Stats;
  try {
    st = await fs.stat(data);
  } catch (err) {
    throw new HeadstartError('NOT_FOUND', `dataset ${data} not found (${(err as NodeJS.ErrnoException).code ?? String(err)}); give a folder with one sub-folder per class, or a .csv / .jsonl manifest`);
  }
  if (st.isDirectory()) return discoverFolders(path.resolve(data), signal);
  if (/\.(csv|jsonl)$/i.test(data)) return discoverManifest(data);
  throw new HeadstartError('BAD_INPUT', `${data} is neither a folder nor a .csv / .jsonl manifest`);
}
