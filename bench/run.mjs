// `npm run bench`: speed and memory figures on generated data, printed and
// saved to bench/results.json. Ratios are measured in the same run; absolute
// figures depend on the machine (and on what else runs on it).
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const core = require(path.join(root, 'dist', 'core.js'));
const tf = require('@tensorflow/tfjs');
const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
const results = { date: new Date().toISOString(), machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version }, figures: {} };
const work = await mkdtemp(path.join(os.tmpdir(), 'headstart-bench-'));
const cli = path.join(root, 'bin', 'headstart.js');
const fig = (k, v) => {
  results.figures[k] = v;
  console.log(`${k.padEnd(44)} ${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toFixed(2)) : JSON.stringify(v)}`);
};

function timeCli(argv, env = {}) {
  const t0 = performance.now();
  const out = execFileSync(process.execPath, [cli, ...argv, '--json', '--quiet'], { env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  return { seconds: (performance.now() - t0) / 1000, json: JSON.parse(out.toString()) };
}

try {
  const perClass = quick ? 20 : 80;
  const data = path.join(work, 'data');
  await core.makeSampleDataset(data, { perClass, classes: 4, seed: 5 });
  const n = perClass * 4;
  console.log(`# dataset: ${n} generated images, 4 classes; backbone mobilenet-v2-140 (bundled default)`);
  const scan = await core.scanDataset(data);
  const items = scan.hashed;

  // Extraction: one in-process wasm backend vs the worker-thread pool.
  for (const workers of [1, core.defaultWorkers()]) {
    const cacheDir = path.join(work, `cache-w${workers}`);
    const opened = await core.openBackbone('mobilenet-v2-140', { cacheDir, workers });
    const res = await opened.extract(items);
    opened.dispose();
    fig(`extract.imagesPerSecond.workers${workers}`, res.imagesPerSecond);
    results.figures.backend = opened.backend.name;
  }
  const w = core.defaultWorkers();
  fig('extract.poolSpeedup', results.figures[`extract.imagesPerSecond.workers${w}`] / results.figures['extract.imagesPerSecond.workers1']);

  // Head training on cached features.
  {
    const opened = await core.openBackbone('mobilenet-v2-140', { cacheDir: path.join(work, 'cache-w1'), workers: 1 });
    const res = await opened.extract(items);
    opened.dispose();
    const labels = [...new Set(items.map((s) => s.label))].sort();
    const fsz = opened.backbone.entry.featureSize;
    const x = new Float32Array(items.length * fsz);
    items.forEach((s, i) => x.set(res.features.get(s.hash), i * fsz));
    const y = Int32Array.from(items.map((s) => labels.indexOf(s.label)));
    const t0 = performance.now();
    const head = await core.trainHead({ x, y }, { x: new Float32Array(0), y: new Int32Array(0) }, fsz, labels.length, { epochs: 20, patience: 0 });
    fig('head.trainSeconds.20epochs', (performance.now() - t0) / 1000);
    head.model.dispose();
  }

  // End to end through the CLI: cold (empty cache) and warm (cached features).
  const cacheDir = path.join(work, 'cache-e2e');
  const cold = timeCli(['train', data, '--out', path.join(work, 'run-cold'), '--cache', cacheDir]);
  fig('e2e.coldSeconds', cold.seconds);
  fig('e2e.cold.extractedImages', cold.json.timings.extracted);
  const warm = timeCli(['train', data, '--out', path.join(work, 'run-warm'), '--cache', cacheDir]);
  fig('e2e.warmSeconds', warm.seconds);
  fig('e2e.warm.extractedImages', warm.json.timings.extracted);
  fig('e2e.coldOverWarm', cold.seconds / warm.seconds);
  fig('e2e.testAccuracy', cold.json.test.accuracy);
  fig('e2e.baselineAccuracy', cold.json.baseline.accuracy);

  // Memory: many images through the whole pipeline with a small backbone (same 224 px decode),
  // peak resident memory of the training process.
  if (!quick || args.has('--memory')) {
    const count = args.has('--memory-small') ? 2000 : 10000;
    const memData = path.join(work, 'mem');
    await core.makeSampleDataset(memData, { perClass: count / 4, classes: 4, seed: 9, size: 96 });
    const tiny = tf.sequential();
    tiny.add(tf.layers.conv2d({ inputShape: [224, 224, 3], filters: 8, kernelSize: 3, strides: 4, activation: 'relu' }));
    tiny.add(tf.layers.globalAveragePooling2d({}));
    const tinyDir = path.join(work, 'tiny');
    await mkdir(tinyDir, { recursive: true });
    await tiny.save(core.dirSaver(tinyDir));
    const t0 = performance.now();
    const out = execFileSync(process.execPath, ['-e', `
      const { execFileSync } = require('node:child_process');
      const r = require(${JSON.stringify(path.join(root, 'dist', 'core.js'))});
      r.trainRun({ data: ${JSON.stringify(memData)}, backbone: ${JSON.stringify(path.join(tinyDir, 'model.json'))}, out: ${JSON.stringify(path.join(work, 'run-mem'))}, cacheDir: ${JSON.stringify(path.join(work, 'cache-mem'))}, epochs: 3 })
        .then((res) => { console.log(JSON.stringify({ maxRssMB: process.resourceUsage().maxRSS / 1024, total: res.dataset.total })); process.exit(0); });
    `], { maxBuffer: 16 << 20 });
    const mem = JSON.parse(out.toString().trim().split('\n').at(-1));
    fig(`memory.images`, mem.total);
    fig(`memory.peakRssMB`, mem.maxRssMB);
    fig(`memory.seconds`, (performance.now() - t0) / 1000);
  }

  await mkdir(path.join(root, 'bench'), { recursive: true });
  await writeFile(path.join(root, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log('saved bench/results.json');
} finally {
  await rm(work, { recursive: true, force: true });
}
process.exit(0);
