import * as vscode from 'vscode';

/** The "Headstart" output channel: user-facing log, with stacks of errors. */
export class Log implements vscode.Disposable {
  readonly channel = vscode.window.createOutputChannel('Headstart', { log: true });

  info(msg: string): void {
    this.channel.info(msg);
  }

  warn(msg: string): void {
    this.channel.warn(msg);
  }

  error(msg: string, err?: unknown): void {
    this.channel.error(err instanceof Error && err.stack ? `${msg}\n${err.stack}` : msg);
  }

  dispose(): void {
    this.channel.dispose();
  }
}
