import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ExportFormat, QuantizeChoice, SlimChoice } from '../shared/choices';
import type { ExportChoices } from '../shared/panelProtocol';
import { MAX_TEXT_BYTES } from '../shared/options';
import type { PredictionLine, TextPredictionLine } from '../shared/records';
import type { Gate } from './gate';
import type { Log } from './log';
import { TrainingPanel } from './panel';
import { pickModel } from './models';
import { pickBackbone, pickDataset } from './pickers';
import { listRuns } from './runs';
import type { TrainingService, TrainOutcome } from './trainingService';
import { engineSettings, readSettings, runsFolder } from './settings';
import { type TrainerClient, WorkerRequestError } from './trainerClient';
import { backboneFor, capSelection, exportRequest, textPredictionPick } from './viewModel';

/** The optional arguments of Export Model… (tests and other extensions pass them). */
export type ExportArgs = Pick<ExportChoices, 'quantize' | 'format' | 'slim'>;

/** What the command handlers need. */
export interface Services {
  extensionUri: vscode.Uri;
  storage: vscode.Uri;
  session: TrainingService;
  client: TrainerClient;
  log: Log;
  /** Every command passes it first (see extension.ts): trust is not checked again here. */
  gate: Gate;
}

/** Shows an error with a button to the log. */
function showError(s: Services, message: string): void {
  void vscode.window.showErrorMessage(`Headstart: ${message}`, 'Show Log').then((a) => {
    if (a) s.log.channel.show();
  });
}

export function openPanel(s: Services): TrainingPanel {
  return TrainingPanel.show({ extensionUri: s.extensionUri, session: s.session, log: s.log, gate: s.gate });
}

/** Fine-tune a Model…: dataset, then backbone, then the panel with the options filled in. */
export async function fineTune(s: Services): Promise<void> {
  const data = await pickDataset();
  if (!data) return;
  const backbones = await s.client.request('backbones', { settings: engineSettings(s.storage) });
  // Only backbones of the data's modality (texts: the text catalogue), the current one if it fits.
  const modality = await s.client.request('modality', { data });
  const fits = backbones.filter((b) => (b.task ?? 'image') === modality);
  const picked = await pickBackbone(fits, backboneFor(modality, s.session.state.options.backbone, backbones, readSettings().defaultBackbone), modality);
  // A picked ONNX file must lie inside the workspace (the trust gate); the panel then keeps it as the backbone.
  const backbone = picked && (await s.gate.backbonePath(picked, backbones));
  if (!backbone) return;
  s.session.setOptions({ data, backbone });
  openPanel(s);
}

/** Explorer: Fine-tune on This Folder. */
export function fineTuneFolder(s: Services, uri?: vscode.Uri): void {
  if (!uri) {
    void fineTune(s);
    return;
  }
  s.session.setOptions({ data: uri.fsPath });
  openPanel(s);
}

/** Start Training with the panel's current options; resolves with the outcome (tests await it). */
export async function startTraining(s: Services): Promise<TrainOutcome> {
  openPanel(s);
  const outcome = await s.session.start();
  if (outcome.status === 'failed') showError(s, outcome.message);
  return outcome;
}

export function cancelTraining(s: Services): void {
  if (!s.session.state.running) {
    void vscode.window.showInformationMessage('Headstart: no training in progress.');
    return;
  }
  s.session.cancel();
}

async function pickRun(s: Services, title: string): Promise<string | undefined> {
  const runs = await listRuns(runsFolder());
  if (!runs.length) {
    void vscode.window.showInformationMessage('Headstart: no runs in this workspace yet. Run "Headstart: Fine-tune a Model…" first.');
    return undefined;
  }
  const pick = await vscode.window.showQuickPick(
    runs.map((r) => ({ label: r.name, description: `${(r.accuracy * 100).toFixed(1)}% test accuracy · ${r.classes} classes · ${r.backbone}`, detail: new Date(r.createdAt).toLocaleString(), runDir: r.runDir })),
    { title, placeHolder: 'Choose a run' },
  );
  return pick?.runDir;
}

