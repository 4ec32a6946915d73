// `headstart export RUN --format onnx --quantize int8`: static QDQ int8.
// A run on a small convolutional backbone made by code (fast), and one on the
// bundled MobileNetV2 1.4: the QDQ graph is valid (ONNX Runtime loads it and
// fuses every Conv into QLinearConv; each Conv / MatMul input comes from a
// DequantizeLinear; scales positive, weight zero points 0, weights inside the
// 7-bit range); calibration reads training images only (every file read of
// the export is counted); the export's generated inference.mjs in a fresh
// process agrees with `headstart predict RUN`; a cancelled int8 export leaves
// nothing; `--quantize int8` without `--format onnx` is a one-line error.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { core, countOpens, root, runCli, fileRepoTempDir } from './helpers.mjs';
import { colourDataset, tinyBackbone } from './fixtures.mjs';

const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');
const { onnx } = require('onnx-proto');
const run = promisify(execFile);

// Inside the repository: the generated inference.mjs resolves onnxruntime-node and sharp from its node_modules.
const dir = await fileRepoTempDir('int8-');
const cacheDir = path.join(dir, 'cache');

const backbone = await tinyBackbone(path.join(dir, 'bb'), { size: 32, filters: [8, 16] });
await colourDataset(path.join(dir, 'data'), { classes: { red: 'red', blue: 'blue', green: 'green', yellow: 'yellow' }, perClass: 10 });
const runDir = path.join(dir, 'run');
await core.trainRun({ data: path.join(dir, 'data'), out: runDir, backbone, cacheDir, workers: 1, epochs: 20, batchSize: 8, hiddenUnits: 16, learningRate: 0.01, val: 0.2, test: 0.3, seed: 3 });
const record = JSON.parse(await readFile(path.join(runDir, 'run.json'), 'utf8'));
const files = (split) => record.samples.filter((s) => s.split === split).map((s) => path.join(record.dataset.root, s.rel));

/** Initializers of a model by name, as typed arrays. */
function initializers(model) {
  const out = new Map();
  for (const t of model.graph.initializer) {
    const bytes = Uint8Array.from(t.rawData);
    const T = onnx.TensorProto.DataType;
    const view = t.dataType === T.FLOAT ? new Float32Array(bytes.buffer) : t.dataType === T.INT8 ? new Int8Array(bytes.buffer) : t.dataType === T.INT32 ? new Int32Array(bytes.buffer) : bytes;
    out.set(t.name, { type: t.dataType, values: view });
  }
  return out;
}

/** Structure checks of a QDQ model file, and the ops ONNX Runtime runs after its optimisations. */
async function checkQdq(file, t) {
  const bytes = new Uint8Array(await readFile(file));
  const d = core.describeQdq(bytes);
  assert.deepEqual(d.unquantizedInputs, [], 'every Conv / MatMul input is fed by a DequantizeLinear');
  assert.deepEqual(d.badScales, [], 'every Q / DQ scale is positive and finite');
  const model = onnx.ModelProto.decode(bytes);
  const inits = initializers(model);
  const T = onnx.TensorProto.DataType;
  for (const n of model.graph.node.filter((x) => x.opType === 'DequantizeLinear' || x.opType === 'QuantizeLinear')) {
    const zero = inits.get(n.input[2]);
    assert.ok(zero, `${n.name}: zero point is an initializer`);
    if (zero.type === T.UINT8) continue; // activations: any uint8 is in range by type
    assert.ok([T.INT8, T.INT32].includes(zero.type), `${n.name}: weight zero point type ${zero.type}`);
    assert.ok(zero.values.every((z) => z === 0), `${n.name}: symmetric weights have zero point 0`);
    const q = inits.get(n.input[0]);
    if (q.type === T.INT8) assert.ok(q.values.every((v) => v >= -63 && v <= 63), `${n.name}: 7-bit weights (reduce_range)`);
  }
  // ONNX Runtime loads it; its optimised graph shows what it fused.
  const optimized = path.join(path.dirname(file), '..', `${path.basename(path.dirname(file))}-optimized.onnx`);
  const session = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'extended', optimizedModelFilePath: optimized });
  await session.release();
  const ops = {};
  for (const n of onnx.ModelProto.decode(await readFile(optimized)).graph.node) ops[n.opType] = (ops[n.opType] ?? 0) + 1;
  await rm(optimized);
  t.diagnostic(`optimised by ONNX Runtime: ${JSON.stringify(ops)}`);
  assert.equal(ops.Conv ?? 0, 0, 'no Conv left in float');
  assert.equal(ops.QLinearConv, d.ops.Conv, 'every Conv became QLinearConv');
  return { d, ops };
}

