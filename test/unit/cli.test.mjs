// End to end through the CLI on the bundled default backbone: train, eval,
// export, predict, and the exported model loaded by its own script in a
// fresh Node process.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { core, repoTempDir, runCli } from './helpers.mjs';

test('train → eval → export → predict on a generated dataset (default backbone)', async (t) => {
  const dir = await repoTempDir(t);
  const data = path.join(dir, 'data');
  await core.makeSampleDataset(data, { perClass: 14, classes: 3, seed: 11 });

  const train = await runCli(['train', data, '--out', path.join(dir, 'run'), '--epochs', '25', '--json']);
  assert.equal(train.code, 0, train.stderr);
  const res = JSON.parse(train.stdout);
  assert.equal(res.runDir, path.join(dir, 'run'));
  assert.ok(['wasm', 'tensorflow', 'cpu'].includes(res.backend));
  assert.equal(res.dataset.total, 42);
  assert.deepEqual(res.dataset.skipped, []);
  assert.ok(res.test.accuracy >= 0.8, `test accuracy ${res.test.accuracy}`);
  assert.equal(res.test.confusion.length, 3);
  assert.ok(typeof res.baseline.accuracy === 'number' && res.baseline.verdict.length > 10);

  const record = JSON.parse(await readFile(path.join(dir, 'run', 'run.json'), 'utf8'));
  assert.equal(record.backend, res.backend);
  assert.equal(record.backbone.id, 'mobilenet-v2-140');
  assert.ok(record.history.length >= 1 && record.history[0].valLoss > 0);

  const ev = await runCli(['eval', path.join(dir, 'run'), '--json']);
  assert.equal(ev.code, 0, ev.stderr);
  const evRes = JSON.parse(ev.stdout);
  assert.equal(evRes.accuracy, res.test.accuracy, 'eval on the test split repeats train\'s figure');
  assert.ok(Array.isArray(evRes.perClass) && Array.isArray(evRes.confusion));

  const exp = await runCli(['export', path.join(dir, 'run'), '--out', path.join(dir, 'model'), '--json']);
  assert.equal(exp.code, 0, exp.stderr);
  const report = JSON.parse(exp.stdout);
  assert.equal(report.exported.accuracy, res.test.accuracy, 'the exported model, loaded from its files, scores as the engine did');
  assert.ok(report.float32.bytes > 1e6 && report.float32.gzipBytes < report.float32.bytes);
  const meta = JSON.parse(await readFile(path.join(dir, 'model', 'metadata.json'), 'utf8'));
  assert.deepEqual(meta.labels, ['circle', 'square', 'triangle']);
  assert.equal(meta.imageSize, 224);

  const img = path.join(data, 'square', 'square-002.jpg');
  const pr = await runCli(['predict', path.join(dir, 'model'), img]);
  assert.equal(pr.code, 0, pr.stderr);
  const line = JSON.parse(pr.stdout.trim());
  assert.equal(line.path, img);
  assert.ok(line.top.length === 3 && Math.abs(line.top.reduce((a, x) => a + x.probability, 0) - 1) < 1e-3);

  // The generated script, in a fresh process with the stock loaders, agrees with `predict`.
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(dir, 'model', 'inference.mjs'), img], { cwd: dir });
  const fromScript = JSON.parse(stdout.trim().split('\n').at(-1));
  assert.equal(fromScript.label, line.label);
  assert.ok(Math.abs(fromScript.probability - line.probability) < 1e-4, `${fromScript.probability} vs ${line.probability}`);
});

test('bad command lines exit 1 with one line', async () => {
  for (const args of [['train'], ['train', '/nonexistent-dir'], ['export', '/tmp'], ['frobnicate'], ['train', '.', '--epochs', 'x'], ['train', '.', '--bogus']]) {
    const r = await runCli(args);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    // Progress lines may come first; the reason is one line, the last.
    const reasons = r.stderr.trim().split('\n').filter((l) => l.startsWith('headstart: '));
    assert.equal(reasons.length, 1, r.stderr);
    assert.match(r.stderr.trim().split('\n').at(-1), /^headstart: \S/);
  }
});
