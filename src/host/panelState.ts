/**
 * The panel's state store: the one PanelState the host keeps (it outlives the
 * webview and is sent whole when it changes), and its transitions as pure
 * functions from a state to the patch they make. No `vscode` here: node:test
 * walks the transitions.
 */
import { Emitter } from 'vscode-jsonrpc';
import type { EngineEvent } from '../shared/events';
import { ONNX_INPUT_FIELDS, type OnnxInputOptions, type OnnxPreprocessingResult, isOnnxModelFile } from '../shared/onnxInput';
import { DEFAULT_FORM, type FormOptions, type OnnxPreprocessingView, type PanelState, type ResultView, type RunSummary } from '../shared/panelProtocol';
import type { RunRecord, ScanSummary } from '../shared/records';
import { type Thumb, backboneFor, datasetPreview, exportDefaultFor, formOfRun, onnxPreprocessingView, resultView } from './viewModel';

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

/** Whether two sets of preprocessing edits are the same (field order and absent fields aside). */
export function sameEdits(a: OnnxInputOptions | undefined, b: OnnxInputOptions | undefined): boolean {
  const norm = (e: OnnxInputOptions | undefined) => JSON.stringify(ONNX_INPUT_FIELDS.map((k) => e?.[k] ?? null));
  return norm(a) === norm(b);
}

/**
 * The preprocessing view for the options `next`: none for a catalogue
 * backbone; the current one while the model and the edits stay; otherwise
 * pending (the service asks the worker), keeping the values shown of the
 * same model until the answer comes.
 */
function onnxFor(s: PanelState, next: FormOptions): OnnxPreprocessingView | undefined {
  if (!isOnnxModelFile(next.backbone)) return undefined;
  const cur = s.onnxPreprocessing;
  if (cur?.backbone !== next.backbone) return onnxPreprocessingView(next.backbone, undefined, next.onnxInput);
  if (sameEdits(s.options.onnxInput, next.onnxInput)) return cur;
  return { ...cur, pending: true, edited: ONNX_INPUT_FIELDS.filter((k) => next.onnxInput?.[k] !== undefined) };
}

/**
 * New form options: a graph backbone has nothing to unfreeze; preprocessing
 * edits belong to the ONNX model they were made for (another backbone drops
 * them) and a changed model or edit makes its preprocessing pending.
 */
export function optionsChanged(s: PanelState, options: Partial<FormOptions>): Patch {
  const next = { ...s.options, ...options };
  const format = s.backbones.find((b) => b.id === next.backbone)?.format;
  if (format !== 'layers') next.unfreeze = 0; // graph and ONNX backbones are frozen
  if (next.backbone !== s.options.backbone || !isOnnxModelFile(next.backbone)) next.onnxInput = undefined;
  return { options: next, unfreezeSupported: format === 'layers', onnxPreprocessing: onnxFor(s, next) };
}

/** The worker's answer for `backbone` with `edits`; undefined when the form has moved on since it was asked (a stale answer). */
export function onnxResolved(s: PanelState, backbone: string, edits: OnnxInputOptions | undefined, result: OnnxPreprocessingResult): Patch | undefined {
  if (s.options.backbone !== backbone || !sameEdits(s.options.onnxInput, edits)) return undefined;
  return { onnxPreprocessing: onnxPreprocessingView(backbone, result, edits) };
}

/** Why a run with `o` cannot start because of its ONNX model (undefined: it can). */
export function onnxRefusal(s: Pick<PanelState, 'onnxPreprocessing'>, o: FormOptions): string | undefined {
  const v = s.onnxPreprocessing;
  return isOnnxModelFile(o.backbone) && v?.backbone === o.backbone && v.refused ? `the ONNX model cannot be used: ${v.refused}` : undefined;
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
  const options = formOfRun(r, s.options);
  return {
    options,
    onnxPreprocessing: onnxFor(s, options),
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
