/**
 * `headstart`: the command line over the engine (src/core). It runs the
 * engine in-process. Results go to stdout (JSON with --json), progress to
 * stderr; bad input exits 1 with a one-line reason; Ctrl-C exits 130 and
 * leaves no half-written folder.
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  type BackendPreference,
  CATALOGUE,
  CancelledError,
  DEFAULT_BACKBONE,
  type EngineChoice,
  type EngineEvent,
  type EngineOptions,
  HeadstartError,
  QUANTIZE_CHOICES,
  type Quantize,
  cleanupPendingDirs,
  defaultCacheDir,
  distillRun,
  describeError,
  evalRun,
  exportRun,
  formatAccuracy,
  type HeadChoice,
  isCached,
  isCancelled,
  makeSampleDataset,
  parseAugmentSpec,
  predictFiles,
  trainRun,
} from './core';

const VERSION = '0.1.0';

const USAGE = `headstart ${VERSION}: transfer learning on a folder of images

Usage:
  headstart train DATA [--backbone ID] [--head auto|linear|mlp] [--epochs N] [--batch N] [--lr X]
                  [--hidden N] [--l2 X] [--dropout X] [--val F] [--test F] [--seed N] [--unfreeze N]
                  [--augment K] [--aug flip,crop=0.15,rotate=10,brightness=0.2,contrast=0.2]
                  [--workers N] [--engine auto|onnx|tfjs] [--out RUN_DIR] [--force]
  headstart eval RUN_DIR [DATA]          metrics on the test split or on DATA
  headstart predict MODEL_DIR FILE...    one JSON line per file (MODEL_DIR: export or run)
  headstart export RUN_DIR --out DIR [--quantize none|float16|uint16|uint8|auto] [--prune SPARSITY]
                  [--max-drop POINTS] [--format tfjs] [--force]
  headstart distill RUN_DIR [--student ID] [--out RUN_DIR] [--temperature T] [--alpha A]
                                         a compact student trained on the teacher's soft outputs
  headstart backbones                    the catalogue and what is cached
  headstart sample DIR [--per-class N] [--classes N] [--seed N]
                                         write a small generated image dataset

DATA is a folder with one sub-folder per class, or a CSV / JSONL manifest (path,label).
train --head auto (default) picks the head by 5-fold cross-validation on the non-test
images (a single 20% validation split above 2000 images): linear (L2 1e-4 / 1e-2) or one
hidden layer (L2 1e-4), epochs by early stopping; --hidden, --l2 and --epochs fix their part.
export --quantize auto keeps the smallest variant whose top-1 predictions differ from
float32's on at most --max-drop percent (default 1) of the run's validation images
(its training images when it has none), never the test split: that bounds the accuracy
drop on those images by --max-drop points. The test accuracy is measured afterwards.
Every command takes --json (result on stdout, progress on stderr), --cache DIR
(default: HEADSTART_CACHE_DIR or ${defaultCacheDir()}), --engine auto|onnx|tfjs
(what runs the frozen backbone), --backend auto|tensorflow|wasm|cpu, --workers N and --quiet.`;

const common = {
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  cache: { type: 'string' },
  backend: { type: 'string' },
  workers: { type: 'string' },
  engine: { type: 'string' },
  force: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function bad(msg: string): never {
  throw new HeadstartError('BAD_INPUT', msg);
}

function num(v: string | undefined, name: string, int = false): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n))) bad(`--${name} expects ${int ? 'a whole number' : 'a number'} (got '${v}')`);
  return n;
}

/** Progress on stderr: a redrawn bar on a terminal, plain lines otherwise. */
class Reporter {
  private readonly tty = !!process.stderr.isTTY;
  private lastLine = 0;
  private barShown = false;
  constructor(private readonly quiet: boolean) {}

  private clear(): void {
    if (this.barShown) {
      process.stderr.write('\r\x1b[K');
      this.barShown = false;
    }
  }

  line(text: string): void {
    if (this.quiet) return;
    this.clear();
    process.stderr.write(`${text}\n`);
  }

