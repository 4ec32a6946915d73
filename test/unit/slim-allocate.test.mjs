// Non-uniform slimming (slimAllocate.ts): per-block kept counts chosen by
// measured sensitivity for a share of the slimmable cost. Synthetic curves
// check the greedy allocation (least sensitive first, multiples of 8, at
// least 8, monotone in the target, never worse than uniform); real moments
// of a MobileNetV2-shaped model check the costs and the held-out curves;
// slimSearch keeps the uniform allocation on request.
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { createRequire } from 'node:module';
import { core, fileRepoTempDir } from './helpers.mjs';
import { colourDataset } from './fixtures.mjs';
import { mobileNetV2Like } from './slimFixture.mjs';

const require = createRequire(import.meta.url);
const { onnx } = require('onnx-proto');
const dir = await fileRepoTempDir('slim-alloc-');

/** A curve with the given relative errors at 25 / 50 / 75% removed. */
const curve = (channels, costPerChannel, errors) => ({
  channels,
  costPerChannel,
  params: 1,
  macs: 1,
  points: [{ kept: channels, error: 0 }, ...errors.map((e, i) => ({ kept: core.keptCount(channels, [0.25, 0.5, 0.75][i]), error: e })), { kept: 0, error: 1 }],
});

test('allocation removes channels where the error grows least, in multiples of 8, never below 8', () => {
  // Equal cost per channel (64 channels each: 1/128 per channel); block 0 barely cares, block 1 a lot.
  const curves = [curve(64, 1 / 128, [0.001, 0.002, 0.004]), curve(64, 1 / 128, [0.1, 0.3, 0.6])];
  const kept = core.allocate(curves, 0.25);
  assert.deepEqual(kept, [32, 64], 'a quarter of the cost comes out of the insensitive block alone');
  let prev = [64, 64];
  for (const f of [0.1, 0.25, 0.4, 0.55, 0.7, 0.9, 1]) {
    const k = core.allocate(curves, f);
    const fig = core.planFigures(curves, k);
    assert.ok(k.every((x) => x % 8 === 0 && x >= 8), `multiples of 8, at least 8: ${k}`);
    assert.ok(k.every((x, i) => x <= prev[i]), `a larger target never keeps more: ${prev} → ${k}`);
    assert.ok(fig.costRemoved >= Math.min(f, 112 / 128) - 1e-9, `removes at least ${f} of the cost (or all it can): ${fig.costRemoved}`);
    const uniform = curves.map((c) => core.keptCount(c.channels, f));
    const u = core.planFigures(curves, uniform);
    if (u.costRemoved >= fig.costRemoved - 1e-9) assert.ok(fig.sensitivity <= u.sensitivity + 1e-12, `at ${f}: allocated ${fig.sensitivity} vs uniform ${u.sensitivity}`);
    prev = k;
  }
  assert.deepEqual(core.allocate(curves, 1), [8, 8], 'everything it can: 8 channels left per block');
});

test('allocation weighs cost: a cheap channel is not worth an expensive one at the same error', () => {
  // Same errors; block 1's channels carry 3x the cost of block 0's (e.g. more parameters per channel).
  const curves = [curve(64, 1 / 256, [0.05, 0.1, 0.2]), curve(64, 3 / 256, [0.05, 0.1, 0.2])];
  const kept = core.allocate(curves, 0.3);
  assert.ok(kept[1] < kept[0], `the costly block gives more channels: ${kept}`);
});

