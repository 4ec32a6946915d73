// Backbone slimming carried over to the TF.js export: the ONNX search's kept
// channels cut out of the TF.js backbone (layers model made by code; the
// bundled MobileNetV2 1.4 graph), checked against the full TF.js model with
// the removed channels zeroed and against the slimmed ONNX model; and
// `export --format tfjs --slim` end to end, loaded by the stock TF.js loader
// in a fresh process and compared with the slimmed ONNX export.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { core, root, runCli, tf, fileRepoTempDir } from './helpers.mjs';
import { colourDataset } from './fixtures.mjs';
import { mobileNetV2Like, randomProject } from './slimFixture.mjs';

const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');
const { onnx } = require('onnx-proto');
const run = promisify(execFile);

// Inside the repository: the generated inference.mjs resolves @tensorflow/tfjs, onnxruntime-node and sharp from its node_modules.
const dir = await fileRepoTempDir('slim-tfjs-');
const cacheDir = path.join(dir, 'cache');
await core.initBackend();

const backbone = await mobileNetV2Like(path.join(dir, 'bb'), { size: 32 });

/** Random kept channels per block of a converted backbone (any choice must work, not only the ranked one). */
function randomPlan(bytes, fraction, seed) {
  const rng = new core.Rng(seed);
  const blocks = core.findSlimBlocks(onnx.ModelProto.decode(bytes).graph);
  const keep = core.keepPlan(blocks.map((b) => Float32Array.from({ length: b.channels }, () => rng.next())), fraction);
  return { keep, plan: core.slimPlanOf(bytes, keep) };
}

/** The TF.js model folder with every plan block's removed hidden channels zeroed where the project conv reads them. */
async function zeroedCopy(src, out, plan) {
  const { json, entries } = await core.readModelDir(src);
  const values = core.decodeEntries(entries);
  const graph = Array.isArray(json.modelTopology.node);
  const byNode = new Map(graph ? json.modelTopology.node.map((n) => [n.name, n]) : []);
  const projectWeight = (b) => (graph ? byNode.get(b.project).input[1].replace(/:\d+$/, '') : `${b.project}/kernel`);
  const zeroed = new Map();
  for (const b of plan.blocks) {
    const name = projectWeight(b);
    const t = values[name];
    const [kh, kw, c, o] = t.shape;
    const v = Float32Array.from(t.dataSync());
    const kept = new Set(b.keep);
    for (let p = 0; p < kh * kw; p++) for (let ch = 0; ch < c; ch++) if (!kept.has(ch)) v.fill(0, (p * c + ch) * o, (p * c + ch + 1) * o);
    zeroed.set(name, v);
  }
  const list = entries.map((e) => core.floatEntry(e.spec.name, e.spec.shape, zeroed.get(e.spec.name) ?? Float32Array.from(values[e.spec.name].dataSync())));
  tf.dispose(values);
  await core.writeModelDir(out, json, list);
}

/** Loads a TF.js model folder (stock loaders) and returns its output on x (NHWC). */
async function runTfjs(folder, x, shape, output) {
  const json = JSON.parse(await readFile(path.join(folder, 'model.json'), 'utf8'));
  const graph = json.format === 'graph-model';
  const m = graph ? await tf.loadGraphModel(core.dirLoader(folder)) : await tf.loadLayersModel(core.dirLoader(folder));
  try {
    const input = tf.tensor4d(x, shape);
    const y = graph ? m.execute(input, output) : m.predict(input);
    const out = Float32Array.from(y.dataSync());
    tf.dispose([input, y]);
    return out;
  } finally {
    m.dispose();
  }
}

async function runOnnx(bytes, x, shape) {
  const s = await ort.InferenceSession.create(bytes);
  try {
    return (await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x, shape) }))[s.outputNames[0]].data;
  } finally {
    await s.release();
  }
}

const maxDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]) / Math.max(1, Math.abs(b[i]))), 0);

/**
 * Cuts a random plan out of a TF.js backbone: the slimmed TF.js model equals
 * the zeroed full one, and the slimmed ONNX model (slimOnnx with the same
 * plan) on the same pixels.
 */
