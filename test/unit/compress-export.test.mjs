// Compact export of a run on a layers backbone (the tiny local one): every
// --quantize format loads with the stock loaders in a fresh Node process and
// predicts what the engine predicts on the run's test split, within a
// tolerance per format; the manifest carries TF.js `quantization` entries and
// weights.bin shrinks; pruning, --quantize auto within --max-drop, bad input,
// and tensors left after an in-process export. One trained run serves every
// test in this file.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir, rm, stat, writeFile, cp } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { core, root, runCli, tf, fileRepoTempDir } from './helpers.mjs';
import { colourDataset, tinyBackbone } from './fixtures.mjs';
import { engineRows, maxAbsDiff, probsInChild } from './exportProbe.mjs';

const run = promisify(execFile);

// Largest |p_export - p_engine| allowed over every class probability of every test image.
// float32 only reorders float sums: 1e-4. float16 keeps 11 significant bits and uint16 16 bits
// per weight: 1e-2 leaves a wide margin over what they measure (~1e-4 here). uint8 puts each
// weight on 256 levels: 5e-2 (a few per cent of probability on these small networks).
const TOL = { none: 1e-4, float16: 1e-2, uint16: 1e-2, uint8: 5e-2 };

const dir = await fileRepoTempDir('compress-');
const cacheDir = path.join(dir, 'cache');
const runDir = path.join(dir, 'run');
const backbone = await tinyBackbone(path.join(dir, 'tiny'), { size: 32 });
await colourDataset(path.join(dir, 'data'), { classes: { red: 'red', green: 'green', blue: 'blue' }, perClass: 12, seed: 5 });
// --hidden and --l2 fixed: every grid point scores 100% on this easy data and the tie rule would
// keep the strongest L2, whose small margins 50% pruning then erodes; these tests are about export.
const trained = await core.trainRun({ data: path.join(dir, 'data'), backbone, out: runDir, cacheDir, workers: 1, epochs: 12, batchSize: 8, hiddenUnits: 16, l2: 1e-4, val: 0.2, test: 0.3, seed: 3 });
const record = JSON.parse(await readFile(path.join(runDir, 'run.json'), 'utf8'));
const labels = record.labels;
const testFiles = record.samples.filter((s) => s.split === 'test').map((s) => path.join(record.dataset.root, s.rel));
// The engine's own probabilities (backbone through the embedding cache + the trained head).
const engine = await core.predictFiles(runDir, testFiles, { cacheDir, workers: 1 });
const engineProbs = engineRows(engine, labels);

const loadInChild = (dirs) => probsInChild(dirs, testFiles);
const maxDiff = (rows) => maxAbsDiff(rows, engineProbs);

const exportsDir = path.join(dir, 'exports');
const reports = {};

