// The kill test (issue 9): `train` and `export` are SIGKILLed at seeded
// random moments spread over a whole run (its duration measured first).
// After every kill, --out is either absent or a complete folder with its
// marker; the next command removes the dead process's temp folders; and a
// final rerun on the same (much-killed) cache succeeds with features equal
// to those of an uninterrupted run.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { cliPath, core, tempDir } from './helpers.mjs';
import { colourDataset, tinyBackbone } from './fixtures.mjs';

/** Kills that must land in each command (an attempt that finishes first is counted apart and retried). */
const TRAIN_KILLS = 12;
const EXPORT_KILLS = 10;

/**
 * Runs the CLI; with `killAfterMs`, SIGKILLs it then. Resolves {code, signal,
 * ms, phase} (phase: the last "» …" line it printed).
 */
function runChild(args, cwd, killAfterMs) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [cliPath, ...args], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const phases = stderr.match(/^» .*$/gm) ?? [];
      resolve({ code, signal, ms: Date.now() - t0, phase: (phases.at(-1) ?? '» (start-up)').slice(2).split(/[ :]/).slice(0, 2).join(' '), stderr });
    });
  });
}

/** --out after a kill: absent, or complete (marker of `kind` and its main files). Returns 'absent' or 'complete'. */
async function assertWholeOrAbsent(out, kind) {
  const st = await stat(out).catch(() => undefined);
  if (!st) return 'absent';
  const names = await readdir(out);
  assert.deepEqual(JSON.parse(await readFile(path.join(out, '.headstart.json'), 'utf8')), { app: 'headstart', kind, version: 1, host: os.hostname() }, `${out} carries its marker`);
  const must = kind === 'run' ? ['run.json', 'head'] : ['model.json', 'weights.bin', 'report.json', 'labels.json'];
  for (const f of must) assert.ok(names.includes(f), `${out} is complete (${f})`);
  JSON.parse(await readFile(path.join(out, kind === 'run' ? 'run.json' : 'report.json'), 'utf8'));
  return 'complete';
}

/** Feature vectors of a cache, by file name (content hash), for every embeddings key. */
async function cachedFeatures(cache) {
  const out = new Map();
  const root = path.join(cache, 'embeddings');
  for (const e of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!e.isFile() || !e.name.endsWith('.f32')) continue;
    const p = path.join(e.parentPath ?? e.path, e.name);
    out.set(path.relative(root, p), await readFile(p));
  }
  return out;
}

/** Moment i of n: seeded, uniform within the i-th of n equal slices of [0, ms) (spread over the whole run). */
const moment = (rng, i, n, ms) => Math.round(((i + rng.next()) / n) * ms);

const tempsIn = async (dir) => (await readdir(dir)).filter((n) => n.includes('.tmp-'));