/** The format of an export: asked when not given. */
async function pickFormat(): Promise<ExportFormat | undefined> {
  const pick = await vscode.window.showQuickPick(
    [
      { label: 'TensorFlow.js', description: 'model.json + weights.bin: tf.loadGraphModel / tf.loadLayersModel in the browser or Node', value: 'tfjs' as const },
      { label: 'ONNX', description: 'model.onnx: ONNX Runtime in Node, the browser (onnxruntime-web), Python, …; offers int8 and slimming', value: 'onnx' as const },
    ],
    { title: 'Export Model: format' },
  );
  return pick?.value;
}

/** The weight storage of an export: int8 is offered for ONNX only (static QDQ, run by ONNX Runtime). */
async function pickQuantize(format: ExportFormat): Promise<QuantizeChoice | undefined> {
  const pick = await vscode.window.showQuickPick(
    [
      { label: 'auto', description: 'the smallest variant within 1 accuracy point of float32, decided on the validation images (never the test split)', value: 'auto' as const },
      ...(format === 'onnx' ? [{ label: 'int8', description: 'weights and activations int8, calibrated on training images: about ¼ size and faster in ONNX Runtime', value: 'int8' as const }] : []),
      { label: 'uint8', description: 'weights about ¼ of the float32 size', value: 'uint8' as const },
      ...(format === 'tfjs' ? [{ label: 'uint16', description: 'about ½ of the float32 size', value: 'uint16' as const }] : []),
      { label: 'float16', description: 'about ½ of the float32 size', value: 'float16' as const },
      { label: 'float32', description: 'no compression', value: 'none' as const },
    ],
    { title: 'Export Model: weights', placeHolder: format === 'tfjs' ? 'How to store the weights (int8 needs the ONNX format)' : 'How to store the weights' },
  );
  return pick?.value;
}

/** Backbone slimming of an ONNX export. */
async function pickSlim(): Promise<SlimChoice | undefined> {
  const pick = await vscode.window.showQuickPick(
    [
      { label: 'off', description: 'keep the backbone as it is', value: 'off' as const },
      { label: 'auto', description: 'remove the most hidden channels that keep validation accuracy within the budget', value: 'auto' as const },
    ],
    { title: 'Export Model: slim the backbone', placeHolder: 'Remove backbone channels this task does not need (ONNX only)' },
  );
  return pick?.value;
}

/**
 * Export Model…: a run (default the one shown), then a folder in the
 * workspace, the format, the weights and, for ONNX, slimming. Args skip the
 * pickers (with an `out` given, the others default to tfjs, none, off).
 */
export async function exportModel(s: Services, runDirArg?: string, outArg?: string, quantizeArg?: QuantizeChoice, formatArg?: ExportFormat, slimArg?: SlimChoice): Promise<unknown> {
  const runDir = runDirArg ?? (await pickRun(s, 'Export Model: run'));
  if (!runDir) return undefined;
  let out = outArg;
  if (!out) {
    out = await vscode.window.showInputBox({ title: 'Export Model: folder', prompt: 'Folder in the workspace to write the model into (you are asked before an existing one is replaced)', value: s.session.state.exportDefault || 'models/classifier', validateInput: (v) => (v.trim() ? undefined : 'a folder path') });
    if (!out) return undefined;
  }
  const format = formatArg ?? (outArg ? 'tfjs' : await pickFormat());
  if (!format) return undefined;
  const quantize = quantizeArg ?? (outArg ? 'none' : await pickQuantize(format));
  if (!quantize) return undefined;
  const slim = slimArg ?? (outArg || format !== 'onnx' ? 'off' : await pickSlim());
  if (slim === undefined) return undefined;
  const view = await s.session.exportModel(out, runDir, exportRequest({ format, quantize, slim, prune: 0, maxDrop: 1 }));
  if (view && !outArg) {
    const a = await vscode.window.showInformationMessage(`Headstart: exported to ${vscode.workspace.asRelativePath(view.outDir)} (${(view.bytes / 1e6).toFixed(1)} MB, test accuracy ${(view.accuracy * 100).toFixed(1)}% on ${view.testImages} images).`, 'Open Inference Snippet', 'Open Panel');
    if (a === 'Open Inference Snippet') await vscode.window.showTextDocument(vscode.Uri.file(path.join(view.outDir, 'inference.mjs')));
    if (a === 'Open Panel') openPanel(s);
  } else if (!view && s.session.state.error) showError(s, s.session.state.error);
  return view;
}

