import type * as shared from '../../shared/records';
import { LABEL_COLUMNS, TEXT_COLUMNS } from '../../shared/options';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { HeadstartError, isCancelled, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { type Sample, type Skipped, discoverFolders } from '../data/dataset';
import { UnreadableFileError, readRegularFile, withRegularFile } from '../data/files';
import { MAX_TEXT_BYTES, decodeText, textContentHash, textExactHash, textRefusal } from './decode';

/** File name extension of a text example in a class folder. */
export const TEXT_EXTENSIONS = ['.txt'];
/** Header names taken as the text column, in order of preference (case-insensitive). */
export { TEXT_COLUMNS } from '../../shared/options';
/** Header names taken as the label column, in order of preference (case-insensitive). */
export { LABEL_COLUMNS } from '../../shared/options';

/** One labelled text. `path` is its file (or `manifest:line`); `text` is trimmed. */
export interface TextSample extends Sample {
  text: string;
  /** Hash of the normalised text (duplicates, splits). */
  hash: string;
  /** Hash of the exact text (the embedding cache's key). */
  exact: string;
}

export interface TextDataOptions extends Progress {
  /** Manifest column of the text; default the first header among TEXT_COLUMNS. */
  textColumn?: string;
  /** Manifest column of the label; default the first header among LABEL_COLUMNS. */
  labelColumn?: string;
  /** Largest example in UTF-8 bytes, default MAX_TEXT_BYTES. */
  maxBytes?: number;
}

export interface TextDataset {
  root: string;
  kind: 'text-folders' | 'text-csv' | 'text-jsonl';
  samples: TextSample[];
  skipped: Skipped[];
  /** The manifest columns used, for run.json. */
  columns?: { text: string; label: string };
}

function sampleOf(p: string, rel: string, label: string, raw: string, maxBytes: number): TextSample | Skipped {
  const refused = textRefusal(raw, maxBytes);
  if (refused) return { path: p, reason: refused };
  const text = raw.trim();
  return { path: p, rel, label: label.normalize('NFC'), text, hash: textContentHash(text), exact: textExactHash(text) };
}

const isSkip = (x: TextSample | Skipped): x is Skipped => 'reason' in x;

/** Reads one .txt file of a class folder: regular files only, within 4x the text cap (UTF-16 doubles the bytes). */
async function readTextFile(file: string, maxBytes: number): Promise<{ ok: true; text: string } | { ok: false; reason: string }> {
  try {
    const buf = await withRegularFile(file, async (fh, st) => {
      if (st.size > 4 * maxBytes + 4) throw new UnreadableFileError(`file is ${st.size} bytes, over the ${maxBytes}-byte limit for one text example; split it into examples`);
      const b = Buffer.alloc(st.size);
      const { bytesRead } = await fh.read(b, 0, st.size, 0);
      return b.subarray(0, bytesRead);
    });
    const d = decodeText(buf);
    return d.ok ? { ok: true, text: d.text } : d;
  } catch (err) {
    if (err instanceof UnreadableFileError) return { ok: false, reason: err.message };
    throw err;
  }
}

async function discoverTextFolders(root: string, o: TextDataOptions): Promise<TextDataset> {
  const found = await discoverFolders(root, o.signal, { extensions: TEXT_EXTENSIONS, what: 'a text file' });
  const maxBytes = o.maxBytes ?? MAX_TEXT_BYTES;
  const skipped: Skipped[] = [...found.skipped];
  const samples: TextSample[] = [];
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < found.samples.length) {
      const s = found.samples[next++]!;
      throwIfAborted(o.signal);
      const r = await readTextFile(s.path, maxBytes);
      const out = r.ok ? sampleOf(s.path, s.rel, s.label, r.text, maxBytes) : { path: s.path, reason: r.reason };
      if (isSkip(out)) skipped.push(out);
      else samples.push(out);
    }
  };
  await Promise.all(Array.from({ length: 8 }, lane));
  samples.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  return { root, kind: 'text-folders', samples, skipped };
}

/** The manifest's text (any of the encodings decodeText reads). */
async function readManifest(file: string): Promise<string> {
  let buf: Buffer;
  try {
    buf = await readRegularFile(file);
  } catch (err) {
    if (!(err instanceof UnreadableFileError)) throw err;
    throw new HeadstartError('BAD_INPUT', `manifest ${file}: ${err.message}`);
  }
  const d = decodeText(buf);
  if (!d.ok) throw new HeadstartError('BAD_INPUT', `manifest ${file}: ${d.reason}`);
  return d.text;
}

