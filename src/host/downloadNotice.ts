import * as vscode from 'vscode';

/**
 * A cancellable notification while a backbone downloads (first use of a
 * remote backbone): `report` moves its bar, `end` closes it, its Cancel
 * button calls `onCancel`.
 */
export class DownloadNotice {
  private last = 0;
  private progress: vscode.Progress<{ message?: string; increment?: number }> | undefined;
  private end: () => void = () => undefined;
  private closed = false;

  constructor(message: string, onCancel: () => void) {
    void vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Headstart: downloading the backbone', cancellable: true }, (progress, token) => {
      progress.report({ message });
      token.onCancellationRequested(onCancel);
      this.progress = progress;
      // Closed before the notification showed: it goes away at once.
      return this.closed ? Promise.resolve() : new Promise<void>((resolve) => (this.end = resolve));
    });
  }

  /** Bytes done of total. */
  report(done: number, total: number): void {
    const pct = total ? (done / total) * 100 : 0;
    this.progress?.report({ increment: pct - this.last, message: `${(done / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB` });
    this.last = pct;
  }

  close(): void {
    this.closed = true;
    this.end();
  }
}
