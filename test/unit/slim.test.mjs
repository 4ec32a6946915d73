// Task-specific slimming of the backbone (`export --format onnx --slim`,
// `distill --student slim`) on a small MobileNetV2-shaped model made by code
// and on the bundled MobileNetV2 1.4 graph: a slimmed model equals the full
// model with the removed hidden channels zeroed; ranking reads training
// images only (every file read counted) and slimming never reads a test
// image; the slimmed export loads in ONNX Runtime in a fresh process and
// reproduces its own report, the student run works with eval / predict /
// export and its export agrees with `predict RUN`; a cancelled slimming
// leaves nothing; the TF.js export refuses --slim with a one-line reason.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { core, countOpens, root, runCli, tf, fileRepoTempDir } from './helpers.mjs';
import { colourDataset } from './fixtures.mjs';
import { mobileNetV2Like, randomProject } from './slimFixture.mjs';

const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');
const { onnx } = require('onnx-proto');
const run = promisify(execFile);

// Inside the repository: the generated inference.mjs resolves onnxruntime-node and sharp from its node_modules.
const dir = await fileRepoTempDir('slim-');
const cacheDir = path.join(dir, 'cache');

const backbone = await mobileNetV2Like(path.join(dir, 'bb'), { size: 32 });
await colourDataset(path.join(dir, 'data'), { classes: { red: 'red', blue: 'blue', green: 'green', yellow: 'yellow' }, perClass: 10 });
const runDir = path.join(dir, 'run');
await core.trainRun({ data: path.join(dir, 'data'), out: runDir, backbone, cacheDir, workers: 1, epochs: 20, batchSize: 8, hiddenUnits: 16, learningRate: 0.01, val: 0.25, test: 0.25, seed: 3 });
const record = JSON.parse(await readFile(path.join(runDir, 'run.json'), 'utf8'));
assert.ok(record.test.accuracy >= 0.75, `the teacher learned the colours (test accuracy ${record.test.accuracy})`);
const files = (split) => record.samples.filter((s) => s.split === split).map((s) => path.join(record.dataset.root, s.rel));

/** Runs an ONNX model (bytes) on NHWC pixels; returns its first output. */
async function runOnnx(bytes, x, n, size) {
  const s = await ort.InferenceSession.create(bytes);
  try {
    const out = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x, [n, size, size, 3]) });
    return out[s.outputNames[0]].data;
  } finally {
    await s.release();
  }
}

/** The bundled MobileNetV2 1.4 as ONNX, and 40 generated images decoded at 224: two thirds to fit on, the other third held out. */
async function bundledFitHeld(name) {
  const conv = await core.convertTfjsModel(path.join(root, 'models', 'mobilenet-v2-140'), { outputName: 'features', normalise: { scale: 1 / 255, offset: 0 } });
  const data = path.join(dir, name);
  await core.makeSampleDataset(data, { perClass: 10, classes: 4, seed: 5 });
  const all = [];
  for (const c of (await readdir(data)).sort()) for (const f of (await readdir(path.join(data, c))).sort()) all.push(await core.readAndDecode(path.join(data, c, f), 224));
  return { conv, fit: all.filter((_, i) => i % 3 !== 0), held: all.filter((_, i) => i % 3 === 0) };
}

/** Squared distance of a model's features on `images` (224 px) from the full model's (`fullBytes`). */
async function featureDistance(fullBytes, images) {
  const n = images.length;
  const x = new Float32Array(n * 224 * 224 * 3);
  images.forEach((im, i) => x.set(im, i * 224 * 224 * 3));
  const full = await runOnnx(fullBytes, x, n, 224);
  return async (bytes) => (await runOnnx(bytes, x, n, 224)).reduce((a, v, i) => a + (v - full[i]) ** 2, 0);
}

/**
 * The full model with the hidden channels not in `keep` zeroed where the
 * project conv reads them (and at the expand conv); with `project`, the kept
 * columns of the project conv replaced by its kernel [O, K] and its shift
 * added to the conv's output (bias, or out of the BatchNorm mean after it).
 */
