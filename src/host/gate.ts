import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { FormOptions, PanelState } from '../shared/panelProtocol';
import { Disposable } from './disposable';
import type { Log } from './log';
import { type Action, openableFiles, resolveInside, textPlace } from './policy';
import { runsFolder } from './settings';

const VERB: Record<Action, string> = {
  scan: 'read a dataset',
  train: 'train',
  export: 'export a model',
  distill: 'distil a model',
  classify: 'classify images or text',
  open: 'open files of a run',
};

/** Where a write may go, and whether the user agreed to replace what is there. */
export interface WriteTarget {
  path: string;
  force: boolean;
}

/**
 * The one gate every action of the extension goes through (commands, panel
 * messages, the session's engine requests): Workspace Trust first, then the
 * paths, which are treated as hostile. A refusal is logged, shown to the user
 * and fired on {@link onDidRefuse} (the panel shows it too); nothing is
 * dropped silently. The decisions themselves live in policy.ts.
 */
export class Gate extends Disposable {
  private readonly refused = this.register(new vscode.EventEmitter<string>());
  /** Fires with the reason of every refusal. */
  readonly onDidRefuse = this.refused.event;
  /** The modal question before a folder is replaced; tests answer it (an extension test cannot click a modal). */
  ask: (message: string, ...items: string[]) => Thenable<string | undefined> = (message, ...items) => vscode.window.showWarningMessage(message, { modal: true }, ...items);
  private untrustedForTest = false;
  private trustPromptOpen = false;

  constructor(private readonly log: Log) {
    super();
  }

  /** Workspace Trust as the gate sees it. */
  get trusted(): boolean {
    return vscode.workspace.isTrusted && !this.untrustedForTest;
  }

  /**
   * Test hook: behave as in an untrusted workspace (code-server runs with
   * --disable-workspace-trust). It can only take trust away, never grant it.
   */
  simulateUntrusted(on: boolean): void {
    this.untrustedForTest = on;
  }

  /** The workspace folders (absolute). */
  roots(): string[] {
    return (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
  }

  /** True when `action` may run; otherwise says why (trust the workspace) and returns false. */
  require(action: Action): boolean {
    if (this.trusted) return true;
    const message = `Headstart reads images and writes models only in trusted workspaces: trust this workspace to ${VERB[action]}.`;
    this.log.warn(`refused (${action}): workspace not trusted`);
    this.refused.fire(message);
    // One notification at a time: every edit of the panel's form would otherwise add one.
    if (!this.trustPromptOpen) {
      this.trustPromptOpen = true;
      void vscode.window.showWarningMessage(message, 'Manage Workspace Trust').then((a) => {
        this.trustPromptOpen = false;
        if (a) void vscode.commands.executeCommand('workbench.trust.manage');
      });
    }
    return false;
  }

  /** Logs and shows a refusal; returns undefined for the caller to return. */
  refuse(action: Action, reason: string): undefined {
    this.log.warn(`refused (${action}): ${reason}`);
    this.refused.fire(reason);
    void vscode.window.showWarningMessage(`Headstart: ${reason}`);
    return undefined;
  }

  /**
   * A dataset path from the webview: inside a workspace folder, or the one the
   * host already holds (picked by the user in a dialog or the Explorer).
   * Returns the absolute path to scan.
   */
  async dataPath(p: string, current: string): Promise<string | undefined> {
    if (!this.require('scan')) return undefined;
    const abs = path.resolve(this.roots()[0] ?? '/', p);
    if (current && abs === path.resolve(current)) return abs;
    const r = await resolveInside(p, this.roots(), { what: 'the dataset' });
    // The lexical path is scanned (it is what the user sees); its real path was checked.
    return r.ok ? abs : this.refuse('scan', `${r.reason}; choose a dataset inside the workspace`);
  }

  /**
   * A backbone the wizard picked: a catalogue id as it is, an ONNX model file
   * only inside a workspace folder (its real path checked; the model and its
   * sidecar are read by the worker). Returns what to train on.
   */
  async backbonePath(picked: string, catalogue: readonly { id: string }[]): Promise<string | undefined> {
    if (catalogue.some((b) => b.id === picked)) return picked;
    if (!this.require('scan')) return undefined;
    const r = await resolveInside(picked, this.roots(), { what: 'the ONNX model' });
    return r.ok ? r.path : this.refuse('scan', `${r.reason}; choose an ONNX model inside the workspace`);
  }

  /**
   * The form from the webview, its paths checked: the dataset as in
   * {@link dataPath} (an empty one stays empty), the backbone one of the
   * catalogue (a path to any model.json is not taken from the webview).
   */
  async form(o: FormOptions, state: Pick<PanelState, 'options' | 'backbones'>): Promise<FormOptions | undefined> {
    if (!this.require('scan')) return undefined;
    const known = o.backbone === state.options.backbone || state.backbones.some((b) => b.id === o.backbone);
    if (!known) return this.refuse('scan', `'${o.backbone}' is not a backbone of the catalogue`);
    if (!o.data) return o;
    const data = await this.dataPath(o.data, state.options.data);
    return data === undefined ? undefined : { ...o, data };
  }

  /**
   * The folder an export or a distillation writes: its real path strictly
   * inside one of `roots` (default: the workspace folders); when it exists, a
   * modal names it and only "Replace" sets `force`.
   */
  async writeTarget(action: 'export' | 'distill', out: string, roots = this.roots()): Promise<WriteTarget | undefined> {
    if (!this.require(action)) return undefined;
    const r = await resolveInside(out, roots, { what: `the ${action} folder`, strict: true });
    if (!r.ok) return this.refuse(action, r.reason);
    if (!(await existsNoFollow(r.path))) return { path: r.path, force: false };
    const shown = vscode.workspace.asRelativePath(r.path, false);
    const answer = await this.ask(`Headstart: the folder '${shown}' already exists (${r.path}). Replace it? Everything in it will be deleted.`, 'Replace');
    if (answer === 'Replace') {
      this.log.info(`${action}: the user chose to replace ${r.path}`);
      return { path: r.path, force: true };
    }
    this.log.info(`${action}: ${r.path} exists and was kept (not replaced)`);
    return undefined;
  }

  /**
   * A file the panel asks to open: only the dataset's or the shown run's files,
   * inside the workspace or the runs folder. A manifest's text (`data.csv:12`)
   * is its manifest, at that line.
   */
  async openFile(p: string, state: Pick<PanelState, 'dataset' | 'result'>): Promise<{ path: string; line?: number } | undefined> {
    if (!this.require('open')) return undefined;
    const abs = path.resolve(p);
    if (!openableFiles(state).has(abs)) return this.refuse('open', `${abs} is not a file of the dataset or run shown; the panel opens only those`);
    const runs = runsFolder();
    const place = textPlace(abs);
    const r = await resolveInside(place.file, [...this.roots(), ...(runs ? [runs] : [])], { what: 'the file' });
    return r.ok ? { path: r.path, line: place.line } : this.refuse('open', r.reason);
  }

  /** A run folder the panel asks to show: only one below the runs folder (headstart.runsFolder). */
  async runDir(p: string): Promise<string | undefined> {
    if (!this.require('open')) return undefined;
    const runs = runsFolder();
    if (!runs) return this.refuse('open', 'open a folder first: runs live in the workspace');
    const r = await resolveInside(p, [runs], { what: 'the run folder', strict: true });
    return r.ok ? r.path : this.refuse('open', r.reason);
  }
}

/** Whether something (even a dangling symlink) is at `p`. */
async function existsNoFollow(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