test('int8 export on a small backbone: valid QDQ graph fused by ONNX Runtime; calibration reads training images only; report and card', async (t) => {
  const out = path.join(dir, 'int8');
  // Count every file the export opens (readAndDecode opens each image once through fs/promises.open).
  const opens = countOpens();
  let rep;
  try {
    rep = await core.exportRun(runDir, { out, format: 'onnx', quantize: 'int8', cacheDir, workers: 1 });
  } finally {
    opens.restore();
  }
  const count = (list) => list.map(opens.of);
  const [train, val, testFiles] = ['train', 'val', 'test'].map(files);
  assert.ok(val.length > 0 && testFiles.length > 0);
  assert.deepEqual(count(val), val.map(() => 0), 'no validation image was read');
  // Two opens per test image: its content hash (is it still the file the run saw?) and the measurement's decode; none for calibration.
  assert.deepEqual(count(testFiles), testFiles.map(() => 2), 'each test image was opened for its hash and the measurement only, none for calibration');
  assert.equal(count(train).reduce((a, b) => a + b, 0), rep.quantization.calibrationImages, 'the calibration images are training images');
  assert.equal(rep.quantization.calibrationImages, Math.min(train.length, core.CALIBRATION_IMAGES));
  assert.equal(rep.quantization.calibrationSplit, 'train');

  assert.equal(rep.chosen, 'int8');
  assert.equal(rep.quantize, 'int8');
  assert.equal(rep.exported.bytes, (await stat(path.join(out, 'model.onnx'))).size);
  assert.ok(rep.exported.bytes < rep.float32.bytes, 'int8 is smaller than float32');
  for (const k of ['float32', 'int8']) {
    assert.ok(rep.quantization.speed[k].batch1Ms > 0 && rep.quantization.speed[k].batch32ImagesPerSecond > 0, `${k} speed measured`);
  }
  assert.equal(rep.quantization.speed.threads, 2);
  assert.deepEqual(JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')), rep);
  const card = await readFile(path.join(out, 'README.md'), 'utf8');
  assert.ok(card.includes(`on ${rep.quantization.calibrationImages} images of the run's **training** split`), 'the model card says what calibrated it');
  assert.deepEqual((await readdir(out)).sort(), ['.headstart.json', 'README.md', 'inference.mjs', 'labels.json', 'metadata.json', 'model.onnx', 'report.json']);
  t.diagnostic(`int8 ${rep.exported.bytes} B vs float32 ${rep.float32.bytes} B; accuracy ${rep.exported.accuracy} vs ${rep.float32.accuracy} on ${rep.testImages} images`);

  const { d } = await checkQdq(path.join(out, 'model.onnx'), t);
  assert.equal(d.ops.Conv, 2);
  assert.equal(d.ops.MatMul, 2);
});

test('calibrationItems: training split only, balanced across classes, capped', () => {
  const train = files('train');
  const items = core.calibrationItems(record);
  assert.equal(items.length, train.length);
  assert.ok(items.every((it) => train.includes(it.path)), 'only training paths');
  const capped = core.calibrationItems(record, 8);
  assert.equal(capped.length, 8);
  const perClass = record.labels.map((l) => capped.filter((it) => it.label === l).length);
  assert.deepEqual(perClass, [2, 2, 2, 2], 'round-robin over the classes');
  assert.deepEqual(core.calibrationItems(record, 8), capped, 'seeded: the same images every time');
  // A record whose samples are all validation / test has nothing to calibrate on.
  assert.deepEqual(core.calibrationItems({ ...record, samples: record.samples.filter((s) => s.split !== 'train') }), []);
});

test('int8 export in a fresh process (inference.mjs) agrees with headstart predict RUN', async (t) => {
  const out = path.join(dir, 'int8-cli');
  const r = await runCli(['export', runDir, '--format', 'onnx', '--quantize', 'int8', '--out', out, '--cache', cacheDir, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /int8 vs float32 in ONNX Runtime \(2 threads\): batch 1 .* ms\/image .* batch 32 .* images\/s .*calibrated on \d+ training images/);
  const imgs = [...files('test'), ...files('val')];
  const p = await runCli(['predict', runDir, ...imgs, '--cache', cacheDir, '--workers', '1', '--quiet']);
  assert.equal(p.code, 0, p.stderr);
  const engine = p.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const { stdout } = await run(process.execPath, [path.join(out, 'inference.mjs'), ...imgs], { cwd: out, maxBuffer: 16 << 20 });
  const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.path), imgs);
  const agree = lines.filter((l, i) => l.label === engine[i].label).length / imgs.length;
  const dp = Math.max(...lines.map((l, i) => Math.abs(l.top.find((x) => x.label === engine[i].label).probability - engine[i].probability)));
  t.diagnostic(`int8 vs predict RUN: labels agree on ${(agree * 100).toFixed(0)}% of ${imgs.length} images; max |p - p_engine| of the engine's label ${dp.toFixed(3)}`);
  assert.ok(agree >= 0.9, `labels agree on ${agree}`);
});

