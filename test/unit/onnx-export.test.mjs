// `headstart export RUN --format onnx`: one small trained run on the bundled
// graph backbone (mobilenet-v2-140, 3 classes x 8 generated images) exported
// with --quantize none / float16 / uint8 / auto. Each folder's generated
// inference.mjs runs in a fresh Node process (onnxruntime-node + sharp from the
// repository's node_modules, so the exports live inside the repo tree) and its
// probabilities on the run's test images match `headstart predict RUN FILES`;
// file sizes shrink as the format says; unsupported options are one-line
// exits; `headstart predict EXPORT_DIR` reads an ONNX export.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import { core, root, runCli, fileRepoTempDir } from './helpers.mjs';
import { engineRows, maxAbsDiff } from './exportProbe.mjs';

const run = promisify(execFile);
const { onnx } = createRequire(import.meta.url)('onnx-proto');

// Largest |p_export - p_engine| over every class probability of every test image.
// float32: 1e-4 (the same converted backbone and head; only the order of float
// operations differs). float16: kernels keep 11 significant bits: 1e-2. uint8:
// 256 levels per kernel tensor, weights only: 5e-2.
// int8 (auto may choose it): activations 8-bit too: 0.35 (0.17 measured on 24 generated images).
const TOL = { none: 1e-4, float16: 1e-2, uint8: 5e-2, int8: 0.35 };

const dir = await fileRepoTempDir('onnx-export-');
const cacheDir = path.join(dir, 'cache');
const runDir = path.join(dir, 'run');
await core.makeSampleDataset(path.join(dir, 'data'), { classes: 3, perClass: 8, size: 128, seed: 7 });
const trained = await core.trainRun({ data: path.join(dir, 'data'), backbone: 'mobilenet-v2-140', out: runDir, cacheDir, workers: 1, epochs: 10, val: 0.2, test: 0.3, seed: 5 });
const record = JSON.parse(await readFile(path.join(runDir, 'run.json'), 'utf8'));
const labels = record.labels;
const testSamples = record.samples.filter((s) => s.split === 'test');
const testFiles = testSamples.map((s) => path.join(record.dataset.root, s.rel));

/** `headstart predict DIR FILES` → parsed lines. */
async function predictCli(modelDir, files) {
  const r = await runCli(['predict', modelDir, ...files, '--cache', cacheDir, '--workers', '1', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l));
}

const floatsOf = (raw) => new Float32Array(Uint8Array.from(raw).buffer);
const accuracyOf = (rows) => rows.filter((p, i) => p.indexOf(Math.max(...p)) === labels.indexOf(testSamples[i].label)).length / rows.length;

