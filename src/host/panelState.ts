/**
 * The panel's state store: the one PanelState the host keeps (it outlives the
 * webview and is sent whole when it changes), and its transitions as pure
 * functions from a state to the patch they make. No `vscode` here: node:test
 * walks the transitions.
 */
import { Emitter } from 'vscode-jsonrpc';
import type { EngineEvent } from '../shared/events';
import { DEFAULT_FORM, type FormOptions, type PanelState, type ResultView, type RunSummary } from '../shared/panelProtocol';
import type { RunRecord, ScanSummary } from '../shared/records';
import { type Thumb, backboneFor, datasetPreview, exportDefaultFor, formOfRun, resultView } from './viewModel';

export type Patch = Partial<PanelState>;

/** The state before anything happened. */
export function initialPanelState(defaultBackbone: string, trusted: boolean): PanelState {
  return {
    options: { ...DEFAULT_FORM, data: '', backbone: defaultBackbone },
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
    trusted,
  };
}

/** New form options: a graph backbone has nothing to unfreeze. */
export function optionsChanged(s: PanelState, options: Partial<FormOptions>): Patch {
  const next = { ...s.options, ...options };
  const format = s.backbones.find((b) => b.id === next.backbone)?.format;
  if (format !== 'layers') next.unfreeze = 0; // graph and ONNX backbones are frozen
  return { options: next, unfreezeSupported: format === 'layers' };
}

/**
 * A dataset was scanned: its preview, the default export folder, and a
 * backbone of its modality (a text dataset cannot train on an image backbone,
 * nor images on a text one); a switch is said in the notice.
 */
export function datasetScanned(s: PanelState, summary: ScanSummary, thumb: Thumb, imageDefault: string): Patch {
  const modality = summary.modality === 'text' ? 'text' : 'image';
  const backbone = backboneFor(modality, s.options.backbone, s.backbones, imageDefault);
  const patch: Patch = { dataset: datasetPreview(summary, thumb), exportDefault: s.exportDefault || exportDefaultFor(summary.root), error: undefined };
  if (backbone === s.options.backbone) return patch;
  return { ...patch, ...optionsChanged(s, { backbone }), notice: `${modality === 'text' ? 'Texts' : 'Images'}: backbone set to ${backbone}` };
}

/** A run starts with options `o`: the last run's results are cleared. */
export function runStarted(o: FormOptions): Patch {
  return { options: o, running: true, phase: 'scan', phaseMessage: 'starting', history: [], totalEpochs: o.epochs ?? 0, result: undefined, exported: undefined, distilled: undefined, error: undefined, notice: undefined };
}

const stopped: Patch = { running: false, phase: 'idle', phaseMessage: '' };

/** A run finished: its results and the runs list. */
export function runDone(result: ResultView | undefined, runs: RunSummary[], seconds: number): Patch {
  return { ...stopped, result, runs, notice: `Trained in ${seconds.toFixed(1)} s` };
}

/** The user cancelled the run; nothing was saved. */
export function runCancelled(what: 'Training' | 'Distillation'): Patch {
  return { ...stopped, notice: what === 'Training' ? 'Training cancelled; nothing was saved.' : 'Distillation cancelled.' };
}

/** The run failed with `message` (also a crash of the worker). */
export function runFailed(message: string): Patch {
  return { ...stopped, error: message };
}

/** What an engine event changes in the state (phases and epochs; per-batch progress goes separately). */
export function engineEvent(s: PanelState, e: EngineEvent): Patch | undefined {
  if (e.type === 'phase') return { phase: e.phase, phaseMessage: e.message };
  if (e.type === 'epoch') {
    const m = e.metrics;
    return { history: [...s.history, { epoch: m.epoch, loss: m.loss, accuracy: m.accuracy, valLoss: m.valLoss, valAccuracy: m.valAccuracy }], totalEpochs: e.totalEpochs };
  }
  return undefined;
}

/** A past run shown in the panel: its options, curves and results. */
export function runOpened(s: PanelState, runDir: string, r: RunRecord, thumb: Thumb, name: string): Patch {
  return {
    options: formOfRun(r, s.options),
    history: r.history,
    totalEpochs: r.config.epochs,
    result: resultView(runDir, r, thumb),
    exported: undefined,
    distilled: undefined,
    error: undefined,
    notice: `Showing run ${name}`,
    exportDefault: s.exportDefault || exportDefaultFor(r.dataset.root),
  };
}

/**
 * Holds the state; every change goes through {@link update} and fires
 * {@link onDidChange} with the whole new state. `trusted` is read on every
 * change, so the panel always shows Workspace Trust as it is.
 */
export class PanelStore {
  private readonly changed = new Emitter<PanelState>();
  readonly onDidChange = this.changed.event;
  private current: PanelState;

  constructor(initial: PanelState, private readonly trusted: () => boolean) {
    this.current = initial;
  }

  get state(): PanelState {
    return this.current;
  }

  update(patch: Patch): void {
    this.current = { ...this.current, ...patch, trusted: this.trusted() };
    this.changed.fire(this.current);
  }

  dispose(): void {
    this.changed.dispose();
  }
}