async function checkBackbone(t, src, conv, { size, fraction, output, onnxScale }) {
  const { keep, plan } = randomPlan(conv.bytes, fraction, 5);
  assert.ok(keep.some((k, i) => k.length < plan.blocks[i].channels), 'channels were removed');
  const slimDir = path.join(dir, `slim-${path.basename(src)}`);
  await core.writeSlimTfjsModel(src, slimDir, plan);
  const zeroDir = path.join(dir, `zero-${path.basename(src)}`);
  await zeroedCopy(src, zeroDir, plan);
  const n = 2;
  const rng = new core.Rng(9);
  const px = Float32Array.from({ length: n * size * size * 3 }, () => rng.next() * 255);
  const x = px.map((v) => v * onnxScale); // the TF.js backbone takes its own range; the ONNX one 0..255
  const shape = [n, size, size, 3];
  const slim = await runTfjs(slimDir, x, shape, output);
  const zero = await runTfjs(zeroDir, x, shape, output);
  const full = await runTfjs(src, x, shape, output);
  const onnxSlim = await runOnnx(core.slimOnnx(conv.bytes, keep), px, shape);
  const dz = maxDiff(slim, zero);
  const dOnnx = maxDiff(slim, onnxSlim);
  const moved = maxDiff(full, zero);
  const bytes = async (d) => (await readFile(path.join(d, 'weights.bin'))).length;
  t.diagnostic(`${plan.blocks.length} blocks, ${fraction * 100}% removed: slimmed vs zeroed ${dz.toExponential(2)}, vs slimmed ONNX ${dOnnx.toExponential(2)}; zeroing moved features by ${moved.toFixed(3)}; weights ${await bytes(src)} -> ${await bytes(slimDir)} B`);
  assert.ok(dz < 1e-4, `slimmed TF.js = zeroed TF.js within 1e-4 (got ${dz})`);
  assert.ok(dOnnx < 1e-3, `slimmed TF.js = slimmed ONNX within 1e-3 (got ${dOnnx})`);
  assert.ok(moved > 1e-3, 'the zeroed channels mattered (the comparison can fail)');
  assert.ok((await bytes(slimDir)) < (await bytes(src)) * (1 - fraction / 2), 'the slimmed weights are smaller');
  // Reconstructed project weights (random ones here: any must land in the same place) carried into TF.js.
  const project = randomProject(conv.bytes, keep, new core.Rng(13), 0.2);
  const recDir = path.join(dir, `rec-${path.basename(src)}`);
  await core.writeSlimTfjsModel(src, recDir, core.slimPlanOf(conv.bytes, keep, project));
  const rec = await runTfjs(recDir, x, shape, output);
  const onnxRec = await runOnnx(core.slimOnnx(conv.bytes, keep, project), px, shape);
  const dRec = maxDiff(rec, onnxRec);
  const recMoved = maxDiff(rec, slim);
  t.diagnostic(`with new project weights: TF.js vs ONNX ${dRec.toExponential(2)}; the new weights moved features by ${recMoved.toFixed(3)}`);
  assert.ok(dRec < 1e-3, `TF.js with reconstructed project weights = ONNX with them within 1e-3 (got ${dRec})`);
  assert.ok(recMoved > 1e-3, 'the new project weights changed the TF.js model (the comparison can fail)');
  // The features cut too (random ones): the TF.js features are the columns `features` of the model without the cut, and equal ONNX's.
  const fc = core.findFeatureConv(onnx.ModelProto.decode(conv.bytes).graph);
  const frng = new core.Rng(21);
  const features = core.keepFeatures(Float32Array.from({ length: fc.channels }, () => frng.next()), fraction);
  const fPlan = core.slimPlanOf(conv.bytes, keep, project, features);
  assert.deepEqual(fPlan.features.keep, features);
  const fDir = path.join(dir, `feat-${path.basename(src)}`);
  await core.writeSlimTfjsModel(src, fDir, fPlan);
  const feat = await runTfjs(fDir, x, shape, output);
  assert.equal(feat.length, n * features.length, 'the TF.js model outputs the kept features only');
  const cols = Float32Array.from({ length: n * features.length }, (_, i) => rec[Math.floor(i / features.length) * fc.channels + features[i % features.length]]);
  const onnxFeat = await runOnnx(core.slimOnnx(conv.bytes, keep, project, features), px, shape);
  const dCols = maxDiff(feat, cols);
  const dFeat = maxDiff(feat, onnxFeat);
  t.diagnostic(`features cut to ${features.length}/${fc.channels}: vs the uncut model's columns ${dCols.toExponential(2)}, vs ONNX ${dFeat.toExponential(2)}; weights ${await bytes(recDir)} -> ${await bytes(fDir)} B`);
  assert.ok(dCols < 1e-4, `TF.js with features cut = the kept columns within 1e-4 (got ${dCols})`);
  assert.ok(dFeat < 1e-3, `TF.js with features cut = ONNX with them within 1e-3 (got ${dFeat})`);
  assert.ok((await bytes(fDir)) < (await bytes(recDir)), 'cutting the features shrinks the weights');
}

