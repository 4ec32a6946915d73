/**
 * Pure parts of the wizard's dataset search (pickers.ts): class-folder
 * candidates from the files the workspace search found, and what a manifest
 * holds by its header. No vscode here, so typed tests run in plain Node.
 */
import * as path from 'node:path';
import { LABEL_COLUMNS, TEXT_COLUMNS } from '../shared/options';

export interface FolderCandidate {
  dir: string;
  /** Examples per class folder. */
  classes: Map<string, number>;
}

/**
 * Folders that look like class folders: two to 200 sub-folders holding
 * `files` (an example at D/class/.../file makes every ancestor pair a
 * candidate, up to four levels below the workspace folder `wsOf` names).
 */
export function classFolderCandidates(files: string[], wsOf: (file: string) => string | undefined): FolderCandidate[] {
  const byRoot = new Map<string, Map<string, number>>();
  for (const f of files) {
    let dir = path.dirname(f);
    const ws = wsOf(f);
    for (let depth = 0; depth < 4 && ws && dir.length > ws.length; depth++) {
      const root = path.dirname(dir);
      const cls = path.basename(dir);
      const m = byRoot.get(root) ?? new Map<string, number>();
      m.set(cls, (m.get(cls) ?? 0) + 1);
      byRoot.set(root, m);
      dir = root;
    }
  }
  return [...byRoot.entries()]
    .filter(([, m]) => m.size >= 2 && m.size <= 200)
    .map(([dir, classes]) => ({ dir, classes }))
    .sort((a, b) => a.dir.length - b.dir.length)
    .slice(0, 30);
}

/** Header names of a manifest's first line: CSV (quoted or not) or one JSONL object. */
function headerNames(firstLine: string, jsonl: boolean): string[] {
  if (jsonl) {
    try {
      const o: unknown = JSON.parse(firstLine);
      return o && typeof o === 'object' && !Array.isArray(o) ? Object.keys(o) : [];
    } catch {
      return []; // not a JSON object: the manifest reader says why when it is used
    }
  }
  return firstLine.split(',').map((h) => h.trim().replace(/^"|"$/g, '').trim());
}

/** What a manifest holds, by its header: labelled texts (a text and a label column), else images (path,label). */
export function manifestKind(firstLine: string, jsonl: boolean): { kind: 'text' | 'image'; description: string } {
  const names = headerNames(firstLine.replace(/^\uFEFF/, ''), jsonl).map((h) => h.toLowerCase());
  const text = TEXT_COLUMNS.find((c) => names.includes(c));
  const label = LABEL_COLUMNS.find((c) => names.includes(c));
  return text && label ? { kind: 'text', description: `texts (${text}, ${label})` } : { kind: 'image', description: 'manifest (path,label)' };
}