/** Show Runs: past runs with their metrics; the chosen one opens in the panel. */
export async function showRuns(s: Services): Promise<void> {
  const runDir = await pickRun(s, 'Headstart: runs in this workspace');
  if (!runDir) return;
  openPanel(s);
  await s.session.openRun(runDir);
}

/** Explorer: Classify with Headstart Model… on an image (`modelDirArg` skips the picker). */
export async function classifyImage(s: Services, uri?: vscode.Uri, modelDirArg?: string): Promise<PredictionLine | undefined> {
  const file = uri?.fsPath ?? vscode.window.activeTextEditor?.document.uri.fsPath;
  if (!file) {
    void vscode.window.showInformationMessage('Headstart: right-click an image in the Explorer to classify it.');
    return undefined;
  }
  const pick = modelDirArg ? { dir: modelDirArg } : await pickModel('image', path.basename(file));
  if (!pick) return undefined;
  try {
    const [line] = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Headstart: classifying ${path.basename(file)}`, cancellable: true }, (_p, token) =>
      s.client.request('predict', { modelDir: pick.dir, files: [file], settings: engineSettings(s.storage) }, undefined, token),
    );
    if (!line || 'error' in line) {
      showError(s, `cannot classify ${path.basename(file)}: ${line?.error ?? 'no result'}`);
      return line;
    }
    void vscode.window.showQuickPick(
      line.top.map((t) => ({ label: t.label, description: `${(t.probability * 100).toFixed(1)}%` })),
      { title: `${path.basename(file)}: ${line.label} (${(line.probability * 100).toFixed(1)}%)`, placeHolder: 'Top classes' },
    );
    return line;
  } catch (err) {
    if (err instanceof WorkerRequestError && err.cancelled) return undefined;
    showError(s, err instanceof Error ? err.message : String(err));
    return undefined;
  }
}

/**
 * Editor: Classify Selection with Headstart Model… The selected text (at most
 * MAX_TEXT_BYTES, the engine's size of one example; a larger selection is cut
 * and the title says so) goes to a text run or export of the workspace
 * (`modelDirArg` skips the picker); the top classes show in a quick pick.
 */
export async function classifySelection(s: Services, modelDirArg?: string): Promise<TextPredictionLine | undefined> {
  const editor = vscode.window.activeTextEditor;
  const selected = editor ? editor.document.getText(editor.selection) : '';
  if (!selected.trim()) {
    void vscode.window.showInformationMessage('Headstart: select some text in the editor to classify it.');
    return undefined;
  }
  const { text, cut } = capSelection(selected, MAX_TEXT_BYTES);
  if (cut) s.log.info(`classify selection: ${cut.bytes} bytes selected, the first ${cut.maxBytes} classified`);
  const pick = modelDirArg ? { dir: modelDirArg } : await pickModel('text', 'the selection');
  if (!pick) return undefined;
  try {
    const [line] = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'Headstart: classifying the selection', cancellable: true }, (_p, token) =>
      s.client.request('predictText', { modelDir: pick.dir, texts: [text], settings: engineSettings(s.storage) }, undefined, token),
    );
    if (!line || 'error' in line) {
      showError(s, `cannot classify the selection: ${line?.error ?? 'no result'}`);
      return line;
    }
    const view = textPredictionPick(line, cut);
    void vscode.window.showQuickPick(view.items, { title: view.title, placeHolder: 'Top classes' });
    return line;
  } catch (err) {
    if (err instanceof WorkerRequestError && err.cancelled) return undefined;
    showError(s, err instanceof Error ? err.message : String(err));
    return undefined;
  }
}