function zeroRemoved(bytes, keep, project = []) {
  const model = onnx.ModelProto.decode(bytes);
  const g = model.graph;
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  const values = (t) => new Float32Array(Uint8Array.from(t.rawData).buffer);
  const put = (t, v) => (t.rawData = new Uint8Array(v.buffer));
  core.findSlimBlocks(g).forEach((b, i) => {
    const kept = new Set(keep[i]);
    const proj = inits.get(g.node[b.project].input[1]);
    const [o, c, kh, kw] = proj.dims.map(Number);
    const pv = values(proj);
    for (let r = 0; r < o; r++) for (let ch = 0; ch < c; ch++) if (!kept.has(ch)) pv.fill(0, (r * c + ch) * kh * kw, (r * c + ch + 1) * kh * kw);
    const pw = project[i];
    if (pw) keep[i].forEach((ch, j) => { for (let r = 0; r < o; r++) pv[r * c + ch] = pw.kernel[r * keep[i].length + j]; });
    put(proj, pv);
    if (pw?.shift) {
      const t = b.projectBias ? inits.get(g.node[b.project].input[2]) : inits.get(g.node[b.projectBn].input[3]);
      put(t, values(t).map((v, r) => v + (b.projectBias ? 1 : -1) * pw.shift[r]));
    }
    const ex = inits.get(g.node[b.expand].input[1]);
    const ev = values(ex);
    const row = ev.length / b.channels;
    for (let ch = 0; ch < b.channels; ch++) if (!kept.has(ch)) ev.fill(0, ch * row, (ch + 1) * row);
    put(ex, ev);
  });
  return onnx.ModelProto.encode(model).finish();
}

/**
 * Checks slimOnnx against zeroing on a converted model: same features within
 * 1e-4, fewer parameters; with `withProject`, also with project weights
 * replaced; with `withFeatures`, the feature conv's output channels cut too
 * (random ones): the slimmed features are the zeroed model's columns `keep`.
 */
async function checkEquivalence(t, bytes, size, fraction, withProject = false, withFeatures = false) {
  const rng = new core.Rng(11);
  const blocks = core.findSlimBlocks(onnx.ModelProto.decode(bytes).graph);
  // Random scores: the structure must be right for any choice of channels, not only the ranked one.
  const scores = blocks.map((b) => Float32Array.from({ length: b.channels }, () => rng.next()));
  const keep = core.keepPlan(scores, fraction);
  const project = withProject ? randomProject(bytes, keep, rng) : [];
  if (withProject) assert.ok(project.filter(Boolean).length > 0, 'some blocks get new project weights');
  const fc = core.findFeatureConv(onnx.ModelProto.decode(bytes).graph);
  const features = withFeatures ? core.keepFeatures(Float32Array.from({ length: fc.channels }, () => rng.next()), fraction) : undefined;
  const slim = core.slimOnnx(bytes, keep, project, features);
  assert.deepEqual(core.hiddenChannels(slim), keep.map((k) => k.length), 'each block keeps its planned channels');
  assert.ok(keep.some((k, i) => k.length < blocks[i].channels), 'channels were removed');
  assert.ok(slim.length < bytes.length * (1 - fraction / 2), `slimmed model is smaller (${slim.length} vs ${bytes.length})`);
  const n = 2;
  const x = Float32Array.from({ length: n * size * size * 3 }, () => rng.next() * 255);
  const zeroed = await runOnnx(zeroRemoved(bytes, keep, project), x, n, size);
  const got = await runOnnx(slim, x, n, size);
  const full = await runOnnx(bytes, x, n, size);
  const cols = features ?? Array.from({ length: fc.channels }, (_, i) => i);
  if (features) assert.ok(features.length < fc.channels && features.length % 8 === 0, `features cut to a multiple of 8 (${features.length} of ${fc.channels})`);
  assert.equal(got.length, n * cols.length, 'the features output has the kept features only');
  // Kept feature j of image r is feature cols[j] of the zeroed full model.
  const want = Float32Array.from({ length: n * cols.length }, (_, i) => zeroed[Math.floor(i / cols.length) * fc.channels + cols[i % cols.length]]);
  let worst = 0;
  let moved = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
  for (let i = 0; i < full.length; i++) moved = Math.max(moved, Math.abs(full[i] - zeroed[i]));
  t.diagnostic(`${blocks.length} blocks, ${fraction * 100}% removed${features ? `, ${features.length}/${fc.channels} features kept` : ''}: max relative difference ${worst.toExponential(2)}; zeroing moved features by up to ${moved.toFixed(3)}`);
  assert.ok(worst < 1e-4, `slimmed = zeroed within 1e-4 (got ${worst})`);
  assert.ok(moved > 1e-3, 'the zeroed channels mattered (the comparison can fail)');
}

