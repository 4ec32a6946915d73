import * as path from 'node:path';
import * as vscode from 'vscode';
import type { BackendChoice, EngineChoice } from '../shared/choices';
import type { EngineSettings } from '../shared/workerProtocol';

/** The extension's settings (see package.json `contributes.configuration`). */
export interface Settings {
  defaultBackbone: string;
  runsFolder: string;
  cacheDir: string;
  backend: BackendChoice;
  engine: EngineChoice;
  extractionWorkers: number;
  /** redis:// URL of a queue served by `headstart worker` processes ('' : extract here). May hold a password: never log it. */
  queue: string;
}

export function readSettings(): Settings {
  const c = vscode.workspace.getConfiguration('headstart');
  return {
    defaultBackbone: c.get('defaultBackbone', 'mobilenet-v2-140'),
    runsFolder: c.get('runsFolder', '.headstart/runs'),
    cacheDir: c.get('cacheDir', ''),
    backend: c.get('backend', 'auto'),
    engine: c.get('engine', 'auto'),
    extractionWorkers: c.get('extractionWorkers', 0),
    queue: c.get('queue', '').trim(),
  };
}

/** Where the engine keeps downloaded backbones and embeddings. */
export function engineSettings(storage: vscode.Uri): EngineSettings {
  const s = readSettings();
  return {
    cacheDir: s.cacheDir || path.join(storage.fsPath, 'cache'),
    backend: s.backend,
    engine: s.engine,
    workers: s.extractionWorkers > 0 ? s.extractionWorkers : undefined,
  };
}

/** The runs folder of the first workspace folder (absolute), if a folder is open. */
export function runsFolder(): string | undefined {
  const ws = vscode.workspace.workspaceFolders?.[0];
  if (!ws) return undefined;
  const r = readSettings().runsFolder;
  return path.isAbsolute(r) ? r : path.join(ws.uri.fsPath, r);
}