test('ONNX --quantize auto: sparse int8 candidates first; every candidate judged on the validation images, the test split only for float32 and the chosen variant', async () => {
  const events = [];
  const out = path.join(dir, 'auto-noleak');
  const r = await core.exportRun(runDir, { out, format: 'onnx', quantize: 'auto', maxDrop: 0, cacheDir, workers: 1 }, { onEvent: (e) => events.push(e) });
  const expected = ['float32', ...core.onnxCandidates({ quantize: 'auto', prune: 0 }).map((c) => c.name)];
  assert.deepEqual(expected.slice(1, 1 + core.ONNX_AUTO_SPARSE.length), core.ONNX_AUTO_SPARSE.map((c) => `int8-sparse${Math.round(c.sparsity * 100)}${c.refit ? '' : '-asis'}`), 'sparse int8 is tried first');
  assert.deepEqual(r.candidates.map((c) => c.name), expected.slice(0, r.candidates.length), 'tried in order, up to the first within budget');
  // measureVariant reports progress per image set and variant: `images (onnx <set> <variant>)`.
  const sets = new Map();
  for (const e of events) if (e.type === 'progress' && e.phase === 'export' && /^images \(onnx /.test(e.unit ?? '')) sets.set(e.unit, e.total);
  const onTest = [...sets.keys()].filter((u) => /\(onnx test /.test(u)).sort();
  assert.deepEqual(onTest, [...new Set(['images (onnx test float32)', `images (onnx test ${r.chosen})`])].sort(), `measured on the test split: ${onTest}`);
  for (const c of r.candidates) assert.equal(sets.get(`images (onnx choice ${c.name})`), files('val').length, `${c.name} judged on the validation images`);
  const units = events.filter((e) => e.type === 'progress' && /^images \(onnx /.test(e.unit ?? '')).map((e) => e.unit);
  if (r.chosen !== 'float32') assert.ok(units.indexOf(`images (onnx test ${r.chosen})`) > units.map((u) => u.includes(' choice ')).lastIndexOf(true), 'the test figure comes after the choice');
  assert.equal(r.choice.split, 'val');
  assert.equal(r.prune.target, r.candidates.find((c) => c.name === r.chosen).sparsity);
});

test('ONNX --quantize auto with pruning: the head refit reads training and validation images, never a test image', async () => {
  // Count every file the export opens (readAndDecode opens each image once through fs/promises.open).
  const opens = countOpens();
  const phases = [];
  let r;
  try {
    // A fresh cache: the pruned backbones' features are computed, not served from an earlier export's cache.
    r = await core.exportRun(runDir, { out: path.join(dir, 'auto-refit'), format: 'onnx', quantize: 'auto', maxDrop: 100, cacheDir: path.join(dir, 'cache-refit'), workers: 1 }, { onEvent: (e) => e.type === 'phase' && phases.push(e.message) });
  } finally {
    opens.restore();
  }
  const [train, val, testFiles] = ['train', 'val', 'test'].map(files);
  const count = (list) => list.map(opens.of);
  // --max-drop 100: the first candidate (the sparsest int8) is chosen, after one refit.
  assert.ok(core.ONNX_AUTO_SPARSE[0].refit, 'the sparsest candidate refits the head');
  assert.equal(r.chosen, `int8-sparse${Math.round(core.ONNX_AUTO_SPARSE[0].sparsity * 100)}`);
  assert.ok(phases.some((m) => /refitting the head on \d+ training images' pruned features/.test(m)), 'the head was refit');
  assert.equal(r.prune.refit.trainImages, train.length);
  assert.equal(r.prune.refit.valImages, val.length);
  assert.match(r.prune.scope, /head refit on pruned features/);
  assert.ok(count(train).every((n) => n >= 1), 'the refit re-extracted the training images');
  assert.ok(count(val).every((n) => n >= 1), 'and the validation images');
  // Two opens per test image, as without pruning: its content hash and the test measurement's decode.
  assert.deepEqual(count(testFiles), testFiles.map(() => 2), 'no test image was read for the refit or the choice');
});

/**
 * Exports with `opts` into a fresh folder and cancels at the first phase
 * message matching `phase`; returns whether that phase was reached and what
 * the folder holds after the rejection (nothing, when nothing is left behind).
 */
async function cancelledExportDuring(name, phase, opts) {
  const parent = path.join(dir, name);
  await mkdir(parent);
  const ac = new AbortController();
  let reached = false;
  const onEvent = (e) => {
    if (e.type === 'phase' && phase.test(e.message)) {
      reached = true;
      ac.abort();
    }
  };
  await assert.rejects(core.exportRun(runDir, { out: path.join(parent, 'export'), format: 'onnx', quantize: 'int8', cacheDir, workers: 1, ...opts }, { onEvent, signal: ac.signal }), (err) => core.isCancelled(err));
  return { reached, left: await readdir(parent) };
}

test('a cancelled pruned export (during the head refit) leaves nothing behind', async () => {
  const { reached, left } = await cancelledExportDuring('cancel-refit', /refitting the head/, { prune: 0.5 });
  assert.ok(reached, 'the cancel came during the refit');
  assert.deepEqual(left, [], 'no export folder and no temp folder left');
});

test('a cancelled int8 export (during calibration) leaves nothing behind', async () => {
  const { reached, left } = await cancelledExportDuring('cancel', /calibrating/, {});
  assert.ok(reached, 'the cancel came during calibration');
  assert.deepEqual(left, [], 'no export folder and no temp folder left');
});

test('--quantize int8 without --format onnx: one-line error, exit 1, no folder', async () => {
  for (const extra of [['--format', 'tfjs'], []]) {
    const out = path.join(dir, `bad-${extra.length}`);
    const r = await runCli(['export', runDir, '--quantize', 'int8', ...extra, '--out', out, '--cache', cacheDir]);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /--quantize int8 .*needs --format onnx/);
    await assert.rejects(stat(out));
  }
});

test('int8 export of the bundled MobileNetV2 1.4: under 30% of float32, every Conv fused, accuracy kept', async (t) => {
  const b = path.join(dir, 'bundled');
  await core.makeSampleDataset(path.join(b, 'data'), { classes: 3, perClass: 6, size: 128, seed: 7 });
  const r2 = path.join(b, 'run');
  await core.trainRun({ data: path.join(b, 'data'), backbone: 'mobilenet-v2-140', out: r2, cacheDir, workers: 1, epochs: 10, val: 0.2, test: 0.3, seed: 5 });
  const out = path.join(b, 'int8');
  const rep = await core.exportRun(r2, { out, format: 'onnx', quantize: 'int8', cacheDir, workers: 1 });
  const ratio = rep.exported.bytes / rep.float32.bytes;
  const s = rep.quantization.speed;
  t.diagnostic(`bundled: int8 ${rep.exported.bytes} B = ${ratio.toFixed(3)} of float32; accuracy ${rep.exported.accuracy} vs ${rep.float32.accuracy} on ${rep.testImages} images; 2 threads: batch 1 ${s.int8.batch1Ms.toFixed(1)} vs ${s.float32.batch1Ms.toFixed(1)} ms (${s.batch1Speedup.toFixed(2)}x), batch 32 ${s.batch32Speedup.toFixed(2)}x, CPU time ${s.batch32CpuSpeedup.toFixed(2)}x (timings are not asserted: shared machine)`);
  // CPU time is reported beside the wall clock (its value is the benchmark's business, not a test's).
  for (const side of [s.int8, s.float32]) assert.ok(side.batch32CpuMs > 0 && Number.isFinite(side.batch32CpuMs), 'CPU ms per image measured');
  assert.ok(Number.isFinite(s.batch32CpuSpeedup) && s.batch32CpuSpeedup > 0);
  assert.match(await readFile(path.join(out, 'README.md'), 'utf8'), /batch 32 \(CPU ms \/ image\)/, 'the model card shows CPU time');
  assert.ok(ratio <= 0.3, `int8 is ${ratio} of float32`);
  assert.ok(rep.float32.accuracy - rep.exported.accuracy <= 1 / rep.testImages + 1e-9, 'at most one test image lost');
  const { d } = await checkQdq(path.join(out, 'model.onnx'), t);
  assert.equal(d.ops.Conv, 52);
  assert.equal(rep.quantization.stats.add, 10, 'the residual Adds are quantized');
});
