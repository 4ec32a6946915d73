// `distill` without --student: the slimmed teacher backbone is the default
// student; where slimming cannot make one (a backbone with no slimmable
// blocks, an ONNX backbone) it falls back to mobilenet-v2-100 with a one-line
// warning event, and a cancelled default distillation stays cancelled.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { core, tf, fileRepoTempDir } from './helpers.mjs';
import { colourDataset } from './fixtures.mjs';
import { mobileNetV2Like } from './slimFixture.mjs';

const dir = await fileRepoTempDir('slim-distill-');
const cacheDir = path.join(dir, 'cache');
await colourDataset(path.join(dir, 'data'), { classes: { red: 'red', blue: 'blue', green: 'green', yellow: 'yellow' }, perClass: 8 });
const train = (backbone, out) => core.trainRun({ data: path.join(dir, 'data'), out, backbone, cacheDir, workers: 1, epochs: 10, batchSize: 8, hiddenUnits: 16, learningRate: 0.01, val: 0.25, test: 0.25, seed: 3 });

/** distillRun with the warnings it emitted. */
async function distill(runDir, out, extra = {}) {
  const warnings = [];
  const rep = await core.distillRun({ runDir, out, cacheDir, workers: 1, maxDrop: 100, ...extra }, { onEvent: (e) => e.type === 'warning' && warnings.push(e.message) });
  return { rep, warnings, record: JSON.parse(await readFile(path.join(out, 'run.json'), 'utf8')) };
}

const slimTeacher = path.join(dir, 'run-mnv2like');
await train(await mobileNetV2Like(path.join(dir, 'bb'), { size: 32 }), slimTeacher);

test('the default student is the teacher\'s backbone slimmed for the task', async () => {
  const { rep, warnings, record } = await distill(slimTeacher, path.join(dir, 'student-default'));
  assert.deepEqual(warnings, []);
  assert.ok(rep.slimming && rep.slimming.chosen > 0, 'a slimming step was chosen');
  assert.equal(record.backbone.format, 'onnx');
  assert.equal(record.distilledFrom.student, 'slim');
  assert.ok(rep.ratios.size > 1 && rep.ratios.speedCpuBatch32 > 0, JSON.stringify(rep.ratios));
});

test('an ONNX-backbone teacher (a slim student) falls back to mobilenet-v2-100 with one warning line', async () => {
  const { rep, warnings, record } = await distill(path.join(dir, 'student-default'), path.join(dir, 'student-of-student'));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /^no slimmed student \(the teacher runs an ONNX backbone[^\n]*\); distilling into mobilenet-v2-100 instead$/);
  assert.equal(record.backbone.id, 'mobilenet-v2-100');
  assert.equal(rep.slimming, undefined);
});

test('a backbone without slimmable blocks falls back to mobilenet-v2-100 with one warning line; nothing half-written', async () => {
  const m = tf.sequential({ layers: [tf.layers.conv2d({ inputShape: [32, 32, 3], filters: 8, kernelSize: 3, strides: 2, activation: 'relu' }), tf.layers.globalAveragePooling2d({})] });
  await m.save(core.dirSaver(path.join(dir, 'plain')));
  m.dispose();
  const teacher = path.join(dir, 'run-plain');
  await train(path.join(dir, 'plain', 'model.json'), teacher);
  const { warnings, record } = await distill(teacher, path.join(dir, 'student-plain'));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /^no slimmed student \(the backbone has no slimmable blocks[^\n]*\); distilling into mobilenet-v2-100 instead$/);
  assert.equal(record.backbone.id, 'mobilenet-v2-100');
});

test('cancelling the default student\'s slimming stays cancelled (no fallback)', async () => {
  const ac = new AbortController();
  const out = path.join(dir, 'student-cancelled');
  await assert.rejects(
    core.distillRun({ runDir: slimTeacher, out, cacheDir, workers: 1, maxDrop: 100 }, { signal: ac.signal, onEvent: (e) => e.type === 'phase' && /slimming: removing/.test(e.message) && ac.abort() }),
    (err) => core.isCancelled(err),
  );
  await assert.rejects(readFile(path.join(out, 'run.json')), { code: 'ENOENT' });
});