test('slimmed model = full model with the removed hidden channels zeroed: MobileNetV2-shaped layers model (BatchNorm nodes)', async (t) => {
  const conv = await core.convertTfjsModel(path.dirname(backbone), { pool: true, outputName: 'features' });
  const blocks = core.findSlimBlocks(onnx.ModelProto.decode(conv.bytes).graph);
  assert.deepEqual(blocks.map((b) => b.channels), [16, 48, 96, 96], 'stem→dw block and the three expanded blocks (the residual block too: its hidden layer is not tied)');
  await checkEquivalence(t, conv.bytes, 32, 0.5);
  // Reconstructed project weights: the shift goes out of the BatchNorm mean after the bias-free project conv.
  assert.ok(blocks.every((b) => !b.projectBias && b.projectBn !== undefined), 'Keras project convs: no bias, a BatchNorm after');
  await checkEquivalence(t, conv.bytes, 32, 0.5, true);
  // The feature conv (conv → BatchNorm → ReLU6 → ReduceMean) loses output channels too.
  const fc = core.findFeatureConv(onnx.ModelProto.decode(conv.bytes).graph);
  assert.ok(fc && fc.channels === 64 && fc.bn !== undefined, 'the 64-channel feature conv with its BatchNorm');
  await checkEquivalence(t, conv.bytes, 32, 0.5, true, true);
});

test('slimmed model = full model with the removed channels zeroed: bundled MobileNetV2 1.4 graph (fused biases)', async (t) => {
  const conv = await core.convertTfjsModel(path.join(root, 'models', 'mobilenet-v2-140'), { outputName: 'features', normalise: { scale: 1 / 255, offset: 0 } });
  assert.equal(core.findSlimBlocks(onnx.ModelProto.decode(conv.bytes).graph).length, 17, 'all 17 inverted-residual blocks');
  await checkEquivalence(t, conv.bytes, 224, 0.4);
  await checkEquivalence(t, conv.bytes, 224, 0.4, true);
  const fc = core.findFeatureConv(onnx.ModelProto.decode(conv.bytes).graph);
  assert.ok(fc && fc.channels === 1792 && fc.bn === undefined, 'Conv_1: 1792 features, BatchNorm fused into its bias');
  await checkEquivalence(t, conv.bytes, 224, 0.4, true, true);
});

test('a feature output not read off one conv (a Dense after pooling) is not cut', async () => {
  const m = tf.sequential({ layers: [tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 8, kernelSize: 1 }), tf.layers.globalAveragePooling2d({}), tf.layers.dense({ units: 4 })] });
  const d = path.join(dir, 'dense-top');
  await m.save(core.dirSaver(d));
  m.dispose();
  const conv = await core.convertTfjsModel(d, { outputName: 'features' });
  assert.equal(core.findFeatureConv(onnx.ModelProto.decode(conv.bytes).graph), undefined);
  assert.throws(() => core.slimOnnx(conv.bytes, [], [], [0, 1]), (e) => e.code === 'INTERNAL' && /not read off one conv/.test(e.message));
});

test('least-squares reconstruction lowers every slimmed block\'s output error against plain cutting, on held-out images (bundled MobileNetV2 1.4)', async (t) => {
  // Fit on two thirds, measure on the other third (images the reconstruction never saw).
  const { conv, fit, held } = await bundledFitHeld('sample');
  const st = await core.hiddenStatistics(conv.bytes, fit, 224);
  const heldSt = await core.hiddenStatistics(conv.bytes, held, 224);
  const plan = core.keepPlan(st.scores, 0.5);
  const t0 = performance.now();
  const project = core.reconstructPlan(conv.bytes, st.moments, plan);
  const seconds = (performance.now() - t0) / 1000;
  const graph = onnx.ModelProto.decode(conv.bytes).graph;
  const ratios = core.findSlimBlocks(graph).map((b, i) => {
    const pc = core.projectConvOf(graph, b);
    const cut = core.projectOutputError(heldSt.moments[i], pc, plan[i]);
    return cut > 0 ? core.projectOutputError(heldSt.moments[i], pc, plan[i], project[i]) / cut : 1;
  });
  t.diagnostic(`${fit.length} fitting / ${held.length} held-out images, 50% removed, reconstruction ${seconds.toFixed(1)} s; held-out error, reconstructed / cut, per block: ${ratios.map((r) => r.toFixed(2)).join(' ')}`);
  assert.ok(project.filter(Boolean).length >= 15, 'the blocks are reconstructed');
  assert.ok(ratios.every((r) => r <= 1 + 1e-6), 'no block gets worse on held-out images');
  const mean = ratios.reduce((a, r) => a + r, 0) / ratios.length;
  assert.ok(mean < 0.7, `reconstruction lowers the held-out block output error clearly (mean ratio ${mean.toFixed(2)})`);
  // End to end: the slimmed backbone's features on the held-out images are closer to the unslimmed ones.
  const dist = await featureDistance(conv.bytes, held);
  const dCut = await dist(core.slimOnnx(conv.bytes, plan));
  const dRec = await dist(core.slimOnnx(conv.bytes, plan, project));
  t.diagnostic(`held-out feature error: cut ${dCut.toFixed(1)}, reconstructed ${dRec.toFixed(1)}`);
  assert.ok(dRec < 0.8 * dCut, `reconstructed features are closer to the unslimmed ones (${dRec} vs ${dCut})`);
});