test('costs and held-out sensitivity curves of a MobileNetV2-shaped model', async () => {
  const bb = await mobileNetV2Like(path.join(dir, 'bb'), { size: 32 });
  const conv = await core.convertTfjsModel(path.dirname(bb), { pool: true, outputName: 'features' });
  const graph = onnx.ModelProto.decode(conv.bytes).graph;
  const blocks = core.findSlimBlocks(graph);
  // Block 2: 16 → 96 hidden (1x1 expand), 3x3 depthwise stride 1, 96 → 16 project; hidden layer at 8x8 (32 px, two stride-2 layers before).
  const costs = core.channelCosts(graph, blocks, blocks.map(() => 64));
  assert.deepEqual(costs[2], { params: 16 + 9 + 16, macs: (16 + 9 + 16) * 64 });
  // Block 1 (8 → 48, depthwise stride 2): its expand conv runs on 4x the hidden positions.
  assert.deepEqual(costs[1], { params: 8 + 9 + 16, macs: 8 * 64 * 4 + (9 + 16) * 64 });
  await colourDataset(path.join(dir, 'img'), { classes: { a: 'red', b: 'blue', c: 'green', d: 'yellow' }, perClass: 8 });
  const images = [];
  for (const c of (await readdir(path.join(dir, 'img'))).sort()) for (const f of (await readdir(path.join(dir, 'img', c))).sort()) images.push(await core.readAndDecode(path.join(dir, 'img', c, f), 32));
  const st = await core.hiddenStatistics(conv.bytes, images, 32);
  assert.deepEqual(st.halfImages, [16, 16], 'alternate batches of 8: two halves of 16 images');
  assert.equal(st.halves[0][0].positions + st.halves[1][0].positions, st.moments[0].positions, 'the halves add up to all images');
  const curves = core.sensitivityCurves(conv.bytes, st.scores, st.halves[0], st.halves[1], 16);
  const total = curves.reduce((a, c) => a + c.channels * c.costPerChannel, 0);
  assert.ok(Math.abs(total - 1) < 1e-9, `the costs are shares of the whole (${total})`);
  for (const c of curves) {
    assert.equal(c.points[0].error, 0);
    assert.equal(c.points.at(-1).error, 1);
    assert.ok(c.points.length >= 3 && c.points.slice(1, -1).every((p) => p.error > 0 && p.error < 1.5), JSON.stringify(c.points));
  }
  // The error is measured on the test half: other moments give other figures.
  const onFit = core.sensitivityCurves(conv.bytes, st.scores, st.halves[0], st.halves[0], 16);
  assert.notDeepEqual(onFit.map((c) => c.points), curves.map((c) => c.points));
});

test('slimSearch: sensitivity allocation by default, uniform on request; both report kept channels per block', async () => {
  const bb = await mobileNetV2Like(path.join(dir, 'bb2'), { size: 32 });
  await colourDataset(path.join(dir, 'data'), { classes: { red: 'red', blue: 'blue', green: 'green', yellow: 'yellow' }, perClass: 10 });
  const runDir = path.join(dir, 'run');
  const cacheDir = path.join(dir, 'cache');
  await core.trainRun({ data: path.join(dir, 'data'), out: runDir, backbone: bb, cacheDir, workers: 1, epochs: 10, batchSize: 8, hiddenUnits: 16, learningRate: 0.01, val: 0.25, test: 0.25, seed: 3 });
  const loaded = await core.loadRun(runDir);
  try {
    const search = async (allocation) => {
      const r = await core.slimSearch(loaded, { slim: 0.5, allocation, maxDrop: 100, work: path.join(dir, `work-${allocation}`), cacheDir, workers: 1 });
      r.head?.dispose();
      return r;
    };
    const uni = await search('uniform');
    const sens = await search(undefined);
    assert.equal(uni.report.allocation, 'uniform');
    assert.equal(sens.report.allocation, 'sensitivity');
    const graph = onnx.ModelProto.decode(await (await import('node:fs/promises')).readFile(uni.baseFile)).graph;
    const channels = core.findSlimBlocks(graph).map((b) => b.channels);
    assert.deepEqual(uni.report.steps[1].keptPerBlock, channels.map((c) => core.keptCount(c, 0.5)), 'uniform: the same fraction of every block');
    assert.deepEqual(uni.keep.map((k) => k.length), uni.report.steps[1].keptPerBlock);
    const s = sens.report.steps[1];
    assert.deepEqual(sens.keep.map((k) => k.length), s.keptPerBlock);
    assert.ok(s.sensitivity.costRemoved >= 0.5 - 1e-9, `removes half the cost (${s.sensitivity.costRemoved})`);
    assert.ok(s.sensitivity.allocated <= s.sensitivity.uniform + 1e-12, `no worse than uniform on the curves: ${JSON.stringify(s.sensitivity)}`);
    assert.match(sens.report.method, /slimmable cost/);
    // The features (64-channel final conv) are cut by 1.5x the step's fraction, at most 75%: a 16-wide head input.
    assert.equal(core.featureFraction(0.5), 0.75);
    assert.ok(Math.abs(core.featureFraction(0.2) - 0.3) < 1e-12);
    assert.deepEqual([s.featuresKept, s.featuresTotal], [16, 64]);
    assert.equal(sens.features.length, 16);
    const meta = JSON.parse(await (await import('node:fs/promises')).readFile(path.join(sens.backboneDir, 'backbone.json'), 'utf8'));
    assert.equal(meta.entry.featureSize, 16, 'backbone.json records the cut feature size');
    assert.deepEqual(meta.slim.features, { total: 64, kept: 16 });
  } finally {
    loaded.head.dispose();
  }
});