  private bar(label: string, done: number, total: number, extra: string): void {
    if (this.quiet) return;
    if (!this.tty) {
      const now = Date.now();
      if (now - this.lastLine < 2000 && done < total) return;
      this.lastLine = now;
      process.stderr.write(`${label} ${done}/${total} ${extra}\n`);
      return;
    }
    const width = 28;
    const fill = total ? Math.round((done / total) * width) : 0;
    process.stderr.write(`\r\x1b[K${label} [${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ${done}/${total} ${extra}`);
    this.barShown = true;
  }

  onEvent = (e: EngineEvent): void => {
    switch (e.type) {
      case 'phase':
        this.line(`» ${e.message}`);
        return;
      case 'progress': {
        const eta = e.eta !== undefined && Number.isFinite(e.eta) ? ` ETA ${Math.ceil(e.eta)}s` : '';
        const rate = e.rate ? (e.unit === 'B' ? ` ${(e.rate / 1e6).toFixed(1)} MB/s` : ` ${e.rate.toFixed(1)} ${e.unit ?? ''}/s`) : '';
        const fmt = (n: number) => (e.unit === 'B' ? `${(n / 1e6).toFixed(1)}MB` : String(n));
        this.bar(e.phase, Number(fmt(e.done).replace('MB', '')) || e.done, e.total, `${e.unit === 'B' ? `${fmt(e.done)}/${fmt(e.total)}` : ''}${rate}${eta}`);
        return;
      }
      case 'batch':
        if (this.tty) this.bar(`epoch ${e.epoch}`, e.batch, e.batches, `loss ${e.loss.toFixed(3)} ETA ${Math.ceil(e.eta)}s`);
        return;
      case 'epoch': {
        const m = e.metrics;
        this.line(`  epoch ${m.epoch}/${e.totalEpochs}  loss ${m.loss.toFixed(4)}  acc ${(m.accuracy * 100).toFixed(1)}%  val_loss ${m.valLoss.toFixed(4)}  val_acc ${(m.valAccuracy * 100).toFixed(1)}%  ${m.seconds.toFixed(2)}s`);
        return;
      }
      case 'warning':
        this.line(`warning: ${e.message}`);
        return;
      case 'log':
        this.line(e.message);
        return;
      default: {
        const never: never = e;
        void never;
      }
    }
  };
}

