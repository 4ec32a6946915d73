import * as path from 'node:path';
import * as vscode from 'vscode';
import type { EngineEvent } from '../shared/events';
import {
  type BackboneChoice,
  DEFAULT_FORM,
  type DatasetPreview,
  type DistillFigures,
  type ExportView,
  type FormOptions,
  type PanelState,
  type Phase,
  type ResultView,
  type ToWebview,
  validateForm,
} from '../shared/panelProtocol';
import type { ExportRequestOptions } from '../shared/workerProtocol';
import { Disposable } from './disposable';
import type { Gate } from './gate';
import type { Log } from './log';
import { type RunJson, listRuns, readRun } from './runs';
import { engineSettings, readSettings, runsFolder } from './settings';
import { type TrainerClient, WorkerRequestError } from './trainerClient';

/** What a training run came to. */
export type TrainOutcome =
  | { status: 'done'; runDir: string; accuracy: number }
  | { status: 'cancelled' }
  | { status: 'failed'; message: string };

interface TrainReportLike {
  runDir: string;
  backend: string;
  test: RunJson['test'];
  baseline: RunJson['baseline'];
  dataset: RunJson['dataset'];
  timings: { totalSeconds: number };
}

interface DistillView {
  runDir: string;
  teacher: DistillFigures;
  student: DistillFigures;
}

interface ExportReportLike {
  outDir: string;
  modelFormat: string;
  chosen: string;
  candidates: ExportView['candidates'];
  float32: { bytes: number; gzipBytes: number; accuracy: number };
  exported: { bytes: number; gzipBytes: number; accuracy: number; msPerImage: number };
}

/**
 * The training session: owns the panel state, runs training / export in the
 * worker, and tells the panel and status bar what changed. It outlives the
 * panel: closing the panel does not stop a run.
 */
export class TrainingSession extends Disposable {
  private readonly changed = this.register(new vscode.EventEmitter<PanelState>());
  readonly onDidChange = this.changed.event;
  private readonly progressed = this.register(new vscode.EventEmitter<Extract<ToWebview, { type: 'progress' }>>());
  readonly onProgress = this.progressed.event;
  private readonly engineEvents = this.register(new vscode.EventEmitter<EngineEvent>());
  /** Every engine event of the current run (tests and the status bar listen). */
  readonly onEngineEvent = this.engineEvents.event;
  private cancelSource: vscode.CancellationTokenSource | undefined;
  private thumb: (p: string) => string = (p) => p;
  state: PanelState;

  constructor(private readonly client: TrainerClient, private readonly log: Log, private readonly storage: vscode.Uri, private readonly gate: Gate) {
    super();
    // A refusal of the gate shows in the panel too (it is also logged and notified).
    this.register(gate.onDidRefuse((reason) => this.update({ error: reason })));
    this.state = {
      options: { ...DEFAULT_FORM, data: '', backbone: readSettings().defaultBackbone },
      backbones: [],
      unfreezeSupported: false,
      running: false,
      phase: 'idle',
      phaseMessage: '',
      history: [],
      totalEpochs: 0,
      exportDefault: '',
      exporting: false,
      runs: [],
      trusted: gate.trusted,
    };
  }

  /** How file paths become image URLs in the webview (set by the panel). */
  setThumbnailMapper(fn: (p: string) => string): void {
    this.thumb = fn;
  }

  private update(patch: Partial<PanelState>): void {
    this.state = { ...this.state, ...patch, trusted: this.gate.trusted };
    this.changed.fire(this.state);
  }

  /** Rebuilds thumbnail URLs (after the panel is re-created) and re-sends the state. */
  refreshView(): void {
    const ds = this.state.dataset;
    const res = this.state.result;
    this.update({
      dataset: ds && { ...ds, classes: ds.classes.map((c) => ({ ...c, thumb: c.example && this.thumb(c.example) })) },
      result: res && { ...res, mistakes: res.mistakes.map((m) => ({ ...m, thumb: this.thumb(m.path) })) },
    });
  }

  async refreshLists(): Promise<void> {
    const settings = engineSettings(this.storage);
    try {
      const backbones = await this.client.request<BackboneChoice[], 'backbones'>('backbones', { settings });
      const chosen = backbones.find((b) => b.id === this.state.options.backbone);
      this.update({ backbones, unfreezeSupported: chosen?.format === 'layers', runs: await listRuns(runsFolder()) });
    } catch (err) {
      this.log.error('could not list backbones', err);
    }
  }