test('TF.js slimming of a MobileNetV2-shaped layers model = zeroed channels = slimmed ONNX', async (t) => {
  const conv = await core.convertTfjsModel(path.dirname(backbone), { pool: true, outputName: 'features' });
  await checkBackbone(t, path.dirname(backbone), conv, { size: 32, fraction: 0.5, onnxScale: 1 });
  const json = JSON.parse(await readFile(path.join(dir, 'slim-bb', 'model.json'), 'utf8'));
  const { plan } = randomPlan(conv.bytes, 0.5, 5);
  const layer = json.modelTopology.config.layers.find((l) => l.name === plan.blocks[1].expand);
  assert.equal(layer.config.filters, plan.blocks[1].keep.length, 'the expand conv declares its kept filters');
  const fJson = JSON.parse(await readFile(path.join(dir, 'feat-bb', 'model.json'), 'utf8'));
  const fc = core.slimPlanOf(conv.bytes, plan.blocks.map((b) => b.keep), [], [0, 8, 16, 24, 32, 40, 48, 56]).features;
  assert.equal(fJson.modelTopology.config.layers.find((l) => l.name === fc.conv).config.filters, 32, 'the feature conv declares its kept filters (fraction 0.5 of 64)');
});

test('TF.js slimming of the bundled MobileNetV2 1.4 graph model (fused convolutions, uint8-stored weights)', async (t) => {
  const src = path.join(root, 'models', 'mobilenet-v2-140');
  const conv = await core.convertTfjsModel(src, { outputName: 'features', normalise: { scale: 1 / 255, offset: 0 } });
  assert.equal(core.findSlimBlocks(onnx.ModelProto.decode(conv.bytes).graph).length, 17);
  await checkBackbone(t, src, conv, { size: 224, fraction: 0.4, onnxScale: 1 / 255 });
});

test('features cut out of a layers model with its own classifier past the feature layer (bundled MobileNetV2 1.0): the layers past flatten_1 go, TF.js = ONNX', async (t) => {
  const src = path.join(root, 'models', 'mobilenet-v2-100');
  const conv = await core.convertTfjsModel(src, { output: 'flatten_1', outputName: 'features' });
  const graph = onnx.ModelProto.decode(conv.bytes).graph;
  const fc = core.findFeatureConv(graph);
  assert.deepEqual([fc.channels, fc.bn !== undefined], [1280, true], 'Conv_1 → Conv_1_bn → ReLU6 → pooling → NHWC Transpose → Flatten');
  const rng = new core.Rng(3);
  const keep = core.keepPlan(core.findSlimBlocks(graph).map((b) => Float32Array.from({ length: b.channels }, () => rng.next())), 0.4);
  const features = core.keepFeatures(Float32Array.from({ length: 1280 }, () => rng.next()), 0.4);
  const out = path.join(dir, 'mnv2-100-slim');
  await core.writeSlimTfjsModel(src, out, core.slimPlanOf(conv.bytes, keep, [], features), 'flatten_1');
  const json = JSON.parse(await readFile(path.join(out, 'model.json'), 'utf8'));
  const layers = (json.modelTopology.model_config ?? json.modelTopology).config.layers;
  assert.equal(layers.at(-1).name, 'flatten_1', 'the source model\'s own classifier is gone');
  const shape = [2, 224, 224, 3];
  const x = Float32Array.from({ length: 2 * 224 * 224 * 3 }, () => rng.next());
  const got = await runTfjs(out, x, shape);
  const want = await runOnnx(core.slimOnnx(conv.bytes, keep, [], features), x, shape);
  const d = maxDiff(got, want);
  t.diagnostic(`${features.length}/1280 features: TF.js vs ONNX ${d.toExponential(2)}`);
  assert.equal(got.length, 2 * features.length);
  assert.ok(d < 1e-3, `TF.js = ONNX within 1e-3 (got ${d})`);
});

