import * as fs from 'node:fs/promises';
import * as vscode from 'vscode';
import { type FolderCandidate, classFolderCandidates, manifestKind } from './datasetScan';
import type { BackboneChoice } from '../shared/panelProtocol';

const IMAGE_GLOB = '**/*.{jpg,jpeg,png,webp,gif,bmp,JPG,JPEG,PNG,WEBP,GIF,BMP}';
const TEXT_GLOB = '**/*.{txt,TXT}';
const EXCLUDE = '{**/node_modules/**,**/.headstart/**,**/.git/**}';

/** Folders of the workspace that look like class folders (two or more sub-folders with files matching `glob`). */
export async function findDatasetFolders(token?: vscode.CancellationToken, glob = IMAGE_GLOB): Promise<FolderCandidate[]> {
  const files = await vscode.workspace.findFiles(glob, EXCLUDE, 20000, token);
  return classFolderCandidates(files.map((u) => u.fsPath), (f) => vscode.workspace.getWorkspaceFolder(vscode.Uri.file(f))?.uri.fsPath);
}

/** The first line of a manifest (its header), read with a small limit; '' when unreadable (the trainer says why if it is picked). */
async function firstLine(file: string): Promise<string> {
  try {
    const fh = await fs.open(file, 'r');
    try {
      const buf = Buffer.alloc(4096);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      return buf.subarray(0, bytesRead).toString('utf8').split(/\r?\n/)[0] ?? '';
    } finally {
      await fh.close();
    }
  } catch (err) {
    void err; // listed as an image manifest; training it reports the read error in one line
    return '';
  }
}

/** Step 1 of the wizard: a folder of image or text classes, a manifest (images, or texts by its header), or Browse…. */
export async function pickDataset(): Promise<string | undefined> {
  const items = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Headstart: looking for datasets in the workspace', cancellable: true }, async (_p, token) => {
    const [folders, texts, manifests] = await Promise.all([findDatasetFolders(token), findDatasetFolders(token, TEXT_GLOB), vscode.workspace.findFiles('**/*.{csv,jsonl}', EXCLUDE, 50, token)]);
    const rel = (p: string) => vscode.workspace.asRelativePath(p, true);
    const folderItem = (f: FolderCandidate, noun: string) => ({ label: `$(folder) ${rel(f.dir)}`, description: `${f.classes.size} classes: ${[...f.classes.keys()].slice(0, 5).join(', ')}${f.classes.size > 5 ? ', …' : ''}`, detail: `${[...f.classes.values()].reduce((a, b) => a + b, 0)} ${noun}`, value: f.dir });
    const imageDirs = new Set(folders.map((f) => f.dir));
    return [
      ...folders.map((f) => folderItem(f, 'images')),
      ...texts.filter((f) => !imageDirs.has(f.dir)).map((f) => folderItem(f, 'texts (.txt)')),
      ...(await Promise.all(manifests.map(async (m) => ({ label: `$(file) ${rel(m.fsPath)}`, description: manifestKind(await firstLine(m.fsPath), m.fsPath.toLowerCase().endsWith('.jsonl')).description, value: m.fsPath })))),
    ];
  });
  const browse = { label: '$(folder-opened) Browse…', description: 'a folder with one sub-folder per class (images or .txt), or a CSV / JSONL manifest', value: '' };
  const pick = await vscode.window.showQuickPick([...items, browse], { title: 'Fine-tune a Model (1/2): dataset', placeHolder: items.length ? 'Choose the images or texts to train on' : 'No class folders found in the workspace: browse for one', ignoreFocusOut: true });
  if (!pick) return undefined;
  if (pick.value) return pick.value;
  const uris = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: true, canSelectMany: false, openLabel: 'Use as dataset', filters: { Manifests: ['csv', 'jsonl'] } });
  return uris?.[0]?.fsPath;
}

/** The label of the quick-pick item that opens a file dialog for an ONNX model. */
export const CHOOSE_ONNX = '$(file-binary) Choose an ONNX model…';

/**
 * Step 2 of the wizard: a backbone from the catalogue, with size and whether
 * it needs a download, or "Choose an ONNX model…": a .onnx file picked in a
 * dialog (the caller checks that it lies inside the workspace).
 */
export async function pickBackbone(backbones: BackboneChoice[], current: string, modality: 'image' | 'text' = 'image'): Promise<string | undefined> {
  const items = backbones.map((b) => ({
    label: b.id,
    description: `${b.title}${b.id === current ? ' (default)' : ''}`,
    detail: `${b.format} · ${b.featureSize}-d features · ${(b.approxBytes / 1e6).toFixed(1)} MB · ${b.bundled ? 'bundled, works offline' : b.cached ? 'downloaded' : 'downloads on first use'}`,
    picked: b.id === current,
  }));
  items.sort((a, b) => (a.label === current ? -1 : b.label === current ? 1 : 0));
  const onnxItem = { label: CHOOSE_ONNX, description: 'any ONNX image model in the workspace', detail: 'preprocessing from its sidecar (model.onnx.json or headstart.json) and its input shape; see the README', picked: false };
  // Foreign ONNX models are image backbones; text encoders come as folders (model.onnx + tokenizer.json) by path on the CLI.
  const pick = await vscode.window.showQuickPick(modality === 'image' ? [...items, onnxItem] : items, { title: 'Fine-tune a Model (2/2): backbone', placeHolder: 'The pretrained model whose features the new head learns from', ignoreFocusOut: true });
  if (pick?.label !== CHOOSE_ONNX) return pick?.label;
  const uris = await vscode.window.showOpenDialog({
    canSelectFiles: true,
    canSelectFolders: false,
    canSelectMany: false,
    openLabel: 'Use as backbone',
    filters: { 'ONNX models': ['onnx'] },
    defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
  });
  return uris?.[0]?.fsPath;
}
