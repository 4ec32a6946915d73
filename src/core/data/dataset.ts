import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { HeadstartError } from '../errors';

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

/** Walks a class folder at any depth, following links to folders once (loops are skipped with a reason). */
async function walk(dir: string, visited: Set<string>, files: string[], skipped: Skipped[]): Promise<void> {
  let real: string;
  try {
    real = await fs.realpath(dir);
  } catch (err) {
    skipped.push({ path: dir, reason: `cannot resolve folder (${(err as NodeJS.ErrnoException).code ?? String(err)})` });
    return;
  }
  if (visited.has(real)) {
    skipped.push({ path: dir, reason: 'folder link loop (already visited)' });
    return;
  }
  visited.add(real);
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    skipped.push({ path: dir, reason: `cannot list folder (${(err as NodeJS.ErrnoException).code ?? String(err)})` });
    return;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.startsWith('.')) continue; // .DS_Store, .git, our own temp files
    const p = path.join(dir, e.name);
    let isDir = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      try {
        const st = await fs.stat(p);
        isDir = st.isDirectory();
        isFile = st.isFile();
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        skipped.push({ path: p, reason: code === 'ELOOP' ? 'symbolic link loop' : `broken link (${code ?? String(err)})` });
        continue;
      }
    }
    if (isDir) await walk(p, visited, files, skipped);
    else if (isFile) {
      if (isImage(p)) files.push(p);
      else skipped.push({ path: p, reason: `not an image type Headstart reads (${IMAGE_EXTENSIONS.join(', ')})` });
    }
  }
}

async function discoverFolders(root: string): Promise<DiscoveredDataset> {
  const samples: Sample[] = [];
  const skipped: Skipped[] = [];
  const entries = (await fs.readdir(root, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
  const visited = new Set<string>([await fs.realpath(root)]);
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = path.join(root, e.name);
    let isDir = e.isDirectory();
    if (e.isSymbolicLink()) {
      try {
        isDir = (await fs.stat(p)).isDirectory();
      } catch (err) {
        skipped.push({ path: p, reason: `broken link (${(err as NodeJS.ErrnoException).code ?? String(err)})` });
        continue;
      }
    }
    if (!isDir) {
      skipped.push({ path: p, reason: 'not inside a class folder (DATA needs one sub-folder per class)' });
      continue;
    }
    const label = e.name.normalize('NFC');
    const files: string[] = [];
    await walk(p, visited, files, skipped);
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
    const relReal = path.relative(rootReal, real);
    if (relReal.startsWith('..') || path.isAbsolute(relReal)) return { ok: false, reason: `line ${line}: path links outside the manifest's folder` };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, reason: `line ${line}: ${code === 'ENOENT' ? 'file not found' : code === 'ELOOP' ? 'symbolic link loop' : `cannot read (${code ?? String(err)})`}` };
  }
  return { ok: true, path: abs };
}

async function discoverManifest(file: string): Promise<DiscoveredDataset> {
  const root = path.dirname(path.resolve(file));
  const rootReal = await fs.realpath(root);
  const kind = file.toLowerCase().endsWith('.jsonl') ? 'jsonl' : 'csv';
  const text = await fs.readFile(file, 'utf8');
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
        const o = JSON.parse(l) as { path?: unknown; label?: unknown };
        rows.push({ path: typeof o.path === 'string' ? o.path : '', label: o.label === undefined ? '' : String(o.label), line: i + 1 });
      } catch {
        skipped.push({ path: `${file}:${i + 1}`, reason: 'line is not valid JSON' });
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
export async function discoverDataset(data: string): Promise<DiscoveredDataset> {
  let st: import('node:fs').Stats;
  try {
    st = await fs.stat(data);
  } catch (err) {
    throw new HeadstartError('NOT_FOUND', `dataset ${data} not found (${(err as NodeJS.ErrnoException).code ?? String(err)}); give a folder with one sub-folder per class, or a .csv / .jsonl manifest`);
  }
  if (st.isDirectory()) return discoverFolders(path.resolve(data));
  if (/\.(csv|jsonl)$/i.test(data)) return discoverManifest(data);
  throw new HeadstartError('BAD_INPUT', `${data} is neither a folder nor a .csv / .jsonl manifest`);
}
