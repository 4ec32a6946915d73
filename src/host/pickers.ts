import * as path from 'node:path';
import * as vscode from 'vscode';
import type { BackboneChoice } from '../shared/panelProtocol';

const IMAGE_GLOB = '**/*.{jpg,jpeg,png,webp,gif,bmp,JPG,JPEG,PNG,WEBP,GIF,BMP}';
const EXCLUDE = '{**/node_modules/**,**/.headstart/**,**/.git/**}';

/** Folders of the workspace that look like class folders (two or more sub-folders with images). */
export async function findDatasetFolders(token?: vscode.CancellationToken): Promise<Array<{ dir: string; classes: Map<string, number> }>> {
  const images = await vscode.workspace.findFiles(IMAGE_GLOB, EXCLUDE, 20000, token);
  const byRoot = new Map<string, Map<string, number>>();
  for (const uri of images) {
    // An image at D/class/.../file: every ancestor pair (D, class) is a candidate.
    let dir = path.dirname(uri.fsPath);
    const ws = vscode.workspace.getWorkspaceFolder(uri)?.uri.fsPath;
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

/** Step 1 of the wizard: a dataset folder, a manifest, or Browse…. */
export async function pickDataset(): Promise<string | undefined> {
  const items = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Headstart: looking for datasets in the workspace', cancellable: true }, async (_p, token) => {
    const [folders, manifests] = await Promise.all([findDatasetFolders(token), vscode.workspace.findFiles('**/*.{csv,jsonl}', EXCLUDE, 50, token)]);
    const rel = (p: string) => vscode.workspace.asRelativePath(p, true);
    return [
      ...folders.map((f) => ({ label: `$(folder) ${rel(f.dir)}`, description: `${f.classes.size} classes: ${[...f.classes.keys()].slice(0, 5).join(', ')}${f.classes.size > 5 ? ', …' : ''}`, detail: `${[...f.classes.values()].reduce((a, b) => a + b, 0)} images`, value: f.dir })),
      ...manifests.map((m) => ({ label: `$(file) ${rel(m.fsPath)}`, description: 'manifest (path,label)', value: m.fsPath })),
    ];
  });
  const browse = { label: '$(folder-opened) Browse…', description: 'a folder with one sub-folder per class, or a CSV / JSONL manifest', value: '' };
  const pick = await vscode.window.showQuickPick([...items, browse], { title: 'Fine-tune a Model (1/2): dataset', placeHolder: items.length ? 'Choose the images to train on' : 'No class folders found in the workspace: browse for one', ignoreFocusOut: true });
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
export async function pickBackbone(backbones: BackboneChoice[], current: string): Promise<string | undefined> {
  const items = backbones.map((b) => ({
    label: b.id,
    description: `${b.title}${b.id === current ? ' (default)' : ''}`,
    detail: `${b.format} · ${b.featureSize}-d features · ${(b.approxBytes / 1e6).toFixed(1)} MB · ${b.bundled ? 'bundled, works offline' : b.cached ? 'downloaded' : 'downloads on first use'}`,
    picked: b.id === current,
  }));
  items.sort((a, b) => (a.label === current ? -1 : b.label === current ? 1 : 0));
  const onnxItem = { label: CHOOSE_ONNX, description: 'any ONNX image model in the workspace', detail: 'preprocessing from its sidecar (model.onnx.json or headstart.json) and its input shape; see the README', picked: false };
  const pick = await vscode.window.showQuickPick([...items, onnxItem], { title: 'Fine-tune a Model (2/2): backbone', placeHolder: 'The pretrained model whose features the new head learns from', ignoreFocusOut: true });
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
