// `npm run bench`: speed and memory figures on generated data, printed and
// saved to bench/results.json. Ratios are measured in the same run; absolute
// figures depend on the machine (and on what else runs on it).
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { headBench } from './headSelect.mjs';
import { extractBench } from './extract.mjs';
import { textBench } from './text.mjs';

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

/**
 * Task-specific slimming (issue 12) on the default backbone: export --slim auto
 * --quantize int8 (per step bytes, gzip bytes, backbone ms/image timed
 * alternating with the unslimmed one in ONNX Runtime on 2 threads, validation
 * accuracy), and distill --student slim (teacher vs student size and speed,
 * both as float32 ONNX in the same process). `--slim-only` runs just this.
 */
async function slimSection(data) {
  const cache = path.join(work, 'cache-slim');
  const runDir = path.join(work, 'run-slim');
  timeCli(['train', data, '--out', runDir, '--cache', cache]);
  const ex = timeCli(['export', runDir, '--out', path.join(work, 'export-slim'), '--format', 'onnx', '--slim', 'auto', '--quantize', 'int8', '--cache', cache]);
  const s = ex.json.slimming;
  for (const st of s.steps) {
    const k = `slim.step${Math.round(st.fraction * 100)}`;
    fig(`${k}.bytes`, st.bytes);
    fig(`${k}.gzipBytes`, st.gzipBytes);
    fig(`${k}.msPerImage2t`, st.msPerImage);
    fig(`${k}.speedup`, st.speedup);
    fig(`${k}.valAccuracy`, st.valAccuracy);
    fig(`${k}.oofAccuracy`, st.oofAccuracy);
    fig(`${k}.agreement`, st.agreement);
    fig(`${k}.withinBudget`, st.withinBudget);
    fig(`${k}.reconstructSeconds`, st.reconstructSeconds ?? 0);
    fig(`${k}.cpuSpeedupBatch32`, st.cpuSpeedup ?? 1);
    if (st.keptPerBlock) fig(`${k}.keptPerBlock`, st.keptPerBlock);
    if (st.featuresKept) fig(`${k}.features`, `${st.featuresKept}/${st.featuresTotal}`);
    // The allocation's proxy: total held-out relative block error of this plan and of the uniform plan of the same fraction.
    if (st.sensitivity) fig(`${k}.sensitivity`, st.sensitivity);
  }
  fig('slim.allocation', { allocation: s.allocation, sensitivitySeconds: s.sensitivitySeconds });
  // Judged on the validation images plus the training images out of fold (never test images).
  fig('slim.judged', { validationImages: s.validationImages, oofTrainImages: s.oofTrainImages, folds: s.folds, budgetPoints: s.budgetPoints });
  fig('slim.chosenFraction', s.chosen);
  fig('slim.export.seconds', ex.seconds);
  fig('slim.export.chosen', ex.json.chosen);
  fig('slim.export.gzipOverUnslimmedFloat32Gzip', ex.json.exported.gzipBytes / s.steps[0].gzipBytes);
  fig('slim.export.testAccuracy', ex.json.exported.accuracy);
  fig('slim.unslimmed.testAccuracy', JSON.parse(await (await import('node:fs/promises')).readFile(path.join(runDir, 'run.json'), 'utf8')).test.accuracy);
  // The auto exports (issue 12 target: gzipped bytes <= 10% of float32's, within the budget).
  for (const [name, extra] of [['onnxAuto', ['--format', 'onnx', '--quantize', 'auto', '--slim', 'auto']], ['tfjsAuto', ['--quantize', 'auto']]]) {
    const r = timeCli(['export', runDir, '--out', path.join(work, `export-${name}`), ...extra, '--cache', cache]).json;
    fig(`slim.${name}.chosen`, r.chosen);
    // The unslimmed float32 model (report.float32 is the slimmed one when slimming chose a step).
    fig(`slim.${name}.gzipOverFloat32Gzip`, r.exported.gzipBytes / (r.slimming?.steps?.[0] ?? r.float32).gzipBytes);
    fig(`slim.${name}.testAccuracy`, { exported: r.exported.accuracy, float32: r.float32.accuracy, testImages: r.testImages });
  }
  await (await import('./prune.mjs')).pruneBench({ work, runDir, cache, fig, timeCli });
  let d;
  try {
    d = timeCli(['distill', runDir, '--student', 'slim', '--out', path.join(work, 'student-slim'), '--cache', cache]);
  } catch (err) {
    // No slimming step within the budget is a result, not a crash of the bench: say so in one line.
    return console.log(`# distill --student slim: no student (${String(err.stderr ?? err.message).trim().split('\n').at(-1)})`);
  }
  fig('slim.distill.seconds', d.seconds);
  fig('slim.distill.chosenFraction', d.json.slimming.chosen);
  for (const who of ['teacher', 'student']) for (const key of ['bytes', 'accuracy', 'msPerImage']) fig(`slim.distill.${who}.${key}`, d.json[who][key]);
  fig('slim.distill.sizeRatio', d.json.ratios.size);
  fig('slim.distill.speedRatio', d.json.ratios.speed);
  fig('slim.distill.speedRatioCpuBatch32', d.json.ratios.speedCpuBatch32);
  fig('slim.distill.judged', { validationImages: d.json.slimming.validationImages, oofTrainImages: d.json.slimming.oofTrainImages, budgetPoints: d.json.slimming.budgetPoints });
  for (const st of d.json.slimming.steps) fig(`slim.distill.step${Math.round(st.fraction * 100)}`, { valAccuracy: st.valAccuracy, oofAccuracy: st.oofAccuracy, agreement: st.agreement, speedup: st.speedup, cpuSpeedup: st.cpuSpeedup, withinBudget: st.withinBudget, keptPerBlock: st.keptPerBlock, featuresKept: st.featuresKept, sensitivity: st.sensitivity });
  // Test accuracy of teacher and student with their 95% intervals (same test split).
  const readTest = async (dir) => JSON.parse(await (await import('node:fs/promises')).readFile(path.join(dir, 'run.json'), 'utf8')).test;
  for (const [who, dir] of [['teacher', runDir], ['student', d.json.runDir]]) {
    const t = await readTest(dir);
    fig(`slim.distill.${who}.test`, { accuracy: t.accuracy, low: t.interval?.low, high: t.interval?.high, images: t.count });
  }
  await shippedStudent(data, runDir, d.json.runDir, cache);
}

