// Export of a run on a layers backbone (the tiny local one) through the CLI:
// the folder loads with the stock layers loader in a fresh Node process and
// predicts what `headstart predict RUN_DIR` predicts; labels (unicode ones
// included) and image size are in metadata.json / labels.json.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { core, repoTempDir, root, runCli } from './helpers.mjs';
import { colourDataset, tinyBackbone } from './fixtures.mjs';

const run = promisify(execFile);

// Loads an export folder with tf.loadLayersModel and prints probabilities per file, one JSON line each.
const childScript = `
const tf = require('@tensorflow/tfjs');
const core = require(${JSON.stringify(path.join(root, 'dist', 'core.js'))});
(async () => {
  const [dir, ...files] = process.argv.slice(1);
  const meta = JSON.parse(require('node:fs').readFileSync(dir + '/metadata.json', 'utf8'));
  const model = await tf.loadLayersModel(core.dirLoader(dir));
  for (const f of files) {
    const rgb = await core.readAndDecode(f, meta.imageSize);
    const probs = Array.from(model.predict(tf.tensor4d(Float32Array.from(rgb), [1, meta.imageSize, meta.imageSize, 3])).dataSync());
    console.log(JSON.stringify({ path: f, backend: tf.getBackend(), probs }));
  }
})().catch((err) => { console.error(err); process.exit(1); });
`;

test('export (layers backbone): loads with tf.loadLayersModel in a fresh process and matches `predict RUN_DIR`', async (t) => {
  const dir = await repoTempDir(t);
  const env = { HEADSTART_CACHE_DIR: path.join(dir, 'cache') };
  const backbone = await tinyBackbone(path.join(dir, 'tiny'), { size: 40 });
  const data = path.join(dir, 'data');
  const files = await colourDataset(data, { classes: { 'café ☕': 'red', 'a,b "q"': 'green', blue: 'blue' }, perClass: 7, seed: 21, ext: 'jpg' });
  const labels = ['a,b "q"', 'blue', 'café ☕'];

  const tr = await runCli(['train', data, '--backbone', backbone, '--out', path.join(dir, 'run'), '--epochs', '8', '--workers', '1', '--json'], { env });
  assert.equal(tr.code, 0, tr.stderr);
  const trained = JSON.parse(tr.stdout);
  assert.deepEqual(trained.dataset.classes, labels);

  const ex = await runCli(['export', path.join(dir, 'run'), '--out', path.join(dir, 'model'), '--json'], { env });
  assert.equal(ex.code, 0, ex.stderr);
  const report = JSON.parse(ex.stdout);
  assert.equal(report.modelFormat, 'layers-model');
  assert.equal(report.format, 'tfjs');
  assert.equal(report.exported.accuracy, trained.test.accuracy, 'the export scores as the engine did on the test split');
  for (const v of [report.float32, report.exported]) assert.ok(v.bytes > 0 && v.gzipBytes > 0 && v.accuracy >= 0 && v.accuracy <= 1);
  assert.deepEqual((await readdir(path.join(dir, 'model'))).sort(), ['.headstart.json', 'README.md', 'inference.mjs', 'labels.json', 'metadata.json', 'model.json', 'report.json', 'weights.bin']);
  assert.deepEqual((await readdir(dir)).filter((n) => n.includes('.tmp-')), [], 'no temp folder left');
  const meta = JSON.parse(await readFile(path.join(dir, 'model', 'metadata.json'), 'utf8'));
  assert.deepEqual(meta.labels, labels);
  assert.equal(meta.imageSize, 40);
  assert.deepEqual(JSON.parse(await readFile(path.join(dir, 'model', 'labels.json'), 'utf8')), labels);
  assert.equal(JSON.parse(await readFile(path.join(dir, 'model', 'model.json'), 'utf8')).format, 'layers-model');
  assert.match(await readFile(path.join(dir, 'model', 'README.md'), 'utf8'), /café ☕/);

  const images = [files['café ☕'][0], files['a,b "q"'][1], files.blue[2]];
  const pr = await runCli(['predict', path.join(dir, 'run'), ...images], { env });
  assert.equal(pr.code, 0, pr.stderr);
  const fromRun = pr.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(fromRun.map((l) => l.path), images);

  const child = await run(process.execPath, ['-e', childScript, path.join(dir, 'model'), ...images], { cwd: root });
  const fromExport = child.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(fromExport.length, 3);
  for (const [i, line] of fromRun.entries()) {
    const probs = fromExport[i].probs;
    assert.equal(probs.length, 3);
    assert.ok(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    for (const { label, probability } of line.top) {
      const p = probs[labels.indexOf(label)];
      assert.ok(Math.abs(p - probability) < 1e-4, `${path.basename(line.path)} ${label}: export ${p} vs run ${probability} (${fromExport[i].backend})`);
    }
    assert.equal(labels[probs.indexOf(Math.max(...probs))], line.label);
  }

  // The generated script (stock fromMemory loader, its own decoding) agrees as well.
  const { stdout } = await run(process.execPath, [path.join(dir, 'model', 'inference.mjs'), images[0]], { cwd: dir });
  const fromScript = JSON.parse(stdout.trim().split('\n').at(-1));
  assert.equal(fromScript.label, fromRun[0].label);
  assert.ok(Math.abs(fromScript.probability - fromRun[0].probability) < 1e-4);

  // predict on the export folder, too.
  const pe = await runCli(['predict', path.join(dir, 'model'), images[0]], { env });
  assert.equal(pe.code, 0, pe.stderr);
  assert.ok(Math.abs(JSON.parse(pe.stdout).probability - fromRun[0].probability) < 1e-4);

  // An existing export folder is not replaced without --force.
  const again = await runCli(['export', path.join(dir, 'run'), '--out', path.join(dir, 'model')], { env });
  assert.equal(again.code, 1);
  assert.match(again.stderr.trim().split('\n').at(-1), /^headstart: .*already exists/);
});

test('exportRun cancelled while the export folder is being filled leaves neither it nor its temp folder', async (t) => {
  const dir = await repoTempDir(t);
  const cacheDir = path.join(dir, 'cache');
  const backbone = await tinyBackbone(path.join(dir, 'tiny'));
  const data = path.join(dir, 'data');
  await colourDataset(data, { perClass: 10, seed: 3 });
  await core.trainRun({ data, backbone, out: path.join(dir, 'run'), cacheDir, workers: 1, epochs: 2 });
  const controller = new AbortController();
  let tmpSeen = [];
  await assert.rejects(
    core.exportRun(path.join(dir, 'run'), { out: path.join(dir, 'model'), cacheDir }, {
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type !== 'progress' || controller.signal.aborted) return;
        tmpSeen = readdirSync(dir).filter((n) => n.startsWith('.model.tmp-'));
        controller.abort();
      },
    }),
    { name: 'CancelledError' },
  );
  assert.equal(tmpSeen.length, 1, 'the export was being written into a temp folder');
  assert.deepEqual(readdirSync(dir).filter((n) => n.includes('model')), [], 'nothing left after cancelling');
});