test('a plan that does not fit the TF.js model is a one-line BAD_MODEL error', async () => {
  const conv = await core.convertTfjsModel(path.dirname(backbone), { pool: true, outputName: 'features' });
  const { plan } = randomPlan(conv.bytes, 0.5, 5);
  await assert.rejects(core.writeSlimTfjsModel(path.dirname(backbone), path.join(dir, 'bad'), { blocks: [{ ...plan.blocks[1], channels: plan.blocks[1].channels + 8 }] }), (e) => e.code === 'BAD_MODEL' && /not \d+ hidden channels/.test(e.message) && !e.message.includes('\n'));
  await assert.rejects(core.writeSlimTfjsModel(path.dirname(backbone), path.join(dir, 'bad2'), { blocks: [{ ...plan.blocks[1], expand: 'nope' }] }), (e) => e.code === 'BAD_MODEL' && /layer nope is missing/.test(e.message));
  await assert.rejects(core.writeSlimTfjsModel(path.dirname(backbone), path.join(dir, 'bad3'), { blocks: [], features: { conv: 'nope', channels: 64, keep: [0] } }), (e) => e.code === 'BAD_MODEL' && /layer nope is missing/.test(e.message));
});

test('export --format tfjs --slim: smaller, stock loader in a fresh process, agrees with the slimmed ONNX export; uint8 after slimming', async (t) => {
  await colourDataset(path.join(dir, 'data'), { classes: { red: 'red', blue: 'blue', green: 'green', yellow: 'yellow' }, perClass: 10 });
  const runDir = path.join(dir, 'run');
  await core.trainRun({ data: path.join(dir, 'data'), out: runDir, backbone, cacheDir, workers: 1, epochs: 20, batchSize: 8, hiddenUnits: 16, learningRate: 0.01, val: 0.25, test: 0.25, seed: 3 });
  const record = JSON.parse(await readFile(path.join(runDir, 'run.json'), 'utf8'));
  const tests = record.samples.filter((s) => s.split === 'test').map((s) => path.join(record.dataset.root, s.rel));
  const exp = async (name, extra) => {
    const out = path.join(dir, name);
    const r = await runCli(['export', runDir, '--out', out, '--slim', '0.5', '--cache', cacheDir, '--workers', '1', ...extra]);
    assert.equal(r.code, 0, r.stderr);
    return { out, rep: JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')), stdout: r.stdout };
  };
  const tj = await exp('tfjs-slim', ['--format', 'tfjs']);
  const ox = await exp('onnx-slim', ['--format', 'onnx']);
  const plain = path.join(dir, 'tfjs-plain');
  assert.equal((await runCli(['export', runDir, '--out', plain, '--cache', cacheDir, '--workers', '1'])).code, 0);
  const plainRep = JSON.parse(await readFile(path.join(plain, 'report.json'), 'utf8'));
  assert.equal(tj.rep.slimming.chosen, 0.5);
  assert.ok(tj.rep.slimming.steps[1].reconstructed > 0, 'the step reconstructed project convs: the TF.js export must carry their weights to agree with ONNX');
  assert.match(tj.stdout, /Slimming \(asked 50%/);
  assert.ok(tj.rep.exported.bytes < plainRep.exported.bytes * 0.85, `slimmed TF.js export is smaller (${tj.rep.exported.bytes} vs ${plainRep.exported.bytes})`);
  // Fresh processes: the exports' own inference scripts (TF.js: the stock loader; ONNX Runtime).
  const predict = async (out) => (await run(process.execPath, [path.join(out, 'inference.mjs'), ...tests], { cwd: out })).stdout.trim().split('\n').map((l) => JSON.parse(l));
  const a = await predict(tj.out);
  const b = await predict(ox.out);
  let worst = 0;
  a.forEach((x, i) => {
    for (const p of x.top) worst = Math.max(worst, Math.abs(p.probability - b[i].top.find((q) => q.label === p.label).probability));
  });
  t.diagnostic(`TF.js ${tj.rep.exported.bytes} B (unslimmed ${plainRep.exported.bytes} B), ONNX ${ox.rep.exported.bytes} B; max |p_tfjs - p_onnx| ${worst.toExponential(2)} over ${tests.length} test images`);
  assert.ok(worst < 1e-3, `slimmed TF.js export = slimmed ONNX export within 1e-3 (got ${worst})`);
  const labelOf = new Map(record.samples.map((s) => [path.join(record.dataset.root, s.rel), s.label]));
  assert.equal(a.filter((l) => l.label === labelOf.get(l.path)).length / a.length, tj.rep.exported.accuracy, 'the fresh process reproduces the reported accuracy');
  const card = await readFile(path.join(tj.out, 'README.md'), 'utf8');
  assert.match(card, /## Slimmed backbone[\s\S]*\| 50% \(this file\) \|/);
  // The card states bytes, gzipped bytes, latency in both runtimes and accuracy with its interval.
  const lat = tj.rep.latency;
  assert.ok(lat.tfjs.msPerImage > 0 && lat.onnxRuntime.msPerImage > 0, JSON.stringify(lat));
  const row = card.split('\n').find((l) => l.startsWith('| this export'));
  assert.ok(row, 'the size and speed table has the export\'s row');
  assert.equal(row, `| this export (\`float32\`) | ${tj.rep.exported.bytes} | ${tj.rep.exported.gzipBytes} | ${lat.tfjs.msPerImage.toFixed(1)} (${lat.tfjs.where}, ${tests.length} images) | ${lat.onnxRuntime.msPerImage.toFixed(1)} (1 thread (converted by Headstart), ${Math.min(9, tests.length)} images) | ${(tj.rep.exported.accuracy * 100).toFixed(1)}% (${(tj.rep.exported.interval.low * 100).toFixed(1)}%–${(tj.rep.exported.interval.high * 100).toFixed(1)}%) |`);
  assert.equal(ox.rep.latency.tfjs.msPerImage, null, 'an ONNX export says why it has no TF.js figure');
  assert.match(await readFile(path.join(ox.out, 'README.md'), 'utf8'), /\| this export \(`float32`\) \| \d+ \| \d+ \| — \(TF\.js cannot load an ONNX file[^|]*\| \d+\.\d \(1 thread, \d+ images\) \|/);
  t.diagnostic(`latency: TF.js ${lat.tfjs.msPerImage.toFixed(2)} ms (${lat.tfjs.where}), ONNX Runtime ${lat.onnxRuntime.msPerImage.toFixed(2)} ms`);
  // Quantization applies after slimming.
  const q = await exp('tfjs-slim-uint8', ['--format', 'tfjs', '--quantize', 'uint8']);
  // Bytes include model.json, a large share of a model this small.
  assert.ok(q.rep.exported.bytes < tj.rep.exported.bytes * 0.75 && q.rep.bytesByDtype.uint8 > 0, `uint8 after slimming (${q.rep.exported.bytes} vs ${tj.rep.exported.bytes})`);
  assert.equal(q.rep.slimming.chosen, 0.5);
});

test('--slim with --prune on the TF.js export is a one-line error', async () => {
  const r = await runCli(['export', path.join(dir, 'run'), '--out', path.join(dir, 'x'), '--slim', 'auto', '--prune', '0.5', '--cache', cacheDir]);
  assert.equal(r.code, 1);
  assert.match(r.stderr.trim(), /^[^\n]*--slim refits the head[^\n]*$/);
});