/**
 * The student as a user ships it: `export --format onnx --quantize int8` of
 * the distilled run, against the teacher's float32 ONNX export. Both whole
 * exported models (backbone + head, 0..255 NHWC in) are timed alternating in
 * one process (core.compareOnnxSpeed, 2 threads) on the dataset's images.
 */
async function shippedStudent(data, teacherRun, studentRun, cache) {
  const { readdir } = await import('node:fs/promises');
  const teacher = timeCli(['export', teacherRun, '--format', 'onnx', '--out', path.join(work, 'ship-teacher-f32'), '--cache', cache]).json;
  const student = timeCli(['export', studentRun, '--format', 'onnx', '--quantize', 'int8', '--out', path.join(work, 'ship-student-int8'), '--cache', cache]).json;
  const files = [];
  for (const c of (await readdir(data)).sort()) for (const f of (await readdir(path.join(data, c))).sort().slice(0, 8)) files.push(path.join(data, c, f));
  const images = [];
  for (const f of files) images.push(await core.readAndDecode(f, 224));
  const s = await core.compareOnnxSpeed(path.join(teacher.outDir, 'model.onnx'), path.join(student.outDir, 'model.onnx'), images, 224);
  const [t, x] = [teacher.exported, student.exported];
  console.log('# shipped: the slim student exported as int8 ONNX vs the teacher exported as float32 ONNX (whole models, 2 threads, alternating)');
  fig('slim.shipped.teacherFloat32', { bytes: t.bytes, gzipBytes: t.gzipBytes, test: { accuracy: t.accuracy, low: t.interval?.low, high: t.interval?.high, images: teacher.testImages } });
  fig('slim.shipped.studentInt8', { chosen: student.chosen, bytes: x.bytes, gzipBytes: x.gzipBytes, test: { accuracy: x.accuracy, low: x.interval?.low, high: x.interval?.high, images: student.testImages } });
  fig('slim.shipped.gzipOverTeacherFloat32Bytes', x.gzipBytes / t.bytes);
  fig('slim.shipped.gzipOverTeacherFloat32Gzip', x.gzipBytes / t.gzipBytes);
  fig('slim.shipped.speedupBatch1', s.batch1Speedup);
  fig('slim.shipped.speedupBatch32', s.batch32Speedup);
  fig('slim.shipped.cpuSpeedupBatch32', s.batch32CpuSpeedup);
}