  setOptions(options: Partial<FormOptions>): void {
    const dataChanged = options.data !== undefined && options.data !== this.state.options.data;
    const next = { ...this.state.options, ...options };
    const format = this.state.backbones.find((b) => b.id === next.backbone)?.format;
    // Graph backbones are frozen graphs: nothing to unfreeze.
    if (format === 'graph') next.unfreeze = 0;
    this.update({ options: next, unfreezeSupported: format === 'layers' });
    if (dataChanged && options.data) void this.preview(options.data);
  }

  /** Scans DATA in the worker for the dataset summary (counts, a thumbnail per class, skipped files). */
  async preview(data: string): Promise<void> {
    if (!this.gate.require('scan')) return;
    try {
      const s = await this.client.request<{ root: string; total: number; counts: Record<string, number>; examples: Record<string, string>; skipped: Array<{ path: string; reason: string }> }, 'scan'>('scan', { data });
      const counts = Object.values(s.counts);
      const warnings: string[] = [];
      if (Object.keys(s.counts).length < 2) warnings.push('a classifier needs at least two classes (one sub-folder per class)');
      const tiny = Object.entries(s.counts).filter(([, n]) => n < 10).map(([l]) => `'${l}'`);
      if (tiny.length) warnings.push(`few images in ${tiny.join(', ')} (under 10): results will be noisy`);
      if (counts.length && Math.max(...counts) / Math.max(1, Math.min(...counts)) >= 3) warnings.push('classes are imbalanced (3x or more); class weights compensate in training');
      const dataset: DatasetPreview = {
        root: s.root,
        total: s.total,
        classes: Object.entries(s.counts).map(([label, count]) => ({ label, count, example: s.examples[label], thumb: s.examples[label] ? this.thumb(s.examples[label]) : undefined })),
        skipped: s.skipped,
        warnings,
      };
      const base = path.basename(s.root).replace(/\.(csv|jsonl)$/i, '') || 'model';
      this.update({ dataset, exportDefault: this.state.exportDefault || path.join('models', base), error: undefined });
    } catch (err) {
      this.update({ dataset: undefined, error: err instanceof Error ? err.message : String(err) });
    }
  }

  /** Starts a run with the given (or current) options; resolves when it ends. */
  async start(options?: FormOptions): Promise<TrainOutcome> {
    if (this.state.running) return { status: 'failed', message: 'a run is already in progress; cancel it first' };
    if (!this.gate.require('train')) return { status: 'failed', message: 'workspace not trusted' };
    const o = options ?? this.state.options;
    const errs = validateForm(o);
    if (Object.keys(errs).length) {
      const message = `check the options: ${Object.entries(errs).map(([k, v]) => `${k}: ${v}`).join('; ')}`;
      this.update({ options: o, error: message });
      return { status: 'failed', message };
    }
    const folder = runsFolder();
    if (!folder) {
      const message = 'open a folder first: runs are saved in the workspace';
      this.update({ error: message });
      return { status: 'failed', message };
    }
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
    const out = path.join(folder, `${stamp}-${path.basename(o.data).replace(/\.(csv|jsonl)$/i, '')}`.replace(/[^\w.-]/g, '_'));
    this.cancelSource?.dispose();
    this.cancelSource = new vscode.CancellationTokenSource();
    this.update({ options: o, running: true, phase: 'scan', phaseMessage: 'starting', history: [], totalEpochs: o.epochs, result: undefined, exported: undefined, distilled: undefined, error: undefined, notice: undefined });
    this.log.info(`training: ${JSON.stringify({ ...o, out })}`);
    const started = Date.now();
    try {
      const report = await this.client.request<TrainReportLike, 'train'>(
        'train',
        { options: { ...o, augment: o.augment ? { views: o.augment } : undefined, out, protectedRoots: this.gate.roots() }, settings: engineSettings(this.storage) },
        (e) => this.onEvent(e),
        this.cancelSource.token,
      );
      this.endDownloadNotification();
      const run = await readRun(report.runDir);
      this.update({ running: false, phase: 'idle', phaseMessage: '', result: run ? this.resultView(report.runDir, run) : undefined, runs: await listRuns(folder), notice: `Trained in ${((Date.now() - started) / 1000).toFixed(1)} s` });
      this.log.info(`training finished: test accuracy ${(report.test.accuracy * 100).toFixed(1)}% → ${report.runDir}`);
      return { status: 'done', runDir: report.runDir, accuracy: report.test.accuracy };
    } catch (err) {
      this.endDownloadNotification();
      if (err instanceof WorkerRequestError && err.cancelled) {
        this.update({ running: false, phase: 'idle', phaseMessage: '', notice: 'Training cancelled; nothing was saved.' });
        this.log.info('training cancelled');
        return { status: 'cancelled' };
      }
      const message = err instanceof Error ? err.message : String(err);
      this.log.error(`training failed: ${message}`, err);
      this.update({ running: false, phase: 'idle', phaseMessage: '', error: message });
      return { status: 'failed', message };
    }
  }