/** Picks a column among `names`: the user's choice (which must exist) or the first default present. */
function pickColumn(names: string[], wanted: string | undefined, defaults: string[], flag: string, file: string): string | undefined {
  const lower = names.map((n) => n.toLowerCase());
  if (wanted !== undefined) {
    const i = lower.indexOf(wanted.toLowerCase());
    if (i < 0) throw new HeadstartError('BAD_INPUT', `${file} has no column '${wanted}' (${flag}); its columns are: ${names.join(', ') || 'none'}`);
    return names[i]!;
  }
  const d = defaults.find((c) => lower.includes(c));
  return d === undefined ? undefined : names[lower.indexOf(d)]!;
}

function needColumns(file: string, names: string[], text: string | undefined, label: string | undefined): { text: string; label: string } {
  if (text === undefined || label === undefined) {
    throw new HeadstartError('BAD_INPUT', `${file}: no ${text === undefined ? `text column (${TEXT_COLUMNS.join(', ')})` : ''}${text === undefined && label === undefined ? ' and no ' : ''}${label === undefined ? `label column (${LABEL_COLUMNS.join(', ')})` : ''} among its columns (${names.join(', ') || 'none'}); name them with --text-column and --label-column`);
  }
  return { text, label };
}

/** A JSON or CSV cell as text: strings as they are, finite numbers as their string; else undefined. */
function cell(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return undefined;
}

async function discoverTextManifest(file: string, o: TextDataOptions): Promise<TextDataset> {
  const root = path.dirname(path.resolve(file));
  const base = path.basename(file);
  const maxBytes = o.maxBytes ?? MAX_TEXT_BYTES;
  const content = await readManifest(file);
  const jsonl = /\.jsonl$/i.test(file);
  const rows: Array<{ line: number; text: unknown; label: unknown }> = [];
  const skipped: Skipped[] = [];
  let columns: { text: string; label: string };
  if (!jsonl) {
    let records: string[][];
    try {
      records = parseCsv(content, { skip_empty_lines: true, relax_column_count: true, relax_quotes: false, info: false }) as string[][];
    } catch (err) {
      throw new HeadstartError('BAD_INPUT', `${file} is not a valid CSV file: ${String((err as Error).message)}`);
    }
    const header = (records[0] ?? []).map((h) => h.trim());
    columns = needColumns(file, header, pickColumn(header, o.textColumn, TEXT_COLUMNS, '--text-column', file), pickColumn(header, o.labelColumn, LABEL_COLUMNS, '--label-column', file));
    const ti = header.indexOf(columns.text);
    const li = header.indexOf(columns.label);
    // Records, not lines: a quoted text may span lines. The number is the record's (header = 1).
    records.slice(1).forEach((r, i) => rows.push({ line: i + 2, text: r[ti], label: r[li]?.trim() }));
  } else {
    const lines = content.split('\n');
    const parsed: Array<{ line: number; o: Record<string, unknown> }> = [];
    lines.forEach((l, i) => {
      if (!l.trim()) return;
      try {
        const v = JSON.parse(l) as unknown;
        if (v && typeof v === 'object' && !Array.isArray(v)) parsed.push({ line: i + 1, o: v as Record<string, unknown> });
        else skipped.push({ path: `${file}:${i + 1}`, reason: `line ${i + 1}: not a JSON object` });
      } catch (err) {
        skipped.push({ path: `${file}:${i + 1}`, reason: `line ${i + 1}: not valid JSON (${(err as Error).message})` });
      }
    });
    const keys = [...new Set(parsed.flatMap((p) => Object.keys(p.o)))];
    columns = needColumns(file, keys, pickColumn(keys, o.textColumn, TEXT_COLUMNS, '--text-column', file), pickColumn(keys, o.labelColumn, LABEL_COLUMNS, '--label-column', file));
    for (const p of parsed) rows.push({ line: p.line, text: p.o[columns.text], label: p.o[columns.label] });
  }
  const samples: TextSample[] = [];
  for (const r of rows) {
    const at = `${file}:${r.line}`;
    const label = cell(r.label)?.trim();
    const text = cell(r.text);
    if (!label) skipped.push({ path: at, reason: `line ${r.line}: no label (column '${columns.label}')` });
    else if (text === undefined) skipped.push({ path: at, reason: `line ${r.line}: no text (column '${columns.text}')` });
    else {
      const s = sampleOf(at, `${base}:${r.line}`, label, text.normalize('NFC'), maxBytes);
      if (isSkip(s)) skipped.push({ path: at, reason: `line ${r.line}: ${s.reason}` });
      else samples.push(s);
    }
  }
  return { root, kind: jsonl ? 'text-jsonl' : 'text-csv', samples, skipped, columns };
}

/**
 * Finds the labelled texts of DATA: a folder with one sub-folder per class of
 * .txt files (one example per file), or a CSV / JSONL manifest with a text
 * and a label column.
 */
