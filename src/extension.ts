import * as path from 'node:path';
import * as vscode from 'vscode';
import * as cmd from './host/commands';
import { Log } from './host/log';
import { PANEL_VIEW_TYPE, TrainingPanel } from './host/panel';
import { TrainingSession } from './host/session';
import { TrainingStatus } from './host/statusBar';
import { TrainerClient } from './host/trainerClient';

/** What activate() returns: used by the integration tests. */
export interface HeadstartApi {
  session: TrainingSession;
  client: TrainerClient;
  log: cmd.Services['log'];
}

/** Wires services and commands. TensorFlow.js is never loaded here: it lives in the worker. */
export function activate(context: vscode.ExtensionContext): HeadstartApi {
  const log = new Log();
  const client = new TrainerClient(path.join(context.extensionPath, 'dist', 'worker.js'), log);
  const session = new TrainingSession(client, log, context.globalStorageUri);
  const s: cmd.Services = { extensionUri: context.extensionUri, storage: context.globalStorageUri, session, client, log };
  context.subscriptions.push(
    log,
    client,
    session,
    new TrainingStatus(session),
    client.onDidCrash((why) => void vscode.window.showErrorMessage(`Headstart: ${why}`, 'Show Log').then((a) => a && log.channel.show())),
    vscode.commands.registerCommand('headstart.fineTune', () => cmd.fineTune(s)),
    vscode.commands.registerCommand('headstart.fineTuneFolder', (uri?: vscode.Uri) => cmd.fineTuneFolder(s, uri)),
    vscode.commands.registerCommand('headstart.classifyImage', (uri?: vscode.Uri, modelDir?: unknown) => cmd.classifyImage(s, uri, typeof modelDir === 'string' ? modelDir : undefined)),
    vscode.commands.registerCommand('headstart.openPanel', () => cmd.openPanel(s)),
    vscode.commands.registerCommand('headstart.startTraining', () => cmd.startTraining(s)),
    vscode.commands.registerCommand('headstart.cancelTraining', () => cmd.cancelTraining(s)),
    vscode.commands.registerCommand('headstart.exportModel', (runDir?: string, out?: string, quantize?: 'none' | 'float16' | 'uint16' | 'uint8' | 'auto', format?: 'tfjs' | 'onnx') =>
      cmd.exportModel(s, typeof runDir === 'string' ? runDir : undefined, out, quantize, format),
    ),
    vscode.commands.registerCommand('headstart.showRuns', () => cmd.showRuns(s)),
    vscode.window.registerWebviewPanelSerializer(PANEL_VIEW_TYPE, {
      deserializeWebviewPanel: async (panel) => {
        TrainingPanel.revive(panel, context.extensionUri, session, log);
      },
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => session.refreshView()),
  );
  return { session, client, log };
}

export function deactivate(): void {
  // Disposables in context.subscriptions stop the worker.
}
