// One --max-drop for the whole export: when slimming (a lossy step of its
// own, judged against the unslimmed model) changes some predictions, the
// quantization candidates are judged against what is left of the budget, so
// the two steps together stay within it (disagreements add up at most).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { core, runCli, fileRepoTempDir } from './helpers.mjs';
import { mobileNetV2Like } from './slimFixture.mjs';

const dir = await fileRepoTempDir('budget-');
after(() => import('node:fs/promises').then((fs) => fs.rm(dir, { recursive: true, force: true })));
const cacheDir = path.join(dir, 'cache');

test('slimBudgetSpent: the chosen step\'s disagreement in points; nothing chosen spends nothing', () => {
  const steps = [{ fraction: 0, agreement: 1 }, { fraction: 0.25, agreement: 0.99 }, { fraction: 0.4, agreement: 0.97 }];
  assert.ok(Math.abs(core.slimBudgetSpent({ chosen: 0.4, steps }) - 3) < 1e-9);
  assert.ok(Math.abs(core.slimBudgetSpent({ chosen: 0.25, steps }) - 1) < 1e-9);
  assert.equal(core.slimBudgetSpent({ chosen: 0, steps }), 0);
  assert.equal(core.slimBudgetSpent(undefined), 0);
});

test('export --slim F --quantize auto: candidates are judged against --max-drop minus what slimming spent', async (t) => {
  const backbone = await mobileNetV2Like(path.join(dir, 'bb'), { size: 32, seed: 11 });
  // Shapes at 32 px through a random backbone: a task hard enough that slimming moves some predictions.
  await core.makeSampleDataset(path.join(dir, 'data'), { classes: 4, perClass: 12, size: 64, seed: 3 });
  const runDir = path.join(dir, 'run');
  await core.trainRun({ data: path.join(dir, 'data'), out: runDir, backbone, cacheDir, workers: 1, epochs: 20, batchSize: 8, hiddenUnits: 16, learningRate: 0.01, val: 0.25, test: 0.25, seed: 3 });
  const out = path.join(dir, 'export');
  // A large fixed fraction on a small model: slimming changes some predictions (an asked fraction is taken whatever it costs).
  const r = await runCli(['export', runDir, '--out', out, '--format', 'onnx', '--slim', '0.8', '--quantize', 'auto', '--max-drop', '100', '--cache', cacheDir, '--workers', '1']);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8'));
  const spent = core.slimBudgetSpent(rep.slimming);
  t.diagnostic(`slimming spent ${spent.toFixed(2)} points; candidates: ${rep.candidates.map((c) => `${c.name} ${(c.agreement * 100).toFixed(1)}% ${c.withinBudget ? 'in' : 'out'}`).join(', ')}`);
  assert.ok(spent > 0, 'the fixture makes slimming change predictions (otherwise this test proves nothing)');
  assert.ok(Math.abs(rep.choice.budgetPoints - Math.max(0, 100 - spent)) < 1e-9, `budget left ${rep.choice.budgetPoints}`);
  assert.match(rep.choice.budgetNote, /slimming used/);
  for (const c of rep.candidates) assert.equal(c.withinBudget, (1 - c.agreement) * 100 <= rep.choice.budgetPoints + 1e-9, `${c.name} judged against the remaining budget`);
  assert.match(await readFile(path.join(out, 'README.md'), 'utf8'), /Budget: slimming used/);
});

test('--slim auto with --quantize auto: slimming is judged against half of --max-drop, the candidates against what it leaves', async () => {
  const runDir = path.join(dir, 'run');
  const out = path.join(dir, 'export-auto');
  const r = await runCli(['export', runDir, '--out', out, '--format', 'onnx', '--slim', 'auto', '--quantize', 'auto', '--max-drop', '40', '--cache', cacheDir, '--workers', '1']);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8'));
  assert.equal(rep.slimming.budgetPoints, 20, 'slimming had half of the 40 points');
  for (const s of rep.slimming.steps) assert.equal(s.withinBudget, (1 - s.agreement) * 100 <= 20 + 1e-9, `step ${s.fraction} judged against 20 points`);
  const spent = core.slimBudgetSpent(rep.slimming);
  assert.ok(spent <= 20 + 1e-9);
  if (spent > 0) assert.ok(Math.abs(rep.choice.budgetPoints - (40 - spent)) < 1e-9, 'the candidates got the rest');
  else assert.equal(rep.choice.budgetPoints, undefined, 'nothing spent: the candidates had all 40 points');
});