export async function discoverTextDataset(data: string, o: TextDataOptions = {}): Promise<TextDataset> {
  o.onEvent?.({ type: 'phase', phase: 'scan', message: `reading texts from ${data}` });
  let st: import('node:fs').Stats;
  try {
    st = await fs.stat(data);
  } catch (err) {
    throw new HeadstartError('NOT_FOUND', `dataset ${data} not found (${(err as NodeJS.ErrnoException).code ?? String(err)}); give a folder with one sub-folder per class of .txt files, or a .csv / .jsonl manifest with text and label columns`);
  }
  try {
    if (st.isDirectory()) return await discoverTextFolders(path.resolve(data), o);
    if (/\.(csv|jsonl)$/i.test(data)) return await discoverTextManifest(data, o);
  } catch (err) {
    if (isCancelled(err) || err instanceof HeadstartError) throw err;
    throw new HeadstartError('BAD_INPUT', `cannot read ${data}: ${String((err as Error).message)}`, { cause: err });
  }
  throw new HeadstartError('BAD_INPUT', `${data} is neither a folder nor a .csv / .jsonl manifest`);
}

/** Which modality DATA holds; `forced` (--modality) wins. */
export type Modality = 'image' | 'text';

/**
 * Decides the modality of DATA: a manifest with a text column (by the
 * defaults or --text-column) is text; a folder where two or more class folders
 * hold .txt files and none holds images is text; everything else is image (the old behaviour).
 */
export async function detectModality(data: string, o: { textColumn?: string; modality?: Modality } = {}): Promise<Modality> {
  if (o.modality) return o.modality;
  if (o.textColumn) return 'text';
  let st: import('node:fs').Stats;
  try {
    st = await fs.stat(data);
  } catch {
    return 'image'; // discovery reports the missing path with its own message
  }
  if (st.isFile() && /\.(csv|jsonl)$/i.test(data)) return (await manifestHasTextColumn(data)) ? 'text' : 'image';
  if (!st.isDirectory()) return 'image';
  // Text needs .txt files in at least two class folders (a classifier's minimum) and no image anywhere at
  // the top of a class: a README.txt beside images, or in one folder, leaves an image dataset alone.
  let textClasses = 0;
  let img = 0;
  for (const c of await fs.readdir(data, { withFileTypes: true })) {
    if (!c.isDirectory() || c.name.startsWith('.')) continue;
    const names = await fs.readdir(path.join(data, c.name)).catch(() => [] as string[]);
    if (names.some((n) => n.toLowerCase().endsWith('.txt'))) textClasses++;
    img += names.filter((n) => /\.(jpe?g|png|webp|gif|bmp)$/i.test(n)).length;
  }
  return textClasses >= 2 && img === 0 ? 'text' : 'image';
}

/** True when the manifest's header (CSV) or first object (JSONL) names a text column. */
async function manifestHasTextColumn(file: string): Promise<boolean> {
  let head: string;
  try {
    // The first 64 KB hold the header or the first object.
    head = await withRegularFile(file, async (fh) => {
      const b = Buffer.alloc(65536);
      const { bytesRead } = await fh.read(b, 0, b.length, 0);
      const d = decodeText(b.subarray(0, bytesRead - (bytesRead % 2)));
      return d.ok ? d.text : b.subarray(0, bytesRead).toString('utf8');
    });
  } catch (err) {
    if (err instanceof UnreadableFileError) return false; // discovery reports it
    throw err;
  }
  const first = head.split('\n').find((l) => l.trim()) ?? '';
  let names: string[];
  if (/\.jsonl$/i.test(file)) {
    try {
      names = Object.keys(JSON.parse(first) as object).map((k) => k.toLowerCase());
    } catch {
      return false; // not JSON: the image manifest reader reports it
    }
  } else names = first.split(',').map((h) => h.trim().replace(/^"|"$/g, '').toLowerCase());
  return TEXT_COLUMNS.some((c) => names.includes(c));
}

/** Length statistics of the texts: characters and words. */
export type TextStats = shared.TextStats;

function stats(v: number[]): TextStats['chars'] {
  const s = [...v].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  return { min: s[0] ?? 0, median: s[Math.floor(s.length / 2)] ?? 0, mean: Math.round(mean * 10) / 10, max: s.at(-1) ?? 0 };
}

/** One line of at most `n` characters. */
export function snippet(text: string, n = 120): string {
  const one = text.replace(/\s+/g, ' ').trim();
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
}

/** Counts, length statistics and a few examples per class, for the dataset summary. */
export function textStats(samples: Array<{ text: string; label: string }>): TextStats {
  const examples: Record<string, string[]> = {};
  for (const s of samples) {
    const list = (examples[s.label] ??= []);
    if (list.length < 3) list.push(snippet(s.text));
  }
  return { chars: stats(samples.map((s) => [...s.text].length)), words: stats(samples.map((s) => s.text.split(/\s+/u).filter(Boolean).length)), examples };
}
