// Compact export of a run on the bundled graph backbone (mobilenet-v2-140,
// whose weights nsfwjs ships as uint8): each --quantize format loads with
// tf.loadGraphModel in a fresh Node process and predicts what the engine
// predicts on the run's test split; weights already stored as uint8 keep
// their source grid bit for bit; weights.bin shrinks as the format says.
// One small trained run (3 classes x 8 generated images) serves every export.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { core, root, tf, fileRepoTempDir } from './helpers.mjs';
import { engineRows, maxAbsDiff, probsInChild } from './exportProbe.mjs';

const run = promisify(execFile);

// Largest |p_export - p_engine| allowed over every class probability of every test image.
// float32: 1e-4 (the export scales pixels by a Mul + Add node instead of the engine's
// preprocessing; only float rounding differs). float16 / uint16 re-store ~60 layers of
// MobileNet weights with 11 / 16 significant bits: 1e-2. uint8: the backbone keeps its
// source grid exactly, only the head is re-quantized: 5e-2.
const TOL = { none: 1e-4, float16: 1e-2, uint16: 1e-2, uint8: 5e-2 };

const dir = await fileRepoTempDir('compress-graph-');
const cacheDir = path.join(dir, 'cache');
const runDir = path.join(dir, 'run');
await core.makeSampleDataset(path.join(dir, 'data'), { classes: 3, perClass: 8, size: 128, seed: 7 });
const trained = await core.trainRun({ data: path.join(dir, 'data'), backbone: 'mobilenet-v2-140', out: runDir, cacheDir, workers: 1, epochs: 10, val: 0.2, test: 0.3, seed: 5 });
const record = JSON.parse(await readFile(path.join(runDir, 'run.json'), 'utf8'));
const labels = record.labels;
const testSamples = record.samples.filter((s) => s.split === 'test');
const testFiles = testSamples.map((s) => path.join(record.dataset.root, s.rel));
const engine = await core.predictFiles(runDir, testFiles, { cacheDir, workers: 1 });
const engineProbs = engineRows(engine, labels);
const accuracyOf = (rows) => rows.filter((p, i) => p.indexOf(Math.max(...p)) === labels.indexOf(testSamples[i].label)).length / rows.length;

test('graph backbone: float32 / float16 / uint16 / uint8 / auto exports load with tf.loadGraphModel in a fresh process and match the engine', async (t) => {
  assert.equal(record.backbone.format, 'graph');
  assert.ok(testFiles.length >= 6, `${testFiles.length} test images`);
  const formats = ['none', 'float16', 'uint16', 'uint8', 'auto'];
  const reports = {};
  const n0 = tf.memory().numTensors;
  for (const q of formats) reports[q] = await core.exportRun(runDir, { out: path.join(dir, q), quantize: q, cacheDir, workers: 1 });
  assert.equal(tf.memory().numTensors, n0, 'the exports left no tensors behind');
  const loaded = await probsInChild(formats.map((q) => path.join(dir, q)), testFiles);

  const source = await core.readModelDir(record.backbone.dir);
  const sourceSpecs = new Map(source.entries.map((e) => [e.spec.name, e]));
  const weightBytes = {};
  for (const q of formats) {
    const out = path.join(dir, q);
    const r = reports[q];
    assert.equal(r.modelFormat, 'graph-model');
    assert.equal(r.float32.accuracy, trained.test.accuracy, 'the float32 export scores as the engine did');
    const rows = loaded.get(out);
    assert.equal(rows.length, testFiles.length);
    assert.equal(accuracyOf(rows), r.exported.accuracy, `${q}: the report's accuracy is what the files score`);
    const { json, entries } = await core.readModelDir(out);
    assert.equal(json.format, 'graph-model');
    weightBytes[q] = (await stat(path.join(out, 'weights.bin'))).size;
    if (q === 'auto') {
      const chosen = r.candidates.at(-1);
      t.diagnostic(`auto: tried ${r.candidates.map((c) => `${c.name} ${(c.bytes / 1e6).toFixed(2)} MB ${(c.accuracy * 100).toFixed(1)}%`).join(', ')}; chose ${r.chosen}`);
      assert.equal(chosen.name, r.chosen);
      assert.ok(chosen.withinBudget && chosen.dropPoints <= 1 + 1e-9, 'default budget: 1 point');
      assert.ok(r.candidates.slice(0, -1).every((c) => !c.withinBudget));
      if (chosen.sparsity === 0) assert.ok(maxAbsDiff(rows, engineProbs) <= TOL.uint8);
      continue;
    }
    const d = maxAbsDiff(rows, engineProbs);
    t.diagnostic(`${q}: max |p_export - p_engine| = ${d.toExponential(2)} over ${testFiles.length} images x ${labels.length} classes (tolerance ${TOL[q]}); weights.bin ${weightBytes[q]} B`);
    assert.ok(d <= TOL[q], `${q}: max probability difference ${d} > ${TOL[q]}`);
    assert.ok(Math.abs(r.exported.accuracy - r.float32.accuracy) <= (q === 'uint8' ? 0.34 : 1e-9), `${q}: ${r.exported.accuracy} vs float32 ${r.float32.accuracy}`);

    for (const e of entries) {
      const s = e.spec;
      if (s.dtype !== 'float32') {
        assert.equal(s.quantization, undefined, `${s.name} (${s.dtype}) is stored as is`);
        continue;
      }
      const n = s.shape.reduce((a, b) => a * b, 1);
      const want = q === 'none' ? undefined : q === 'float16' || n < 64 ? 'float16' : q;
      assert.equal(s.quantization?.dtype, want, `${q}: ${s.name} (${n} values)`);
      // uint8: a backbone weight nsfwjs stored as uint8 is written with the same scale, min and bytes.
      const src = sourceSpecs.get(s.name);
      if (q === 'uint8' && src?.spec.quantization?.dtype === 'uint8' && n >= 64) {
        assert.deepEqual(s.quantization, src.spec.quantization, `${s.name} keeps its source grid`);
        assert.ok(Buffer.from(e.bytes).equals(Buffer.from(src.bytes)), `${s.name}: same bytes as the source`);
      }
    }
  }
  const ratio = (q) => weightBytes[q] / weightBytes.none;
  t.diagnostic(`weights.bin vs float32 (${weightBytes.none} B): float16 ${ratio('float16').toFixed(3)}, uint16 ${ratio('uint16').toFixed(3)}, uint8 ${ratio('uint8').toFixed(3)}, auto ${ratio('auto').toFixed(3)}`);
  assert.ok(Math.abs(ratio('float16') - 0.5) < 0.01);
  assert.ok(Math.abs(ratio('uint16') - 0.5) < 0.01);
  assert.ok(ratio('uint8') > 0.24 && ratio('uint8') < 0.27, `uint8 is ${ratio('uint8')} of float32`);
  assert.equal(reports.uint8.bytesByDtype.float32, undefined, 'no float weight left at float32');
  assert.ok(reports.uint8.bytesByDtype.uint8 > 0.95 * weightBytes.uint8);

  // The generated script (tf.io.fromMemory + tf.loadGraphModel, its own decoding, plain tfjs) on one image.
  const { stdout } = await run(process.execPath, [path.join(dir, 'uint8', 'inference.mjs'), testFiles[0]], { cwd: dir });
  const line = JSON.parse(stdout.trim().split('\n').at(-1));
  for (const { label, probability } of line.top) assert.ok(Math.abs(probability - loaded.get(path.join(dir, 'uint8'))[0][labels.indexOf(label)]) < 1e-4, `inference.mjs ${label}: ${probability}`);
});