function timeCli(argv, env = {}) {
  const t0 = performance.now();
  const out = execFileSync(process.execPath, [cli, ...argv, '--json', '--quiet'], { env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  return { seconds: (performance.now() - t0) / 1000, json: JSON.parse(out.toString()) };
}

/**
 * Queue section (issue 14): extraction through `headstart worker` processes on a
 * local redis-server against the single-process path, per-job queue overhead
 * (jobs whose one image is already cached), and a projection for N machines.
 * Needs redis-server (HEADSTART_REDIS_SERVER or /usr/bin/redis-server).
 * `node bench/run.mjs --only-queue` runs this section alone.
 */
async function queueSection() {
  const { spawn } = await import('node:child_process');
  const { existsSync } = await import('node:fs');
  const net = await import('node:net');
  const { Queue, QueueEvents } = require('bullmq');
  const server = process.env.HEADSTART_REDIS_SERVER || (existsSync('/usr/bin/redis-server') ? '/usr/bin/redis-server' : '');
  if (!server) return console.log('# queue: skipped (no redis-server)');
  const port = await new Promise((res) => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
  const procs = [];
  const startProc = (cmd, argv, readyRe) => new Promise((resolve, reject) => {
    const c = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(c);
    let text = '';
    const on = (d) => { text += d; if (readyRe.test(text)) resolve(c); };
    c.stdout.on('data', on);
    c.stderr.on('data', on);
    c.on('exit', (code) => reject(new Error(`${cmd} exited ${code}: ${text.slice(-400)}`)));
  });
  const rdir = path.join(work, 'redis');
  await mkdir(rdir, { recursive: true });
  await startProc(server, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', rdir], /Ready to accept/);
  const url = `redis://127.0.0.1:${port}`;
  const id = 'mobilenet-v2-140';
  const qdata = path.join(work, 'qdata');
  const perClass = quick ? 10 : 40;
  await core.makeSampleDataset(path.join(qdata, 'main'), { perClass, classes: 4, seed: 11 });
  await core.makeSampleDataset(path.join(qdata, 'warm'), { perClass: 4, classes: 4, seed: 12 });
  const items = (await core.scanDataset(path.join(qdata, 'main'))).hashed;
  const warmItems = (await core.scanDataset(path.join(qdata, 'warm'))).hashed;
  console.log(`# queue: ${items.length} images, ${id}, ONNX Runtime 1 thread per worker, shard 32, redis on loopback`);
  try {
    // Single process: one engine thread, then two.
    for (const threads of [1, 2]) {
      const ob = await core.openBackbone(id, { cacheDir: path.join(work, `q-local-${threads}`), workers: threads });
      await ob.extract(warmItems);
      const r = await ob.extract(items);
      ob.dispose();
      fig(`queue.local${threads}t.imagesPerSecond`, r.computed / r.seconds);
    }
    // 1 and 2 worker processes (1 thread each), warmed on other images first.
    for (const n of [1, 2]) {
      const cache = path.join(work, `q-cache-${n}`);
      const ws = [];
      for (let i = 0; i < n; i++) ws.push(await startProc(process.execPath, [cli, 'worker', '--queue', url, '--data-root', qdata, '--cache', cache, '--workers', '1'], /reading under/));
      const ob = await core.openBackbone(id, { cacheDir: cache, workers: 1 });
      const q = core.queuedBackbone(ob, id, { url, shardSize: 32 });
      await q.extract(warmItems);
      const t0 = performance.now();
      await q.extract(items);
      fig(`queue.workers${n}.imagesPerSecond`, items.length / ((performance.now() - t0) / 1000));
      ob.dispose();
      for (const w of ws) w.kill('SIGTERM');
    }
    // Per-job overhead: jobs of one already-cached image through one worker.
    const cache = path.join(work, 'q-cache-1');
    const overheadWorker = await startProc(process.execPath, [cli, 'worker', '--queue', url, '--data-root', qdata, '--cache', cache, '--workers', '1'], /reading under/);
    const ob = await core.openBackbone(id, { cacheDir: cache, workers: 1 });
    const connection = { host: '127.0.0.1', port };
    const queue = new Queue('extract', { connection, prefix: 'headstart' });
    const events = new QueueEvents('extract', { connection, prefix: 'headstart' });
    await events.waitUntilReady();
    queue.setMaxListeners(0); // one waitUntilFinished per job below
    events.setMaxListeners(0);
    const jobsN = quick ? 50 : 200;
    const it = items[0];
    const t0 = performance.now();
    const jobs = await queue.addBulk(Array.from({ length: jobsN }, (_, i) => ({ name: 'extract', data: { backbone: id, engine: 'onnx', key: ob.caches.features.key, batchSize: 16, items: [it] }, opts: { jobId: `bench-${Date.now()}-${i}`, removeOnComplete: true } })));
    await Promise.all(jobs.map((j) => j.waitUntilFinished(events, 120_000)));
    const perJob = (performance.now() - t0) / 1000 / jobsN;
    fig('queue.perJobOverheadMs', perJob * 1000);
    await Promise.all([queue.close(), events.close()]);
    ob.dispose();
    overheadWorker.kill('SIGTERM');
    await sweepTrials(qdata, cache, url, startProc);
    // Projection: a worker spends S/r computing a shard and `perJob` on the queue per shard.
    const r = results.figures['queue.workers1.imagesPerSecond'];
    const S = 256;
    const frac = perJob / (perJob + S / r);
    const redisJobsPerSecond = 1 / perJob; // one worker, serial: a floor on what Redis serves
    for (const n of [10, 100]) {
      const jobsPerSecond = (n * r) / S;
      fig(`queue.projection.${n}workers`, {
        queueFraction: Number(frac.toFixed(4)),
        jobsPerSecondNeeded: Number(jobsPerSecond.toFixed(2)),
        imagesPerSecond: Math.round(n * r),
        cacheFileCreatesPerSecond: Math.round(n * r * 2),
        cacheWriteMBps: Number(((n * r * (1792 + 768) * 4) / 1e6).toFixed(1)),
        imageReadMBps: Number(((n * r * 30e3) / 1e6).toFixed(1)),
      });
    }
    console.log(`# projection: queue time is ${(frac * 100).toFixed(2)}% of a worker's time at shard ${S} whatever N while Redis keeps up (it served >= ${redisJobsPerSecond.toFixed(0)} jobs/s to one serial worker; 100 workers need ${((100 * r) / S).toFixed(1)}/s). The shared volume limits first: each image is one read and two small atomic creates (write + rename), so 100 workers need ~${Math.round(100 * r * 2)} creates/s, beyond what a typical NFS server sustains for small files (a few thousand metadata ops/s).`);
  } finally {
    for (const c of procs) c.kill('SIGKILL');
  }
}

/**
 * Sweep trials per second on cached vectors: a local sweep (one process)
 * against `sweep --queue` with 1 and 2 worker processes (one engine thread
 * each). The features are cached already, so this is head training plus the
 * queue's own cost per trial.
 */
async function sweepTrials(qdata, cache, url, startProc) {
  const grid = core.parseGrid('hidden=0,32;lr=0.003,0.01;dropout=0,0.2');
  const base = { data: path.join(qdata, 'main'), backbone: 'mobilenet-v2-140', cacheDir: cache, workers: 1, epochs: 10, seed: 3 };
  console.log(`# sweep: ${grid.length} trials (hidden x lr x dropout, --epochs 10, head chosen by 5-fold cross-validation), ${base.data}, features cached`);
  const timeSweep = async (name, extra) => {
    const t0 = performance.now();
    const res = await core.runSweep({ grid, out: path.join(work, `sweep-${name}`), base: { ...base, ...extra } });
    const s = (performance.now() - t0) / 1000;
    fig(`queue.sweep.${name}.trialsPerSecond`, res.trials / s);
    return res;
  };
  const local = await timeSweep('local', {});
  for (const n of [1, 2]) {
    const ws = [];
    for (let i = 0; i < n; i++) ws.push(await startProc(process.execPath, [cli, 'worker', '--queue', url, '--data-root', qdata, '--cache', cache, '--workers', '1'], /reading under/));
    // A fresh seed per worker count: trial job ids hash the settings, and a finished trial is taken from Redis instead of trained again.
    const res = await timeSweep(`workers${n}`, { queue: { url }, seed: 3 + n });
    fig(`queue.sweep.workers${n}.workersSeen`, new Set(res.leaderboard.map((r) => r.worker)).size);
    for (const w of ws) w.kill('SIGTERM');
  }
  fig('queue.sweep.local.meanHeadMsPerImage', local.leaderboard.reduce((a, r) => a + r.headMsPerImage, 0) / local.leaderboard.length);
}

if (args.has('--only-text')) {
  try {
    console.log('# text: generated support tickets (4 intents, templated: favours TF-IDF); bundled glove-100d-avg word vectors');
    await textBench(core, work, fig, timeCli);
    await writeFile(path.join(root, 'bench', 'results-text.json'), `${JSON.stringify(results, null, 2)}\n`);
    console.log('saved bench/results-text.json');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  process.exit(0);
}

if (args.has('--only-queue')) {
  try {
    await queueSection();
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  process.exit(0);
}

try {
  const perClass = quick ? 20 : 80;
  const data = path.join(work, 'data');
  await core.makeSampleDataset(data, { perClass, classes: 4, seed: 5 });
  const n = perClass * 4;
  console.log(`# dataset: ${n} generated images, 4 classes; backbone mobilenet-v2-140 (bundled default)`);
  if (args.has('--slim-only')) await slimSection(data);
  else if (args.has('--only-extract')) await extractBench(core, work, fig, (await core.scanDataset(data)).hashed, { quick });
  else {
  const scan = await core.scanDataset(data);
  const items = scan.hashed;

  // Pure inference speed of each engine on random pixels, batch 32 (no decoding, no cache).
  for (const id of ['mobilenet-v2-140', 'mobilenet-v2-100']) {
    const rb = await core.resolveBackbone(id, path.join(work, 'cache-models'));
    const S = rb.entry.inputSize;
    const batch = 32;
    const px = new Float32Array(batch * S * S * 3).map(() => Math.floor(Math.random() * 256));
    const rate = async (ex, rounds) => {
      await ex.extract(px.slice(), batch); // warm up
      const t0 = performance.now();
      for (let r = 0; r < rounds; r++) await ex.extract(px.slice(), batch);
      return (rounds * batch) / ((performance.now() - t0) / 1000);
    };
    await core.initBackend('wasm');
    const tfx = await core.loadTfjsExtractor(rb);
    fig(`infer.${id}.tfjsWasm.imagesPerSecond`, await rate(tfx, quick ? 1 : 2));
    tfx.dispose();
    const onnxPath = await core.ensureOnnxBackbone(rb, path.join(work, 'cache-models'));
    for (const threads of [1, 2]) {
      const ox = await core.loadOnnxExtractor(onnxPath, S, threads);
      fig(`infer.${id}.onnx${threads}t.imagesPerSecond`, await rate(ox, quick ? 3 : 8));
      await ox.close();
    }
  }

  // Extraction through the whole pipeline (decode + backbone + cache writes), per engine.
  const engines = [
    { name: 'tfjs-1worker', opts: { engine: 'tfjs', workers: 1 } },
    { name: `tfjs-pool${core.defaultWorkers()}`, opts: { engine: 'tfjs', workers: core.defaultWorkers() } },
    { name: 'onnx-1thread', opts: { engine: 'onnx', workers: 1 } },
    { name: 'onnx-2threads', opts: { engine: 'onnx', workers: 2 } },
  ];
  for (const e of engines) {
    const opened = await core.openBackbone('mobilenet-v2-140', { cacheDir: path.join(work, `cache-${e.name}`), ...e.opts });
    const res = await opened.extract(items);
    opened.dispose();
    fig(`extract.${e.name}.imagesPerSecond`, res.imagesPerSecond);
    results.figures.backend = opened.backend.name;
  }
  fig('extract.poolSpeedup', results.figures[`extract.tfjs-pool${core.defaultWorkers()}.imagesPerSecond`] / results.figures['extract.tfjs-1worker.imagesPerSecond']);
  fig('extract.onnxOverTfjs1', results.figures['extract.onnx-2threads.imagesPerSecond'] / results.figures['extract.tfjs-1worker.imagesPerSecond']);
  fig('extract.onnxEndToEndOverInference', results.figures['extract.onnx-2threads.imagesPerSecond'] / results.figures['infer.mobilenet-v2-140.onnx2t.imagesPerSecond']);
  // Extraction at the limit (issue 12): converter vs a PyTorch export, pipeline vs raw tensors (bench/extract.mjs).
  await extractBench(core, work, fig, items, { quick });

  // Head training on cached features.
  {
    const opened = await core.openBackbone('mobilenet-v2-140', { cacheDir: path.join(work, 'cache-tfjs-1worker'), engine: 'tfjs', workers: 1 });
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

  // Head trainers and cross-validated selection on generated vectors (issue 11): bench/headSelect.mjs.
  fig.get = (k) => results.figures[k];
  await headBench(core, fig);

  // End to end through the CLI: cold (empty cache) and warm (cached features).
  const coldTfjs = timeCli(['train', data, '--out', path.join(work, 'run-cold-tfjs'), '--cache', path.join(work, 'cache-e2e-tfjs'), '--engine', 'tfjs']);
  fig('e2e.coldSeconds.tfjs', coldTfjs.seconds);
  const cacheDir = path.join(work, 'cache-e2e');
  const cold = timeCli(['train', data, '--out', path.join(work, 'run-cold'), '--cache', cacheDir]);
  fig('e2e.coldSeconds', cold.seconds);
  fig('e2e.cold.engine', cold.json.engine);
  fig('e2e.coldTfjsOverOnnx', coldTfjs.seconds / cold.seconds);
  fig('e2e.cold.extractedImages', cold.json.timings.extracted);
  const warm = timeCli(['train', data, '--out', path.join(work, 'run-warm'), '--cache', cacheDir]);
  fig('e2e.warmSeconds', warm.seconds);
  fig('e2e.warm.extractedImages', warm.json.timings.extracted);
  fig('e2e.coldOverWarm', cold.seconds / warm.seconds);
  fig('e2e.testAccuracy', cold.json.test.accuracy);
  fig('e2e.baselineAccuracy', cold.json.baseline.accuracy);

  // Compact export (issue 4): every weight storage on the same run and test split.
  {
    const runDir = path.join(work, 'run-cold');
    const f32 = timeCli(['export', runDir, '--out', path.join(work, 'exp-none'), '--quantize', 'none']).json;
    const exportFigures = { float32: { bytes: f32.float32.bytes, gzipBytes: f32.float32.gzipBytes, accuracy: f32.float32.accuracy, msPerImage: f32.float32.msPerImage } };
    for (const q of ['float16', 'uint16', 'uint8', 'auto']) {
      const r = timeCli(['export', runDir, '--out', path.join(work, `exp-${q}`), '--quantize', q]);
      exportFigures[q] = { chosen: r.json.chosen, bytes: r.json.exported.bytes, gzipBytes: r.json.exported.gzipBytes, accuracy: r.json.exported.accuracy, sizeRatio: r.json.exported.bytes / f32.float32.bytes, dropPoints: (f32.float32.accuracy - r.json.exported.accuracy) * 100, exportSeconds: r.seconds };
    }
    fig('export', exportFigures);
    fig('export.testImages', f32.testImages);
    const onnxFigures = {};
    for (const q of ['none', 'float16', 'uint8']) {
      const r = timeCli(['export', runDir, '--out', path.join(work, `onnx-${q}`), '--format', 'onnx', '--quantize', q]);
      onnxFigures[q === 'none' ? 'float32' : q] = { bytes: r.json.exported.bytes, gzipBytes: r.json.exported.gzipBytes, accuracy: r.json.exported.accuracy, msPerImage: r.json.exported.msPerImage };
    }
    fig('exportOnnx', onnxFigures);
    // int8 (static QDQ, calibrated on training images) against float32, timed side by side in the same process.
    {
      const r = timeCli(['export', runDir, '--out', path.join(work, 'onnx-int8'), '--format', 'onnx', '--quantize', 'int8']).json;
      const q = r.quantization;
      fig('exportOnnx.int8', { bytes: r.exported.bytes, gzipBytes: r.exported.gzipBytes, accuracy: r.exported.accuracy, float32Accuracy: r.float32.accuracy, testImages: r.testImages, calibrationImages: q.calibrationImages, reduceRange: q.reduceRange, speed: q.speed });
      fig('exportOnnx.int8.sizeRatio', r.exported.bytes / r.float32.bytes);
      fig('exportOnnx.int8.gzipSizeRatio', r.exported.gzipBytes / r.float32.gzipBytes);
      fig('exportOnnx.int8.speedupBatch1.2threads', q.speed.batch1Speedup);
      fig('exportOnnx.int8.speedupBatch32.2threads', q.speed.batch32Speedup);
      fig('exportOnnx.int8.cpuSpeedupBatch32.2threads', q.speed.batch32CpuSpeedup);
    }
  }

  // Beyond the head (issue 6) on the layers backbone: head only, unfreeze 1 and 2 blocks, augmentation; distillation.
  {
    const small = path.join(work, 'small');
    await core.makeSampleDataset(small, { perClass: quick ? 8 : 15, classes: 4, seed: 21 });
    const c = path.join(work, 'cache-deeper');
    const variants = [
      ['head-only', []],
      ['unfreeze-1block', ['--unfreeze', '4']],
      ['unfreeze-2blocks', ['--unfreeze', '7']],
      ['augment-2views', ['--augment', '2']],
    ];
    const deeper = {};
    for (const [name, extra] of variants) {
      const r = timeCli(['train', small, '--backbone', 'mobilenet-v2-100', '--epochs', '12', '--out', path.join(work, `deep-${name}`), '--cache', c, ...extra]);
      const rec = JSON.parse(await (await import('node:fs/promises')).readFile(path.join(work, `deep-${name}`, 'run.json'), 'utf8'));
      const ftEpochs = rec.history.filter((m) => m.stage === 'fine-tune');
      deeper[name] = {
        testAccuracy: r.json.test.accuracy,
        seconds: r.seconds,
        headEpochSeconds: rec.history.filter((m) => m.stage !== 'fine-tune').reduce((a, m) => a + m.seconds, 0) / Math.max(1, rec.history.length - ftEpochs.length),
        fineTuneEpochSeconds: ftEpochs.length ? ftEpochs.reduce((a, m) => a + m.seconds, 0) / ftEpochs.length : 0,
        trainVectors: rec.augmentation ? rec.augmentation.vectors + rec.samples.filter((s) => s.split === 'train').length : rec.samples.filter((s) => s.split === 'train').length,
      };
    }
    fig('deeper', deeper);
    fig('deeper.testImages', JSON.parse(await (await import('node:fs/promises')).readFile(path.join(work, 'deep-head-only', 'run.json'), 'utf8')).test.count);
    const teacher = timeCli(['train', small, '--epochs', '12', '--out', path.join(work, 'deep-teacher'), '--cache', c]);
    const d = timeCli(['distill', path.join(work, 'deep-teacher'), '--student', 'mobilenet-v2-100', '--out', path.join(work, 'deep-student'), '--cache', c]);
    void teacher;
    fig('distill', { teacher: d.json.teacher, student: d.json.student });
  }

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
    `], { maxBuffer: 16 << 20, stdio: ['ignore', 'pipe', 'inherit'] });
    const mem = JSON.parse(out.toString().trim().split('\n').at(-1));
    fig(`memory.images`, mem.total);
    fig(`memory.peakRssMB`, mem.maxRssMB);
    fig(`memory.seconds`, (performance.now() - t0) / 1000);
  }

  await queueSection();

  await slimSection(data);

  await textBench(core, work, fig, timeCli);
  }
  await mkdir(path.join(root, 'bench'), { recursive: true });
  // A section run alone keeps the full results file as it was.
  const resultsFile = args.has('--slim-only') ? 'results-slim.json' : args.has('--only-extract') ? 'results-extract.json' : 'results.json';
  await writeFile(path.join(root, 'bench', resultsFile), `${JSON.stringify(results, null, 2)}\n`);
  console.log(`saved bench/${resultsFile}`);
} finally {
  await rm(work, { recursive: true, force: true });
}
process.exit(0);