test('refit on the slimmed network\'s own inputs: equals the reconstruction where nothing upstream changed, and brings the features closer where everything did (bundled MobileNetV2 1.4)', async (t) => {
  const { conv, fit, held } = await bundledFitHeld('sample-refit');
  const st = await core.hiddenStatistics(conv.bytes, fit, 224);
  // Only block 5 slimmed: its input is the unslimmed network's, so the refit (cross moments of the two models side by side) must give the first reconstruction's weights.
  const one = st.scores.map((s, i) => (i === 5 ? core.topChannels(s, core.keptCount(s.length, 0.5)) : Array.from(s, (_, c) => c)));
  const first = core.reconstructPlan(conv.bytes, st.moments, one);
  const refit = await core.refitPlan(conv.bytes, fit, 224, one, first);
  assert.ok(first[5] && refit[5] && refit[5] !== first[5], 'block 5 is reconstructed, then refit');
  assert.deepEqual(refit.map((p, i) => (i === 5 ? 'refit' : p)), first.map((p, i) => (i === 5 ? 'refit' : p)), 'blocks that keep every channel are left alone');
  const scale = Math.max(...first[5].kernel.map(Math.abs));
  const diff = Math.max(...first[5].kernel.map((v, i) => Math.abs(v - refit[5].kernel[i])), ...first[5].shift.map((v, i) => Math.abs(v - refit[5].shift[i])));
  assert.ok(diff < 2e-3 * scale, `same weights where the input did not change (max difference ${diff} of ${scale})`);
  // Every block slimmed by half: each block refit in turn on its slimmed input ends closer to the unslimmed features on held-out images.
  const plan = core.keepPlan(st.scores, 0.5);
  const project = core.reconstructPlan(conv.bytes, st.moments, plan);
  const t0 = performance.now();
  const events = [];
  const refitAll = await core.refitPlan(conv.bytes, fit, 224, plan, project, { onEvent: (e) => events.push(e) });
  const seconds = (performance.now() - t0) / 1000;
  const dist = await featureDistance(conv.bytes, held);
  const dRec = await dist(core.slimOnnx(conv.bytes, plan, project));
  const dRefit = await dist(core.slimOnnx(conv.bytes, plan, refitAll));
  t.diagnostic(`${fit.length} fitting / ${held.length} held-out images, 50% removed: held-out feature error reconstructed ${dRec.toFixed(1)}, refit in order ${dRefit.toFixed(1)} (refit ${seconds.toFixed(1)} s)`);
  assert.ok(dRefit < 0.8 * dRec, `refit features are closer to the unslimmed ones (${dRefit} vs ${dRec})`);
  assert.deepEqual(events.map((e) => e.done), [...plan.keys()].filter((i) => plan[i].length < st.scores[i].length), 'one progress event per slimmed block');
  // Cancellation is honoured between blocks.
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(core.refitPlan(conv.bytes, fit, 224, plan, project, { signal: ac.signal }), (err) => core.isCancelled(err));
});

