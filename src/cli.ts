/**
 * `headstart`: the command line over the engine (src/core). It runs the
 * engine in-process. Results go to stdout (JSON with --json), progress to
 * stderr; bad input exits 1 with a one-line reason; Ctrl-C exits 130 and
 * leaves no half-written folder.
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  type OnnxInputFlags,
  isForeignOnnx,
  parseInputFlagText,
  type BackendPreference,
  CATALOGUE,
  CancelledError,
  DEFAULT_BACKBONE,
  type EngineChoice,
  type EngineEvent,
  type EngineOptions,
  HeadstartError,
  BACKEND_CHOICES,
  ENGINE_CHOICES,
  FORMAT_CHOICES,
  QUANTIZE_CHOICES,
  VERSION,
  runStamp,
  NUMERIC_OPTIONS,
  type NumericOptionName,
  type Quantize,
  checkSplit,
  cleanupPendingDirs,
  closeAllThreads,
  defaultCacheDir,
  distillRun,
  describeError,
  evalRun,
  exportRun,
  int8Summary,
  formatAccuracy,
  type HeadChoice,
  isCached,
  isCancelled,
  makeSampleDataset,
  parseAugmentSpec,
  parseOption,
  parseSlim,
  slimTable,
  predictFiles,
  trainRun,
  type TextExportReport,
  isTextModel,
  makeTextSample,
  predictTexts,
  readTextInputs,
} from './core';
import { type QueueOptions, parseQueueUrl, startWorker } from './core/queue';
import { gridUsage, parseGrid, promoteTrial, runSweep } from './core/queue/sweep';

const USAGE = `headstart ${VERSION}: transfer learning on a folder of images or texts

Usage:
  headstart train DATA [--backbone ID|model.onnx|URL] [--head auto|linear|mlp] [--epochs N] [--batch N] [--lr X]
                  [--hidden N] [--l2 X] [--dropout X] [--patience N] [--val F] [--test F] [--seed N] [--unfreeze N]
                  [--augment K] [--aug flip,crop=0.15,rotate=10,brightness=0.2,contrast=0.2]
                  [--workers N] [--engine auto|onnx|tfjs] [--out RUN_DIR] [--force]
                  [--queue redis://HOST:PORT [--shard N] [--queue-timeout S]]
                  [--modality text|image] [--text-column NAME] [--label-column NAME]
                  ONNX backbone: [--input-size N] [--layout NCHW|NHWC] [--channel-order RGB|BGR]
                  [--range 0-1|0-255|-1-1] [--mean A,B,C] [--std A,B,C] [--output NAME] [--pooling avg|max]
  headstart eval RUN_DIR [DATA]          metrics on the test split or on DATA
  headstart predict MODEL_DIR FILE...    one JSON line per file (MODEL_DIR: export or run)
  headstart predict MODEL_DIR --text "…" [--text "…"] | FILE.txt… | -   (text models; - reads stdin, one text a line)
  headstart export RUN_DIR --out DIR [--quantize none|float16|uint16|uint8|int8|auto] [--prune SPARSITY]
                  [--max-drop POINTS] [--format tfjs|onnx] [--slim auto|FRACTION] [--force]
                                         int8: ONNX only, static QDQ calibrated on training images
                                         --slim: removes backbone channels this task does not use (ONNX and TF.js)
                                         --prune S: zeros the smallest S of each backbone conv / dense kernel and of the head (gzip shrinks)
  headstart distill RUN_DIR [--student slim|ID] [--slim auto|FRACTION] [--max-drop POINTS] [--out RUN_DIR] [--temperature T] [--alpha A]
                                         a compact student trained on the teacher's soft outputs; default --student slim
                                         (the teacher's backbone slimmed within --max-drop, default 5), else mobilenet-v2-100 with a warning
  headstart worker --queue redis://HOST:PORT --data-root DIR [--data-root DIR…] [--concurrency N]
                  [--lock-seconds S]     take extraction and sweep-trial jobs from the queue (see README "Many machines")
  headstart sweep DATA --grid "hidden=0,128;lr=0.001,0.01;augment=0,2" [--out DIR] [--force]
                  [--backbone ID] [--epochs N] [--batch N] [--dropout X] [--patience N] [--val F] [--test F] [--seed N]
                  [--queue redis://HOST:PORT [--shard N] [--queue-timeout S]]
                                         train every combination and write a leaderboard (--queue: on the workers)
  headstart promote SWEEP_DIR [--rank N] --out RUN_DIR [--force]
                                         copy a trial (default: the best) out of a sweep as an ordinary run
  headstart backbones                    the catalogue and what is cached
  headstart sample DIR [--per-class N] [--classes N] [--seed N] [--text]
                                         write a small generated image (or --text: support-ticket) dataset

DATA is a folder with one sub-folder per class, or a CSV / JSONL manifest (path,label).
Text: class folders of .txt files (one example each), or a CSV / JSONL with a text column
(text, sentence, content, body…) and a label column (label, class, category, intent…); the data
decides the modality, --modality forces it. Text backbones: glove-100d-avg (bundled, default),
minilm-l6-v2 (downloaded on first use), or a folder with model.onnx + tokenizer.json.
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

/** A numeric flag, parsed and range-checked by the shared option table (src/core/options.ts). */
function num(v: string | undefined, name: NumericOptionName): number | undefined {
  return parseOption(name, v);
}