test('ONNX export: none / float16 / uint8 / auto — inference.mjs in a fresh process matches headstart predict RUN; sizes; report; predict on the export', async (t) => {
  assert.equal(record.engine, 'onnxruntime', 'the run extracted with ONNX Runtime (engine auto)');
  assert.ok(testFiles.length >= 6, `${testFiles.length} test images`);
  const engine = await predictCli(runDir, testFiles);
  const engineProbs = engineRows(engine, labels);

  const formats = ['none', 'float16', 'uint8', 'auto'];
  const reports = {};
  for (const q of formats) {
    const r = await runCli(['export', runDir, '--format', 'onnx', '--quantize', q, '--out', path.join(dir, q), '--cache', cacheDir, '--json', '--quiet']);
    assert.equal(r.code, 0, `${q}: ${r.stderr}`);
    reports[q] = JSON.parse(r.stdout);
  }

  const onnxBytes = {};
  for (const q of formats) {
    const out = path.join(dir, q);
    const rep = reports[q];
    const files = (await readdir(out)).sort();
    assert.deepEqual(files, ['.headstart.json', 'README.md', 'inference.mjs', 'labels.json', 'metadata.json', 'model.onnx', 'report.json'], `${q}: export folder contents`);
    assert.deepEqual(JSON.parse(await readFile(path.join(out, 'labels.json'), 'utf8')), labels);
    const meta = JSON.parse(await readFile(path.join(out, 'metadata.json'), 'utf8'));
    assert.deepEqual(meta.labels, labels);
    assert.equal(meta.imageSize, 224);
    assert.equal(meta.headstart.format, 'onnx');
    assert.deepEqual(JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')), rep, `${q}: report.json is what --json printed`);
    assert.equal(rep.format, 'onnx');
    assert.equal(rep.modelFormat, 'onnx');
    assert.equal(rep.testImages, testFiles.length);
    onnxBytes[q] = (await stat(path.join(out, 'model.onnx'))).size;
    assert.equal(rep.exported.bytes, onnxBytes[q], `${q}: report bytes are the file's`);
    assert.equal(rep.float32.accuracy, trained.test.accuracy, `${q}: the float32 ONNX model scores as the engine did`);
    const card = await readFile(path.join(out, 'README.md'), 'utf8');
    assert.ok(card.includes('onnxruntime-node') && card.includes('probabilities'), `${q}: the model card says how to run it`);

    // A user's script: the generated inference.mjs in a fresh process, on every test image.
    const { stdout } = await run(process.execPath, [path.join(out, 'inference.mjs'), ...testFiles], { cwd: out, maxBuffer: 16 << 20 });
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.path), testFiles);
    const rows = engineRows(lines, labels);
    const sums = rows.map((p) => p.reduce((a, b) => a + b, 0));
    assert.ok(sums.every((s) => Math.abs(s - 1) < 1e-5), `${q}: probabilities sum to 1`);
    assert.equal(accuracyOf(rows), rep.exported.accuracy, `${q}: the report's accuracy is what the file scores`);
    if (q === 'auto') {
      t.diagnostic(`auto: tried ${rep.candidates.map((c) => `${c.name} ${c.bytes} B ${(c.accuracy * 100).toFixed(1)}%`).join(', ')}; chose ${rep.chosen}`);
      assert.ok(['float32', ...core.onnxCandidates({ quantize: 'auto', prune: 0 }).map((c) => c.name)].includes(rep.chosen), rep.chosen);
      // Sparse int8 first (largest sparsity first), then dense int8, uint8, float16: the first within budget wins.
      const order = ['float32', ...core.onnxCandidates({ quantize: 'auto', prune: 0 }).map((c) => c.name)];
      assert.deepEqual(rep.candidates.map((c) => c.name), order.slice(0, rep.candidates.length));
      assert.equal(rep.candidates.find((c) => c.name === rep.chosen).withinBudget, true);
      assert.equal(rep.candidates[0].name, 'float32');
      // Chosen on the validation images, never the test split; the test figure comes after.
      assert.equal(rep.choice.split, 'val');
      assert.equal(rep.choice.images, record.samples.filter((s) => s.split === 'val').length);
      for (const c of rep.candidates) assert.equal(c.agreementInterval.n, rep.choice.images, c.name);
      assert.equal(rep.exported.interval.n, rep.testImages);
      if (rep.chosen === 'uint8') assert.equal(onnxBytes.auto, onnxBytes.uint8, 'auto wrote the uint8 variant');
      const d = maxAbsDiff(rows, engineProbs);
      if (rep.chosen.startsWith('int8')) {
        // 8-bit activations move probabilities a lot on a head trained on 10 images; what auto promised
        // is agreement with float32's top class, so that is what the file must show on the test images.
        const argmax = (p) => p.indexOf(Math.max(...p));
        const agree = rows.filter((p, i) => argmax(p) === argmax(Array.from(engineProbs[i]))).length / rows.length;
        t.diagnostic(`auto chose int8: top-1 agreement with predict RUN ${(agree * 100).toFixed(0)}% over ${rows.length} test images; max |p_export - p_engine| = ${d.toFixed(3)}`);
        // Sparse int8 prunes the backbone and refits the head on 10 training images, judged on 5 choice images:
        // the test images may disagree more than dense int8's.
        const floor = rep.chosen === 'int8' ? 0.8 : 0.6;
        assert.ok(agree >= floor, `${rep.chosen} agrees with predict RUN on ${agree} of the test images (floor ${floor})`);
      } else assert.ok(d <= TOL[rep.chosen === 'float32' ? 'none' : rep.chosen], `auto (${rep.chosen}): max probability difference ${d}`);
      continue;
    }
    assert.equal(rep.chosen, q === 'none' ? 'float32' : q);
    const d = maxAbsDiff(rows, engineProbs);
    t.diagnostic(`${q}: max |p_export - p_engine| = ${d.toExponential(2)} over ${testFiles.length} images x ${labels.length} classes (tolerance ${TOL[q]}); model.onnx ${onnxBytes[q]} B`);
    assert.ok(d <= TOL[q], `${q}: max probability difference ${d} > ${TOL[q]}`);
  }
  const ratio = (q) => onnxBytes[q] / onnxBytes.none;
  t.diagnostic(`model.onnx vs float32 (${onnxBytes.none} B): float16 ${ratio('float16').toFixed(3)}, uint8 ${ratio('uint8').toFixed(3)}, auto ${ratio('auto').toFixed(3)}`);
  assert.ok(ratio('uint8') < 0.3, `uint8 is ${ratio('uint8')} of float32`);
  assert.ok(ratio('float16') < 0.55, `float16 is ${ratio('float16')} of float32`);
  assert.equal(reports.uint8.float32.bytes, onnxBytes.none, 'each report carries the float32 size for comparison');

  // `headstart predict EXPORT_DIR FILE` reads the ONNX export and agrees with its inference.mjs.
  const viaPredict = await predictCli(path.join(dir, 'none'), testFiles.slice(0, 2));
  const d = maxAbsDiff(engineRows(viaPredict, labels), engineProbs.slice(0, 2));
  t.diagnostic(`predict EXPORT_DIR (float32): max |p - p_engine| = ${d.toExponential(2)}`);
  assert.ok(d <= TOL.none, `predict on the ONNX export: ${d}`);
  assert.deepEqual(viaPredict.map((l) => l.path), testFiles.slice(0, 2));
});

