import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import type { FromWebview, ToWebview } from '../shared/panelProtocol';
import { Disposable } from './disposable';
import type { Log } from './log';
import type { TrainingSession } from './session';

export const PANEL_VIEW_TYPE = 'headstart.trainingPanel';

/**
 * The training panel's webview host: strict CSP with a nonce, resources
 * limited to the bundle, the media folder and the workspace (thumbnails).
 * It renders the session's state; closing it does not stop a run.
 */
export class TrainingPanel extends Disposable {
  private static current: TrainingPanel | undefined;

  /** Shows the panel, creating it if needed. */
  static show(extensionUri: vscode.Uri, session: TrainingSession, log: Log): TrainingPanel {
    if (TrainingPanel.current) {
      TrainingPanel.current.panel.reveal(undefined, false);
      return TrainingPanel.current;
    }
    const panel = vscode.window.createWebviewPanel(PANEL_VIEW_TYPE, 'Headstart', vscode.ViewColumn.Active, TrainingPanel.options(extensionUri));
    return new TrainingPanel(panel, extensionUri, session, log);
  }

  /** Restores a panel after a window reload (webview panel serializer). */
  static revive(panel: vscode.WebviewPanel, extensionUri: vscode.Uri, session: TrainingSession, log: Log): TrainingPanel {
    panel.webview.options = TrainingPanel.options(extensionUri);
    return new TrainingPanel(panel, extensionUri, session, log);
  }

  static get isOpen(): boolean {
    return !!TrainingPanel.current;
  }

  private static options(extensionUri: vscode.Uri): vscode.WebviewPanelOptions & vscode.WebviewOptions {
    return {
      enableScripts: true,
      localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist'), vscode.Uri.joinPath(extensionUri, 'media'), ...(vscode.workspace.workspaceFolders ?? []).map((f) => f.uri)],
    };
  }

  private ready = false;

  private constructor(readonly panel: vscode.WebviewPanel, private readonly extensionUri: vscode.Uri, private readonly session: TrainingSession, private readonly log: Log) {
    super();
    TrainingPanel.current = this;
    this.panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'icon.svg');
    this.session.setThumbnailMapper((p) => this.panel.webview.asWebviewUri(vscode.Uri.file(p)).toString());
    this.panel.webview.html = this.html();
    this.register(this.panel.onDidDispose(() => this.dispose()));
    this.register(this.panel.webview.onDidReceiveMessage((m: FromWebview) => void this.onMessage(m)));
    this.register(this.session.onDidChange((state) => this.post({ type: 'state', state })));
    this.register(this.session.onProgress((p) => this.post(p)));
  }

  private post(msg: ToWebview): void {
    if (this.ready) void this.panel.webview.postMessage(msg);
  }

  private async onMessage(m: FromWebview): Promise<void> {
    switch (m.type) {
      case 'ready':
        this.ready = true;
        this.session.refreshView();
        void this.session.refreshLists();
        return;
      case 'options':
        this.session.setOptions(m.options);
        return;
      case 'start':
        void this.session.start(m.options);
        return;
      case 'cancel':
        this.session.cancel();
        return;
      case 'pickData': {
        const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: true, canSelectMany: false, filters: { 'Class folders or manifests': ['csv', 'jsonl'] }, openLabel: 'Use as dataset' });
        if (picked?.[0]) this.session.setOptions({ data: picked[0].fsPath });
        return;
      }
      case 'export':
        await this.session.exportModel(m.out, undefined, { format: m.choices.format, quantize: m.choices.quantize, prune: m.choices.prune, maxDrop: m.choices.maxDrop });
        return;
      case 'openFile':
        await vscode.commands.executeCommand('vscode.open', vscode.Uri.file(m.path));
        return;
      case 'openSnippet': {
        const dir = this.session.state.exported?.outDir;
        if (dir) await vscode.window.showTextDocument(vscode.Uri.joinPath(vscode.Uri.file(dir), 'inference.mjs'));
        return;
      }
      case 'openRun':
        await this.session.openRun(m.runDir);
        return;
      case 'distill':
        await this.session.distill(m.student);
        return;
      default: {
        const never: never = m;
        this.log.warn(`unknown panel message ${JSON.stringify(never)}`);
      }
    }
  }

  private html(): string {
    const webview = this.panel.webview;
    const nonce = randomBytes(16).toString('base64');
    const script = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview.js'));
    const css = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'media', 'panel.css'));
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src ${webview.cspSource} data:; style-src ${webview.cspSource} 'unsafe-inline'; font-src ${webview.cspSource}; script-src 'nonce-${nonce}';">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link href="${css}" rel="stylesheet">
<title>Headstart</title>
</head>
<body>
<main id="app" aria-live="polite"><p>Loading…</p></main>
<script nonce="${nonce}" src="${script}"></script>
</body>
</html>`;
  }

  override dispose(): void {
    if (TrainingPanel.current === this) TrainingPanel.current = undefined;
    this.panel.dispose();
    super.dispose();
  }
}