test('ranking reads training images only; slimming never reads a test image', async () => {
  const loaded = await core.loadRun(runDir);
  const opens = countOpens();
  const count = (list) => list.filter((f) => opens.of(f));
  try {
    const images = await core.rankingImages(record, {});
    assert.ok(images.length > 0 && images.length <= files('train').length);
    assert.deepEqual(count(files('val')), [], 'ranking read no validation image');
    assert.deepEqual(count(files('test')), [], 'ranking read no test image');
    assert.ok(count(files('train')).length === images.length, 'ranking read training images');
    opens.clear();
    // A fresh cache: every step must decode what it extracts.
    const res = await core.slimSearch(loaded, { slim: 0.5, maxDrop: 1, work: path.join(dir, 'work-rank'), cacheDir: path.join(dir, 'cache-rank'), workers: 1 }, {});
    res.head?.dispose();
    assert.deepEqual(count(files('test')), [], 'slimming (ranking, re-extraction, refit, judging) read no test image');
    assert.ok(count(files('val')).length > 0, 'steps are judged on validation images');
    assert.equal(res.report.rankSplit, 'train');
    // Judged: every validation image and every training image (out of fold), no test image.
    const hashes = (split) => record.samples.filter((s) => s.split === split).map((s) => s.hash).sort();
    assert.deepEqual([...res.judged].sort(), [...hashes('train'), ...hashes('val')].sort(), 'judged = training ∪ validation images');
    assert.equal(res.report.validationImages, hashes('val').length);
    assert.equal(res.report.oofTrainImages, hashes('train').length, 'the training images are judged out of fold (the old search judged the validation images only)');
    assert.ok(res.report.validationImages + res.report.oofTrainImages > res.report.validationImages);
    const step = res.report.steps[1];
    const n = res.judged.length;
    assert.ok(Math.abs(step.agreement * n - Math.round(step.agreement * n)) < 1e-9, `agreement ${step.agreement} is a share of the ${n} judged images`);
    assert.ok(step.oofAccuracy >= 0 && step.oofAccuracy <= 1 && res.report.steps[0].oofAccuracy >= 0, 'out-of-fold accuracy per step, the unslimmed reference included');
    assert.ok((1 - step.agreement) * 100 >= step.judgedDropPoints - 1e-9, 'disagreements bound the drop over the judged images');
  } finally {
    opens.restore();
    loaded.head.dispose();
  }
});