/**
 * Joins `--flag -5` into `--flag=-5` for flags that take a value, so that a
 * negative number is read as the flag's value (and then range-checked) rather
 * than as an unknown option ("argument is ambiguous").
 */
function joinNegativeValues(args: string[], options: Record<string, { type: 'string' | 'boolean' }>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = args[i + 1];
    if (a === '--') {
      out.push(...args.slice(i));
      break;
    }
    if (a.startsWith('--') && !a.includes('=') && options[a.slice(2)]?.type === 'string' && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
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

/** --queue, --shard, --queue-timeout: undefined without --queue; the URL is checked here, before any work. */
function queueOptions(v: { queue?: string; shard?: string; 'queue-timeout'?: string }): QueueOptions | undefined {
  if (v.queue === undefined) {
    if (v.shard !== undefined || v['queue-timeout'] !== undefined) bad('--shard and --queue-timeout need --queue URL');
    return undefined;
  }
  parseQueueUrl(v.queue);
  const shardSize = num(v.shard, 'shard');
  const timeoutSeconds = num(v['queue-timeout'], 'queue-timeout');
  return { url: v.queue, shardSize, timeoutSeconds };
}

const queueFlags = { queue: { type: 'string' }, shard: { type: 'string' }, 'queue-timeout': { type: 'string' } } as const;

/** Whether a flag's text is one of a choice list (src/shared/options.ts). */
function isChoice<T extends string>(list: readonly T[], v: string): v is T {
  return (list as readonly string[]).includes(v);
}

function engineOptions(v: { cache?: string; backend?: string; workers?: string; engine?: string }): EngineOptions {
  if (v.engine !== undefined && !isChoice(ENGINE_CHOICES, v.engine)) bad(`--engine must be auto, onnx or tfjs (got '${v.engine}')`);
  if (v.backend !== undefined && !isChoice(BACKEND_CHOICES, v.backend)) bad(`--backend must be one of ${BACKEND_CHOICES.join(', ')} (got '${v.backend}')`);
  if (v.cache !== undefined && !v.cache.trim()) bad('--cache needs a folder (got an empty value)');
  const workers = num(v.workers, 'workers');
  return { cacheDir: v.cache ? path.resolve(v.cache) : undefined, backend: v.backend as BackendPreference | undefined, workers, engine: v.engine as EngineChoice | undefined };
}

/** Preprocessing flags of a foreign ONNX backbone (train). */
const onnxInputFlags = {
  'input-size': { type: 'string' }, layout: { type: 'string' }, 'channel-order': { type: 'string' }, range: { type: 'string' },
  mean: { type: 'string' }, std: { type: 'string' }, output: { type: 'string' }, pooling: { type: 'string' },
} as const;

function onnxInputOptions(v: { 'input-size'?: string; layout?: string; 'channel-order'?: string; range?: string; mean?: string; std?: string; output?: string; pooling?: string }): OnnxInputFlags | undefined {
  return parseInputFlagText({ inputSize: num(v['input-size'], 'input-size'), layout: v.layout, channelOrder: v['channel-order'], range: v.range, mean: v.mean, std: v.std, output: v.output, pooling: v.pooling });
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

function out(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

/** Parses a command's flags (the common ones too) with node's parseArgs; a bad flag is a one-line error. */
function parser(args: string[]) {
  return <T extends Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>>(options: T) => {
    try {
      const all = { ...common, ...options };
      return parseArgs({ args: joinNegativeValues(args, all), options: all, allowPositionals: true, strict: true });
    } catch (err) {
      return bad(`${describeError(err)} (see headstart --help)`);
    }
  };
}

/** `headstart train`. */
async function cmdTrain(args: string[], signal: AbortSignal): Promise<number> {
  const parse = parser(args);
    const { values: v, positionals } = parse({
      backbone: { type: 'string' }, epochs: { type: 'string' }, batch: { type: 'string' }, lr: { type: 'string' },
      hidden: { type: 'string' }, dropout: { type: 'string' }, head: { type: 'string' }, l2: { type: 'string' }, val: { type: 'string' }, test: { type: 'string' },
      seed: { type: 'string' }, unfreeze: { type: 'string' }, out: { type: 'string' }, augment: { type: 'string' }, aug: { type: 'string' },
      patience: { type: 'string' }, ...queueFlags, ...onnxInputFlags, modality: { type: 'string' }, 'text-column': { type: 'string' }, 'label-column': { type: 'string' },
    });
    if (positionals.length !== 1) bad('train needs exactly one DATA folder or manifest');
    if (v.modality !== undefined && v.modality !== 'text' && v.modality !== 'image') bad(`--modality must be text or image (got '${v.modality}')`);
    if (v.backbone !== undefined && !v.backbone.trim()) bad('--backbone needs a catalogue id, a path to a model.json or a .onnx file, or a URL (got an empty value)');
    const onnxInput = onnxInputOptions(v);
    if (onnxInput && !isForeignOnnx(v.backbone ?? DEFAULT_BACKBONE)) bad(`--input-size, --layout, --channel-order, --range, --mean, --std, --output and --pooling apply to an ONNX backbone (--backbone model.onnx or a URL), not to ${v.backbone ?? DEFAULT_BACKBONE}`);
    const val = num(v.val, 'val');
    const test = num(v.test, 'test');
    checkSplit(val, test);
    const views = num(v.augment, 'augment');
    const queue = queueOptions(v);
    const rep = new Reporter(!!v.quiet);
    const stamp = runStamp();
    const res = await trainRun(
      {
        data: positionals[0]!,
        backbone: v.backbone,
        epochs: num(v.epochs, 'epochs'),
        batchSize: num(v.batch, 'batch'),
        learningRate: num(v.lr, 'lr'),
        hiddenUnits: num(v.hidden, 'hidden'),
        head: v.head as HeadChoice | undefined,
        l2: num(v.l2, 'l2'),
        dropout: num(v.dropout, 'dropout'),
        val,
        test,
        seed: num(v.seed, 'seed'),
        patience: num(v.patience, 'patience'),
        unfreeze: num(v.unfreeze, 'unfreeze'),
        augment: v.aug !== undefined ? parseAugmentSpec(v.aug, views ?? NUMERIC_OPTIONS.augment.default) : views !== undefined ? { views } : undefined,
        out: v.out ?? path.join('.headstart', 'runs', `${stamp}-${v.backbone ?? DEFAULT_BACKBONE}`.replace(/[^\w.-]/g, '_')),
        force: v.force,
        queue,
        modality: v.modality as 'text' | 'image' | undefined,
        textColumn: v['text-column'],
        labelColumn: v['label-column'],
        ...engineOptions(v),
        ...(onnxInput ? { onnxInput } : {}),
      },
      { onEvent: rep.onEvent, signal },
    );
    const text = res.modality === 'text';
    out(!!v.json, res, () => {
      const lines = [
        `Test accuracy ${formatAccuracy(res.test.accuracy, res.test.interval)}, macro F1 ${res.test.macroF1.toFixed(3)}${res.selection ? `; cross-validated estimate ${pct(res.selection.meanAccuracy)} ± ${pct(res.selection.stdAccuracy)} (${res.selection.method === 'holdout' ? 'one validation split' : `${res.selection.folds} folds`})` : ''}.`,
        ...(res.test.warning ? [`Warning: ${res.test.warning}.`] : []),
        ...(res.selection ? [`Head: ${res.selection.chosen}, chosen among ${res.selection.configurations} by cross-validation: ${res.selection.reason}.`] : []),
        `${text ? 'TF-IDF' : 'Raw-pixel'} baseline ${formatAccuracy(res.baseline.accuracy, res.baseline.interval)}${res.baseline.cvAccuracy !== undefined ? `, cross-validated ${pct(res.baseline.cvAccuracy)}` : ''}: ${res.baseline.verdict}.`,
        ...(res.baseline.wins ? [`BASELINE WINS: the backbone's features did worse than ${text ? 'TF-IDF words' : 'raw pixels'} here; see the advice above before exporting.`] : []),
        ...(res.coverage ? [`Vocabulary coverage ${pct(res.coverage.tokens)} of the words${res.coverage.emptyTexts ? `; ${res.coverage.emptyTexts} texts have no known word` : ''}.`] : []),
        `Trained ${res.epochs} epochs (best ${res.bestEpoch}) on ${res.backend}; features by ${res.engine}: ${res.timings.extracted} ${text ? 'texts embedded' : 'images extracted'} at ${res.timings.imagesPerSecond.toFixed(1)}/s, ${res.timings.cached} from cache; ${res.timings.totalSeconds.toFixed(1)} s in all.`,
        `Skipped ${res.dataset.skipped.length} files${res.dataset.skipped.length ? ` (${res.dataset.skipped.slice(0, 3).map((s) => `${path.basename(s.path)}: ${s.reason}`).join('; ')}${res.dataset.skipped.length > 3 ? '; …' : ''})` : ''}.`,
        `Run saved to ${res.runDir}`,
        `Next: headstart export ${path.relative(process.cwd(), res.runDir) || '.'} --out model`,
      ];
      return lines.join('\n');
    });
    return 0;
  
}

/** `headstart eval`. */
async function cmdEval(args: string[], signal: AbortSignal): Promise<number> {
  const parse = parser(args);
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

/** `headstart predict`. */
async function cmdPredict(args: string[], signal: AbortSignal): Promise<number> {
  const parse = parser(args);
    const { values: v, positionals } = parse({ text: { type: 'string', multiple: true } });
    const given = ([] as string[]).concat(v.text ?? []);
    if (positionals.length < 1 || (positionals.length < 2 && !given.length)) bad('predict needs MODEL_DIR and at least one FILE (text models: --text "…" or - for stdin)');
    const rep = new Reporter(!!v.quiet);
    if (given.length || positionals.includes('-') || (await isTextModel(positionals[0]!))) {
      const files = positionals.slice(1).filter((f) => f !== '-');
      const stdin = positionals.includes('-') ? await readStdinLines() : [];
      const inputs = [...given.map((text) => ({ text })), ...stdin.map((text) => ({ text })), ...(await readTextInputs(files))];
      const lines = await predictTexts(positionals[0]!, inputs, engineOptions(v), { onEvent: rep.onEvent, signal });
      for (const l of lines) process.stdout.write(`${JSON.stringify(l)}\n`);
      return lines.some((l) => 'error' in l) ? 1 : 0;
    }
    const lines = await predictFiles(positionals[0]!, positionals.slice(1), engineOptions(v), { onEvent: rep.onEvent, signal });
    for (const l of lines) process.stdout.write(`${JSON.stringify(l)}\n`);
    return lines.some((l) => 'error' in l) ? 1 : 0;
  
}

/** `headstart export`. */
async function cmdExport(args: string[], signal: AbortSignal): Promise<number> {
  const parse = parser(args);
    const { values: v, positionals } = parse({ out: { type: 'string' }, quantize: { type: 'string' }, prune: { type: 'string' }, 'max-drop': { type: 'string' }, format: { type: 'string' }, slim: { type: 'string' } });
    if (positionals.length !== 1) bad('export needs exactly one RUN_DIR');
    if (!v.out) bad('export needs --out DIR (the export folder to create)');
    if (v.quantize && !isChoice(QUANTIZE_CHOICES, v.quantize)) bad(`--quantize must be one of ${QUANTIZE_CHOICES.join(', ')} (got '${v.quantize}')`);
    if (v.format && !isChoice(FORMAT_CHOICES, v.format)) bad(`--format must be tfjs or onnx (got '${v.format}')`);
    const rep = new Reporter(!!v.quiet);
    const res = await exportRun(
      positionals[0]!,
      { out: v.out, quantize: v.quantize as Quantize | undefined, prune: num(v.prune, 'prune'), maxDrop: num(v['max-drop'], 'max-drop'), format: v.format as 'tfjs' | undefined, slim: v.slim === undefined ? undefined : parseSlim(v.slim), force: v.force, ...engineOptions(v) },
      { onEvent: rep.onEvent, signal },
    );
    if ('modality' in res && res.modality === 'text') {
      const t = res as TextExportReport;
      out(!!v.json, t, () => [
        `Exported a ${t.modelFormat} text model (${t.backbone}, head ${t.chosen}) to ${t.outDir}: ${(t.exported.bytes / 1e6).toFixed(2)} MB (${(t.exported.gzipBytes / 1e6).toFixed(2)} MB gzipped), test accuracy ${formatAccuracy(t.exported.accuracy, t.exported.interval)} on ${t.testTexts} texts, ${t.msPerText.toFixed(2)} ms/text.`,
        `float32 for comparison: ${(t.float32.bytes / 1e6).toFixed(2)} MB (${(t.float32.gzipBytes / 1e6).toFixed(2)} MB gzipped), ${formatAccuracy(t.float32.accuracy, t.float32.interval)}, ${t.float32.msPerImage.toFixed(2)} ms/text; the head alone ${t.head.float32.bytes} → ${t.head.exported.bytes} B, the vocabulary or encoder unchanged (${(t.precision as Record<string, string>).vocabulary}).`,
        ...t.candidates.map((c) => `  tried ${c.name.padEnd(9)} ${c.bytes} B, agreement with float32 ${(c.agreement * 100).toFixed(1)}% on ${t.choice.images} ${t.choice.split} texts${c.withinBudget ? '' : ' (over --max-drop)'}`),
        ...t.files.map((f) => `  ${f.path.padEnd(28)} ${f.bytes} B`),
        `Try: node ${path.join(path.relative(process.cwd(), t.outDir), 'inference.mjs')} "some text"`,
      ].join('\n'));
      return 0;
    }
    out(!!v.json, res, () => {
      const mbs = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
      const lines = [
        `Exported ${res.modelFormat} (${res.chosen}) to ${res.outDir}: ${mbs(res.exported.bytes)} (${mbs(res.exported.gzipBytes)} gzipped), test accuracy ${formatAccuracy(res.exported.accuracy, res.exported.interval)}, ${res.exported.msPerImage.toFixed(1)} ms/image.`,
        `float32 for comparison: ${mbs(res.float32.bytes)} (${mbs(res.float32.gzipBytes)} gzipped), ${pct(res.float32.accuracy)}; the export is ${((res.exported.bytes / res.float32.bytes) * 100).toFixed(0)}% of its size.`,
      ];
      if (res.slimming) lines.push(...slimTable(res.slimming));
      if (res.quantization) lines.push(int8Summary(res.quantization));
      if (res.candidates.length > 1) lines.push('Candidates tried:', ...res.candidates.map((c) => `  ${c.name.padEnd(20)} ${mbs(c.bytes).padStart(9)} ${mbs(c.gzipBytes).padStart(9)} gz  ${pct(c.accuracy)}  ${c.dropPoints >= 0 ? '-' : '+'}${Math.abs(c.dropPoints).toFixed(1)} pts${c.name === res.chosen ? '  ← chosen' : ''}`));
      if (res.quantize === 'auto') {
        lines.push(`Chosen on ${res.choice.images} ${res.choice.split} images (never the test split): agreement with float32's predictions, accuracy with its 95% interval:`);
        lines.push(...res.candidates.map((c) => `  ${c.name.padEnd(20)} ${mbs(c.bytes).padStart(9)} ${mbs(c.gzipBytes).padStart(9)} gz  agrees ${pct(c.agreement)}  ${formatAccuracy(c.accuracy, c.accuracyInterval)}  ${c.dropPoints >= 0 ? '-' : '+'}${Math.abs(c.dropPoints).toFixed(1)} pts${c.name === res.chosen ? '  ← chosen' : ''}`));
      }
      lines.push(`Try: node ${path.join(path.relative(process.cwd(), res.outDir), 'inference.mjs')} IMAGE`);
      return lines.join('\n');
    });
    return 0;
  
}

/** `headstart worker`. */
async function cmdWorker(args: string[], signal: AbortSignal): Promise<number> {
  const parse = parser(args);
    const { values: v, positionals } = parse({ queue: { type: 'string' }, 'data-root': { type: 'string', multiple: true }, concurrency: { type: 'string' }, 'lock-seconds': { type: 'string' } });
    if (positionals.length) bad('worker takes no positional arguments (see headstart --help)');
    if (!v.queue) bad('worker needs --queue redis://HOST:PORT');
    const rep = new Reporter(!!v.quiet);
    const worker = await startWorker(
      { queue: v.queue, dataRoots: ([] as string[]).concat(v['data-root'] ?? []), concurrency: num(v.concurrency, 'concurrency'), lockSeconds: num(v['lock-seconds'], 'lock-seconds'), ...engineOptions(v) },
      rep.onEvent,
    );
    // Ctrl-C / SIGTERM: finish the jobs in hand (a second signal exits at once; the queue then hands the job on after its lock expires).
    await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
    rep.line(`worker ${worker.id}: stopping after the current job`);
    await worker.close();
    rep.line(`worker ${worker.id}: stopped`);
    return 0;
  
}

/** `headstart sweep`. */
async function cmdSweep(args: string[], signal: AbortSignal): Promise<number> {
  const parse = parser(args);
    const { values: v, positionals } = parse({
      grid: { type: 'string' }, out: { type: 'string' }, backbone: { type: 'string' }, epochs: { type: 'string' }, batch: { type: 'string' },
      val: { type: 'string' }, test: { type: 'string' }, seed: { type: 'string' }, patience: { type: 'string' }, dropout: { type: 'string' }, ...queueFlags,
    });
    if (positionals.length !== 1) bad('sweep needs exactly one DATA folder or manifest');
    if (!v.grid) bad(`sweep needs --grid, e.g. --grid "${gridUsage}"`);
    const rep = new Reporter(!!v.quiet);
    const res = await runSweep(
      {
        grid: parseGrid(v.grid),
        out: v.out ?? path.join('.headstart', 'sweeps', runStamp()),
        force: v.force,
        base: {
          data: positionals[0]!, backbone: v.backbone, epochs: num(v.epochs, 'epochs'), batchSize: num(v.batch, 'batch'), val: num(v.val, 'val'), test: num(v.test, 'test'),
          seed: num(v.seed, 'seed'), patience: num(v.patience, 'patience'), dropout: num(v.dropout, 'dropout'), queue: queueOptions(v), ...engineOptions(v),
        },
      },
      { onEvent: rep.onEvent, signal },
    );
    out(!!v.json, res, () => res.table);
    return 0;
  
}

/** `headstart promote`. */
async function cmdPromote(args: string[], _signal: AbortSignal): Promise<number> {
  const parse = parser(args);
    const { values: v, positionals } = parse({ rank: { type: 'string' }, out: { type: 'string' } });
    if (positionals.length !== 1) bad('promote needs exactly one SWEEP_DIR');
    if (!v.out) bad('promote needs --out RUN_DIR (the run folder to create)');
    const res = await promoteTrial({ sweepDir: positionals[0]!, rank: num(v.rank, 'rank'), out: v.out, force: v.force });
    out(!!v.json, res, () => `Promoted rank ${res.row.rank} (${Object.entries(res.row.trial).map(([k, x]) => `${k}=${x}`).join(' ')}) to ${res.runDir}\nNext: headstart export ${path.relative(process.cwd(), res.runDir) || '.'} --out model`);
    return 0;
  
}

/** `headstart backbones`. */
async function cmdBackbones(args: string[], _signal: AbortSignal): Promise<number> {
  const parse = parser(args);
    const { values: v } = parse({});
    const cacheDir = engineOptions(v).cacheDir ?? defaultCacheDir();
    const list = await Promise.all(CATALOGUE.map(async (e) => ({ id: e.id, title: e.title, format: e.format, featureSize: e.featureSize, inputSize: e.inputSize, bundled: e.bundled, cached: await isCached(e, cacheDir), approxBytes: e.approxBytes, licence: e.licence, default: e.id === DEFAULT_BACKBONE })));
    out(!!v.json, list, () => list.map((e) => `${e.id.padEnd(22)} ${e.format.padEnd(6)} ${String(e.featureSize).padStart(4)}-d  ${e.bundled ? 'bundled' : e.cached ? 'cached ' : 'remote '} ${(e.approxBytes / 1e6).toFixed(1).padStart(5)} MB  ${e.title}${e.default ? '  (default)' : ''}`).join('\n'));
    return 0;
  
}

/** `headstart sample`. */
async function cmdSample(args: string[], _signal: AbortSignal): Promise<number> {
  const parse = parser(args);
    const { values: v, positionals } = parse({ 'per-class': { type: 'string' }, classes: { type: 'string' }, seed: { type: 'string' }, text: { type: 'boolean' } });
    if (positionals.length !== 1) bad('sample needs one DIR to write');
    if (v.text) {
      const tf = await makeTextSample(positionals[0]!, { perClass: num(v['per-class'], 'per-class'), classes: num(v.classes, 'classes'), seed: num(v.seed, 'seed') });
      out(!!v.json, { dir: path.resolve(positionals[0]!), classes: Object.fromEntries(Object.entries(tf).map(([k, f]) => [k, f.length])) }, () => `Wrote ${Object.values(tf).flat().length} support tickets (.txt) in ${Object.keys(tf).length} class folders under ${positionals[0]}`);
      return 0;
    }
    const files = await makeSampleDataset(positionals[0]!, { perClass: num(v['per-class'], 'per-class'), classes: num(v.classes, 'classes'), seed: num(v.seed, 'seed') });
    out(!!v.json, { dir: path.resolve(positionals[0]!), classes: Object.fromEntries(Object.entries(files).map(([k, f]) => [k, f.length])) }, () => `Wrote ${Object.values(files).flat().length} images in ${Object.keys(files).length} class folders under ${positionals[0]}`);
    return 0;
  
}

/** `headstart distill`. */
async function cmdDistill(args: string[], signal: AbortSignal): Promise<number> {
  const parse = parser(args);
    const { values: v, positionals } = parse({ student: { type: 'string' }, out: { type: 'string' }, temperature: { type: 'string' }, alpha: { type: 'string' }, slim: { type: 'string' }, 'max-drop': { type: 'string' } });
    if (positionals.length !== 1) bad('distill needs exactly one RUN_DIR (the teacher)');
    if (v.student !== undefined && !v.student.trim()) bad('--student needs a catalogue id or a path to a model.json (got an empty value)');
    const rep = new Reporter(!!v.quiet);
    const res = await distillRun({ runDir: positionals[0]!, student: v.student, out: v.out, temperature: num(v.temperature, 'temperature'), alpha: num(v.alpha, 'alpha'), slim: v.slim === undefined ? undefined : parseSlim(v.slim), maxDrop: num(v['max-drop'], 'max-drop'), force: v.force, ...engineOptions(v) }, { onEvent: rep.onEvent, signal });
    out(!!v.json, res, () => {
      const row = (name: string, m: typeof res.teacher) => `  ${name.padEnd(8)} ${m.backbone.padEnd(20)} ${(m.bytes / 1e6).toFixed(2).padStart(7)} MB  ${pct(m.accuracy).padStart(6)}  ${m.msPerImage.toFixed(1).padStart(6)} ms/image`;
      return [`Distilled (T=${res.temperature}, alpha=${res.alpha}) into ${res.runDir}`, ...(res.slimming ? slimTable(res.slimming) : []), row('teacher', res.teacher), row('student', res.student), `Student vs teacher: ${res.ratios.size.toFixed(2)}x smaller, ${res.ratios.speed.toFixed(2)}x faster (${res.measuredIn}${res.ratios.speedCpuBatch32 ? `; ${res.ratios.speedCpuBatch32.toFixed(2)}x in CPU time per image at batch 32` : ''}).`, `Next: headstart export ${path.relative(process.cwd(), res.runDir) || '.'} --out model --quantize auto`].join('\n');
    });
    return 0;
  
}

/** The commands, by name: each parses its own flags and returns the exit code. */
const COMMANDS: Record<string, (args: string[], signal: AbortSignal) => Promise<number>> = {
  train: cmdTrain,
  eval: cmdEval,
  predict: cmdPredict,
  export: cmdExport,
  worker: cmdWorker,
  sweep: cmdSweep,
  promote: cmdPromote,
  backbones: cmdBackbones,
  sample: cmdSample,
  distill: cmdDistill,
};

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
  const run = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!run) return bad(`unknown command '${cmd}' (see headstart --help)`);
  return run(rest, signal);
}

/** Non-empty lines of stdin (predict -), one text each. */
async function readStdinLines(): Promise<string[]> {
  let input = '';
  for await (const chunk of process.stdin) input += String(chunk);
  return input.split(/\r?\n/).filter((l) => l.trim());
}

/**
 * Ends the process with `code`, never in the middle of an engine thread's
 * native run (that aborts the process with exit 134): extraction threads are
 * closed and awaited first, then the temp folders of unfinished output go,
 * synchronously, right before the exit (nothing can write into them after).
 */
function exitCleanly(code: number): void {
  process.exitCode = code;
  void closeAllThreads().finally(() => {
    cleanupPendingDirs();
    process.exit(code);
  });
}

export function runCli(argv: string[]): void {
  const controller = new AbortController();
  let interrupted = 0;
  const onSigint = (): void => {
    interrupted++;
    if (interrupted === 1) {
      process.stderr.write('\nheadstart: cancelling (Ctrl-C again to quit at once)\n');
      controller.abort();
    } else if (interrupted === 2) {
      process.stderr.write('headstart: quitting (an engine thread finishes its batch first)\n');
      exitCleanly(130);
    }
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  main(argv, controller.signal).then(
    (code) => {
      process.exitCode = code;
      // The wasm backend and worker threads can hold the loop open; we are done.
      setImmediate(() => exitCleanly(code));
    },
    (err: unknown) => {
      if (isCancelled(err) || err instanceof CancelledError) {
        process.stderr.write('headstart: cancelled; nothing was written\n');
        exitCleanly(130);
        return;
      }
      if (err instanceof HeadstartError) process.stderr.write(`headstart: ${err.message}\n`);
      else {
        process.stderr.write(`headstart: internal error: ${describeError(err)}\n`);
        if (process.env.HEADSTART_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
      }
      exitCleanly(err instanceof HeadstartError ? 1 : 2);
    },
  );
}

if (require.main === module) runCli(process.argv.slice(2));
