import * as path from 'node:path';
import * as vscode from 'vscode';
import type { EngineEvent } from '../shared/events';
import { type ExportView, type FormOptions, type PanelState, type ProgressView, validateForm } from '../shared/panelProtocol';
import type { DistillReport } from '../shared/records';
import type { OnnxPreprocessingResult } from '../shared/onnxInput';
import type { ExportRequestOptions } from '../shared/workerProtocol';
import { Disposable } from './disposable';
import { DownloadNotice } from './downloadNotice';
import type { Gate } from './gate';
import type { Log } from './log';
import { PanelStore, datasetScanned, engineEvent, initialPanelState, onnxRefusal, onnxResolved, optionsChanged, runCancelled, runDone, runFailed, runOpened, runStarted } from './panelState';
import { listRuns, readRun } from './runs';
import { engineSettings, readSettings, runsFolder } from './settings';
import { type TrainerClient, WorkerRequestError } from './trainerClient';
import { type Thumb, backboneFor, exportView, newRunDir, progressView, resultView, runStamp, trainRequest, withThumbs } from './viewModel';

/** What a training run came to. */
export type TrainOutcome =
  | { status: 'done'; runDir: string; accuracy: number }
  | { status: 'cancelled' }
  | { status: 'failed'; message: string };

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const isCancel = (err: unknown): boolean => err instanceof WorkerRequestError && err.cancelled;

/** Per-batch progress is sent at most this often (ms), except the last of a phase. */
const PROGRESS_INTERVAL_MS = 150;

/**
 * Runs training, export and distillation in the worker and keeps the panel's
 * state (src/host/panelState.ts) up to date. It outlives the panel: closing
 * the panel does not stop a run. Every engine request passes the gate first.
 */
export class TrainingService extends Disposable {
  private readonly store: PanelStore;
  readonly onDidChange: PanelStore['onDidChange'];
  private readonly progressed = this.register(new vscode.EventEmitter<ProgressView>());
  /** Light per-batch progress of the current run. */
  readonly onProgress = this.progressed.event;
  private readonly engineEvents = this.register(new vscode.EventEmitter<EngineEvent>());
  /** Every engine event of the current run (tests and the status bar listen). */
  readonly onEngineEvent = this.engineEvents.event;
  private cancelSource: vscode.CancellationTokenSource | undefined;
  private thumb: Thumb = (p) => p;
  private lastProgress = 0;
  private download: DownloadNotice | undefined;
  /** The model and edits whose preprocessing the worker is resolving. */
  private onnxAsked: string | undefined;

  constructor(private readonly client: TrainerClient, private readonly log: Log, private readonly storage: vscode.Uri, private readonly gate: Gate) {
    super();
    this.store = this.register(new PanelStore(initialPanelState(readSettings().defaultBackbone, gate.trusted), () => gate.trusted));
    this.onDidChange = this.store.onDidChange;
    // A refusal of the gate shows in the panel too (it is also logged and notified).
    this.register(gate.onDidRefuse((reason) => this.store.update({ error: reason })));
  }

  get state(): PanelState {
    return this.store.state;
  }

  /** How file paths become image URLs in the webview (set by the panel). */
  setThumbnailMapper(fn: Thumb): void {
    this.thumb = fn;
  }

  /** Rebuilds thumbnail URLs (after the panel is re-created) and re-sends the state. */
  refreshView(): void {
    this.store.update(withThumbs(this.state, this.thumb));
  }

  async refreshLists(): Promise<void> {
    try {
      const backbones = await this.client.request('backbones', { settings: engineSettings(this.storage) });
      const chosen = backbones.find((b) => b.id === this.state.options.backbone);
      this.store.update({ backbones, unfreezeSupported: chosen?.format === 'layers', runs: await listRuns(runsFolder()) });
    } catch (err) {
      this.log.error('could not list backbones', err);
    }
  }

  setOptions(options: Partial<FormOptions>): void {
    const dataChanged = options.data !== undefined && options.data !== this.state.options.data;
    this.store.update(optionsChanged(this.state, options));
    if (dataChanged && options.data) void this.preview(options.data);
    void this.resolveOnnx();
  }