test('export --format onnx --slim auto --quantize int8: slimming table, smaller and fresh-process ONNX Runtime reproduces the report', async (t) => {
  const out = path.join(dir, 'export-slim');
  const r = await runCli(['export', runDir, '--out', out, '--format', 'onnx', '--slim', 'auto', '--max-drop', '100', '--quantize', 'int8', '--cache', cacheDir, '--workers', '1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Slimming \(auto, top-1 kept on at least 0% of the judged images; ranked on \d+ training images, judged on \d+ validation images and \d+ training images out of fold \(5 folds\)/);
  assert.match(r.stdout, /70%.*← chosen/, 'with a budget of 100 points every step passes: the last is chosen');
  const rep = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8'));
  const s = rep.slimming;
  assert.deepEqual(s.steps.map((x) => x.fraction), [0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.7]);
  assert.ok(s.steps.slice(1).every((x) => x.reconstructed > 0 && x.reconstructSeconds >= 0), 'every step reconstructs its project convs and says how long it took');
  assert.match(s.method, /least squares/);
  assert.equal(s.chosen, 0.7);
  assert.equal(s.allocation, 'sensitivity', 'steps are spread over the blocks by sensitivity by default');
  assert.ok(s.steps.slice(1).every((x) => x.keptPerBlock.length === s.blocks && x.keptPerBlock.every((k) => k % 8 === 0) && x.featuresTotal === 64 && x.featuresKept === core.keptCount(64, core.featureFraction(x.fraction))), 'each step reports its kept channels per block and cuts the features');
  for (const [i, x] of s.steps.entries()) {
    assert.ok(x.msPerImage > 0 && x.valAccuracy >= 0 && x.valAccuracy <= 1 && x.gzipBytes < x.bytes, JSON.stringify(x));
    if (i) assert.ok(x.bytes < s.steps[i - 1].bytes && x.hiddenKept < s.steps[i - 1].hiddenKept, 'each step is smaller');
    // The budget rule is the export's: agreement with the unslimmed model's top-1, which bounds the accuracy drop.
    assert.ok(x.agreement >= 0 && x.agreement <= 1, `step ${x.fraction} reports its agreement`);
    assert.ok((1 - x.agreement) * 100 >= x.judgedDropPoints - 1e-9, `disagreements bound the drop over the judged images at step ${x.fraction}`);
    assert.ok(x.oofAccuracy >= 0 && x.oofAccuracy <= 1, `step ${x.fraction} reports its out-of-fold accuracy`);
  }
  assert.equal(rep.chosen, 'int8', 'the slimmed model was quantized after slimming');
  t.diagnostic(`steps: ${s.steps.map((x) => `${x.fraction}: ${x.bytes} B, ${x.msPerImage.toFixed(2)} ms (${x.speedup.toFixed(2)}x), val ${x.valAccuracy.toFixed(3)}`).join('; ')}; exported int8 ${rep.exported.bytes} B`);
  assert.match(await readFile(path.join(out, 'README.md'), 'utf8'), /## Slimmed backbone[\s\S]*\| 70% \(this file\) \|/);
  assert.match(await readFile(path.join(out, 'README.md'), 'utf8'), /project convolution was refit by least squares/);
  assert.match(await readFile(path.join(out, 'README.md'), 'utf8'), /70% of the slimmable cost .* spread where the held-out block error grows least \(hidden channels kept per block: [\d, ]+\); 16 of its 64 features kept/);
  // A fresh process (the export's own inference script) gives the accuracy the report states.
  const tests = files('test');
  const { stdout } = await run(process.execPath, [path.join(out, 'inference.mjs'), ...tests], { cwd: out });
  const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
  const labelOf = new Map(record.samples.map((x) => [path.join(record.dataset.root, x.rel), x.label]));
  const acc = lines.filter((l) => l.label === labelOf.get(l.path)).length / lines.length;
  assert.equal(acc, rep.exported.accuracy);
  assert.deepEqual(await readdir(out).then((l) => l.filter((f) => f.startsWith('.') && f !== '.headstart.json')), [], 'no scratch files left (only the completion marker)');
});

test('distill --student slim: a student RUN_DIR with its slimmed backbone inside; eval, predict and export use it; the export agrees with predict RUN', async () => {
  const student = path.join(dir, 'student');
  const r = await runCli(['distill', runDir, '--student', 'slim', '--slim', '0.55', '--out', student, '--cache', cacheDir, '--workers', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  assert.ok(rep.ratios.size > 1 && rep.student.bytes < rep.teacher.bytes, 'the student is smaller');
  assert.ok(rep.teacher.msPerImage > 0 && rep.student.msPerImage > 0);
  assert.match(rep.measuredIn, /ONNX Runtime, 2 threads/);
  const rec = JSON.parse(await readFile(path.join(student, 'run.json'), 'utf8'));
  assert.equal(rec.backbone.format, 'onnx');
  assert.equal(rec.backbone.dir, 'backbone', 'stored inside the run, relative: the folder can move');
  const ev = await runCli(['eval', student, '--json', '--cache', cacheDir]);
  assert.equal(ev.code, 0, ev.stderr);
  assert.equal(JSON.parse(ev.stdout).accuracy, rec.test.accuracy);
  const tfjs = await runCli(['export', student, '--out', path.join(dir, 'student-tfjs'), '--cache', cacheDir]);
  assert.notEqual(tfjs.code, 0);
  assert.match(tfjs.stderr, /slimmed ONNX backbone.*--format onnx/);
  const out = path.join(dir, 'student-onnx');
  const ex = await runCli(['export', student, '--out', out, '--format', 'onnx', '--cache', cacheDir]);
  assert.equal(ex.code, 0, ex.stderr);
  const tests = files('test').slice(0, 6);
  const pred = await runCli(['predict', student, ...tests, '--cache', cacheDir]);
  assert.equal(pred.code, 0, pred.stderr);
  const want = pred.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const { stdout } = await run(process.execPath, [path.join(out, 'inference.mjs'), ...tests], { cwd: out });
  const got = stdout.trim().split('\n').map((l) => JSON.parse(l));
  got.forEach((g, i) => {
    assert.equal(g.label, want[i].label);
    assert.ok(Math.abs(g.probability - want[i].probability) < 1e-4, `${g.probability} vs ${want[i].probability}`);
  });
});

test('cancelled slimming leaves no export folder and no temp folder behind', async () => {
  const out = path.join(dir, 'cancelled');
  const ac = new AbortController();
  let sawStep = false;
  await assert.rejects(
    core.exportRun(runDir, { out, format: 'onnx', slim: 'auto', maxDrop: 100, cacheDir, workers: 1 }, {
      signal: ac.signal,
      onEvent: (e) => {
        if (e.type === 'phase' && /slimming: removing 40%/.test(e.message)) {
          sawStep = true;
          ac.abort();
        }
      },
    }),
    (err) => core.isCancelled(err),
  );
  assert.ok(sawStep, 'cancelled during a slimming step');
  assert.deepEqual((await readdir(dir)).filter((f) => f.startsWith('cancelled') || f.startsWith('.cancelled')), [], 'nothing left');
});

test('out-of-fold judging: no training image is predicted by a head that trained on it', async () => {
  // One-hot features with random labels: a head memorises the rows it trained on
  // (each row has its own input weight) and can only guess on rows it never saw.
  const n = 60;
  const k = 3;
  const rng = new core.Rng(7);
  const x = new Float32Array(n * n);
  for (let i = 0; i < n; i++) x[i * n + i] = 1;
  const y = Int32Array.from({ length: n }, () => Math.floor(rng.next() * k));
  const set = { x, y, hashes: Array.from({ length: n }, (_, i) => `h${i}`) };
  const config = { ...record.config, epochs: 60, patience: 0, hiddenUnits: 0, l2: 0, learningRate: 0.1, batchSize: 8, balanceClasses: false };
  const empty = { x: new Float32Array(0), y: new Int32Array(0) };
  const fold = core.stratifiedFolds(y, core.SLIM_FOLDS, 1);
  const oof = await core.outOfFoldTop1(set, fold, empty, n, k, config);
  const inSample = await core.fitHead(set, set, n, k, config);
  inSample.model.dispose();
  const oofAcc = oof.filter((c, i) => c === y[i]).length / n;
  assert.ok(inSample.valAccuracy > 0.9, `a head predicting its own training rows is near perfect here (${inSample.valAccuracy}): the check can fail`);
  assert.ok(oofAcc < 0.6, `out-of-fold predictions are guesses on these rows (${oofAcc}), not memory`);
  assert.ok(oof.every((c) => c >= 0 && c < k), 'every row is predicted');
});

test('cancelling while the reference is judged stops the search with `cancelled`', async () => {
  const loaded = await core.loadRun(runDir);
  const ac = new AbortController();
  try {
    await assert.rejects(
      core.slimSearch(loaded, { slim: 'auto', maxDrop: 100, work: path.join(dir, 'work-cancel'), cacheDir, workers: 1 }, { signal: ac.signal, onEvent: (e) => e.type === 'phase' && /judging the unslimmed backbone/.test(e.message) && ac.abort() }),
      (err) => core.isCancelled(err),
    );
  } finally {
    loaded.head.dispose();
  }
});

test('slimming steps are judged by the export budget rule (agreement with the unslimmed model), not by the validation accuracy', () => {
  // 1 of 50 validation images changes class: 2% disagreement, whatever it does to the accuracy.
  assert.equal(core.slimWithinBudget(49 / 50, 2), true);
  assert.equal(core.slimWithinBudget(49 / 50, 1), false, 'a changed prediction counts even when the accuracy stays (the old rule passed it)');
  assert.equal(core.slimWithinBudget(1, 0), true);
});

test('--slim auto goes past one step over the budget and stops after two in a row', () => {
  assert.equal(core.SLIM_PATIENCE, 2);
  assert.equal(core.slimSearchGoesOn([false]), true, 'a first step over budget (10% measured 99.3% while 25% measured 100%) does not end the search');
  assert.equal(core.slimSearchGoesOn([true, false]), true);
  assert.equal(core.slimSearchGoesOn([true, false, true]), true);
  assert.equal(core.slimSearchGoesOn([false, false]), false);
  assert.equal(core.slimSearchGoesOn([true, true, false, false]), false);
  assert.equal(core.slimSearchGoesOn([true, false, true, false]), true, 'two misses count only in a row');
});

test('a bad --slim value is a one-line error', async () => {
  const b = await runCli(['export', runDir, '--out', path.join(dir, 'y'), '--format', 'onnx', '--slim', '1.5', '--cache', cacheDir]);
  assert.equal(b.code, 1);
  assert.match(b.stderr, /--slim must be auto or the fraction/);
});
