// Extraction at the limit (issue 12, item 4), measured in one process:
// - the converter's MobileNetV2 1.0 graph against ONNX Runtime on a PyTorch export
//   of the same network (bench/torchMobilenet.py; skipped where python3-torch is absent),
//   timed alternating, batch 32, 2 intra-op threads;
// - the cold pipeline (decode with sharp + backbone in ONNX Runtime + cache writes)
//   against the same engine on raw tensors (same thread pool, batch, threads).
// Each comparison gives a wall-clock ratio and a CPU-time ratio: on a machine shared
// with other jobs the wall clock moves with their load, while the CPU seconds per
// image a side spends do not (the CPU ratio is the rate ratio on an idle machine).
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Seconds and process CPU seconds of one call. */
async function timed(fn) {
  const c0 = cpuSeconds();
  const t0 = performance.now();
  await fn();
  return { wall: (performance.now() - t0) / 1000, cpu: cpuSeconds() - c0 };
}

const median = (v) => [...v].sort((a, b) => a - b)[v.length >> 1];

/** The PyTorch reference export, or a one-line reason why there is none. */
function torchReference(work) {
  const out = path.join(work, 'torch-mobilenet-v2-100.onnx');
  // A pyenv or venv python3 on PATH may lack Debian's python3-torch: the system one is tried too.
  const python = [process.env.HEADSTART_PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean).find((p) => {
    try {
      execFileSync(p, ['-c', 'import torch'], { stdio: 'ignore' });
      return true;
    } catch {
      return false; // no such interpreter, or no torch in it: try the next
    }
  });
  if (!python) return { skip: 'no python3 with PyTorch (Debian: apt-get install python3-torch; or set HEADSTART_PYTHON)' };
  execFileSync(python, [path.join(here, 'torchMobilenet.py'), out], { stdio: ['ignore', 'ignore', 'inherit'] });
  return { file: out };
}

async function converterVsTorch(core, work, fig, rounds) {
  const ref = torchReference(work);
  if (ref.skip) return console.log(`# converter vs PyTorch export: skipped (${ref.skip})`);
  const ort = core.loadOrt();
  const rb = await core.resolveBackbone('mobilenet-v2-100', path.join(work, 'cache-models'));
  const ours = await core.ensureOnnxBackbone(rb, path.join(work, 'cache-models'));
  const opts = core.ortSessionOptions(2);
  const B = 32;
  const S = 224;
  // What the extractor runs: the converter's graph with its pixel prefix split off (NCHW on the
  // network's range, like the PyTorch export); and, for the record, the whole graph (0..255 NHWC in).
  const model = await core.extractionModel(ours);
  if (!model.prefix) throw new Error('the converter graph has no pixel prefix to split off: bench/extract.mjs expects one');
  const nchw = () => new Float32Array(B * 3 * S * S).map(() => Math.random() * 2 - 1);
  const sides = [
    { name: 'converter', session: await ort.InferenceSession.create(model.bytes, opts), feed: { [model.prefix.inputName]: new ort.Tensor('float32', nchw(), [B, 3, S, S]) }, t: [] },
    { name: 'pytorchExport', session: await ort.InferenceSession.create(ref.file, opts), feed: { image: new ort.Tensor('float32', nchw(), [B, 3, S, S]) }, t: [] },
    { name: 'converterWithPixelOps', session: await ort.InferenceSession.create(ours, opts), feed: { image: new ort.Tensor('float32', new Float32Array(B * S * S * 3).map(() => Math.random() * 255), [B, S, S, 3]) }, t: [] },
  ];
  for (const s of sides) await s.session.run(s.feed); // warm up
  for (let r = 0; r < rounds; r++) for (const s of sides) s.t.push(await timed(() => s.session.run(s.feed)));
  console.log(`# converter vs PyTorch export: MobileNetV2 1.0 224, batch ${B}, ONNX Runtime 2 threads, ${rounds} alternating rounds, medians`);
  for (const s of sides) {
    fig(`extract.mnv2_100.${s.name}.imagesPerSecond`, B / median(s.t.map((x) => x.wall)));
    fig(`extract.mnv2_100.${s.name}.cpuMsPerImage`, (median(s.t.map((x) => x.cpu)) / B) * 1000);
    await s.session.release();
  }
  const [a, b] = sides;
  fig('extract.converterOverTorch.wall', median(b.t.map((x) => x.wall)) / median(a.t.map((x) => x.wall)));
  fig('extract.converterOverTorch.cpu', median(b.t.map((x) => x.cpu)) / median(a.t.map((x) => x.cpu)));
}