  /**
   * Asks the worker for the preprocessing of the ONNX model chosen, with the
   * panel's edits, when the panel shows it pending (one request per model and
   * edits at a time; an answer for options changed since is dropped).
   */
  private async resolveOnnx(): Promise<void> {
    const { backbone, onnxInput } = this.state.options;
    const key = JSON.stringify([backbone, onnxInput ?? null]);
    if (!this.state.onnxPreprocessing?.pending || this.onnxAsked === key || !this.gate.require('scan')) return;
    this.onnxAsked = key;
    let result: OnnxPreprocessingResult;
    try {
      result = await this.client.request('onnxPreprocessing', { backbone, ...(onnxInput ? { onnxInput } : {}) });
    } catch (err) {
      this.log.error(`could not read the preprocessing of ${backbone}`, err);
      result = { ok: false, reason: `could not read the model's preprocessing (${message(err)})` };
    } finally {
      if (this.onnxAsked === key) this.onnxAsked = undefined;
    }
    const patch = onnxResolved(this.state, backbone, onnxInput, result);
    if (patch) this.store.update(patch);
  }

  /** Scans DATA in the worker for the dataset summary (counts, a thumbnail or a few texts per class, skipped files) and fits the backbone to its modality. */
  async preview(data: string): Promise<void> {
    if (!this.gate.require('scan')) return;
    try {
      const s = await this.client.request('scan', { data });
      this.store.update(datasetScanned(this.state, s, this.thumb, readSettings().defaultBackbone));
    } catch (err) {
      this.store.update({ dataset: undefined, error: message(err) });
    }
  }

  private newCancelToken(): vscode.CancellationToken {
    this.cancelSource?.dispose();
    this.cancelSource = new vscode.CancellationTokenSource();
    return this.cancelSource.token;
  }

  /** Starts a run with the given (or current) options; resolves when it ends. */
  async start(options?: FormOptions): Promise<TrainOutcome> {
    if (this.state.running) return { status: 'failed', message: 'a run is already in progress; cancel it first' };
    if (!this.gate.require('train')) return { status: 'failed', message: 'workspace not trusted' };
    let o = options ?? this.state.options;
    const errs = validateForm(o);
    const folder = runsFolder();
    const refusal = Object.keys(errs).length
      ? `check the options: ${Object.entries(errs).map(([k, v]) => `${k}: ${v}`).join('; ')}`
      : (onnxRefusal(this.state, o) ?? (!folder ? 'open a folder first: runs are saved in the workspace' : undefined));
    if (refusal || !folder) {
      const why = refusal ?? 'no runs folder';
      this.store.update({ options: o, error: why });
      return { status: 'failed', message: why };
    }
    const out = newRunDir(folder, o.data, new Date());
    const token = this.newCancelToken();
    this.store.update(runStarted(o));
    const queue = readSettings().queue;
    // The queue URL may carry a password: the log says only that one is used (the engine logs it redacted).
    this.log.info(`training: ${JSON.stringify({ ...o, out })}${queue ? ' on the queue of headstart.queue' : ''}`);
    const started = Date.now();
    try {
      o = await this.fitBackbone(o);
      const report = await this.client.request('train', { options: trainRequest(o, out, this.gate.roots(), queue), settings: engineSettings(this.storage) }, (e) => this.onEvent(e), token);
      this.endDownload();
      const run = await readRun(report.runDir);
      this.store.update(runDone(run && resultView(report.runDir, run, this.thumb), await listRuns(folder), (Date.now() - started) / 1000));
      this.log.info(`training finished: test accuracy ${(report.test.accuracy * 100).toFixed(1)}% → ${report.runDir}`);
      return { status: 'done', runDir: report.runDir, accuracy: report.test.accuracy };
    } catch (err) {
      this.endDownload();
      if (isCancel(err)) {
        this.store.update(runCancelled('Training'));
        this.log.info('training cancelled');
        return { status: 'cancelled' };
      }
      this.log.error(`training failed: ${message(err)}`, err);
      this.store.update(runFailed(message(err)));
      return { status: 'failed', message: message(err) };
    }
  }

  cancel(): void {
    this.cancelSource?.cancel();
  }

  /** The options with a backbone of DATA's modality (a run started before the preview's scan answered still fits). */
  private async fitBackbone(o: FormOptions): Promise<FormOptions> {
    const modality = await this.client.request('modality', { data: o.data });
    const backbone = backboneFor(modality, o.backbone, this.state.backbones, readSettings().defaultBackbone);
    if (backbone === o.backbone) return o;
    this.log.info(`training: ${o.data} holds ${modality}s; backbone ${o.backbone} → ${backbone}`);
    const fitted = { ...o, backbone };
    this.store.update({ options: fitted, notice: `${modality === 'text' ? 'Texts' : 'Images'}: backbone set to ${backbone}` });
    return fitted;
  }

  private endDownload(): void {
    this.download?.close();
    this.download = undefined;
  }

