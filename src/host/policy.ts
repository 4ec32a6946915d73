/**
 * What the host allows, as pure decisions (no `vscode` here, so node:test can
 * check them): which action each command and panel message is, whether a path
 * lies inside a root once symlinks are resolved, which files the panel may
 * open, and whether a message from the webview has the shape it claims.
 * Everything that arrives from the webview is treated as hostile.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { EXPORT_FORMATS, HEAD_CHOICES, QUANTIZE_CHOICES } from '../shared/choices';
import { ONNX_INPUT_FIELDS, type OnnxInputOptions, onnxInputErrors } from '../shared/onnxInput';
import { CHANNEL_ORDER_CHOICES, LAYOUT_CHOICES, POOLING_CHOICES } from '../shared/options';
import type { ExportChoices, FormOptions, FromWebview, PanelState } from '../shared/panelProtocol';

/** What a command or a panel message does; every one of them needs a trusted workspace. */
export type Action = 'scan' | 'train' | 'export' | 'distill' | 'classify' | 'open';

/** The action of each panel message; `undefined`: no files read or written (always allowed). */
export const PANEL_MESSAGE_ACTION: Record<FromWebview['type'], Action | undefined> = {
  ready: undefined,
  cancel: undefined,
  options: 'scan',
  start: 'train',
  pickData: 'scan',
  export: 'export',
  openFile: 'open',
  openSnippet: 'open',
  openRun: 'open',
  distill: 'distill',
};

/** The action of each command (ids without the `headstart.` prefix). */
export const COMMAND_ACTION = {
  fineTune: 'scan',
  fineTuneFolder: 'scan',
  classifyImage: 'classify',
  classifySelection: 'classify',
  openPanel: undefined,
  startTraining: 'train',
  cancelTraining: undefined,
  exportModel: 'export',
  showRuns: 'open',
} as const satisfies Record<string, Action | undefined>;

/** Whether the file system compares names without case (Windows, macOS by default). */
export const CASE_INSENSITIVE_FS = process.platform === 'win32' || process.platform === 'darwin';

/**
 * The real path of `p` (absolute, symlinks resolved). For a path that does not
 * exist yet, the real path of its nearest existing ancestor joined with the
 * rest: a folder about to be created lands where its existing parent really is.
 * Throws for other errors (a symlink loop, no permission).
 */
export async function realPathNearest(p: string): Promise<string> {
  const abs = path.resolve(p);
  const rest: string[] = [];
  let cur = abs;
  for (;;) {
    try {
      return path.join(await fs.realpath(cur), ...rest);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const parent = path.dirname(cur);
      // ENOENT: not created yet; ENOTDIR: a file on the way (the writer reports that one).
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === cur) throw err;
      rest.unshift(path.basename(cur));
      cur = parent;
    }
  }
}

/**
 * Whether absolute path `p` is `root` or lies below it (lexically; resolve
 * both first). `strict`: `root` itself does not count. `/ws-evil` is not in `/ws`.
 */
export function isWithin(p: string, root: string, opts: { strict?: boolean; caseInsensitive?: boolean } = {}): boolean {
  const fold = (s: string) => ((opts.caseInsensitive ?? CASE_INSENSITIVE_FS) ? s.toLowerCase() : s);
  const rel = path.relative(fold(root), fold(p));
  if (rel === '') return !opts.strict;
  return !rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel);
}

export type Containment = { ok: true; path: string; root: string } | { ok: false; reason: string };

/**
 * Resolves `p` (relative to `base`, `..` folded, symlinks followed, a missing
 * tail through its nearest existing ancestor) and checks that it lies inside
 * one of `roots` (their real paths). `what` names the path in the refusal.
 */
