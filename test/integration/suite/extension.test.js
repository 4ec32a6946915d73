// Integration tests in a real VS Code extension host: the extension activates,
// fine-tunes on a generated dataset in the test workspace, exports, cancels,
// and survives a worker crash. Datasets are written by the runner before start.
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
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

/** Resolves with the panel's state once `pred` holds (now or after a change), failing after `ms`. */
function stateWhere(api, pred, ms, what) {
  if (pred(api.session.state)) return Promise.resolve(api.session.state);
  let sub;
  const p = new Promise((resolve) => {
    sub = api.session.onDidChange((s) => {
      if (pred(s)) resolve(s);
    });
  });
  return within(api, p, ms, what).finally(() => sub.dispose());
}

/** Paths of the files open in editor tabs. */
function tabPaths() {
  return vscode.window.tabGroups.all.flatMap((g) => g.tabs).map((t) => t.input && t.input.uri && t.input.uri.fsPath).filter(Boolean);
}

/** Runs `fn` and returns the reasons the gate refused meanwhile. */
async function refusalsDuring(api, fn) {
  const seen = [];
  const sub = api.gate.onDidRefuse((r) => seen.push(r));
  try {
    await fn();
    return seen;
  } finally {
    sub.dispose();
  }
}

const CHOICES = { format: 'tfjs', quantize: 'none', prune: 0, maxDrop: 1 };

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
    for (const c of ['headstart.fineTune', 'headstart.fineTuneFolder', 'headstart.classifyImage', 'headstart.classifySelection', 'headstart.openPanel', 'headstart.cancelTraining', 'headstart.exportModel', 'headstart.showRuns']) {
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
    // Epochs were set (15), the head was not: cross-validation chose it, and the panel shows the table and intervals.
    assert.equal(record.selection.grid.epochs, 'fixed at 15');
    assert.deepEqual(state.result.selection.rows.map((r) => r.name), record.selection.results.map((r) => r.name));
    assert.ok(state.result.selection.rows.length >= 2, 'linear and MLP were both tried');
    assert.equal(state.result.interval.n, record.test.count);
    assert.ok(state.result.baseline.interval, 'the baseline carries its interval');

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

  it('exports int8 ONNX from the panel and shows its calibration, speed-up and interval', async () => {
    const runDir = api.session.state.result.runDir;
    const choices = { format: 'onnx', quantize: 'int8', prune: 0, maxDrop: 1 };
    await within(api, api.postFromWebview({ type: 'export', out: 'models/shapes-int8', choices }), 120_000, 'the int8 export');
    const e = api.session.state.exported;
    assert.ok(e, api.session.state.error);
    assert.equal(api.session.state.result.runDir, runDir);
    const report = JSON.parse(fs.readFileSync(path.join(ws(), 'models', 'shapes-int8', 'report.json'), 'utf8'));
    assert.equal(report.chosen, 'int8');
    assert.equal(report.quantization.calibrationSplit, 'train', 'calibrated on training images only');
    assert.ok(report.quantization.calibrationImages > 0);
    assert.ok(report.quantization.speed.batch1Speedup > 0);
    // The panel shows what report.json says.
    assert.deepEqual(e.quantization, {
      calibrationImages: report.quantization.calibrationImages,
      calibrationSplit: 'train',
      threads: report.quantization.speed.threads,
      int8Ms: report.quantization.speed.int8.batch1Ms,
      float32Ms: report.quantization.speed.float32.batch1Ms,
      speedup: report.quantization.speed.batch1Speedup,
      batch32Speedup: report.quantization.speed.batch32Speedup,
    });
    assert.equal(e.interval.n, report.testImages, 'the accuracy carries its n');
    assert.ok(e.interval.low <= e.accuracy && e.accuracy <= e.interval.high);
    assert.equal(e.choice.split, 'test', 'asked for int8: nothing chosen, measured on the test split');
    // int8 with TF.js is refused by the engine with what to do (the form refuses it before sending).
    await api.postFromWebview({ type: 'export', out: 'models/shapes-int8-tfjs', choices: { ...choices, format: 'tfjs' } });
    assert.match(api.session.state.error, /needs --format onnx/);
    assert.ok(!fs.existsSync(path.join(ws(), 'models', 'shapes-int8-tfjs')));
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
  // Workspace Trust: code-server runs with --disable-workspace-trust, so the
  // workspace is trusted; gate.simulateUntrusted(true) makes the one gate that
  // every command and panel message passes answer as in an untrusted one.
  it('in an untrusted workspace the panel and the commands read, write and open nothing, and say why', async () => {
    const runs = runDirs().map((n) => path.join(ws(), '.headstart', 'runs', n));
    const shown = api.session.state.result.runDir;
    const other = runs.find((r) => r !== shown);
    assert.ok(other, 'a second run to open');
    const data = api.session.state.options.data;
    const example = api.session.state.dataset.classes[0].example;
    api.gate.simulateUntrusted(true);
    let seen;
    try {
      seen = await refusalsDuring(api, async () => {
        await api.postFromWebview({ type: 'export', out: 'models/untrusted', choices: CHOICES });
        await api.postFromWebview({ type: 'options', options: { ...api.session.state.options, data: path.join(ws(), 'shapes-cancel') } });
        await api.postFromWebview({ type: 'openFile', path: example });
        await api.postFromWebview({ type: 'openRun', runDir: other });
        assert.equal(await vscode.commands.executeCommand('headstart.exportModel', shown, 'models/untrusted-cmd'), undefined);
      });
    } finally {
      api.gate.simulateUntrusted(false);
    }
    assert.equal(seen.length, 5, seen.join('\n'));
    for (const r of seen) assert.match(r, /only in trusted workspaces: trust this workspace/);
    assert.ok(!fs.existsSync(path.join(ws(), 'models', 'untrusted')) && !fs.existsSync(path.join(ws(), 'models', 'untrusted-cmd')), 'nothing exported');
    assert.equal(api.session.state.options.data, data, 'no new dataset');
    assert.equal(api.session.state.result.runDir, shown, 'no run opened');
    assert.ok(!tabPaths().includes(example), 'no file opened');
    assert.equal(api.session.state.trusted, false);
    assert.match(api.session.state.error, /trust this workspace/, 'the panel shows the refusal');
    assert.ok(api.log.recent.some((l) => /refused \(export\): workspace not trusted/.test(l)), 'the refusal is logged');
    // Trusted again, the same message goes through (so the refusals above are the gate's doing).
    await api.postFromWebview({ type: 'openRun', runDir: other });
    assert.equal(api.session.state.result.runDir, other);
  });

  it('the panel opens only the files of the dataset or run shown, runs only under the runs folder, data only in the workspace', async () => {
    const data = api.session.state.options.data;
    const notShown = path.join(ws(), 'shapes', 'circle', 'circle-002.jpg');
    const seen = await refusalsDuring(api, async () => {
      await api.postFromWebview({ type: 'openFile', path: '/etc/passwd' });
      await api.postFromWebview({ type: 'openFile', path: notShown });
      await api.postFromWebview({ type: 'openRun', runDir: path.join(ws(), 'shapes') });
      await api.postFromWebview({ type: 'openRun', runDir: '/' });
      await api.postFromWebview({ type: 'options', options: { ...api.session.state.options, data: '/etc' } });
      await api.postFromWebview({ type: 'options', options: { ...api.session.state.options, data: path.join(ws(), '..') } });
    });
    assert.equal(seen.length, 6, seen.join('\n'));
    assert.match(seen[0], /\/etc\/passwd is not a file of the dataset or run shown/);
    assert.match(seen[2], /the run folder .* is outside/);
    assert.match(seen[4], /the dataset \/etc is outside/);
    assert.ok(!tabPaths().some((p) => p === '/etc/passwd' || p === notShown), tabPaths().join(', '));
    assert.equal(api.session.state.options.data, data);
    // A file of the run shown does open.
    const runJson = path.join(api.session.state.result.runDir, 'run.json');
    await api.postFromWebview({ type: 'openFile', path: runJson });
    assert.ok(tabPaths().includes(runJson), tabPaths().join(', '));
  });

  it('the panel exports only inside the workspace, and replaces an existing folder only after "Replace"', async () => {
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'headstart-outside-'));
    fs.symlinkSync(outside, path.join(ws(), 'escape'));
    const escaped = path.join(path.dirname(ws()), `${path.basename(ws())}-escape`);
    const refused = await refusalsDuring(api, async () => {
      for (const out of [path.join(outside, 'm'), `../${path.basename(escaped)}`, 'escape/m', 'escape/new/deeper', ws()]) {
        await api.postFromWebview({ type: 'export', out, choices: CHOICES });
      }
    });
    assert.equal(refused.length, 5, refused.join('\n'));
    for (const r of refused) assert.match(r, /the export folder .* is outside/);
    assert.deepEqual(fs.readdirSync(outside), [], 'nothing written through the symlink');
    assert.ok(!fs.existsSync(escaped));

    const target = path.join(ws(), 'models', 'shapes');
    const keep = path.join(target, 'keep.txt');
    fs.writeFileSync(keep, 'mine');
    const asked = [];
    const ask = api.gate.ask;
    try {
      api.gate.ask = async (message) => {
        asked.push(message);
        return undefined; // the user closes the dialog
      };
      await api.postFromWebview({ type: 'export', out: 'models/shapes', choices: CHOICES });
      assert.equal(asked.length, 1);
      assert.match(asked[0], /'models\/shapes' already exists .*Replace it\?/);
      assert.equal(fs.readFileSync(keep, 'utf8'), 'mine', 'not replaced without confirmation');

      api.gate.ask = async (message, ...items) => {
        asked.push(message);
        return items.find((i) => i === 'Replace');
      };
      await within(api, api.postFromWebview({ type: 'export', out: 'models/shapes', choices: CHOICES }), 120_000, 'the confirmed export');
      assert.equal(asked.length, 2);
      assert.ok(!fs.existsSync(keep), 'replaced after "Replace"');
      assert.ok(fs.existsSync(path.join(target, 'model.json')));
      assert.equal(api.session.state.exported.outDir, fs.realpathSync(target));
    } finally {
      api.gate.ask = ask;
      fs.rmSync(outside, { recursive: true, force: true });
    }
  });

  it('trains on labelled texts through the panel (a text backbone, TF-IDF baseline, texts in the summary) and classifies a selection', async () => {
    const data = path.join(ws(), 'tickets');
    await vscode.commands.executeCommand('headstart.fineTuneFolder', vscode.Uri.file(data));
    // The panel's default backbone is an image one: the run still trains on texts with the bundled word vectors.
    const outcome = await within(api, vscode.commands.executeCommand('headstart.startTraining'), 120_000, 'the text run');
    assert.equal(outcome.status, 'done', JSON.stringify(outcome));
    const record = JSON.parse(fs.readFileSync(path.join(outcome.runDir, 'run.json'), 'utf8'));
    assert.equal(record.modality, 'text');
    assert.equal(record.backbone.id, 'glove-100d-avg');
    assert.match(record.baseline.description, /TF-IDF/);
    const state = await stateWhere(api, (s) => s.dataset && s.dataset.modality === 'text', 30_000, 'the text dataset summary');
    assert.equal(state.options.backbone, 'glove-100d-avg');
    assert.equal(state.result.runDir, outcome.runDir);
    assert.equal(state.result.modality, 'text');
    assert.ok(state.result.text.coverage.tokens > 0.8, JSON.stringify(state.result.text));
    for (const m of state.result.mistakes) assert.ok(m.thumb === '' && typeof m.text === 'string' && m.text.length > 0, JSON.stringify(m));
    assert.equal(state.dataset.total, 64);
    assert.ok(state.dataset.text.words.max >= state.dataset.text.words.min);
    const shown = state.dataset.classes[0].texts[1].path;
    assert.ok(shown.startsWith(data), shown);
    await api.postFromWebview({ type: 'openFile', path: shown });
    assert.ok(tabPaths().includes(shown), tabPaths().join(', '));

    const doc = await vscode.workspace.openTextDocument({ content: 'Hello,\nmy parcel never arrived and tracking is stuck\nThanks.' });
    const editor = await vscode.window.showTextDocument(doc);
    editor.selection = new vscode.Selection(1, 0, 1, doc.lineAt(1).text.length);
    const line = await within(api, vscode.commands.executeCommand('headstart.classifySelection', outcome.runDir), 60_000, 'classify selection');
    assert.ok(line && !line.error, JSON.stringify(line));
    assert.equal(line.label, 'shipping');
    assert.equal(line.top.length, 4);
    assert.ok(line.top[0].probability >= line.top[1].probability);

    // Through the trust gate like every command.
    api.gate.simulateUntrusted(true);
    let seen;
    try {
      seen = await refusalsDuring(api, async () => assert.equal(await vscode.commands.executeCommand('headstart.classifySelection', outcome.runDir), undefined));
    } finally {
      api.gate.simulateUntrusted(false);
    }
    assert.equal(seen.length, 1, seen.join('\n'));
    assert.match(seen[0], /trust this workspace to classify images or text/);
  });

  it('trains on an ONNX model chosen in the workspace: its preprocessing shown, the mean changed in the panel, recorded in run.json', async function () {
    const model = path.join(ws(), 'byo', 'tiny.onnx');
    if (!fs.existsSync(model)) this.skip(); // the runner writes it (runCodeServer.mjs); the Electron runner does not
    // "Choose an ONNX model…" in the wizard: the picked file passes the gate (inside the workspace only), then the panel keeps it.
    const outside = await refusalsDuring(api, async () => assert.equal(await api.gate.backbonePath(path.join(os.tmpdir(), 'elsewhere.onnx'), api.session.state.backbones), undefined));
    assert.match(outside[0], /outside .*choose an ONNX model inside the workspace/);
    const backbone = await api.gate.backbonePath(model, api.session.state.backbones);
    assert.equal(backbone, fs.realpathSync(model));
    api.session.setOptions({ data: path.join(ws(), 'shapes'), backbone });
    await vscode.commands.executeCommand('headstart.openPanel');
    let s = await stateWhere(api, (x) => x.onnxPreprocessing && !x.onnxPreprocessing.pending, 60_000, 'the preprocessing of the ONNX model');
    const v = s.onnxPreprocessing;
    assert.equal(v.refused, undefined, v.refused);
    assert.deepEqual([v.text.input, v.text.size, v.text.layout, v.text.range, v.text.mean, v.featureSize], ['x', '32', 'NHWC', '0-1', '0, 0, 0', 16]);
    assert.deepEqual([v.from.size, v.from.layout, v.from.mean], ['model graph', 'model graph', 'default']);
    // The webview sends the changed mean (what its form posts); the preprocessing is resolved again with it.
    await api.postFromWebview({ type: 'options', options: { ...s.options, onnxInput: { mean: [0.5, 0.5, 0.5] } } });
    s = await stateWhere(api, (x) => x.onnxPreprocessing && !x.onnxPreprocessing.pending && x.onnxPreprocessing.from.mean === 'set here', 60_000, 'the edited preprocessing');
    assert.equal(s.onnxPreprocessing.text.mean, '0.5, 0.5, 0.5');
    // A hostile edit is dropped by the host's policy; the edit made stays.
    await api.postFromWebview({ type: 'options', options: { ...s.options, onnxInput: { std: [0], output: '<img src=x onerror=alert(1)>' } } });
    assert.deepEqual(api.session.state.options.onnxInput, { mean: [0.5, 0.5, 0.5] });
    api.session.setOptions({ epochs: 5 });
    const outcome = await within(api, vscode.commands.executeCommand('headstart.startTraining'), 120_000, 'the ONNX-backbone run');
    assert.equal(outcome.status, 'done', JSON.stringify(outcome));
    const record = JSON.parse(fs.readFileSync(path.join(outcome.runDir, 'run.json'), 'utf8'));
    assert.equal(record.backbone.id, `onnx:${fs.realpathSync(model)}`);
    assert.deepEqual(record.backbone.onnxInput.mean, [0.5, 0.5, 0.5]);
    assert.deepEqual([record.backbone.onnxInput.layout, record.backbone.onnxInput.size, record.backbone.onnxInput.std], ['NHWC', 32, [1, 1, 1]]);
  });
});