test('ONNX export --prune 0.5: backbone kernels half zeros, head refit on the pruned backbone\'s features, smaller gzip, inference.mjs in a fresh process scores what the report says', async (t) => {
  const out = path.join(dir, 'pruned');
  // A cache of its own: auto's candidates (the first test) may have cached the same pruned backbone's features.
  const cache = path.join(dir, 'cache-prune');
  const embeddings = path.join(cache, 'embeddings');
  const r = await runCli(['export', runDir, '--format', 'onnx', '--prune', '0.5', '--out', out, '--cache', cache, '--json', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  assert.equal(rep.chosen, 'float32-sparse50');
  assert.equal(rep.prune.target, 0.5);
  assert.match(rep.prune.scope, /head refit on pruned features/);
  const layers = Object.keys(rep.prune.perLayer);
  // MobileNetV2 1.4: 52 convolutions, 17 of them depthwise, the first one dense: 34 pointwise kernels; those
  // under 4096 weights stay dense. The head is not pruned: it is refit on the pruned backbone's features.
  assert.ok(layers.length >= 30, `${layers.length} kernels pruned`);
  assert.ok(!layers.some((l) => /head/.test(l)), `the head is refit, not pruned: ${layers.join(', ')}`);
  for (const [l, x] of Object.entries(rep.prune.perLayer)) assert.ok(Math.abs(x - 0.5) < 1e-3, `${l}: ${x}`);

  // The refit re-extracted the training and validation images (never a test image) through a new backbone:
  // one new embedding cache key, holding exactly those images' features.
  const newKeys = (await readdir(embeddings)).filter((k) => !k.startsWith('thumb'));
  assert.equal(newKeys.length, 1, `one new feature cache: ${newKeys}`);
  const cached = [];
  for (const sub of await readdir(path.join(embeddings, newKeys[0]))) for (const f of await readdir(path.join(embeddings, newKeys[0], sub))) cached.push(f.replace(/\.f32$/, ''));
  assert.deepEqual(cached.sort(), record.samples.filter((s) => s.split !== 'test').map((s) => s.hash).sort(), 'features of the training and validation images only');
  assert.match(rep.prune.refit.backboneHash, /^[0-9a-f]{64}$/);
  assert.equal(rep.prune.refit.trainImages, record.samples.filter((s) => s.split === 'train').length);
  assert.equal(rep.prune.refit.valImages, record.samples.filter((s) => s.split === 'val').length);
  // The exported backbone: the run's (the engine's cached conversion) with magnitude pruning's zeros, the kept
  // weights of the pointwise kernels refit (OBS), every other initializer (biases, depthwise, first conv) as it was.
  const convDir = path.join(cache, 'onnx');
  const [conv] = (await readdir(convDir)).filter((f) => f.startsWith('mobilenet-v2-140') && f.endsWith('.onnx'));
  const zeroed = onnx.ModelProto.decode(core.sparsifyOnnx(new Uint8Array(await readFile(path.join(convDir, conv))), 0.5).bytes).graph;
  const model = onnx.ModelProto.decode(await readFile(path.join(out, 'model.onnx')));
  const inits = new Map(model.graph.initializer.map((x) => [x.name, x]));
  const prunedKernels = new Set(zeroed.node.filter((n) => rep.prune.perLayer[n.name] !== undefined).map((n) => n.input[1]));
  let refit = 0;
  for (const x of zeroed.initializer) {
    const got = Buffer.from(inits.get(x.name)?.rawData ?? []);
    if (!prunedKernels.has(x.name)) {
      assert.ok(got.equals(Buffer.from(x.rawData ?? [])), `${x.name}: unchanged`);
      continue;
    }
    const [a, b] = [floatsOf(got), floatsOf(x.rawData)];
    assert.ok(a.every((v, i) => (v === 0) === (b[i] === 0)), `${x.name}: magnitude pruning's zeros`);
    if (a.some((v, i) => v !== b[i])) refit++;
  }
  assert.equal(refit, rep.prune.refit.reconstructedKernels, 'the kept weights of every reconstructed kernel moved');
  assert.ok(refit >= 30, `${refit} pointwise kernels reconstructed`);
  // The head differs from the run's: it was fit again.
  const loaded = await core.loadRun(runDir);
  const runKernel = loaded.head.getWeights()[0].dataSync();
  loaded.head.dispose();
  const refitKernel = new Float32Array(Uint8Array.from(inits.get('head/0/kernel').rawData).buffer);
  assert.equal(refitKernel.length, runKernel.length);
  assert.ok(refitKernel.some((v, i) => Math.abs(v - runKernel[i]) > 1e-4), 'the exported head is not the run\'s head');

  // The file: its backbone kernels' zeros are what the report says.
  let zeros = 0;
  let total = 0;
  for (const n of model.graph.node.filter((x) => x.opType === 'Conv' && inits.has(x.input[1]))) {
    const v = new Float32Array(Uint8Array.from(inits.get(n.input[1]).rawData).buffer);
    const z = v.filter((x) => x === 0).length;
    if (rep.prune.perLayer[n.name] !== undefined) assert.equal(z / v.length, rep.prune.perLayer[n.name], n.name);
    zeros += z;
    total += v.length;
  }
  assert.ok(Math.abs(zeros / total - rep.prune.overall) < 1e-9, `overall ${rep.prune.overall} vs the file's ${zeros / total}`);
  assert.ok(Math.abs(rep.exported.bytes - rep.float32.bytes) < 0.01 * rep.float32.bytes, 'zeros are stored densely: raw size about unchanged');
  assert.ok(rep.exported.gzipBytes < 0.9 * rep.float32.gzipBytes, `gzip ${rep.exported.gzipBytes} vs float32 ${rep.float32.gzipBytes}`);
  assert.match(await readFile(path.join(out, 'README.md'), 'utf8'), /Magnitude-pruned \(the backbone magnitude-pruned, the kept weights of \d+ pointwise kernels refit .* then the head refit .* at 50% zeros each/);
  // A fresh process loads it and scores what the report says.
  const { stdout } = await run(process.execPath, [path.join(out, 'inference.mjs'), ...testFiles], { cwd: out, maxBuffer: 16 << 20 });
  const rows = engineRows(stdout.trim().split('\n').map((l) => JSON.parse(l)), labels);
  assert.equal(accuracyOf(rows), rep.exported.accuracy, 'the report\'s accuracy is what the file scores');
  t.diagnostic(`--prune 0.5: ${layers.length} kernels, ${(rep.prune.overall * 100).toFixed(1)}% of backbone kernel weights zero; gzip ${rep.exported.gzipBytes} vs ${rep.float32.gzipBytes} B; accuracy ${rep.exported.accuracy} vs ${rep.float32.accuracy} on ${rep.testImages} images (head refit: val ${rep.prune.refit.valAccuracy})`);
});

test('ONNX export: --quantize uint16 exits 1 with a one-line reason and leaves no folder', async () => {
  for (const extra of [['--quantize', 'uint16']]) {
    const out = path.join(dir, `bad-${extra[0].slice(2)}`);
    const r = await runCli(['export', runDir, '--format', 'onnx', ...extra, '--out', out, '--cache', cacheDir]);
    assert.equal(r.code, 1, `${extra.join(' ')}: exit ${r.code}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line: ${r.stderr}`);
    assert.ok(lines[0].includes(extra[0]), `${extra.join(' ')}: names the option: ${lines[0]}`);
    assert.equal(r.stdout, '');
    await assert.rejects(stat(out), `${extra.join(' ')}: no output folder`);
  }
});

test('ONNX export of a run on a local layers backbone: float32 matches predict RUN; predict on the export gives an error line for a bad file', async (t) => {
  const { tinyBackbone, colourDataset, writeText } = await import('./fixtures.mjs');
  const base2 = path.join(dir, 'layers');
  const backbone = await tinyBackbone(path.join(base2, 'bb'), { size: 32 });
  await colourDataset(path.join(base2, 'data'), { classes: { red: 'red', blue: 'blue', green: 'green' }, perClass: 6 });
  const run2 = path.join(base2, 'run');
  await core.trainRun({ data: path.join(base2, 'data'), out: run2, backbone, cacheDir, workers: 1, epochs: 4, batchSize: 8, hiddenUnits: 16, test: 0.3, seed: 2 });
  const rec2 = JSON.parse(await readFile(path.join(run2, 'run.json'), 'utf8'));
  assert.equal(rec2.backbone.format, 'layers');
  const files = rec2.samples.filter((s) => s.split === 'test').map((s) => path.join(rec2.dataset.root, s.rel));
  const out = path.join(base2, 'export');
  const rep = await core.exportRun(run2, { out, format: 'onnx', quantize: 'none', cacheDir, workers: 1 });
  assert.equal(rep.modelFormat, 'onnx');
  assert.equal(rep.precision.source, 'layers-model');
  const fromRun = await core.predictFiles(run2, files, { cacheDir, workers: 1 });
  const fromExport = await core.predictFiles(out, files);
  const d = maxAbsDiff(engineRows(fromExport, rec2.labels), engineRows(fromRun, rec2.labels));
  t.diagnostic(`layers backbone, float32 ONNX export: max |p_export - p_engine| = ${d.toExponential(2)} over ${files.length} images (tolerance ${TOL.none})`);
  assert.ok(d <= TOL.none, `${d}`);
  assert.equal(rep.float32.accuracy, rec2.test.accuracy);

  const bad = path.join(base2, 'not-an-image.jpg');
  await writeText(bad, 'hello');
  const r = await runCli(['predict', out, files[0], bad, '--quiet']);
  assert.equal(r.code, 1, 'a file that fails makes the exit code 1');
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.equal(lines[0].path, files[0]);
  assert.ok(rec2.labels.includes(lines[0].label));
  assert.equal(lines[1].path, bad);
  assert.equal(typeof lines[1].error, 'string');
});