  private onEvent(e: EngineEvent): void {
    this.engineEvents.fire(e);
    if (e.type === 'phase') {
      if (e.phase === 'download') this.download ??= new DownloadNotice(e.message, () => this.cancel());
      else this.endDownload();
    }
    if (e.type === 'progress' && e.phase === 'download') this.download?.report(e.done, e.total);
    if (e.type === 'warning') this.log.warn(e.message);
    if (e.type === 'log') this.log.info(e.message);
    const patch = engineEvent(this.state, e);
    if (patch) this.store.update(patch);
    const p = progressView(e, this.state.totalEpochs);
    const now = Date.now();
    if (p && (now - this.lastProgress >= PROGRESS_INTERVAL_MS || p.done >= p.total)) {
      this.lastProgress = now;
      this.progressed.fire(p);
    }
  }

  /** Shows a past run in the panel: its options, curves and results. */
  async openRun(runDir: string): Promise<boolean> {
    const r = await readRun(runDir);
    if (!r) {
      this.store.update({ error: `${runDir} is not a Headstart run folder (no readable run.json)` });
      return false;
    }
    this.store.update(runOpened(this.state, runDir, r, this.thumb, path.basename(runDir)));
    void this.resolveOnnx();
    return true;
  }

  /** Distils the run shown into a student backbone; the student's run is then shown, with both compared. */
  async distill(student: string): Promise<DistillReport | undefined> {
    const runDir = this.state.result?.runDir;
    if (!runDir || this.state.running) return undefined;
    const runs = runsFolder();
    if (!runs) return this.gate.refuse('distill', 'open a folder first: runs live in the workspace');
    // The student's run goes beside the teacher's, inside the runs folder and nowhere else.
    const target = await this.gate.writeTarget('distill', `${runDir}-distilled-${student.replace(/[^\w.-]/g, '_')}-${runStamp(new Date())}`, [runs]);
    if (!target) return undefined;
    const token = this.newCancelToken();
    this.store.update({ running: true, phase: 'train', phaseMessage: `distilling into ${student}`, error: undefined, distilled: undefined });
    try {
      const rep = await this.client.request(
        'distill',
        { runDir, student, out: target.path, force: target.force, protectedRoots: this.gate.roots(), settings: engineSettings(this.storage) },
        (e) => this.onEvent(e),
        token,
      );
      this.store.update({ running: false, phase: 'idle', phaseMessage: '' });
      await this.openRun(rep.runDir);
      this.store.update({ distilled: { teacher: rep.teacher, student: rep.student }, runs: await listRuns(runsFolder()) });
      return rep;
    } catch (err) {
      this.store.update(isCancel(err) ? runCancelled('Distillation') : runFailed(message(err)));
      return undefined;
    }
  }

  /**
   * Exports a run (default: the one shown) into `out` (absolute, or relative to
   * the workspace folder), which must lie inside the workspace; an existing
   * folder is replaced only after the user confirmed it by name.
   */
  async exportModel(out: string, runDir = this.state.result?.runDir, options: Omit<ExportRequestOptions, 'out'> = {}): Promise<ExportView | undefined> {
    if (!runDir) {
      this.store.update({ error: 'train a model (or open a past run) before exporting' });
      return undefined;
    }
    // A stale error would otherwise be reported for a refusal or a kept folder.
    this.store.update({ error: undefined });
    const target = await this.gate.writeTarget('export', out);
    if (!target) return undefined;
    this.store.update({ exporting: true, error: undefined, phase: 'export', phaseMessage: 'exporting' });
    try {
      const rep = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Headstart: exporting model', cancellable: true }, (progress, token) =>
        this.client.request('export', { runDir, options: { ...options, out: target.path, force: target.force, protectedRoots: this.gate.roots() }, settings: engineSettings(this.storage) }, (e) => {
          if (e.type === 'progress' && e.total) progress.report({ message: `measuring ${e.unit ?? 'images'} ${e.done}/${e.total}` });
          else if (e.type === 'phase') progress.report({ message: e.message });
        }, token),
      );
      const view = exportView(rep);
      this.store.update({ exporting: false, exported: view, phase: 'idle', phaseMessage: '', notice: `Exported to ${rep.outDir}` });
      this.log.info(`exported ${runDir} → ${rep.outDir} (${rep.exported.bytes} bytes)`);
      return view;
    } catch (err) {
      const cancelled = isCancel(err);
      const text = cancelled ? 'Export cancelled; nothing was written.' : message(err);
      if (!cancelled) this.log.error(`export failed: ${text}`, err);
      this.store.update({ exporting: false, phase: 'idle', phaseMessage: '', ...(cancelled ? { notice: text } : { error: text }) });
      return undefined;
    }
  }
}