function engineOptions(v: { cache?: string; backend?: string; workers?: string; engine?: string }): EngineOptions {
  if (v.engine !== undefined && !['auto', 'onnx', 'tfjs'].includes(v.engine)) bad(`--engine must be auto, onnx or tfjs (got '${v.engine}')`);
  const backends = ['auto', 'tensorflow', 'wasm', 'cpu'];
  if (v.backend !== undefined && !backends.includes(v.backend)) bad(`--backend must be one of ${backends.join(', ')} (got '${v.backend}')`);
  const workers = num(v.workers, 'workers', true);
  if (workers !== undefined && (workers < 1 || workers > 64)) bad('--workers must be from 1 to 64');
  return { cacheDir: v.cache ? path.resolve(v.cache) : undefined, backend: v.backend as BackendPreference | undefined, workers, engine: v.engine as EngineChoice | undefined };
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

function out(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

async function main(argv: string[], signal: AbortSignal): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return cmd ? 0 : 1;
  }
  if (cmd === '--version' || cmd === '-v') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const parse = <T extends Record<string, { type: 'string' | 'boolean'; short?: string }>>(options: T) => {
    try {
      return parseArgs({ args: rest, options: { ...common, ...options }, allowPositionals: true, strict: true });
    } catch (err) {
      return bad(`${describeError(err)} (see headstart --help)`);
    }
  };
  switch (cmd) {
    case 'train': {
      const { values: v, positionals } = parse({
        backbone: { type: 'string' }, epochs: { type: 'string' }, batch: { type: 'string' }, lr: { type: 'string' },
        hidden: { type: 'string' }, dropout: { type: 'string' }, head: { type: 'string' }, l2: { type: 'string' }, val: { type: 'string' }, test: { type: 'string' },
        seed: { type: 'string' }, unfreeze: { type: 'string' }, out: { type: 'string' }, augment: { type: 'string' }, aug: { type: 'string' },
        patience: { type: 'string' },
      });
      if (positionals.length !== 1) bad('train needs exactly one DATA folder or manifest');
      const rep = new Reporter(!!v.quiet);
      const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
      const res = await trainRun(
        {
          data: positionals[0]!,
          backbone: v.backbone,
          epochs: num(v.epochs, 'epochs', true),
          batchSize: num(v.batch, 'batch', true),
          learningRate: num(v.lr, 'lr'),
          hiddenUnits: num(v.hidden, 'hidden', true),
          head: v.head as HeadChoice | undefined,
          l2: num(v.l2, 'l2'),
          dropout: num(v.dropout, 'dropout'),
          val: num(v.val, 'val'),
          test: num(v.test, 'test'),
          seed: num(v.seed, 'seed', true),
          patience: num(v.patience, 'patience', true),
          unfreeze: num(v.unfreeze, 'unfreeze', true),
          augment: v.augment !== undefined || v.aug !== undefined ? (v.aug ? parseAugmentSpec(v.aug, num(v.augment, 'augment', true) ?? 2) : { views: num(v.augment, 'augment', true) ?? 2 }) : undefined,
          out: v.out ?? path.join('.headstart', 'runs', `${stamp}-${v.backbone ?? DEFAULT_BACKBONE}`.replace(/[^\w.-]/g, '_')),
          force: v.force,
          ...engineOptions(v),
        },
        { onEvent: rep.onEvent, signal },
      );
      out(!!v.json, res, () => {
        const lines = [
          `Test accuracy ${formatAccuracy(res.test.accuracy, res.test.interval)}, macro F1 ${res.test.macroF1.toFixed(3)}${res.selection ? `; cross-validated estimate ${pct(res.selection.meanAccuracy)} ± ${pct(res.selection.stdAccuracy)} (${res.selection.method === 'holdout' ? 'one validation split' : `${res.selection.folds} folds`})` : ''}.`,
          ...(res.test.warning ? [`Warning: ${res.test.warning}.`] : []),
          ...(res.selection ? [`Head: ${res.selection.chosen}, chosen among ${res.selection.configurations} by cross-validation: ${res.selection.reason}.`] : []),
          `Raw-pixel baseline ${formatAccuracy(res.baseline.accuracy, res.baseline.interval)}${res.baseline.cvAccuracy !== undefined ? `, cross-validated ${pct(res.baseline.cvAccuracy)}` : ''}: ${res.baseline.verdict}.`,
          ...(res.baseline.wins ? ['BASELINE WINS: the backbone\'s features did worse than raw pixels here; see the advice above before exporting.'] : []),
          `Trained ${res.epochs} epochs (best ${res.bestEpoch}) on ${res.backend}; features by ${res.engine}: ${res.timings.extracted} images extracted at ${res.timings.imagesPerSecond.toFixed(1)}/s, ${res.timings.cached} from cache; ${res.timings.totalSeconds.toFixed(1)} s in all.`,
          `Skipped ${res.dataset.skipped.length} files${res.dataset.skipped.length ? ` (${res.dataset.skipped.slice(0, 3).map((s) => `${path.basename(s.path)}: ${s.reason}`).join('; ')}${res.dataset.skipped.length > 3 ? '; …' : ''})` : ''}.`,
          `Run saved to ${res.runDir}`,
          `Next: headstart export ${path.relative(process.cwd(), res.runDir) || '.'} --out model`,
        ];
        return lines.join('\n');
      });
      return 0;
    }
    case 'eval': {
      const { values: v, positionals } = parse({});
      if (positionals.length < 1 || positionals.length > 2) bad('eval needs RUN_DIR and optionally DATA');
      const rep = new Reporter(!!v.quiet);
      const res = await evalRun(positionals[0]!, positionals[1], engineOptions(v), { onEvent: rep.onEvent, signal });
      out(!!v.json, res, () => [
        `Accuracy ${formatAccuracy(res.accuracy, res.interval)} (${res.source}); macro F1 ${res.macroF1.toFixed(3)}`,
        ...(res.warning ? [`Warning: ${res.warning}.`] : []),
        ...res.perClass.map((c) => `  ${c.label.padEnd(20)} precision ${c.precision.toFixed(3)}  recall ${c.recall.toFixed(3)}  F1 ${c.f1.toFixed(3)}  (${c.support})`),
        `Confusion (rows: true, columns: predicted): ${JSON.stringify(res.confusion)}`,
      ].join('\n'));
      return 0;
    }
    case 'predict': {
      const { values: v, positionals } = parse({});
      if (positionals.length < 2) bad('predict needs MODEL_DIR and at least one FILE');
      const rep = new Reporter(!!v.quiet);
      const lines = await predictFiles(positionals[0]!, positionals.slice(1), engineOptions(v), { onEvent: rep.onEvent, signal });
      for (const l of lines) process.stdout.write(`${JSON.stringify(l)}\n`);
      return lines.some((l) => 'error' in l) ? 1 : 0;
    }
    case 'export': {
      const { values: v, positionals } = parse({ out: { type: 'string' }, quantize: { type: 'string' }, prune: { type: 'string' }, 'max-drop': { type: 'string' }, format: { type: 'string' } });
      if (positionals.length !== 1) bad('export needs exactly one RUN_DIR');
      if (!v.out) bad('export needs --out DIR (the export folder to create)');
      if (v.quantize && !(QUANTIZE_CHOICES as readonly string[]).includes(v.quantize)) bad(`--quantize must be one of ${QUANTIZE_CHOICES.join(', ')} (got '${v.quantize}')`);
      if (v.format && !['tfjs', 'onnx'].includes(v.format)) bad(`--format must be tfjs or onnx (got '${v.format}')`);
      const rep = new Reporter(!!v.quiet);
      const res = await exportRun(
        positionals[0]!,
        { out: v.out, quantize: v.quantize as Quantize | undefined, prune: num(v.prune, 'prune'), maxDrop: num(v['max-drop'], 'max-drop'), format: v.format as 'tfjs' | undefined, force: v.force, ...engineOptions(v) },
        { onEvent: rep.onEvent, signal },
      );
      out(!!v.json, res, () => {
        const mbs = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
        const lines = [
          `Exported ${res.modelFormat} (${res.chosen}) to ${res.outDir}: ${mbs(res.exported.bytes)} (${mbs(res.exported.gzipBytes)} gzipped), test accuracy ${formatAccuracy(res.exported.accuracy, res.exported.interval)}, ${res.exported.msPerImage.toFixed(1)} ms/image.`,
          `float32 for comparison: ${mbs(res.float32.bytes)} (${mbs(res.float32.gzipBytes)} gzipped), ${pct(res.float32.accuracy)}; the export is ${((res.exported.bytes / res.float32.bytes) * 100).toFixed(0)}% of its size.`,
        ];
        if (res.quantize === 'auto') {
          lines.push(`Chosen on ${res.choice.images} ${res.choice.split} images (never the test split): agreement with float32's predictions, accuracy with its 95% interval:`);
          lines.push(...res.candidates.map((c) => `  ${c.name.padEnd(20)} ${mbs(c.bytes).padStart(9)} ${mbs(c.gzipBytes).padStart(9)} gz  agrees ${pct(c.agreement)}  ${formatAccuracy(c.accuracy, c.accuracyInterval)}  ${c.dropPoints >= 0 ? '-' : '+'}${Math.abs(c.dropPoints).toFixed(1)} pts${c.name === res.chosen ? '  ← chosen' : ''}`));
        }
        lines.push(`Try: node ${path.join(path.relative(process.cwd(), res.outDir), 'inference.mjs')} IMAGE`);
        return lines.join('\n');
      });
      return 0;
    }
    case 'backbones': {
      const { values: v } = parse({});
      const cacheDir = engineOptions(v).cacheDir ?? defaultCacheDir();
      const list = await Promise.all(CATALOGUE.map(async (e) => ({ id: e.id, title: e.title, format: e.format, featureSize: e.featureSize, inputSize: e.inputSize, bundled: e.bundled, cached: await isCached(e, cacheDir), approxBytes: e.approxBytes, licence: e.licence, default: e.id === DEFAULT_BACKBONE })));
      out(!!v.json, list, () => list.map((e) => `${e.id.padEnd(22)} ${e.format.padEnd(6)} ${String(e.featureSize).padStart(4)}-d  ${e.bundled ? 'bundled' : e.cached ? 'cached ' : 'remote '} ${(e.approxBytes / 1e6).toFixed(1).padStart(5)} MB  ${e.title}${e.default ? '  (default)' : ''}`).join('\n'));
      return 0;
    }
    case 'sample': {
      const { values: v, positionals } = parse({ 'per-class': { type: 'string' }, classes: { type: 'string' }, seed: { type: 'string' } });
      if (positionals.length !== 1) bad('sample needs one DIR to write');
      const files = await makeSampleDataset(positionals[0]!, { perClass: num(v['per-class'], 'per-class', true), classes: num(v.classes, 'classes', true), seed: num(v.seed, 'seed', true) });
      out(!!v.json, { dir: path.resolve(positionals[0]!), classes: Object.fromEntries(Object.entries(files).map(([k, f]) => [k, f.length])) }, () => `Wrote ${Object.values(files).flat().length} images in ${Object.keys(files).length} class folders under ${positionals[0]}`);
      return 0;
    }
    case 'distill': {
      const { values: v, positionals } = parse({ student: { type: 'string' }, out: { type: 'string' }, temperature: { type: 'string' }, alpha: { type: 'string' } });
      if (positionals.length !== 1) bad('distill needs exactly one RUN_DIR (the teacher)');
      const rep = new Reporter(!!v.quiet);
      const res = await distillRun({ runDir: positionals[0]!, student: v.student, out: v.out, temperature: num(v.temperature, 'temperature'), alpha: num(v.alpha, 'alpha'), force: v.force, ...engineOptions(v) }, { onEvent: rep.onEvent, signal });
      out(!!v.json, res, () => {
        const row = (name: string, m: typeof res.teacher) => `  ${name.padEnd(8)} ${m.backbone.padEnd(20)} ${(m.bytes / 1e6).toFixed(2).padStart(7)} MB  ${pct(m.accuracy).padStart(6)}  ${m.msPerImage.toFixed(1).padStart(6)} ms/image`;
        return [`Distilled (T=${res.temperature}, alpha=${res.alpha}) into ${res.runDir}`, row('teacher', res.teacher), row('student', res.student), `Next: headstart export ${path.relative(process.cwd(), res.runDir) || '.'} --out model --quantize auto`].join('\n');
      });
      return 0;
    }
    default:
      return bad(`unknown command '${cmd}' (see headstart --help)`);
  }
}

export function runCli(argv: string[]): void {
  const controller = new AbortController();
  let interrupted = 0;
  const onSigint = (): void => {
    interrupted++;
    if (interrupted === 1) {
      process.stderr.write('\nheadstart: cancelling (Ctrl-C again to quit at once)\n');
      controller.abort();
    } else {
      cleanupPendingDirs();
      process.exit(130);
    }
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  main(argv, controller.signal).then(
    (code) => {
      process.exitCode = code;
      // The wasm backend and worker threads can hold the loop open; we are done.
      setImmediate(() => process.exit(code));
    },
    (err: unknown) => {
      if (isCancelled(err) || err instanceof CancelledError) {
        process.stderr.write('headstart: cancelled; nothing was written\n');
        cleanupPendingDirs();
        process.exit(130);
      }
      if (err instanceof HeadstartError) process.stderr.write(`headstart: ${err.message}\n`);
      else {
        process.stderr.write(`headstart: internal error: ${describeError(err)}\n`);
        if (process.env.HEADSTART_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
      }
      cleanupPendingDirs();
      process.exit(err instanceof HeadstartError ? 1 : 2);
    },
  );
}

if (require.main === module) runCli(process.argv.slice(2));
