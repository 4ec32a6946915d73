import * as path from 'node:path';
import * as vscode from 'vscode';
import * as cmd from './host/commands';
import { Gate } from './host/gate';
import { Log } from './host/log';
import { PANEL_VIEW_TYPE, TrainingPanel } from './host/panel';
import { COMMAND_ACTION } from './host/policy';
import { TrainingService } from './host/trainingService';
import { TrainingStatus } from './host/statusBar';
import { TrainerClient } from './host/trainerClient';

/** What activate() returns: used by the integration tests. */
export interface HeadstartApi {
  session: TrainingService;
  client: TrainerClient;
  log: cmd.Services['log'];
  /** The trust and path gate (tests: `simulateUntrusted`, and `ask` to answer the replace question). */
  gate: Gate;
  /** Handles `message` as if the panel's webview had posted it (opens the panel first). */
  postFromWebview(message: unknown): Promise<void>;
}

/** Wires services and commands. TensorFlow.js is never loaded here: it lives in the worker. */
export function activate(context: vscode.ExtensionContext): HeadstartApi {
  const log = new Log();
  const gate = new Gate(log);
  const client = new TrainerClient(path.join(context.extensionPath, 'dist', 'worker.js'), log);
  const session = new TrainingService(client, log, context.globalStorageUri, gate);
  const s: cmd.Services = { extensionUri: context.extensionUri, storage: context.globalStorageUri, session, client, log, gate };
  // Every command passes the gate with its action before its handler runs.
  const command = (name: keyof typeof COMMAND_ACTION, run: (...args: unknown[]) => unknown) =>
    vscode.commands.registerCommand(`headstart.${name}`, (...args: unknown[]) => {
      const action = COMMAND_ACTION[name];
      return action && !gate.require(action) ? undefined : run(...args);
    });
  const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const uri = (v: unknown) => (v instanceof vscode.Uri ? v : undefined);
  context.subscriptions.push(
    log,
    gate,
    client,
    session,
    new TrainingStatus(session),
    client.onDidCrash((why) => void vscode.window.showErrorMessage(`Headstart: ${why}`, 'Show Log').then((a) => a && log.channel.show())),
    command('fineTune', () => cmd.fineTune(s)),
    command('fineTuneFolder', (u) => cmd.fineTuneFolder(s, uri(u))),
    command('classifyImage', (u, modelDir) => cmd.classifyImage(s, uri(u), str(modelDir))),
    command('classifySelection', (modelDir) => cmd.classifySelection(s, str(modelDir))),
    command('openPanel', () => void cmd.openPanel(s)),
    command('startTraining', () => cmd.startTraining(s)),
    command('cancelTraining', () => cmd.cancelTraining(s)),
    command('exportModel', (runDir, out, quantize, format, slim) =>
      cmd.exportModel(s, str(runDir), str(out), str(quantize) as cmd.ExportArgs['quantize'], str(format) as cmd.ExportArgs['format'], typeof slim === 'number' ? slim : (str(slim) as cmd.ExportArgs['slim'])),
    ),
    command('showRuns', () => cmd.showRuns(s)),
    vscode.window.registerWebviewPanelSerializer(PANEL_VIEW_TYPE, {
      deserializeWebviewPanel: async (panel) => {
        TrainingPanel.revive(panel, { extensionUri: context.extensionUri, session, log, gate });
      },
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(() => session.refreshView()),
  );
  return { session, client, log, gate, postFromWebview: (m) => cmd.openPanel(s).receive(m) };
}

export function deactivate(): void {
  // Disposables in context.subscriptions stop the worker.
}
