import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { listRuns } from './runs';
import { runsFolder } from './settings';
import { modelModality } from './viewModel';

/** A model of the workspace to classify with: an export folder or a run folder. */
export interface ModelChoice {
  label: string;
  description: string;
  dir: string;
}

/** metadata.json of an export, parsed; undefined when it is not ours (no model file beside it) or unreadable. */
async function exportMetadata(dir: string): Promise<unknown> {
  const model = await Promise.any(['model.json', 'model.onnx'].map((f) => fs.access(path.join(dir, f)))).then(
    () => true,
    () => false, // neither model file: a metadata.json that is not an export of ours
  );
  if (!model) return undefined;
  try {
    return JSON.parse(await fs.readFile(path.join(dir, 'metadata.json'), 'utf8')) as unknown;
  } catch (err) {
    void err; // unreadable or not JSON: not offered (predict would refuse it with the reason)
    return undefined;
  }
}

/** Exports (folders with metadata.json and a model file) and runs of the workspace that classify `modality`. */
export async function findModels(modality: 'image' | 'text'): Promise<ModelChoice[]> {
  const runs = (await listRuns(runsFolder())).filter((r) => (r.modality ?? 'image') === modality);
  const found = await vscode.workspace.findFiles('**/metadata.json', '{**/node_modules/**,**/.git/**}', 100);
  const exportDirs: string[] = [];
  for (const m of found) {
    const dir = path.dirname(m.fsPath);
    const meta = await exportMetadata(dir);
    if (meta !== undefined && modelModality(meta) === modality) exportDirs.push(dir);
  }
  return [
    ...exportDirs.map((d) => ({ label: `$(package) ${vscode.workspace.asRelativePath(d)}`, description: 'exported model', dir: d })),
    ...runs.map((r) => ({ label: `$(beaker) ${r.name}`, description: `run · ${(r.accuracy * 100).toFixed(1)}% · ${r.classes} classes`, dir: r.runDir })),
  ];
}

/** Picks a model of `modality` to classify `what` with (the only one without asking); says so when there is none. */
export async function pickModel(modality: 'image' | 'text', what: string): Promise<{ dir: string } | undefined> {
  const items = await findModels(modality);
  if (!items.length) {
    void vscode.window.showInformationMessage(`Headstart: no ${modality} models in this workspace yet. Fine-tune one on ${modality === 'text' ? 'labelled texts' : 'images'} first.`);
    return undefined;
  }
  return items.length === 1 ? items[0] : vscode.window.showQuickPick(items, { title: `Classify ${what} with…` });
}