export async function resolveInside(
  p: string,
  roots: readonly string[],
  opts: { base?: string; strict?: boolean; caseInsensitive?: boolean; what: string },
): Promise<Containment> {
  if (typeof p !== 'string' || !p.trim() || p.includes('\0')) return { ok: false, reason: `${opts.what} is not a usable path` };
  if (!roots.length) return { ok: false, reason: `open a folder first: ${opts.what} must lie inside the workspace` };
  const abs = path.resolve(opts.base ?? roots[0]!, p);
  let real: string;
  try {
    real = await realPathNearest(abs);
  } catch (err) {
    return { ok: false, reason: `${opts.what} ${abs} cannot be resolved (${(err as NodeJS.ErrnoException).code ?? String(err)})` };
  }
  for (const root of roots) {
    let realRoot: string;
    try {
      realRoot = await fs.realpath(root);
    } catch (err) {
      // A root that does not exist (an unset runs folder) contains nothing.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if (isWithin(real, realRoot, opts)) return { ok: true, path: real, root: realRoot };
  }
  const where = roots.length === 1 ? roots[0] : `one of ${roots.join(', ')}`;
  const via = real === abs ? '' : ` (it resolves to ${real})`;
  return { ok: false, reason: `${opts.what} ${abs} is outside ${where}${via}${opts.strict ? ' or is that folder itself' : ''}` };
}

/**
 * The files the panel may open: the dataset's example per class (and the
 * texts it shows), the test mistakes of the run shown and its run.json.
 * Anything else a webview asks for is refused. Paths are absolute and
 * normalised; a text of a manifest is `manifest:line`.
 */
export function openableFiles(state: Pick<PanelState, 'dataset' | 'result'>): Set<string> {
  const files = new Set<string>();
  for (const c of state.dataset?.classes ?? []) {
    if (typeof c.example === 'string') files.add(path.resolve(c.example));
    for (const t of Array.isArray(c.texts) ? c.texts : []) if (typeof t?.path === 'string') files.add(path.resolve(t.path));
  }
  const r = state.result;
  if (r) {
    for (const m of r.mistakes) if (typeof m.path === 'string') files.add(path.resolve(m.path));
    if (typeof r.runDir === 'string') files.add(path.resolve(r.runDir, 'run.json'));
  }
  return files;
}

/**
 * A text's place: `data.csv:12` / `data.jsonl:3` (a manifest's record) is the
 * manifest at that line; any other path is the file itself. Only .csv and
 * .jsonl names are read as a manifest, so a file name with a colon is a file.
 */
export function textPlace(p: string): { file: string; line?: number } {
  const m = /^(.*\.(?:csv|jsonl)):(\d+)$/i.exec(p);
  return m ? { file: m[1]!, line: Number(m[2]) } : { file: p };
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number';

const FORM_NUMBERS = ['epochs', 'batchSize', 'learningRate', 'hiddenUnits', 'dropout', 'val', 'test', 'seed', 'unfreeze', 'augment'] as const;

const among = <T extends string>(list: readonly T[], v: unknown): v is T => list.includes(v as T);

const numberList = (v: unknown): v is number[] => Array.isArray(v) && v.length <= 3 && v.every(isNum);

/** Each preprocessing field's type (its range is onnxInputErrors'). */
const ONNX_FIELD_TYPES: Record<keyof OnnxInputOptions, (v: unknown) => boolean> = {
  input: isStr,
  size: isNum,
  layout: (v) => among(LAYOUT_CHOICES, v),
  channelOrder: (v) => among(CHANNEL_ORDER_CHOICES, v),
  range: (v) => Array.isArray(v) && v.length === 2 && v.every(isNum),
  mean: numberList,
  std: numberList,
  output: isStr,
  pooling: (v) => among(POOLING_CHOICES, v),
};

/**
 * The preprocessing edits rebuilt from their known fields, each of its type
 * and within its range (the webview sends only valid edits); `null` for
 * anything else, so the message is dropped. Unknown keys are left behind.
 */
function parseOnnxInput(v: unknown): OnnxInputOptions | undefined | null {
  if (v === undefined) return undefined;
  if (!isObj(v)) return null;
  const o: Record<string, unknown> = {};
  for (const k of ONNX_INPUT_FIELDS) {
    if (v[k] === undefined) continue;
    if (!ONNX_FIELD_TYPES[k](v[k])) return null;
    o[k] = Array.isArray(v[k]) ? [...(v[k] as number[])] : v[k];
  }
  return Object.keys(onnxInputErrors(o)).length ? null : (o as OnnxInputOptions);
}

/** The form rebuilt from its checked fields; `head` absent (a webview of an earlier version) is auto. */
function parseForm(v: unknown): FormOptions | undefined {
  // NaN passes isNum on purpose: an empty field is NaN and validateForm names it; null is "auto" (epochs, hidden units).
  if (!isObj(v) || !isStr(v.data) || !isStr(v.backbone) || !FORM_NUMBERS.every((k) => isNum(v[k]) || v[k] === null)) return undefined;
  if (v.head !== undefined && !among(HEAD_CHOICES, v.head)) return undefined;
  const onnxInput = parseOnnxInput(v.onnxInput);
  if (onnxInput === null) return undefined;
  const numbers = Object.fromEntries(FORM_NUMBERS.map((k) => [k, v[k]])) as Pick<FormOptions, (typeof FORM_NUMBERS)[number]>;
  return { ...numbers, data: v.data, backbone: v.backbone, head: v.head ?? 'auto', ...(onnxInput && Object.keys(onnxInput).length ? { onnxInput } : {}) };
}

/** `slim` of the export choices: absent, 'off', 'auto' or a number (its range is the engine's check). */
const isSlim = (v: unknown): boolean => v === undefined || v === 'off' || v === 'auto' || isNum(v);

/** The export choices rebuilt from their checked fields. */
function parseExportChoices(c: unknown): ExportChoices | undefined {
  if (!isObj(c) || !among(EXPORT_FORMATS, c.format) || !among(QUANTIZE_CHOICES, c.quantize) || !isNum(c.prune) || !isNum(c.maxDrop) || !isSlim(c.slim)) return undefined;
  return { format: c.format, quantize: c.quantize, prune: c.prune, maxDrop: c.maxDrop, ...(c.slim !== undefined ? { slim: c.slim as ExportChoices['slim'] } : {}) };
}

export type Parsed = { ok: true; msg: FromWebview } | { ok: false; reason: string };

/**
 * Checks that a message from the webview has the fields its type promises;
 * returns it rebuilt from those fields only (typed), or a reason why it was
 * dropped. The single entry of everything the webview sends.
 */
export function parseFromWebview(m: unknown): Parsed {
  if (!isObj(m) || !isStr(m.type)) return { ok: false, reason: 'a panel message without a type' };
  const ok = (msg: FromWebview): Parsed => ({ ok: true, msg });
  const bad = (field: string): Parsed => ({ ok: false, reason: `panel message '${m.type}' has no valid ${field}` });
  switch (m.type) {
    case 'ready':
      return Number.isSafeInteger(m.requestId) ? ok({ type: 'ready', requestId: m.requestId as number }) : bad('request id');
    case 'cancel':
    case 'pickData':
    case 'openSnippet':
      return ok({ type: m.type });
    case 'options':
    case 'start': {
      const options = parseForm(m.options);
      return options ? ok({ type: m.type, options }) : bad('options');
    }
    case 'export': {
      if (!isStr(m.out)) return bad('folder');
      const choices = parseExportChoices(m.choices);
      return choices ? ok({ type: 'export', out: m.out, choices }) : bad('export choices');
    }
    case 'openFile':
      return isStr(m.path) ? ok({ type: 'openFile', path: m.path }) : bad('path');
    case 'openRun':
      return isStr(m.runDir) ? ok({ type: 'openRun', runDir: m.runDir }) : bad('run folder');
    case 'distill':
      return isStr(m.student) ? ok({ type: 'distill', student: m.student }) : bad('student backbone');
    default:
      return { ok: false, reason: `unknown panel message '${m.type}'` };
  }
}
