// Integration tests in a real VS Code extension host: the extension activates,
// fine-tunes on a generated dataset in the test workspace, exports, cancels,
// and survives a worker crash. Datasets are written by the runner before start.
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vscode = require('vscode');

const EXT_ID = 'headstart.headstart';
const ws = () => vscode.workspace.workspaceFolders[0].uri.fsPath;

/** Resolves with the first engine event that matches. */
function nextEvent(api, pred) {
  return new Promise((resolve) => {
    const sub = api.session.onEngineEvent((e) => {
      if (pred(e)) {
        sub.dispose();
        resolve(e);
      }
    });
  });
}

/** Awaits `p`, failing after `ms` with the extension's recent log (a hang says where it hung). */
async function within(api, p, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish in ${ms} ms; recent log:\n${api.log.recent.slice(-40).join('\n')}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function runDirs() {
  const dir = path.join(ws(), '.headstart', 'runs');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

describe('Headstart in VS Code', () => {
  let api;

  before(async () => {
    const ext = vscode.extensions.getExtension(EXT_ID);
    assert.ok(ext, 'extension is installed');
    api = await ext.activate();
    assert.ok(api && api.session, 'activate() returns the API');
  });

  it('registers its commands', async () => {
    const all = await vscode.commands.getCommands(true);
    for (const c of ['headstart.fineTune', 'headstart.fineTuneFolder', 'headstart.classifyImage', 'headstart.openPanel', 'headstart.cancelTraining', 'headstart.exportModel', 'headstart.showRuns']) {
      assert.ok(all.includes(c), `${c} registered`);
    }
  });

  it('fine-tunes on a folder, saves the run in the workspace, and exports it', async () => {
    const data = path.join(ws(), 'shapes');
    await vscode.commands.executeCommand('headstart.fineTuneFolder', vscode.Uri.file(data));
    api.session.setOptions({ epochs: 15 });
    const outcome = await vscode.commands.executeCommand('headstart.startTraining');
    assert.equal(outcome.status, 'done', JSON.stringify(outcome));
    assert.ok(outcome.runDir.startsWith(path.join(ws(), '.headstart', 'runs')), outcome.runDir);
    const record = JSON.parse(fs.readFileSync(path.join(outcome.runDir, 'run.json'), 'utf8'));
    assert.deepEqual(record.labels, ['circle', 'square', 'triangle']);
    assert.ok(fs.existsSync(path.join(outcome.runDir, 'head', 'model.json')));
    assert.ok(outcome.accuracy >= 0.6, `accuracy ${outcome.accuracy}`);
    const state = api.session.state;
    assert.equal(state.running, false);
    assert.ok(state.history.length >= 1, 'the panel received epochs');
    assert.equal(state.result.runDir, outcome.runDir);

    const view = await vscode.commands.executeCommand('headstart.exportModel', outcome.runDir, 'models/shapes');
    assert.ok(view, 'export returned a report');
    for (const f of ['model.json', 'weights.bin', 'labels.json', 'metadata.json', 'report.json', 'README.md', 'inference.mjs']) {
      assert.ok(fs.existsSync(path.join(ws(), 'models', 'shapes', f)), `${f} exported`);
    }
    assert.equal(view.accuracy, outcome.accuracy);
    assert.equal(view.chosen, 'float32');

    // Compressed: uint8 weights, about a quarter of float32.
    const small = await vscode.commands.executeCommand('headstart.exportModel', outcome.runDir, 'models/shapes-uint8', 'uint8');
    assert.equal(small.chosen, 'uint8');
    assert.ok(small.bytes < 0.3 * small.float32Bytes, `${small.bytes} vs ${small.float32Bytes}`);
    const manifest = JSON.parse(fs.readFileSync(path.join(ws(), 'models', 'shapes-uint8', 'model.json'), 'utf8')).weightsManifest;
    assert.ok(manifest[0].weights.some((w) => w.quantization && w.quantization.dtype === 'uint8'));

    // ONNX, measured in ONNX Runtime inside the worker.
    const onnxView = await vscode.commands.executeCommand('headstart.exportModel', outcome.runDir, 'models/shapes-onnx', 'uint8', 'onnx');
    assert.equal(onnxView.modelFormat, 'onnx');
    assert.ok(fs.existsSync(path.join(ws(), 'models', 'shapes-onnx', 'model.onnx')));
  });

  it('distills the run shown into a smaller backbone', async () => {
    const teacherRun = api.session.state.result.runDir;
    const rep = await within(api, api.session.distill('mobilenet-v2-100'), 180_000, 'distillation');
    assert.ok(rep, api.session.state.error);
    assert.equal(rep.teacher.runDir, teacherRun);
    assert.equal(rep.student.backbone, 'mobilenet-v2-100');
    assert.ok(rep.student.bytes < rep.teacher.bytes, `${rep.student.bytes} < ${rep.teacher.bytes}`);
    assert.ok(fs.existsSync(path.join(rep.runDir, 'run.json')));
    assert.equal(api.session.state.result.runDir, rep.runDir, 'the panel shows the student');
    assert.ok(api.session.state.distilled);
  });

  it('cancels a run within a batch and saves nothing', async () => {
    const before = runDirs().length;
    await vscode.commands.executeCommand('headstart.fineTuneFolder', vscode.Uri.file(path.join(ws(), 'shapes-cancel')));
    const started = vscode.commands.executeCommand('headstart.startTraining');
    const first = await within(api, Promise.race([nextEvent(api, (e) => e.type === 'progress' && e.phase === 'extract'), started]), 60_000, 'extraction progress');
    assert.equal(first.type, 'progress', `the run ended before extracting: ${JSON.stringify(first)}`);
    await vscode.commands.executeCommand('headstart.cancelTraining');
    const outcome = await started;
    assert.equal(outcome.status, 'cancelled');
    assert.equal(runDirs().length, before, 'no run folder was written');
    assert.equal(api.session.state.running, false);
  });

  it('reports a worker crash and can run again', async () => {
    await vscode.commands.executeCommand('headstart.fineTuneFolder', vscode.Uri.file(path.join(ws(), 'shapes-crash')));
    const started = vscode.commands.executeCommand('headstart.startTraining');
    const first = await within(api, Promise.race([nextEvent(api, (e) => e.type === 'progress' && e.phase === 'extract'), started]), 60_000, 'extraction progress');
    assert.equal(first.type, 'progress', `the run ended before extracting: ${JSON.stringify(first)}`);
    const pid = api.client.pid;
    assert.ok(pid, 'worker is running');
    process.kill(pid, 'SIGKILL');
    const outcome = await within(api, started, 60_000, 'the killed run');
    assert.equal(outcome.status, 'failed');
    assert.match(outcome.message, /worker process stopped unexpectedly/);
    assert.match(api.session.state.error, /stopped unexpectedly/);

    api.session.setOptions({ epochs: 5 });
    const again = await within(api, vscode.commands.executeCommand('headstart.startTraining'), 120_000, 'the run after the crash');
    assert.equal(again.status, 'done', JSON.stringify(again));
    assert.notEqual(api.client.pid, pid, 'a new worker process ran');
  });

  it('classifies an image with the exported model', async () => {
    const img = path.join(ws(), 'shapes', 'circle', 'circle-001.jpg');
    const line = await vscode.commands.executeCommand('headstart.classifyImage', vscode.Uri.file(img), path.join(ws(), 'models', 'shapes'));
    assert.ok(line && !line.error, JSON.stringify(line));
    assert.ok(['circle', 'square', 'triangle'].includes(line.label));
    assert.equal(line.top.length, 3);
  });
});