test('SIGKILL at 20+ seeded moments of train and export: never a half-written --out; the rerun on the same cache matches an uninterrupted run', async (t) => {
  const dir = await tempDir(t);
  const backbone = await tinyBackbone(path.join(dir, 'tiny'));
  const data = path.join(dir, 'data');
  await colourDataset(data, { classes: { red: 'red', blue: 'blue', green: 'green' }, perClass: 20, seed: 7 });
  const trainArgs = (out, cache) => ['train', data, '--backbone', backbone, '--out', out, '--epochs', '15', '--patience', '0', '--batch', '8', '--hidden', '8', '--seed', '3', '--cache', cache];
  const rng = new core.Rng(20261109);

  // Uninterrupted: the reference run and its duration (fresh cache, so every stage is inside it).
  const refCache = path.join(dir, 'ref-cache');
  const cold = await runChild(trainArgs(path.join(dir, 'ref-run'), refCache), dir);
  assert.equal(cold.code, 0, cold.stderr);
  // The duration the kills spread over: a run on a filled cache, as most killed attempts are.
  const ref = await runChild(trainArgs(path.join(dir, 'ref-run-warm'), refCache), dir);
  assert.equal(ref.code, 0, ref.stderr);
  const exportArgs = (out, c = refCache) => ['export', path.join(dir, 'ref-run'), '--out', out, '--quantize', 'auto', '--cache', c];
  const refExport = await runChild(exportArgs(path.join(dir, 'ref-export')), dir);
  assert.equal(refExport.code, 0, refExport.stderr);

  // Killed attempts: all share one cache. Moment k of n is seeded within the k-th of n equal
  // slices of the run's duration; an attempt that finishes first updates the duration (this
  // machine is shared and noisy) and the slice is tried again.
  const cache = path.join(dir, 'cache');
  const runs = path.join(dir, 'runs');
  const exports = path.join(dir, 'exports');
  const outcomes = [];
  // Temp folders seen right after a kill (each next start removes those of dead processes).
  let tempsLeft = 0;
  const killLoop = async (name, n, ms, parent, kind, args) => {
    let landed = 0;
    for (let attempt = 0; landed < n && attempt < 3 * n; attempt++) {
      const at = moment(rng, landed, n, ms);
      const out = path.join(parent, `${name}${attempt}`);
      const r = await runChild(args(out), dir, at);
      const state = await assertWholeOrAbsent(out, kind);
      const temps = (await tempsIn(parent).catch(() => [])).length;
      tempsLeft += temps;
      if (r.signal === 'SIGKILL') landed++;
      else {
        assert.equal(r.code, 0, r.stderr);
        ms = r.ms;
      }
      outcomes.push(`${name}@${at}ms:${r.signal === 'SIGKILL' ? `killed in '${r.phase}'` : 'finished'}→${state}${temps ? ' +temp' : ''}`);
    }
  };
  await killLoop('train', TRAIN_KILLS, ref.ms, runs, 'run', (out) => trainArgs(out, cache));
  await killLoop('export', EXPORT_KILLS, refExport.ms, exports, 'export', (out) => exportArgs(out, cache));
  const kills = outcomes.filter((o) => o.includes('killed')).length;

  // Reruns on the same cache, beside the killed ones: they succeed and sweep the dead temp folders.
  const final = await runChild(trainArgs(path.join(runs, 'final'), cache), dir);
  assert.equal(final.code, 0, final.stderr);
  const finalExport = await runChild(['export', path.join(runs, 'final'), '--out', path.join(exports, 'final'), '--cache', cache], dir);
  assert.equal(finalExport.code, 0, finalExport.stderr);
  assert.deepEqual(await tempsIn(runs), [], 'no temp folder of a killed train is left');
  assert.deepEqual(await tempsIn(exports), [], 'no temp folder of a killed export is left');

  // Same features as the uninterrupted run, file for file; same test results.
  const want = await cachedFeatures(refCache);
  const got = await cachedFeatures(cache);
  assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), 'the same cached images');
  let maxDiff = 0;
  for (const [k, buf] of want) {
    const a = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
    const b = new Float32Array(got.get(k).buffer, got.get(k).byteOffset, got.get(k).length / 4);
    assert.equal(a.length, b.length, k);
    for (let j = 0; j < a.length; j++) maxDiff = Math.max(maxDiff, Math.abs(a[j] - b[j]));
  }
  assert.ok(maxDiff <= 1e-6, `features equal to an uninterrupted run's (max |diff| ${maxDiff})`);
  const refRec = JSON.parse(await readFile(path.join(dir, 'ref-run', 'run.json'), 'utf8'));
  const finRec = JSON.parse(await readFile(path.join(runs, 'final', 'run.json'), 'utf8'));
  assert.deepEqual(finRec.test.confusion, refRec.test.confusion, 'same test confusion');
  assert.equal(finRec.test.accuracy, refRec.test.accuracy);

  assert.ok(kills >= 20, `at least 20 kills landed (got ${kills}): ${outcomes.join(', ')}`);
  t.diagnostic(`uninterrupted: train ${cold.ms} ms on an empty cache, ${ref.ms} ms on a filled one, export ${refExport.ms} ms (engine per run.json: ${refRec.engine})`);
  t.diagnostic(`${kills} SIGKILLs of ${outcomes.length} attempts; temp folders seen after a kill: ${tempsLeft}, none left after the reruns`);
  t.diagnostic(outcomes.join('; '));
  t.diagnostic(`rerun on the killed cache: ${got.size} cached vectors, max |feature diff| vs uninterrupted ${maxDiff}; test accuracy ${finRec.test.accuracy} (uninterrupted ${refRec.test.accuracy})`);
});