test('export --quantize float16 / uint16 / uint8 / none: stock loaders in a fresh process match the engine on the test split', async (t) => {
  assert.ok(testFiles.length >= 9, `test split of ${testFiles.length} images`);
  const formats = ['none', 'float16', 'uint16', 'uint8'];
  for (const q of formats) reports[q] = await core.exportRun(runDir, { out: path.join(exportsDir, q), quantize: q, cacheDir, workers: 1 });
  const loaded = await loadInChild(formats.map((q) => path.join(exportsDir, q)));

  const weightBytes = {};
  for (const q of formats) {
    const out = path.join(exportsDir, q);
    const r = reports[q];
    assert.equal(r.modelFormat, 'layers-model');
    assert.equal(r.quantize, q);
    assert.equal(r.chosen, q === 'none' ? 'float32' : q);
    assert.deepEqual(r.candidates.map((c) => c.name), [r.chosen]);
    assert.equal(r.testImages, testFiles.length);
    assert.equal(r.float32.accuracy, trained.test.accuracy, 'the float32 export scores as the engine did');

    // Probabilities of the stock loader in another process vs the engine's.
    const rows = loaded.get(out);
    assert.equal(rows.length, testFiles.length);
    const d = maxDiff(rows);
    t.diagnostic(`${q}: max |p_export - p_engine| = ${d.toExponential(2)} over ${testFiles.length} images x ${labels.length} classes (tolerance ${TOL[q]})`);
    assert.ok(d <= TOL[q], `${q}: max probability difference ${d} > ${TOL[q]}`);
    rows.forEach((p, i) => assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-5, `${q} row ${i} sums to 1`));
    // report.exported.accuracy is measured from these same files.
    const correct = rows.filter((p, i) => labels[p.indexOf(Math.max(...p))] === engine[i].label).length;
    if (q !== 'uint8') assert.equal(correct, rows.length, `${q}: same top label as the engine on every test image`);
    assert.ok(Math.abs(r.exported.accuracy - r.float32.accuracy) <= (q === 'uint8' ? 0.2 : 1e-9), `${q}: accuracy ${r.exported.accuracy} vs float32 ${r.float32.accuracy}`);

    // The manifest says how each weight is stored, in TF.js's own terms.
    const json = JSON.parse(await readFile(path.join(out, 'model.json'), 'utf8'));
    const specs = json.weightsManifest.flatMap((g) => g.weights);
    assert.deepEqual(json.weightsManifest.map((g) => g.paths), [['weights.bin']]);
    for (const s of specs) {
      assert.equal(s.dtype, 'float32', `${s.name} decodes to float32`);
      const n = s.shape.reduce((a, b) => a * b, 1);
      const want = q === 'none' ? undefined : q === 'float16' || n < 64 ? 'float16' : q;
      assert.equal(s.quantization?.dtype, want, `${q}: ${s.name} (${n} values)`);
      if (want === 'uint8' || want === 'uint16') assert.ok(s.quantization.scale > 0 && Number.isFinite(s.quantization.min), `${s.name} has scale and min`);
    }
    const bin = (await stat(path.join(out, 'weights.bin'))).size;
    weightBytes[q] = bin;
    assert.equal(r.exported.bytes, bin + (await stat(path.join(out, 'model.json'))).size);
    assert.equal(Object.values(r.bytesByDtype).reduce((a, b) => a + b, 0), bin, 'bytesByDtype adds up to weights.bin');
    assert.deepEqual(Object.keys(r.precision).sort(), ['conv', 'dense', 'depthwise', 'first', 'head', 'other', 'vector']);
    assert.deepEqual((await readdir(out)).sort(), ['.headstart.json', 'README.md', 'inference.mjs', 'labels.json', 'metadata.json', 'model.json', 'report.json', 'weights.bin']);
    assert.deepEqual(JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')).chosen, r.chosen);
  }
  // Tensors under 64 values (biases, the 16x3 output kernel) stay at 16 bits, so the ratios sit a little above 1/2 and 1/4.
  const ratio = (q) => weightBytes[q] / weightBytes.none;
  t.diagnostic(`weights.bin: float32 ${weightBytes.none} B, float16 ${ratio('float16').toFixed(3)}, uint16 ${ratio('uint16').toFixed(3)}, uint8 ${ratio('uint8').toFixed(3)}`);
  assert.equal(ratio('float16'), 0.5);
  assert.equal(ratio('uint16'), 0.5);
  assert.ok(ratio('uint8') >= 0.25 && ratio('uint8') <= 0.3, `uint8 weights are ${ratio('uint8')} of float32`);

  // The generated inference script (its own fromMemory loader and decoding) agrees for a quantized export too.
  const { stdout } = await run(process.execPath, [path.join(exportsDir, 'uint8', 'inference.mjs'), ...testFiles], { cwd: dir });
  const fromScript = stdout.trim().split('\n').map((l) => JSON.parse(l));
  const fromLoader = loaded.get(path.join(exportsDir, 'uint8'));
  fromScript.forEach((l, i) => {
    for (const { label, probability } of l.top) assert.ok(Math.abs(probability - fromLoader[i][labels.indexOf(label)]) < 1e-4, `inference.mjs ${l.path} ${label}`);
  });
});

