import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type EngineOptions, openBackbone } from '../engine';
import { HeadstartError, throwIfAborted } from '../errors';
import type * as shared from '../../shared/records';
import type { ModelFigures } from '../../shared/records';
import type { Progress } from '../events';
import { DecodeError, readAndDecode } from '../data/decode';
import { loadExportedModel, writeFullModel } from '../export/fullModel';
import { sizeOf } from '../export/common';
import { type OutOptions, outGuard, prepareOutDir, writeOutDir } from '../fsutil';
import { type LoadedRun, type RunRecord, RUN_VERSION, loadRun, openRunBackbone, runProbs, writeRunFiles } from '../runFolder';
import { type DistillOptions, type HeadOptions, type VectorSet, HEAD_DEFAULTS, evaluateSet, trainHead } from './head';
import { evaluatePredictions } from './metrics';
import { resolveOnnxBackbone } from '../onnx/backbone';
import { type SlimOption, type SlimReport, runAsOnnx, slimSearch } from '../compress/slim';
import { compareOnnxSpeed } from '../onnx/speed';
import { loadOrt } from '../onnx/engine';

export interface DistillConfig extends EngineOptions, OutOptions {
  /** The teacher: a RUN_DIR. */
  runDir: string;
  /**
   * Student backbone: 'slim' (the teacher's own backbone slimmed for this task, see compress/slim.ts),
   * a catalogue id or a model.json. Default: 'slim', falling back to FALLBACK_STUDENT (with a warning
   * event) where slimming cannot make one (slimFallbackReason, or no step within the budget).
   */
  student?: string;
  /** --student slim: fraction of hidden channels to remove, or 'auto' (default: the largest step within maxDrop). */
  slim?: SlimOption;
  /** --student slim: accuracy budget in validation points below the teacher, default 5. */
  maxDrop?: number;
  /** The student's RUN_DIR, default next to the teacher's. */
  out?: string;
  /** Softening temperature, default 4. */
  temperature?: number;
  /** Weight of the soft targets, default 0.7. */
  alpha?: number;
}

export type { ModelFigures } from '../../shared/records';

/** The student when the default slim student cannot be made: the smallest bundled image backbone. */
export const FALLBACK_STUDENT = 'mobilenet-v2-100';

/** Why a teacher cannot have a slim student before any work is done (undefined: it can try). */
export function slimFallbackReason(teacher: LoadedRun): string | undefined {
  const b = teacher.record.backbone;
  if (!loadOrt()) return 'ONNX Runtime is not available here (onnxruntime-node did not load)';
  if (b.format === 'onnx') return 'the teacher runs an ONNX backbone, which Headstart does not slim again';
  if (teacher.record.unfreeze) return 'the teacher fine-tuned its backbone\'s top layers (--unfreeze); slimming applies to frozen backbones';
  return undefined;
}

/** Errors of the slim search that the default student falls back from (no slimmable blocks, no step within the budget); anything else (cancellation, bad input) stands. */
function slimCannot(err: unknown): err is HeadstartError {
  return err instanceof HeadstartError && (err.code === 'NO_DATA' || err.code === 'BAD_MODEL' || err.code === 'BACKEND');
}

/** The reply of `distill`: the shared shape plus where and how the figures compare. */
export interface DistillReport extends shared.DistillReport {
  /** Where the figures were measured: the full TF.js models, or (slim students) both as ONNX in ONNX Runtime, timed alternating. */
  measuredIn: string;
  /** teacher bytes / student bytes, teacher ms / student ms (above 1: the student is smaller / faster); slim students also in process CPU time per image at batch 32 (steadier than the wall clock on a shared machine). */
  ratios: { size: number; speed: number; speedCpuBatch32?: number };
  /** --student slim: the slimming steps tried. */
  slimming?: SlimReport;
}