async function pipelineVsRaw(core, work, fig, items) {
  const id = 'mobilenet-v2-140';
  const rb = await core.resolveBackbone(id, path.join(work, 'cache-models'));
  const onnxPath = await core.ensureOnnxBackbone(rb, path.join(work, 'cache-models'));
  const S = rb.entry.inputSize;
  const batch = 16; // the pipeline's batch
  const n = items.length;
  // Raw tensors through the same worker-thread pool and threads the pipeline uses, two batches in flight.
  const raw = async () => {
    const pool = await core.ExtractorPool.start(rb, 1, { kind: 'onnx', onnxPath, threads: 2 });
    const px = new Float32Array(batch * S * S * 3).map(() => Math.floor(Math.random() * 256));
    await pool.extract(px.slice(), batch);
    let done = 0;
    const t = await timed(() => Promise.all([0, 1].map(async () => {
      while (done < n) {
        done += batch;
        await pool.extract(px.slice(), batch);
      }
    })));
    pool.dispose();
    return { rate: done / t.wall, cpuMs: (t.cpu / done) * 1000 };
  };
  let k = 0;
  const pipe = async () => {
    const opened = await core.openBackbone(id, { cacheDir: path.join(work, `cache-extract-${k++}`), engine: 'onnx', workers: 2 });
    await opened.extract(items.slice(0, batch)); // starts the session outside the timing, as raw() does
    const rest = items.slice(batch);
    let res;
    const t = await timed(async () => (res = await opened.extract(rest)));
    opened.dispose();
    return { rate: res.computed / t.wall, cpuMs: (t.cpu / res.computed) * 1000 };
  };
  const decode = async () => {
    const t = await timed(async () => {
      for (const it of items) core.thumbnail(await core.readAndDecode(it.path, S), S);
    });
    return { rate: n / t.wall, cpuMs: (t.cpu / n) * 1000 };
  };
  // raw, pipeline, raw, pipeline: each side sees the same share of the machine's other load.
  const r = [await raw(), await pipe(), await raw(), await pipe()];
  const d = await decode();
  const rawRate = (r[0].rate + r[2].rate) / 2;
  const pipeRate = (r[1].rate + r[3].rate) / 2;
  const rawCpu = (r[0].cpuMs + r[2].cpuMs) / 2;
  const pipeCpu = (r[1].cpuMs + r[3].cpuMs) / 2;
  console.log(`# pipeline vs raw tensors: ${id}, ${n} generated images (160 px JPEG/PNG), batch ${batch}, ONNX Runtime 2 threads in one worker thread, alternating`);
  fig('extract.raw.imagesPerSecond', rawRate);
  fig('extract.pipeline.imagesPerSecond', pipeRate);
  fig('extract.pipelineOverRaw.wall', pipeRate / rawRate);
  fig('extract.raw.cpuMsPerImage', rawCpu);
  fig('extract.pipeline.cpuMsPerImage', pipeCpu);
  fig('extract.decodeThumb.cpuMsPerImage', d.cpuMs);
  fig('extract.pipelineOverRaw.cpu', rawCpu / pipeCpu);
}

/** The extraction section of `npm run bench` (`--only-extract` runs it alone). */
export async function extractBench(core, work, fig, items, { quick = false } = {}) {
  await converterVsTorch(core, work, fig, quick ? 4 : 10);
  await pipelineVsRaw(core, work, fig, items);
}
