import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import { escapeHtml } from '../shared/html';
import { replyTo } from '../shared/messageHandler';
import type { FromWebview, PanelRequests, ToWebview } from '../shared/panelProtocol';
import { Disposable } from './disposable';
import type { Gate } from './gate';
import type { Log } from './log';
import { PANEL_MESSAGE_ACTION, parseFromWebview } from './policy';
import type { TrainingService } from './trainingService';
import { exportRequest } from './viewModel';

/** What the panel needs from the extension. */
export interface PanelDeps {
  extensionUri: vscode.Uri;
  session: TrainingService;
  log: Log;
  gate: Gate;
}

export const PANEL_VIEW_TYPE = 'headstart.trainingPanel';

/**
 * The training panel's webview host: strict CSP with a nonce, resources
 * limited to the bundle, the media folder and the workspace (thumbnails).
 * It renders the session's state; closing it does not stop a run.
 */
export class TrainingPanel extends Disposable {
  private static current: TrainingPanel | undefined;

  /** Shows the panel, creating it if needed. */
  static show(deps: PanelDeps): TrainingPanel {
    if (TrainingPanel.current) {
      TrainingPanel.current.panel.reveal(undefined, false);
      return TrainingPanel.current;
    }
    const panel = vscode.window.createWebviewPanel(PANEL_VIEW_TYPE, 'Headstart', vscode.ViewColumn.Active, TrainingPanel.options(deps.extensionUri));
    return new TrainingPanel(panel, deps);
  }

  /** Restores a panel after a window reload (webview panel serializer). */
  static revive(panel: vscode.WebviewPanel, deps: PanelDeps): TrainingPanel {
    panel.webview.options = TrainingPanel.options(deps.extensionUri);
    return new TrainingPanel(panel, deps);
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

  private readonly extensionUri: vscode.Uri;
  private readonly session: TrainingService;
  private readonly log: Log;
  private readonly gate: Gate;

  private constructor(readonly panel: vscode.WebviewPanel, deps: PanelDeps) {
    super();
    ({ extensionUri: this.extensionUri, session: this.session, log: this.log, gate: this.gate } = deps);
    const extensionUri = this.extensionUri;
    TrainingPanel.current = this;
    this.panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'icon.svg');
    this.session.setThumbnailMapper((p) => this.panel.webview.asWebviewUri(vscode.Uri.file(p)).toString());
    this.panel.webview.html = this.html();
    this.register(this.panel.onDidDispose(() => this.dispose()));
    this.register(this.panel.webview.onDidReceiveMessage((m: unknown) => void this.receive(m)));
    this.register(this.session.onDidChange((state) => this.post({ type: 'state', state })));
    this.register(this.session.onProgress((p) => this.post({ type: 'progress', ...p })));
  }

  private post(msg: ToWebview): void {
    if (this.ready) void this.panel.webview.postMessage(msg);
  }

  /**
   * Handles a message from the webview, which is hostile input: its shape is
   * checked, its action must pass the gate (Workspace Trust), and every path
   * in it is checked by the gate before use. Public so that the integration
   * tests can post what a compromised webview would.
   */
  async receive(raw: unknown): Promise<void> {
    const parsed = parseFromWebview(raw);
    if (!parsed.ok) {
      this.log.warn(`panel message dropped: ${parsed.reason}`);
      return;
    }
    const m = parsed.msg;
    const action = PANEL_MESSAGE_ACTION[m.type];
    if (action && !this.gate.require(action)) return;
    await this.onMessage(m);
  }

  private async onMessage(m: FromWebview): Promise<void> {
    switch (m.type) {
      case 'ready':
        // Thumbnail URLs are made again for this webview; the state goes back as the reply.
        this.session.refreshView();
        this.ready = true;
        this.post(replyTo<PanelRequests, 'ready'>(m, this.session.state));
        void this.session.refreshLists();
        return;
      case 'options': {
        const o = await this.gate.form(m.options, this.session.state);
        // The form comes whole: no preprocessing edits in it clears those kept.
        if (o) this.session.setOptions({ ...o, onnxInput: o.onnxInput });
        return;
      }
      case 'start': {
        const o = await this.gate.form(m.options, this.session.state);
        if (o) void this.session.start(o);
        return;
      }
      case 'cancel':
        this.session.cancel();
        return;
      case 'pickData': {
        // What the user picks in the system dialog is theirs to choose, inside the workspace or not.
        const picked = await vscode.window.showOpenDialog({ defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri, canSelectFolders: true, canSelectFiles: true, canSelectMany: false, filters: { 'Class folders or manifests': ['csv', 'jsonl'] }, openLabel: 'Use as dataset' });
        if (picked?.[0]) this.session.setOptions({ data: picked[0].fsPath });
        return;
      }
      case 'export':
        await this.session.exportModel(m.out, undefined, exportRequest(m.choices));
        return;
      case 'openFile': {
        const file = await this.gate.openFile(m.path, this.session.state);
        if (file?.line) {
          const at = new vscode.Position(file.line - 1, 0);
          await vscode.window.showTextDocument(vscode.Uri.file(file.path), { selection: new vscode.Range(at, at) });
        } else if (file) await vscode.commands.executeCommand('vscode.open', vscode.Uri.file(file.path));
        return;
      }
      case 'openSnippet': {
        const dir = this.session.state.exported?.outDir;
        if (dir) await vscode.window.showTextDocument(vscode.Uri.joinPath(vscode.Uri.file(dir), 'inference.mjs'));
        return;
      }
      case 'openRun': {
        const dir = await this.gate.runDir(m.runDir);
        if (dir) await this.session.openRun(dir);
        return;
      }
      case 'distill':
        // 'slim' (the teacher's backbone slimmed for the task) or a catalogue id only: the engine would also load a model.json from any path.
        if (m.student !== 'slim' && !this.session.state.backbones.some((b) => b.id === m.student)) this.gate.refuse('distill', `'${m.student}' is not a backbone of the catalogue`);
        else await this.session.distill(m.student);
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
    // Every value in the template is escaped, though none comes from the user (an install path could hold a quote).
    const e = (v: unknown) => escapeHtml(String(v));
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${e(`default-src 'none'; img-src ${webview.cspSource} data:; style-src ${webview.cspSource} 'unsafe-inline'; font-src ${webview.cspSource}; script-src 'nonce-${nonce}';`)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link href="${e(css)}" rel="stylesheet">
<title>Headstart</title>
</head>
<body>
<main id="app" aria-live="polite"><p>Loading…</p></main>
<script nonce="${e(nonce)}" src="${e(script)}"></script>
</body>
</html>`;
  }

  override dispose(): void {
    if (TrainingPanel.current === this) TrainingPanel.current = undefined;
    this.panel.dispose();
    super.dispose();
  }
}