/** Mean milliseconds of `predictOne` over up to 6 of the run's test images, one at a time (the first is a warm-up). */
async function msPerTestImage(run: LoadedRun, predictOne: (rgb: Uint8Array) => Promise<void>, progress: Progress): Promise<number> {
  const size = run.record.backbone.inputSize;
  const files = run.record.samples.filter((s) => s.split === 'test').slice(0, 6).map((s) => path.join(run.record.dataset.root, s.rel));
  let ms = 0;
  let timed = 0;
  for (const [i, f] of files.entries()) {
    throwIfAborted(progress.signal);
    let rgb: Uint8Array;
    try {
      rgb = await readAndDecode(f, size);
    } catch (err) {
      if (err instanceof DecodeError) continue; // an unreadable test image is one timing fewer
      throw err;
    }
    const t0 = performance.now();
    await predictOne(rgb);
    if (i > 0) {
      ms += performance.now() - t0;
      timed++;
    }
  }
  return timed ? ms / timed : 0;
}

/**
 * Writes a run's full model to a temp folder and measures its size and
 * single-image latency: float32 TF.js, or float32 ONNX in ONNX Runtime (2
 * threads) for a run on an ONNX backbone, which has no TF.js form.
 */
async function figures(run: LoadedRun, accuracy: number, progress: Progress): Promise<ModelFigures> {
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'headstart-distill-'));
  const size = run.record.backbone.inputSize;
  try {
    if (run.record.backbone.format === 'onnx') {
      const bytes = await runAsOnnx(run, tmp);
      const ort = loadOrt()!;
      const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 2, interOpNumThreads: 1 });
      try {
        const ms = await msPerTestImage(run, async (rgb) => void (await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', Float32Array.from(rgb), [1, size, size, 3]) })), progress);
        return { backbone: run.record.backbone.id, runDir: run.dir, bytes: bytes.length, accuracy, msPerImage: ms };
      } finally {
        await session.release();
      }
    }
    await writeFullModel(run, tmp);
    const { bytes } = await sizeOf(tmp);
    const model = await loadExportedModel(tmp);
    try {
      const ms = await msPerTestImage(run, async (rgb) => void tf.tidy(() => model.predict(tf.tensor4d(Float32Array.from(rgb), [1, size, size, 3])).dataSync()), progress);
      return { backbone: run.record.backbone.id, runDir: run.dir, bytes, accuracy, msPerImage: ms };
    } finally {
      model.dispose();
    }
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Distillation into a compact student: the student backbone's features and
 * a new head trained to match the teacher's softened outputs on the training
 * split (temperature, with the hard labels mixed in), evaluated on the same
 * test split and written as an ordinary RUN_DIR (export it like any run).
 */
export async function distillRun(cfg: DistillConfig, progress: Progress = {}): Promise<DistillReport> {
  const temperature = cfg.temperature ?? 4;
  const alpha = cfg.alpha ?? 0.7;
  if (!(temperature >= 1 && temperature <= 20)) throw new HeadstartError('BAD_INPUT', `--temperature must be from 1 to 20 (got ${cfg.temperature})`);
  if (!(alpha >= 0 && alpha <= 1)) throw new HeadstartError('BAD_INPUT', `--alpha must be from 0 to 1 (got ${cfg.alpha})`);
  const teacher = await loadRun(cfg.runDir, cfg.backend);
  let student: LoadedRun | undefined;
  try {
    if (teacher.record.modality === 'text') throw new HeadstartError('BAD_INPUT', `${cfg.runDir} is a text run: distill makes smaller image backbones, and a text model's head on word vectors is already small; export it with headstart export`);
    if (cfg.student === undefined) {
      // The default: a slim student where one can be made, else the smallest bundled backbone, said in one line.
      const reason = slimFallbackReason(teacher) ?? (await distillSlim(teacher, cfg, temperature, alpha, progress).catch((err: unknown) => {
        if (slimCannot(err)) return err.message;
        throw err;
      }));
      if (typeof reason !== 'string') return reason;
      progress.onEvent?.({ type: 'warning', message: `no slimmed student (${reason}); distilling into ${FALLBACK_STUDENT} instead` });
    }
    const studentId = cfg.student ?? FALLBACK_STUDENT;
    if (studentId === 'slim') return await distillSlim(teacher, cfg, temperature, alpha, progress);
    // Before any extraction: neither the teacher run nor its DATA may be the student's folder.
    const guard = outGuard('run', [{ path: teacher.dir, what: 'the teacher run' }, { path: teacher.record.dataset.root, what: "the teacher's DATA" }], cfg);
    const out = await prepareOutDir(studentOut(teacher, cfg, studentId), guard);
    if (studentId === teacher.record.backbone.id) throw new HeadstartError('BAD_INPUT', `the student backbone is the teacher's own (${studentId}); choose a smaller one with --student`);
    const rec = teacher.record;
    const labels = rec.labels;
    const k = labels.length;
    const items = rec.samples.map((s) => ({ path: path.join(rec.dataset.root, s.rel), hash: s.hash, label: s.label, split: s.split }));
    progress.onEvent?.({ type: 'phase', phase: 'extract', message: `teacher outputs on ${items.length} images` });
    const tOpened = await openRunBackbone(teacher, cfg, progress);
    const tEx = await tOpened.extract(items, progress).finally(() => tOpened.dispose());
    const sOpened = await openBackbone(studentId, cfg, progress);
    try {
      progress.onEvent?.({ type: 'phase', phase: 'extract', message: `student (${studentId}) features` });
      const sEx = await sOpened.extract(items, progress);
      const ok = items.filter((it) => tEx.features.has(it.hash) && sEx.features.has(it.hash));
      const tDim = tEx.features.get(ok[0]!.hash)!.length;
      const sDim = sOpened.backbone.entry.featureSize;
      const set = (split: string, soft: boolean): VectorSet & { paths: string[] } => {
        const sel = ok.filter((it) => it.split === split);
        const x = new Float32Array(sel.length * sDim);
        const tx = new Float32Array(sel.length * tDim);
        sel.forEach((it, i) => {
          x.set(sEx.features.get(it.hash)!, i * sDim);
          tx.set(tEx.features.get(it.hash)!, i * tDim);
        });
        return { x, y: Int32Array.from(sel.map((it) => labels.indexOf(it.label))), soft: soft ? runProbs(teacher, tx) : undefined, paths: sel.map((it) => it.path) };
      };
      const train = set('train', true);
      const val = set('val', false);
      const test = set('test', false);
      const head: Required<HeadOptions> = { ...HEAD_DEFAULTS, epochs: rec.config.epochs, batchSize: rec.config.batchSize, learningRate: rec.config.learningRate, hiddenUnits: rec.config.hiddenUnits, dropout: rec.config.dropout, l2: rec.config.l2, patience: rec.config.patience, seed: rec.config.seed, balanceClasses: rec.config.balanceClasses };
      progress.onEvent?.({ type: 'phase', phase: 'train', message: `distilling into ${studentId} (T=${temperature}, alpha=${alpha})` });
      const distill: DistillOptions = { temperature, alpha };
      const res = await trainHead(train, val, sDim, k, head, progress, distill);
      try {
        const testEval = evaluatePredictions(labels, test.y, evaluateSet(res.model, test, sDim, k).probs, test.paths);
        const b = sOpened.backbone;
        const record: RunRecord & { distilledFrom: { runDir: string; backbone: string; temperature: number; alpha: number } } = {
          ...rec,
          version: RUN_VERSION,
          createdAt: new Date().toISOString(),
          config: { ...rec.config, ...head, backbone: studentId, unfreeze: 0, augment: undefined },
          backend: sOpened.backend.name,
          engine: sOpened.engine,
          backbone: { id: b.entry.id, title: b.entry.title, format: b.entry.format, inputSize: b.entry.inputSize, inputRange: b.entry.inputRange, featureNode: b.entry.featureNode, pool: !!b.entry.pool, featureSize: sDim, licence: b.entry.licence, source: b.entry.source, modelHash: b.modelHash, dir: b.dir },
          history: res.history,
          bestEpoch: res.bestEpoch,
          stoppedEarly: res.stoppedEarly,
          test: testEval,
          unfreeze: undefined,
          augmentation: undefined,
          timings: { ...rec.timings, trainSeconds: res.seconds, extracted: sEx.computed, cached: sEx.cached, extractSeconds: sEx.seconds, imagesPerSecond: sEx.imagesPerSecond, workers: sOpened.workers },
          distilledFrom: { runDir: teacher.dir, backbone: rec.backbone.id, temperature, alpha },
        };
        throwIfAborted(progress.signal);
        await writeOutDir(out, guard, async (tmp) => {
          await writeRunFiles(tmp, record, res.model);
        });
        student = await loadRun(out, cfg.backend);
        progress.onEvent?.({ type: 'phase', phase: 'evaluate', message: 'measuring teacher and student' });
        const tf32 = await figures(teacher, rec.test.accuracy, progress);
        const sf32 = await figures(student, testEval.accuracy, progress);
        return { runDir: out, temperature, alpha, teacher: tf32, student: sf32, measuredIn: `${rec.backbone.format === 'onnx' ? 'teacher: float32 ONNX in ONNX Runtime (2 threads); student: full float32 TF.js model' : 'full float32 TF.js models'}, this process, 1 image at a time`, ratios: { size: tf32.bytes / sf32.bytes, speed: tf32.msPerImage / sf32.msPerImage } };
      } finally {
        res.model.dispose();
      }
    } finally {
      sOpened.dispose();
    }
  } finally {
    teacher.head.dispose();
    teacher.top?.dispose();
    student?.head.dispose();
  }
}

/** Default output folder of a student run: next to the teacher's. */
function studentOut(teacher: LoadedRun, cfg: DistillConfig, studentId: string): string {
  return cfg.out ?? `${path.resolve(teacher.dir).replace(/[\\/]+$/, '')}-distilled-${studentId.replace(/[^\w.-]/g, '_')}`;
}

/**
 * `distill --student slim`: the teacher's backbone slimmed for this task
 * (structured channel removal, ranked on training images), with a head
 * trained on the teacher's soft outputs; the slimming step is the largest
 * whose top-1 agrees with the unslimmed backbone's on at least 100 - `maxDrop` %
 * of the judged images (validation + training out of fold; slimSearch).
 * The slimmed backbone is stored in the student's RUN_DIR (`backbone/`) and
 * runs in ONNX Runtime; teacher and student are both measured as ONNX models.
 */
async function distillSlim(teacher: LoadedRun, cfg: DistillConfig, temperature: number, alpha: number, progress: Progress): Promise<DistillReport> {
  const rec = teacher.record;
  const guard = outGuard('run', [{ path: teacher.dir, what: 'the teacher run' }, { path: rec.dataset.root, what: "the teacher's DATA" }], cfg);
  const out = await prepareOutDir(studentOut(teacher, cfg, 'slim'), guard);
  const maxDrop = cfg.maxDrop ?? 5;
  if (!(maxDrop >= 0 && maxDrop <= 100)) throw new HeadstartError('BAD_INPUT', `--max-drop must be a number of accuracy points from 0 to 100 (got ${cfg.maxDrop})`);
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'headstart-slim-'));
  let head: tf.Sequential | undefined;
  try {
    // The teacher's soft outputs on its training images (features through its own cache).
    const items = rec.samples.map((s) => ({ path: path.join(rec.dataset.root, s.rel), hash: s.hash }));
    const tOpened = await openRunBackbone(teacher, cfg, progress);
    const tEx = await tOpened.extract(items.filter((_, i) => rec.samples[i]!.split === 'train'), progress).finally(() => tOpened.dispose());
    const soft = new Map<string, Float32Array>([...tEx.features].map(([h, f]) => [h, runProbs(teacher, f)]));
    const res = await slimSearch(teacher, { ...cfg, slim: cfg.slim ?? 'auto', maxDrop, work, distill: { soft, options: { temperature, alpha } } }, progress);
    head = res.head;
    if (!res.backboneDir || !head || !res.modelBytes) throw new HeadstartError('NO_DATA', `no slimming step kept the student within ${maxDrop} points of the unslimmed backbone (top-1 agreement on ${res.report.validationImages} validation and ${res.report.oofTrainImages} out-of-fold training images; the first step, ${Math.round((res.report.steps[1]?.fraction ?? 0) * 100)}% removed, agreed on ${((res.report.steps[1]?.agreement ?? 0) * 100).toFixed(1)}%); raise --max-drop or keep the teacher`);
    // Test metrics of the student: its own backbone on the test split.
    const sOpened = await openBackbone(res.backboneDir, { ...cfg, engine: 'onnx' }, progress);
    let testEval: ReturnType<typeof evaluatePredictions>;
    let extractInfo: { computed: number; cached: number; seconds: number; imagesPerSecond: number; workers: number };
    try {
      const testItems = rec.samples.filter((s) => s.split === 'test').map((s) => ({ path: path.join(rec.dataset.root, s.rel), hash: s.hash, label: s.label }));
      const ex = await sOpened.extract(testItems, progress);
      const ok = testItems.filter((t) => ex.features.has(t.hash));
      const dim = sOpened.backbone.entry.featureSize;
      const x = new Float32Array(ok.length * dim);
      ok.forEach((t, i) => x.set(ex.features.get(t.hash)!, i * dim));
      const set = { x, y: Int32Array.from(ok.map((t) => rec.labels.indexOf(t.label))) };
      testEval = evaluatePredictions(rec.labels, set.y, evaluateSet(head, set, dim, rec.labels.length).probs, ok.map((t) => t.path));
      extractInfo = { computed: ex.computed, cached: ex.cached, seconds: ex.seconds, imagesPerSecond: ex.imagesPerSecond, workers: sOpened.workers };
    } finally {
      sOpened.dispose();
    }
    const resolved = await resolveOnnxBackbone(res.backboneDir);
    const e = resolved.entry;
    const record: RunRecord & { distilledFrom: { runDir: string; backbone: string; temperature: number; alpha: number; student: 'slim' } } = {
      ...rec,
      version: RUN_VERSION,
      createdAt: new Date().toISOString(),
      config: { ...rec.config, backbone: e.id, unfreeze: 0, augment: undefined },
      engine: 'onnxruntime',
      backbone: { id: e.id, title: e.title, format: 'onnx', inputSize: e.inputSize, inputRange: e.inputRange, featureNode: e.featureNode, pool: false, featureSize: e.featureSize, licence: e.licence, source: `${e.source}; slimmed by Headstart for this task`, modelHash: resolved.modelHash, dir: 'backbone' },
      history: [],
      bestEpoch: 0,
      stoppedEarly: false,
      test: testEval,
      unfreeze: undefined,
      augmentation: undefined,
      timings: { ...rec.timings, extracted: extractInfo.computed, cached: extractInfo.cached, extractSeconds: extractInfo.seconds, imagesPerSecond: extractInfo.imagesPerSecond, workers: extractInfo.workers },
      distilledFrom: { runDir: teacher.dir, backbone: rec.backbone.id, temperature, alpha, student: 'slim' },
    };
    throwIfAborted(progress.signal);
    progress.onEvent?.({ type: 'phase', phase: 'evaluate', message: 'measuring teacher and student in ONNX Runtime (2 threads, alternating)' });
    const teacherFile = path.join(work, 'teacher.onnx');
    const studentFile = path.join(work, 'student.onnx');
    await fs.writeFile(teacherFile, await runAsOnnx(teacher, work));
    await fs.writeFile(studentFile, res.modelBytes);
    const speed = await compareOnnxSpeed(teacherFile, studentFile, res.images.slice(0, 8), rec.backbone.inputSize, { threads: 2, repetitions: 3 }, progress);
    const tBytes = (await fs.stat(teacherFile)).size;
    const sBytes = res.modelBytes.length;
    await writeOutDir(out, guard, async (tmp) => {
      await fs.cp(res.backboneDir!, path.join(tmp, 'backbone'), { recursive: true });
      await writeRunFiles(tmp, { ...record, slimming: res.report }, head!);
    });
    return {
      runDir: out,
      temperature,
      alpha,
      teacher: { backbone: rec.backbone.id, runDir: teacher.dir, bytes: tBytes, accuracy: rec.test.accuracy, msPerImage: speed.base.batch1Ms },
      student: { backbone: e.id, runDir: out, bytes: sBytes, accuracy: testEval.accuracy, msPerImage: speed.other.batch1Ms },
      measuredIn: `float32 ONNX models (backbone + head) in ONNX Runtime, ${speed.threads} threads, batch 1, alternating in this process`,
      ratios: { size: tBytes / sBytes, speed: speed.batch1Speedup, speedCpuBatch32: speed.batch32CpuSpeedup },
      slimming: res.report,
    };
  } finally {
    head?.dispose();
    await fs.rm(work, { recursive: true, force: true });
  }
}
