// The command-line contract: --json results parse with their stable keys,
// bad input exits 1 with a one-line reason, and Ctrl-C (SIGINT) during
// extraction or training exits 130 with no half-written output folder.
import assert from 'node:assert/strict';

import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { core, runCli, tempDir, interruptWhen } from './helpers.mjs';
import { colourDataset, tinyBackbone } from './fixtures.mjs';

/** The last stderr line is the reason; exactly one line starts with "headstart: ". */
function assertOneLineReason(r, pattern, what) {
  assert.equal(r.code, 1, `${what}: exit ${r.code}\n${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.filter((l) => l.startsWith('headstart: ')).length, 1, `${what}: ${r.stderr}`);
  assert.match(lines.at(-1), /^headstart: \S/, what);
  assert.match(lines.at(-1), pattern, what);
}

test('--json outputs parse and carry the documented keys', async (t) => {
  const dir = await tempDir(t);
  const env = { HEADSTART_CACHE_DIR: path.join(dir, 'cache') };
  const backbone = await tinyBackbone(path.join(dir, 'tiny'));
  const data = path.join(dir, 'data');
  const files = await colourDataset(data, { classes: { red: 'red', blue: 'blue' }, perClass: 6 });
  await writeFile(path.join(data, 'red', 'broken.png'), 'not a png');

  const bb = await runCli(['backbones', '--json'], { env });
  assert.equal(bb.code, 0, bb.stderr);
  const list = JSON.parse(bb.stdout);
  assert.equal(list.length, core.CATALOGUE.length);
  for (const e of list) for (const k of ['id', 'title', 'format', 'featureSize', 'bundled', 'cached']) assert.ok(k in e, `${e.id}: ${k}`);
  assert.ok(list.find((e) => e.id === 'mobilenet-v2-140').cached);

  const out = path.join(dir, 'run');
  const tr = await runCli(['train', data, '--backbone', backbone, '--out', out, '--epochs', '3', '--workers', '1', '--seed', '5', '--json'], { env });
  assert.equal(tr.code, 0, tr.stderr);
  const res = JSON.parse(tr.stdout);
  assert.equal(res.runDir, out);
  assert.ok(['tensorflow', 'wasm', 'cpu'].includes(res.backend));
  assert.equal(res.dataset.total, 12);
  assert.deepEqual(res.dataset.skipped.map((s) => [path.basename(s.path), /not a readable image/.test(s.reason)]), [['broken.png', true]]);
  for (const k of ['accuracy', 'perClass', 'confusion', 'macroF1']) assert.ok(k in res.test, k);
  assert.ok(typeof res.baseline.accuracy === 'number' && typeof res.baseline.verdict === 'string');
  assert.match(tr.stderr, /extract/, 'progress goes to stderr');

  const ev = await runCli(['eval', out, '--json'], { env });
  assert.equal(ev.code, 0, ev.stderr);
  const evRes = JSON.parse(ev.stdout);
  assert.equal(evRes.accuracy, res.test.accuracy);
  assert.deepEqual(evRes.confusion, res.test.confusion);
  assert.deepEqual(evRes.perClass, res.test.perClass);

  // eval on other DATA: labels the model does not know are skipped with a reason.
  const other = path.join(dir, 'other');
  await colourDataset(other, { classes: { red: 'red', purple: { r: 128, g: 0, b: 128 } }, perClass: 3, seed: 9 });
  const ev2 = await runCli(['eval', out, other, '--json'], { env });
  assert.equal(ev2.code, 0, ev2.stderr);
  const ev2Res = JSON.parse(ev2.stdout);
  assert.equal(ev2Res.count, 3);
  assert.equal(ev2Res.skipped.filter((s) => /label 'purple' is not one of the model's classes/.test(s.reason)).length, 3);

  // predict: one JSON line per file; an unreadable file gives an error line and exit 1.
  const pr = await runCli(['predict', out, files.red[0], path.join(data, 'red', 'broken.png'), files.blue[0]], { env });
  assert.equal(pr.code, 1);
  const lines = pr.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 3);
  assert.deepEqual(Object.keys(lines[0]), ['path', 'label', 'probability', 'top']);
  assert.match(lines[1].error, /not a readable image/);
  assert.ok(['red', 'blue'].includes(lines[2].label));
});

test('bad input exits 1 with a one-line reason naming the problem', async (t) => {
  const dir = await tempDir(t);
  const env = { HEADSTART_CACHE_DIR: path.join(dir, 'cache') };
  const backbone = await tinyBackbone(path.join(dir, 'tiny'));
  const empty = path.join(dir, 'empty');
  await mkdir(empty);
  const data = path.join(dir, 'data');
  await colourDataset(data, { perClass: 4 });
  const one = path.join(dir, 'one');
  await colourDataset(one, { classes: { solo: 'red' }, perClass: 4 });
  const out = path.join(dir, 'run');
  const cases = [
    [['train', empty, '--backbone', backbone, '--out', out], /no images found/],
    [['train', one, '--backbone', backbone, '--out', out], /only one class found \('solo'\)/],
    [['train', data, '--backbone', 'nope', '--out', out], /unknown backbone 'nope'/],
    [['train', data, '--backbone', backbone, '--val', '0.9', '--out', out], /--val must be a number from 0 to 0\.5 \(got 0\.9\)/],
    [['train', data, '--backbone', backbone, '--epochs', '0', '--out', out], /--epochs/],
    [['train', data, '--backbone', backbone, '--workers', '0', '--out', out], /--workers/],
    [['train', data, '--backend', 'gpu', '--out', out], /--backend must be one of/],
    [['train', data, '--engine', 'bogus', '--out', out], /--engine must be auto, onnx or tfjs/],
    [['train', path.join(dir, 'nothing-here')], /not found/],
    [['eval', path.join(dir, 'nothing-here')], /cannot read run record/],
    [['predict', data], /predict needs MODEL_DIR and at least one FILE/],
    [['predict', data, path.join(data, 'red', 'red-0.png')], /neither a RUN_DIR .* nor an export folder/],
    [['export', data, '--out', path.join(dir, 'x'), '--quantize', 'int3'], /--quantize must be one of/],
  ];
  for (const [args, pattern] of cases) assertOneLineReason(await runCli(args, { env }), pattern, args.join(' '));
  assert.deepEqual((await readdir(dir)).filter((n) => n !== 'cache').sort(), ['data', 'empty', 'one', 'tiny'], 'no run or export folder (or temp folder) was created');

  // An existing --out is refused without --force.
  const ok = await runCli(['train', data, '--backbone', backbone, '--out', out, '--epochs', '2', '--workers', '1'], { env });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /Run saved to/);
  assertOneLineReason(await runCli(['train', data, '--backbone', backbone, '--out', out, '--workers', '1'], { env }), /already exists.*--force/, 'existing --out');
});

async function assertNothingLeft(out) {
  const parent = path.dirname(out);
  const left = (await readdir(parent)).filter((n) => n === path.basename(out) || n.startsWith(`.${path.basename(out)}.tmp-`));
  assert.deepEqual(left, [], `left behind in ${parent}`);
}

async function tmpFilesUnder(dir) {
  const found = [];
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])) if (e.isFile() && e.name.endsWith('.tmp')) found.push(e.name);
  return found;
}

test('SIGINT during extraction (bundled backbone) exits 130 and leaves no run folder', async (t) => {
  const dir = await tempDir(t);
  const cache = path.join(dir, 'cache');
  const data = path.join(dir, 'data');
  await core.makeSampleDataset(data, { perClass: 20, classes: 2, size: 64, seed: 4 });
  const out = path.join(dir, 'run');
  const r = await interruptWhen(['train', data, '--out', out, '--epochs', '5'], /extracting features/, { HEADSTART_CACHE_DIR: cache });
  assert.ok(r.sent, r.stderr);
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /cancelled; nothing was written/);
  assert.doesNotMatch(r.stderr, /training a head/, 'it was still extracting when cancelled');
  await assertNothingLeft(out);
  assert.deepEqual(await tmpFilesUnder(cache), [], 'no half-written cache file');
});

test('SIGINT during training exits 130 and leaves no run folder', async (t) => {
  const dir = await tempDir(t);
  const backbone = await tinyBackbone(path.join(dir, 'tiny'));
  const data = path.join(dir, 'data');
  await colourDataset(data, { classes: { red: 'red', blue: 'blue', green: 'green' }, perClass: 20 });
  const out = path.join(dir, 'run');
  const r = await interruptWhen(
    ['train', data, '--backbone', backbone, '--out', out, '--epochs', '1000', '--patience', '0', '--batch', '4', '--workers', '1'],
    /epoch 1\/1000/,
    { HEADSTART_CACHE_DIR: path.join(dir, 'cache') },
  );
  assert.ok(r.sent, r.stderr);
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /cancelled; nothing was written/);
  assert.doesNotMatch(r.stderr, /epoch 1000\/1000|evaluating/, 'it was still training when cancelled');
  await assertNothingLeft(out);
});
