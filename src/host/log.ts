import * as vscode from 'vscode';

/** The "Headstart" output channel: user-facing log, with stacks of errors. */
export class Log implements vscode.Disposable {
  readonly channel = vscode.window.createOutputChannel('Headstart', { log: true });
  /** The last lines logged (for diagnostics in tests and bug reports). */
  readonly recent: string[] = [];

  private keep(level: string, msg: string): void {
    this.recent.push(`${new Date().toISOString()} ${level} ${msg}`);
    if (this.recent.length > 300) this.recent.splice(0, this.recent.length - 300);
  }

  info(msg: string): void {
    this.keep('info', msg);
    this.channel.info(msg);
  }

  warn(msg: string): void {
    this.keep('warn', msg);
    this.channel.warn(msg);
  }

  error(msg: string, err?: unknown): void {
    const text = err instanceof Error && err.stack ? `${msg}\n${err.stack}` : msg;
    this.keep('error', text);
    this.channel.error(text);
  }

  dispose(): void {
    this.channel.dispose();
  }
}