  cancel(): void {
    this.cancelSource?.cancel();
  }

  private lastProgress = 0;
  /** The notification of a backbone download in progress: report(bytes) and end(). */
  private download: { report: (done: number, total: number) => void; end: () => void } | undefined;

  /** A cancellable notification while a backbone downloads (first use of a remote backbone). */
  private startDownloadNotification(message: string): void {
    let end: () => void = () => undefined;
    let last = 0;
    let report: (done: number, total: number) => void = () => undefined;
    void vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Headstart: downloading the backbone', cancellable: true }, (progress, token) => {
      progress.report({ message });
      token.onCancellationRequested(() => this.cancel());
      report = (done, total) => {
        const pct = total ? (done / total) * 100 : 0;
        progress.report({ increment: pct - last, message: `${(done / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB` });
        last = pct;
      };
      return new Promise<void>((resolve) => (end = resolve));
    });
    this.download = { report: (d, t) => report(d, t), end: () => end() };
  }

  private endDownloadNotification(): void {
    this.download?.end();
    this.download = undefined;
  }

  private onEvent(e: EngineEvent): void {
    this.engineEvents.fire(e);
    switch (e.type) {
      case 'phase':
        if (e.phase === 'download' && !this.download) this.startDownloadNotification(e.message);
        else if (e.phase !== 'download') this.endDownloadNotification();
        this.update({ phase: e.phase as Phase, phaseMessage: e.message });
        return;
      case 'progress': {
        if (e.phase === 'download') this.download?.report(e.done, e.total);
        const now = Date.now();
        if (now - this.lastProgress < 150 && e.done < e.total) return;
        this.lastProgress = now;
        this.progressed.fire({ type: 'progress', phase: e.phase as Phase, done: e.done, total: e.total, eta: e.eta, detail: e.rate ? `${e.rate.toFixed(1)} ${e.unit ?? ''}/s` : '' });
        return;
      }
      case 'batch': {
        const now = Date.now();
        if (now - this.lastProgress < 150 && e.batch < e.batches) return;
        this.lastProgress = now;
        this.progressed.fire({ type: 'progress', phase: 'train', done: (e.epoch - 1) * e.batches + e.batch, total: this.state.totalEpochs * e.batches, eta: e.eta, detail: `epoch ${e.epoch}, loss ${e.loss.toFixed(3)}` });
        return;
      }
      case 'epoch': {
        const m = e.metrics;
        this.update({ history: [...this.state.history, { epoch: m.epoch, loss: m.loss, accuracy: m.accuracy, valLoss: m.valLoss, valAccuracy: m.valAccuracy }], totalEpochs: e.totalEpochs });
        return;
      }
      case 'warning':
        this.log.warn(e.message);
        return;
      case 'log':
        this.log.info(e.message);
        return;
      default: {
        const never: never = e;
        void never;
      }
    }
  }

  private resultView(runDir: string, r: RunJson): ResultView {
    return {
      runDir,
      accuracy: r.test.accuracy,
      macroF1: r.test.macroF1,
      count: r.test.count,
      labels: r.labels,
      perClass: r.test.perClass,
      confusion: r.test.confusion,
      mistakes: r.test.mistakes.slice(0, 12).map((m) => ({ ...m, thumb: this.thumb(m.path) })),
      baseline: r.baseline,
      backend: r.backend,
      engine: r.engine ?? `tfjs-${r.backend}`,
      seconds: r.timings.totalSeconds,
    };
  }

  /** Shows a past run in the panel: its options, curves and results. */
  async openRun(runDir: string): Promise<boolean> {
    const r = await readRun(runDir);
    if (!r) {
      this.update({ error: `${runDir} is not a Headstart run folder (no readable run.json)` });
      return false;
    }
    const c = r.config;
    this.update({
      options: { ...this.state.options, data: c.data, backbone: r.backbone.id, epochs: c.epochs, batchSize: c.batchSize, learningRate: c.learningRate, hiddenUnits: c.hiddenUnits, dropout: c.dropout, val: c.val, test: c.test, seed: c.seed, unfreeze: c.unfreeze ?? 0, augment: c.augment?.views ?? 0 },
      history: r.history,
      totalEpochs: c.epochs,
      result: this.resultView(runDir, r),
      exported: undefined,
      distilled: undefined,
      error: undefined,
      notice: `Showing run ${path.basename(runDir)}`,
      exportDefault: this.state.exportDefault || path.join('models', path.basename(r.dataset.root)),
    });
    return true;
  }

  /** Distils the run shown into a student backbone; the student's run is then shown, with both compared. */
  async distill(student: string): Promise<DistillView | undefined> {
    const runDir = this.state.result?.runDir;
    if (!runDir || this.state.running) return undefined;
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
    const runs = runsFolder();
    if (!runs) return this.gate.refuse('distill', 'open a folder first: runs live in the workspace');
    // The student's run goes beside the teacher's, inside the runs folder and nowhere else.
    const target = await this.gate.writeTarget('distill', `${runDir}-distilled-${student.replace(/[^\w.-]/g, '_')}-${stamp}`, [runs]);
    if (!target) return undefined;
    this.cancelSource?.dispose();
    this.cancelSource = new vscode.CancellationTokenSource();
    this.update({ running: true, phase: 'train', phaseMessage: `distilling into ${student}`, error: undefined, distilled: undefined });
    try {
      const rep = await this.client.request<DistillView, 'distill'>(
        'distill',
        { runDir, student, out: target.path, force: target.force, protectedRoots: this.gate.roots(), settings: engineSettings(this.storage) },
        (e) => this.onEvent(e),
        this.cancelSource.token,
      );
      this.update({ running: false, phase: 'idle', phaseMessage: '' });
      await this.openRun(rep.runDir);
      this.update({ distilled: { teacher: rep.teacher, student: rep.student }, runs: await listRuns(runsFolder()) });
      return rep;
    } catch (err) {
      const cancelled = err instanceof WorkerRequestError && err.cancelled;
      this.update({ running: false, phase: 'idle', phaseMessage: '', ...(cancelled ? { notice: 'Distillation cancelled.' } : { error: err instanceof Error ? err.message : String(err) }) });
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
      this.update({ error: 'train a model (or open a past run) before exporting' });
      return undefined;
    }
    // A stale error would otherwise be reported for a refusal or a kept folder.
    this.update({ error: undefined });
    const target = await this.gate.writeTarget('export', out);
    if (!target) return undefined;
    this.update({ exporting: true, error: undefined, phase: 'export', phaseMessage: 'exporting' });
    try {
      const rep = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Headstart: exporting model', cancellable: true }, (progress, token) =>
        this.client.request<ExportReportLike, 'export'>('export', { runDir, options: { ...options, out: target.path, force: target.force, protectedRoots: this.gate.roots() }, settings: engineSettings(this.storage) }, (e) => {
          if (e.type === 'progress' && e.total) progress.report({ message: `measuring ${e.unit ?? 'images'} ${e.done}/${e.total}` });
          else if (e.type === 'phase') progress.report({ message: e.message });
        }, token),
      );
      const view: ExportView = {
        outDir: rep.outDir,
        bytes: rep.exported.bytes,
        gzipBytes: rep.exported.gzipBytes,
        accuracy: rep.exported.accuracy,
        float32Bytes: rep.float32.bytes,
        float32GzipBytes: rep.float32.gzipBytes,
        float32Accuracy: rep.float32.accuracy,
        msPerImage: rep.exported.msPerImage,
        modelFormat: rep.modelFormat,
        chosen: rep.chosen,
        candidates: rep.candidates.map((c) => ({ name: c.name, bytes: c.bytes, gzipBytes: c.gzipBytes, accuracy: c.accuracy, withinBudget: c.withinBudget })),
      };
      this.update({ exporting: false, exported: view, phase: 'idle', phaseMessage: '', notice: `Exported to ${rep.outDir}` });
      this.log.info(`exported ${runDir} → ${rep.outDir} (${rep.exported.bytes} bytes)`);
      return view;
    } catch (err) {
      const cancelled = err instanceof WorkerRequestError && err.cancelled;
      const message = cancelled ? 'Export cancelled; nothing was written.' : err instanceof Error ? err.message : String(err);
      if (!cancelled) this.log.error(`export failed: ${message}`, err);
      this.update({ exporting: false, phase: 'idle', phaseMessage: '', ...(cancelled ? { notice: message } : { error: message }) });
      return undefined;
    }
  }
}