test('export --prune 0.5: kernels half zeros, smaller gzip, accuracy holds; --quantize auto picks the first candidate within --max-drop', async (t) => {
  const pruned = await core.exportRun(runDir, { out: path.join(exportsDir, 'pruned'), prune: 0.5, cacheDir, workers: 1 });
  assert.equal(pruned.chosen, 'float32-sparse50');
  assert.equal(pruned.prune.target, 0.5);
  assert.deepEqual(Object.keys(pruned.prune.perLayer), ['head_hidden', 'head_output']);
  for (const [layer, s] of Object.entries(pruned.prune.perLayer)) assert.ok(Math.abs(s - 0.5) <= 0.02, `${layer}: sparsity ${s}`);
  // The zeros are in the exported file, not only in the report.
  const model = await tf.loadLayersModel(core.dirLoader(path.join(exportsDir, 'pruned')));
  for (const l of model.layers.filter((x) => x.name.startsWith('headstart_head_'))) {
    const k = l.getWeights()[0].dataSync();
    const zeros = k.filter((v) => v === 0).length / k.length;
    assert.ok(Math.abs(zeros - 0.5) <= 0.02, `${l.name}: ${zeros} zeros in the file`);
  }
  model.dispose();
  t.diagnostic(`pruned 50%: gzip ${pruned.exported.gzipBytes} B vs float32 ${pruned.float32.gzipBytes} B; accuracy ${pruned.exported.accuracy} vs ${pruned.float32.accuracy}`);
  assert.equal(pruned.exported.bytes, pruned.float32.bytes, 'zeros are stored densely: raw size unchanged');
  assert.ok(pruned.exported.gzipBytes < pruned.float32.gzipBytes, `gzip ${pruned.exported.gzipBytes} vs ${pruned.float32.gzipBytes}`);
  assert.ok(pruned.exported.accuracy >= pruned.float32.accuracy - 0.2, `pruned accuracy ${pruned.exported.accuracy} vs ${pruned.float32.accuracy}`);
  assert.match(await readFile(path.join(exportsDir, 'pruned', 'README.md'), 'utf8'), /Pruned to 50% zeros per kernel: head .*\(head head_hidden 50%/);

  // --quantize auto --max-drop 5 through the CLI.
  const cli = await runCli(['export', runDir, '--out', path.join(exportsDir, 'auto'), '--quantize', 'auto', '--max-drop', '5', '--workers', '1', '--json'], { env: { HEADSTART_CACHE_DIR: cacheDir } });
  assert.equal(cli.code, 0, cli.stderr);
  const auto = JSON.parse(cli.stdout);
  // --max-drop 0 in-process: nothing below float32 accuracy may be chosen.
  const strict = await core.exportRun(runDir, { out: path.join(exportsDir, 'auto0'), quantize: 'auto', maxDrop: 0, cacheDir, workers: 1 });
  for (const [maxDrop, r] of [[5, auto], [0, strict]]) {
    t.diagnostic(`auto --max-drop ${maxDrop}: tried ${r.candidates.map((c) => `${c.name} ${c.bytes} B ${(c.accuracy * 100).toFixed(1)}%`).join(', ')}; chose ${r.chosen}`);
    assert.equal(r.quantize, 'auto');
    assert.equal(r.maxDropPoints, maxDrop);
    assert.ok(r.candidates.length >= 1);
    const order = ['uint8', 'mixedLight', 'mixed', 'float16'].flatMap((p) => [...core.TFJS_AUTO_SPARSITIES.map((x) => `-sparse${Math.round(x * 100)}`), ''].map((s) => p + s));
    assert.deepEqual(r.candidates.map((c) => c.name), order.slice(0, r.candidates.length), 'tried in the documented order, stopping at the first within budget');
    for (const c of r.candidates) {
      for (const k of ['bytes', 'gzipBytes', 'accuracy', 'dropPoints', 'agreement']) assert.equal(typeof c[k], 'number', `${c.name}.${k}`);
      // Each changed prediction costs at most one correct answer: the drop is bounded by the disagreement.
      assert.ok(c.dropPoints <= (1 - c.agreement) * 100 + 1e-9, `${c.name}: drop ${c.dropPoints} with agreement ${c.agreement}`);
      assert.equal(c.withinBudget, (1 - c.agreement) * 100 <= maxDrop + 1e-9);
      assert.equal(c.agreementInterval.n, r.choice.images);
      assert.ok(c.accuracyInterval.low <= c.accuracy && c.accuracy <= c.accuracyInterval.high);
    }
    // Smallest first: raw bytes never decrease along the list (sparsity only helps gzip).
    r.candidates.forEach((c, i) => i && assert.ok(c.bytes >= r.candidates[i - 1].bytes, `${c.name} (${c.bytes} B) after ${r.candidates[i - 1].name}`));
    const chosen = r.candidates.find((c) => c.name === r.chosen);
    assert.ok(chosen, 'the chosen variant is among the candidates');
    assert.ok(chosen.withinBudget && chosen.dropPoints <= maxDrop + 1e-9);
    assert.equal(r.choice.split, 'val');
    assert.equal(r.choice.images, record.samples.filter((s) => s.split === 'val').length);
    assert.equal(r.candidates.at(-1), chosen, 'the first within budget wins');
    assert.ok(r.candidates.slice(0, -1).every((c) => !c.withinBudget));
    assert.equal(r.exported.bytes, chosen.bytes);
    assert.ok(r.exported.interval.n === testFiles.length, 'the test figure, measured after the choice');
    assert.ok(r.exported.bytes < r.float32.bytes);
    if (maxDrop === 0) assert.equal(chosen.agreement, 1, 'budget 0: the same predictions as float32 on every choice image');
    assert.equal(r.prune.target, chosen.sparsity);
  }
  // What auto chose loads in a fresh process and agrees with the engine within its storage's tolerance.
  const loaded = await loadInChild([path.join(exportsDir, 'auto'), path.join(exportsDir, 'pruned')]);
  const d = maxDiff(loaded.get(path.join(exportsDir, 'auto')));
  t.diagnostic(`auto (${auto.chosen}): max |p_export - p_engine| = ${d.toExponential(2)}`);
  assert.equal(loaded.get(path.join(exportsDir, 'pruned')).length, testFiles.length);
  if (auto.prune.target === 0) assert.ok(d <= TOL.uint8);
  else {
    // Pruned and quantized: the zeros survive uint8 storage exactly (zero is on the grid).
    const m = await tf.loadLayersModel(core.dirLoader(path.join(exportsDir, 'auto')));
    for (const l of m.layers.filter((x) => x.name.startsWith('headstart_head_'))) {
      const k = l.getWeights()[0].dataSync();
      const zeros = k.filter((v) => v === 0).length / k.length;
      assert.ok(Math.abs(zeros - auto.prune.target) <= 0.02, `${l.name}: ${zeros} exact zeros after ${auto.chosen}`);
    }
    m.dispose();
  }
  const top = (rows) => rows.filter((p, i) => p.indexOf(Math.max(...p)) === labels.indexOf(record.samples.filter((s) => s.split === 'test')[i].label)).length / rows.length;
  assert.equal(top(loaded.get(path.join(exportsDir, 'auto'))), auto.exported.accuracy, 'report accuracy is what the files score');
  assert.equal(top(loaded.get(path.join(exportsDir, 'pruned'))), pruned.exported.accuracy);
});

test('export bad input: one-line reasons, exit 1, existing --out refused before any work, --force replaces it', async () => {
  const env = { HEADSTART_CACHE_DIR: cacheDir };
  const out = path.join(dir, 'bad-out');
  const cases = [
    [['--quantize', 'int4'], /^headstart: --quantize must be one of none, float16, uint16, uint8, int8, auto \(got 'int4'\)$/],
    [['--prune', '1'], /^headstart: --prune must be a number at least 0 and less than 1 \(got 1\)$/],
    [['--prune=-0.1'], /^headstart: --prune must be a number at least 0 and less than 1 \(got -0\.1\)$/],
    [['--prune', 'x'], /^headstart: --prune must be a number at least 0 and less than 1 \(got x\)$/],
    [['--max-drop=-1'], /^headstart: --max-drop must be a number from 0 to 100 \(got -1\)$/],
  ];
  for (const [args, reason] of cases) {
    const r = await runCli(['export', runDir, '--out', out, ...args], { env });
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${args.join(' ')}: one line, got ${r.stderr}`);
    assert.match(lines[0], reason);
    assert.equal(r.stdout, '');
  }
  await assert.rejects(stat(out), { code: 'ENOENT' }, 'nothing written on bad input');

  // An existing folder: refused first, before the run is even read (a missing RUN_DIR still says "exists").
  await mkdir(out);
  await writeFile(path.join(out, 'keep.txt'), 'mine');
  const events = [];
  await assert.rejects(core.exportRun(path.join(dir, 'no-such-run'), { out, cacheDir }, { onEvent: (e) => events.push(e) }), { name: 'HeadstartError', code: 'EXISTS', message: /already exists; .*--force/ });
  assert.deepEqual(events, [], 'no work started');
  const refused = await runCli(['export', runDir, '--out', out, '--quantize', 'uint8'], { env });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr.trim(), /^headstart: .*bad-out already exists; choose another --out folder or pass --force to replace it$/);
  assert.equal(await readFile(path.join(out, 'keep.txt'), 'utf8'), 'mine');
  // --force does not replace a folder Headstart did not write (the user's file stays).
  const notOurs = await runCli(['export', runDir, '--out', out, '--quantize', 'uint8', '--force'], { env });
  assert.equal(notOurs.code, 1);
  assert.match(notOurs.stderr.trim(), /^headstart: refusing to replace .*bad-out: it was not written by Headstart/);
  assert.equal(await readFile(path.join(out, 'keep.txt'), 'utf8'), 'mine');
  // --force replaces an earlier export whole (its old files do not linger next to the new model).
  await rm(out, { recursive: true });
  assert.equal((await runCli(['export', runDir, '--out', out, '--quantize', 'none'], { env })).code, 0);
  await writeFile(path.join(out, 'stale.txt'), 'from the earlier export');
  const forced = await runCli(['export', runDir, '--out', out, '--quantize', 'uint8', '--force', '--json'], { env });
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(JSON.parse(forced.stdout).chosen, 'uint8');
  assert.deepEqual((await readdir(out)).sort(), ['.headstart.json', 'README.md', 'inference.mjs', 'labels.json', 'metadata.json', 'model.json', 'report.json', 'weights.bin']);
  assert.deepEqual((await readdir(dir)).filter((n) => n.includes('.tmp-')), [], 'no temp folder left');

  // A RUN_DIR from another version, or without its head.
  const other = path.join(dir, 'run-v99');
  await cp(runDir, other, { recursive: true });
  const rec = JSON.parse(await readFile(path.join(other, 'run.json'), 'utf8'));
  await writeFile(path.join(other, 'run.json'), JSON.stringify({ ...rec, version: 99 }));
  const v = await runCli(['export', other, '--out', path.join(dir, 'out-v99')], { env });
  assert.equal(v.code, 1);
  assert.match(v.stderr.trim(), /^headstart: .*run-v99 was made by another version of Headstart \(run format 99, this one reads 1\); train again$/);
  const headless = path.join(dir, 'run-headless');
  await cp(runDir, headless, { recursive: true });
  await rm(path.join(headless, 'head'), { recursive: true });
  const h = await runCli(['export', headless, '--out', path.join(dir, 'out-headless')], { env });
  assert.equal(h.code, 1);
  const hl = h.stderr.trim().split('\n');
  assert.equal(hl.length, 1, h.stderr);
  assert.match(hl[0], /^headstart: .*run-headless has no readable trained head \(head\/model\.json\).*train again$/);
  const missing = await runCli(['export', path.join(dir, 'nothing-here'), '--out', path.join(dir, 'out-missing')], { env });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr.trim(), /^headstart: .*run\.json/);
  for (const n of ['out-v99', 'out-headless', 'out-missing']) await assert.rejects(stat(path.join(dir, n)), { code: 'ENOENT' }, `${n} not created`);
});

test('exportRun in-process leaves no tensors behind (plain, quantized, pruned, auto)', async () => {
  await core.initBackend();
  const opts = [{ quantize: 'uint8' }, { quantize: 'none', prune: 0.5 }, { quantize: 'auto', maxDrop: 100 }];
  for (const [i, o] of opts.entries()) {
    const before = tf.memory().numTensors;
    await core.exportRun(runDir, { out: path.join(dir, `mem-${i}`), cacheDir, workers: 1, ...o });
    assert.equal(tf.memory().numTensors, before, `${JSON.stringify(o)}: ${tf.memory().numTensors - before} tensors left`);
  }
  // A caller that loads the export holds exactly that model's weights, and gets them back on dispose.
  const before = tf.memory().numTensors;
  const m = await tf.loadLayersModel(core.dirLoader(path.join(dir, 'mem-0')));
  assert.equal(tf.memory().numTensors, before + m.weights.length);
  m.dispose();
  assert.equal(tf.memory().numTensors, before);
});

test('export --quantize auto decides without the test split: candidates run on validation images only; the test split only for float32 and the chosen variant, after the choice', async () => {
  const events = [];
  const r = await core.exportRun(runDir, { out: path.join(exportsDir, 'auto-noleak'), quantize: 'auto', maxDrop: 1, cacheDir, workers: 1 }, { onEvent: (e) => events.push(e) });
  const valCount = record.samples.filter((s) => s.split === 'val').length;
  // measureVariant reports progress per image set and variant: `images (<set> <variant>)`.
  const sets = new Map();
  for (const e of events) if (e.type === 'progress' && e.phase === 'export' && /^images \(/.test(e.unit ?? '')) sets.set(e.unit, e.total);
  const onTest = [...sets.keys()].filter((u) => /\(test /.test(u)).sort();
  assert.deepEqual(onTest, [...new Set(['images (test float32)', `images (test ${r.chosen})`])].sort(), `measured on the test split: ${onTest}`);
  for (const c of r.candidates) assert.equal(sets.get(`images (choice ${c.name === 'float32' ? 'float32' : c.name})`), valCount, `${c.name} judged on the ${valCount} validation images`);
  // The chosen variant's test measurement comes after every choice measurement.
  const units = events.filter((e) => e.type === 'progress' && /^images \(/.test(e.unit ?? '')).map((e) => e.unit);
  const lastChoice = units.map((u) => u.includes('(choice ')).lastIndexOf(true);
  if (r.chosen !== 'float32') assert.ok(units.indexOf(`images (test ${r.chosen})`) > lastChoice);
  assert.match(await readFile(path.join(exportsDir, 'auto-noleak', 'README.md'), 'utf8'), /never the test split/);
});

test('export --prune 0.5 on a backbone with a large convolution: the backbone kernel is pruned too (exact zeros in the stored weights), the first convolution stays dense; the report lists both', async (t) => {
  const big = path.join(dir, 'big');
  const bb = await tinyBackbone(path.join(big, 'bb'), { size: 32, filters: [8, 64] }); // 3x3x8x64 = 4608 weights: above the 4096 floor
  const rd = path.join(big, 'run');
  await core.trainRun({ data: path.join(dir, 'data'), backbone: bb, out: rd, cacheDir, workers: 1, epochs: 8, batchSize: 8, hiddenUnits: 16, val: 0.2, test: 0.3, seed: 3 });
  const out = path.join(big, 'pruned');
  const r = await core.exportRun(rd, { out, prune: 0.5, quantize: 'uint8', cacheDir, workers: 1 });
  assert.equal(r.chosen, 'uint8-sparse50');
  const m = await tf.loadLayersModel(core.dirLoader(out));
  try {
    const convs = m.layers.filter((l) => l.getClassName() === 'Conv2D');
    assert.equal(convs.length, 2);
    const zerosOf = (l) => {
      const k = l.getWeights()[0].dataSync();
      return k.filter((v) => v === 0).length / k.length;
    };
    const name = `${convs[1].name}/kernel`;
    assert.ok(Math.abs(r.prune.perLayer[name] - 0.5) < 1e-3, `${name} in the report: ${JSON.stringify(r.prune.perLayer)}`);
    assert.ok(Math.abs(zerosOf(convs[1]) - 0.5) < 1e-3, `stored uint8 kernel: ${zerosOf(convs[1])} exact zeros`);
    assert.equal(r.prune.perLayer[`${convs[0].name}/kernel`], undefined, 'the first convolution is not pruned');
    assert.ok(zerosOf(convs[0]) < 0.05, 'the first convolution stays dense');
    for (const l of ['head_hidden', 'head_output']) assert.ok(Math.abs(r.prune.perLayer[l] - 0.5) <= 0.02, `${l}: ${r.prune.perLayer[l]}`);
    assert.ok(r.prune.overall > 0.4 && r.prune.overall < 0.5, `overall ${r.prune.overall}`);
  } finally {
    m.dispose();
  }
  const plain = await core.exportRun(rd, { out: path.join(big, 'plain'), quantize: 'uint8', cacheDir, workers: 1 });
  t.diagnostic(`uint8 gzip: pruned ${r.exported.gzipBytes} B vs dense ${plain.exported.gzipBytes} B; accuracy ${r.exported.accuracy} vs ${plain.exported.accuracy}`);
  assert.ok(r.exported.gzipBytes < plain.exported.gzipBytes, 'pruned zeros shrink the gzipped weights');
  assert.match(await readFile(path.join(out, 'README.md'), 'utf8'), /Pruned to 50% zeros per kernel: head .* and backbone convolution kernels/);
});
