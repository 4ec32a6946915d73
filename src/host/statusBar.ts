import * as vscode from 'vscode';
import { Disposable } from './disposable';
import type { TrainingService } from './trainingService';

/** A status bar item while a run is in progress; click opens the panel. */
export class TrainingStatus extends Disposable {
  private readonly item = this.register(vscode.window.createStatusBarItem('headstart.status', vscode.StatusBarAlignment.Left, 10));

  constructor(session: TrainingService) {
    super();
    this.item.name = 'Headstart training';
    this.item.command = 'headstart.openPanel';
    this.register(
      session.onDidChange((s) => {
        if (!s.running) {
          this.item.hide();
          return;
        }
        const last = s.history.at(-1);
        this.item.text = s.phase === 'train' && last ? `$(loading~spin) Headstart: epoch ${last.epoch}/${s.totalEpochs} · val ${(last.valAccuracy * 100).toFixed(0)}%` : `$(loading~spin) Headstart: ${s.phase}`;
        this.item.tooltip = `${s.phaseMessage}\nClick to open the training panel`;
        this.item.show();
      }),
    );
  }
}
