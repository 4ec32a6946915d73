// Text classification end to end through the CLI: train on a generated
// sample → eval → predict RUN → export (TF.js and ONNX) → the export's
// inference.mjs in a fresh process agrees with `predict RUN`; an ONNX encoder
// folder made by code as the backbone; run.json's text fields.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import test from 'node:test';
import { promisify } from 'node:util';
import { cacheDir, cliPath, core, repoTempDir, runCli, tempDir } from './helpers.mjs';
import { tinyEncoder } from './textFixtures.mjs';

const run = promisify(execFile);
const TEXTS = ['my parcel never arrived and tracking is stuck', 'I was billed twice for my subscription', 'the app crashes when I open settings', 'I cannot sign in to my account'];
const lines = (s) => s.trim().split('\n').map((l) => JSON.parse(l));
const pct = (x) => `${(x * 100).toFixed(1)}%`;

/** The export's model card: written by export/card.ts, it names the licence, the test count with the interval, and the variant. */
async function checkCard(out, rep, licence, what) {
  const card = await readFile(path.join(out, 'README.md'), 'utf8');
  assert.match(card, /^# Text classifier/, what);
  assert.ok(card.includes(licence), `${what}: the backbone licence`);
  assert.ok(card.includes(`## Metrics (test split, ${rep.testTexts} texts)`), `${what}: the test count`);
  const iv = rep.exported.interval;
  assert.ok(card.includes(`**${pct(rep.exported.accuracy)}** (95% CI ${pct(iv.low)}–${pct(iv.high)}, n = ${iv.n};`), `${what}: accuracy with its interval and n`);
  assert.ok(card.includes(`Variant \`${rep.chosen}\``) && card.includes(`| this export (\`${rep.chosen}\`) | ${rep.exported.bytes} | ${rep.exported.gzipBytes} |`), `${what}: the chosen variant and its bytes`);
  assert.ok(card.includes('node inference.mjs "'), `${what}: how to run it`);
  return card;
}

async function trainSample(t, extra = []) {
  const dir = await repoTempDir(t);
  const data = path.join(dir, 'tickets');
  await core.makeTextSample(data, { perClass: 24, seed: 3 });
  const runDir = path.join(dir, 'run');
  const res = await runCli(['train', data, '--out', runDir, '--json', '--quiet', ...extra]);
  assert.equal(res.code, 0, res.stderr);
  return { dir, data, runDir, report: JSON.parse(res.stdout) };
}

test('train → eval → predict → export tfjs/onnx → inference.mjs in a fresh process agrees with predict RUN', async (t) => {
  const { dir, runDir, report } = await trainSample(t);
  assert.equal(report.modality, 'text');
  assert.ok(report.test.accuracy >= 0.75, `test accuracy ${report.test.accuracy}`);
  assert.match(report.baseline.description, /TF-IDF/);
  assert.ok(report.coverage.tokens > 0.8);
  const record = JSON.parse(await readFile(path.join(runDir, 'run.json'), 'utf8'));
  assert.equal(record.modality, 'text');
  assert.equal(record.backbone.id, 'glove-100d-avg');
  assert.match(record.text.tokenizer, /lower-case/);
  assert.equal(record.text.stats.examples.billing.length, 3);
  const ev = await runCli(['eval', runDir, '--json', '--quiet']);
  assert.equal(ev.code, 0, ev.stderr);
  assert.equal(JSON.parse(ev.stdout).accuracy, report.test.accuracy);
  const pred = await runCli(['predict', runDir, ...TEXTS.flatMap((x) => ['--text', x]), '--quiet']);
  assert.equal(pred.code, 0, pred.stderr);
  const want = lines(pred.stdout);
  assert.deepEqual(want.map((l) => l.label), ['shipping', 'billing', 'technical', 'account']);
  for (const format of ['tfjs', 'onnx']) {
    const out = path.join(dir, `export-${format}`);
    const ex = await runCli(['export', runDir, '--out', out, '--format', format, '--json', '--quiet']);
    assert.equal(ex.code, 0, ex.stderr);
    const rep = JSON.parse(ex.stdout);
    assert.equal(rep.exported.accuracy, report.test.accuracy);
    for (const k of ['bytes', 'gzipBytes', 'accuracy', 'msPerImage']) assert.equal(typeof rep.float32[k], 'number');
    const card = await checkCard(out, rep, 'GloVe 6B 100-d vectors', format);
    assert.ok(card.includes('MIT') && card.includes('PDDL'), `${format}: package and vector licences`);
    assert.match(card, /Baseline: logistic regression on TF-IDF of \d+ words/, format);
    assert.match(card, /Vocabulary coverage of `glove-100d-avg`: \d+\.\d% of the word tokens/, format);
    assert.match(card, /English word vectors/, format);
    assert.equal(card.includes('onnxruntime') && card.includes('"features"'), format === 'onnx', `${format}: Python with onnxruntime on features for ONNX only`);
    // The stock loaders in a fresh Node process, through the generated script.
    const { stdout } = await run(process.execPath, [path.join(out, 'inference.mjs'), ...TEXTS], { cwd: out });
    const got = lines(stdout);
    got.forEach((g, i) => {
      assert.equal(g.label, want[i].label, `${format}: ${TEXTS[i]}`);
      assert.ok(Math.abs(g.probability - want[i].probability) < 1e-4, `${format}: ${g.probability} vs ${want[i].probability}`);
    });
    // predict with the export folder itself, as a user would.
    const p2 = await runCli(['predict', out, '--text', TEXTS[0], '--quiet']);
    assert.equal(lines(p2.stdout)[0].label, want[0].label);
  }
  // Stdin, one text a line; a bad file gives an error line and exit 1.
  const stdin = await new Promise((resolve) => {
    const c = execFile(process.execPath, [cliPath, 'predict', runDir, '-', '--quiet'], { env: { ...process.env, HEADSTART_CACHE_DIR: cacheDir } }, (err, so) => resolve({ code: err?.code ?? 0, so }));
    c.stdin.end(`${TEXTS[1]}\n\n${TEXTS[2]}\n`);
  });
  assert.deepEqual(lines(stdin.so).map((l) => l.label), ['billing', 'technical']);
  const bad = path.join(dir, 'bad.txt');
  await (await import('node:fs/promises')).writeFile(bad, Buffer.from([0x63, 0xe9, 0x00]));
  const pb = await runCli(['predict', runDir, bad, '--quiet']);
  assert.equal(pb.code, 1);
  assert.match(lines(pb.stdout)[0].error, /NUL|not UTF-8/);
  // Image-only options on a text run: one line each, nothing written.
  for (const [args, re] of [
    [['export', runDir, '--out', path.join(dir, 's'), '--format', 'onnx', '--slim', 'auto'], /--slim: a text export compresses its head with --quantize only/],
    [['export', runDir, '--out', path.join(dir, 'p'), '--prune', '0.5'], /--prune: a text export compresses its head with --quantize only/],
    [['export', runDir, '--out', path.join(dir, 'q'), '--quantize', 'int8'], /--quantize int8 \(static int8 for ONNX Runtime\) needs --format onnx/],
    [['distill', runDir, '--out', path.join(dir, 'd')], /is a text run: distill makes smaller image backbones/],
  ]) {
    const r = await runCli([...args, '--quiet']);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('quantized text exports (float16, uint8; ONNX int8): each loads in a fresh process through inference.mjs and agrees with predict RUN', async (t) => {
  const { dir, runDir } = await trainSample(t);
  const want = lines((await runCli(['predict', runDir, ...TEXTS.flatMap((x) => ['--text', x]), '--quiet'])).stdout);
  for (const [format, quantize] of [['tfjs', 'float16'], ['tfjs', 'uint8'], ['onnx', 'float16'], ['onnx', 'uint8'], ['onnx', 'int8']]) {
    const out = path.join(dir, `q-${format}-${quantize}`);
    const ex = await runCli(['export', runDir, '--out', out, '--format', format, '--quantize', quantize, '--json', '--quiet']);
    assert.equal(ex.code, 0, ex.stderr);
    const rep = JSON.parse(ex.stdout);
    const what = `${format} ${quantize}`;
    assert.equal(rep.chosen, quantize, what);
    assert.equal(rep.precision.head, quantize, what);
    assert.match(rep.precision.vocabulary, /int8 rows/, what);
    assert.ok(rep.head.exported.bytes < rep.head.float32.bytes, `${what}: head ${rep.head.exported.bytes} vs float32 ${rep.head.float32.bytes}`);
    // The vocabulary is the same in both: the whole model shrinks by exactly what the head does.
    assert.equal(rep.float32.bytes - rep.exported.bytes, rep.head.float32.bytes - rep.head.exported.bytes, what);
    for (const v of [rep.float32, rep.exported]) for (const k of ['bytes', 'gzipBytes', 'accuracy', 'msPerImage']) assert.equal(typeof v[k], 'number', `${what} ${k}`);
    assert.equal(rep.exported.interval.n, rep.testTexts);
    if (quantize === 'int8') assert.equal(rep.headInt8.calibrationUnit, 'texts');
    const card = await checkCard(out, rep, 'PDDL', what);
    assert.ok(card.includes(`| ${quantize} (this file) |`), `${what}: the variants table marks the file`);
    const { stdout } = await run(process.execPath, [path.join(out, 'inference.mjs'), ...TEXTS], { cwd: out });
    const got = lines(stdout);
    const viaCli = lines((await runCli(['predict', out, ...TEXTS.flatMap((x) => ['--text', x]), '--quiet'])).stdout);
    got.forEach((g, i) => {
      assert.equal(g.label, want[i].label, `${what}: ${TEXTS[i]}`);
      // A quantized head moves the probabilities a little; the same files give the same figure in both loaders.
      assert.ok(Math.abs(g.probability - want[i].probability) < 0.05, `${what}: ${g.probability} vs run ${want[i].probability}`);
      assert.ok(Math.abs(g.probability - viaCli[i].probability) < 1e-4, `${what}: inference.mjs ${g.probability} vs predict EXPORT ${viaCli[i].probability}`);
    });
  }
  // uint16 has no ONNX Runtime weight format: refused in one line.
  const u = await runCli(['export', runDir, '--out', path.join(dir, 'u16'), '--format', 'onnx', '--quantize', 'uint16', '--quiet']);
  assert.equal(u.code, 1);
  assert.match(u.stderr, /--quantize uint16 has no ONNX Runtime weight format/);
});

test('text export --quantize auto decides without the test split: the texts embedded during the choice are validation (or calibration: training) texts, never test texts', async (t) => {
  const { dir, runDir } = await trainSample(t);
  const record = JSON.parse(await readFile(path.join(runDir, 'run.json'), 'utf8'));
  const textsOf = async (split) => new Set(await Promise.all(record.samples.filter((s) => s.split === split).map(async (s) => (await readFile(path.join(record.dataset.root, s.rel), 'utf8')).trim())));
  const choiceSplit = record.samples.some((s) => s.split === 'val') ? 'val' : 'train';
  const [testTexts, choiceTexts, trainTexts] = [await textsOf('test'), await textsOf(choiceSplit), await textsOf('train')];
  assert.ok(testTexts.size > 0 && choiceTexts.size > 0);
  for (const format of ['tfjs', 'onnx']) {
    // Every text embedded by the bundled vocabulary, between the measurement markers of the export.
    const log = [];
    const orig = core.Vocabulary.prototype.embed;
    core.Vocabulary.prototype.embed = function (text) {
      log.push({ text: text.trim() });
      return orig.call(this, text);
    };
    let r;
    try {
      r = await core.exportRun(runDir, { out: path.join(dir, `auto-${format}`), quantize: 'auto', maxDrop: 1, format, cacheDir }, { onEvent: (e) => e.type === 'progress' && /^texts \(/.test(e.unit ?? '') && e.done === 0 && log.push({ unit: e.unit, total: e.total }) });
    } finally {
      core.Vocabulary.prototype.embed = orig;
    }
    assert.equal(r.choice.split, choiceSplit, format);
    assert.equal(r.choice.images, choiceTexts.size, format);
    const markers = log.filter((l) => l.unit).map((l) => l.unit);
    assert.deepEqual(markers.filter((u) => u.startsWith('texts (test ')).sort(), [...new Set(['texts (test float32)', `texts (test ${r.chosen})`])].sort(), `${format}: measured on the test split: ${markers}`);
    for (const c of r.candidates) assert.ok(markers.includes(`texts (choice ${c.name})`), `${format}: ${c.name} judged on the choice texts`);
    // The choice: from the first choice marker up to the chosen variant's test marker (or the end when float32 is chosen).
    const first = log.findIndex((l) => l.unit?.startsWith('texts (choice '));
    const lastTest = log.findIndex((l) => l.unit === `texts (test ${r.chosen})` && r.chosen !== 'float32');
    const during = log.slice(first, lastTest > first ? lastTest : undefined).filter((l) => l.text !== undefined).map((l) => l.text);
    assert.ok(during.length >= choiceTexts.size, `${format}: ${during.length} texts embedded during the choice`);
    for (const tx of choiceTexts) assert.ok(during.includes(tx), `${format}: choice text embedded: ${tx}`);
    const leaked = during.filter((tx) => testTexts.has(tx));
    assert.deepEqual(leaked, [], `${format}: test texts embedded during the choice`);
    for (const tx of during) assert.ok(choiceTexts.has(tx) || trainTexts.has(tx), `${format}: only choice or training (int8 calibration) texts: ${tx}`);
    if (lastTest > first) assert.ok(log.slice(lastTest).some((l) => l.text !== undefined && testTexts.has(l.text)), `${format}: the chosen variant measured on the test texts after the choice`);
    assert.ok(r.candidates.length >= 1 && r.candidates.every((c) => typeof c.agreement === 'number'));
    assert.match(r.choice.rule, /never the test split/);
    assert.equal(JSON.parse(await readFile(path.join(dir, `auto-${format}`, 'metadata.json'), 'utf8')).headstart.head, r.chosen);
  }
});

test('the export pipeline (what the worker calls) exports a text run; sweep trains text data', async (t) => {
  const { dir, data, runDir, report } = await trainSample(t);
  const rep = await core.exportRun(runDir, { out: path.join(dir, 'exp'), cacheDir });
  assert.equal(rep.modality, 'text');
  assert.equal(rep.chosen, 'float32');
  assert.equal(rep.exported.accuracy, report.test.accuracy);
  assert.equal(JSON.parse(await readFile(path.join(dir, 'exp', 'report.json'), 'utf8')).modality, 'text');
  const sw = await runCli(['sweep', data, '--grid', 'hidden=0,16', '--out', path.join(dir, 'sweep'), '--json', '--quiet']);
  assert.equal(sw.code, 0, sw.stderr);
  const board = JSON.parse(sw.stdout);
  assert.equal(board.trials, 2);
  for (const tr of board.leaderboard) assert.match(JSON.parse(await readFile(path.join(dir, 'sweep', tr.run, 'run.json'), 'utf8')).baseline.description, /TF-IDF/);
});

test('an ONNX encoder folder (model.onnx + tokenizer.json made by code) as the text backbone: cached on the second run, exported with its encoder', async (t) => {
  const dir = await repoTempDir(t);
  const enc = await tinyEncoder(path.join(dir, 'enc'));
  await (await import('node:fs/promises')).mkdir(path.join(dir, 'data'));
  const data = path.join(dir, 'data', 'd.csv');
  const rows = ['text,intent'];
  for (let i = 0; i < 12; i++) rows.push(`please refund my card ${'charge '.repeat(i % 3)},billing`, `where is the shipping of my order ${'late '.repeat(i % 3)},shipping`);
  await (await import('node:fs/promises')).writeFile(data, rows.join('\n'));
  const cache = await tempDir(t);
  const first = await runCli(['train', data, '--backbone', enc, '--out', path.join(dir, 'r1'), '--json', '--quiet', '--cache', cache]);
  assert.equal(first.code, 0, first.stderr);
  const r1 = JSON.parse(first.stdout);
  assert.equal(r1.engine, 'onnxruntime');
  assert.ok(r1.timings.extracted > 0);
  const rec = JSON.parse(await readFile(path.join(dir, 'r1', 'run.json'), 'utf8'));
  assert.equal(rec.backbone.featureSize, 4);
  assert.deepEqual(rec.text.columns, { text: 'text', label: 'intent' });
  const second = await runCli(['train', data, '--backbone', enc, '--out', path.join(dir, 'r2'), '--json', '--quiet', '--cache', cache]);
  const r2 = JSON.parse(second.stdout);
  assert.equal(r2.timings.extracted, 0);
  assert.equal(r2.timings.cached, r1.timings.extracted);
  const texts = ['please refund my card', 'where is my order shipping'];
  const want = lines((await runCli(['predict', path.join(dir, 'r1'), ...texts.flatMap((x) => ['--text', x]), '--quiet', '--cache', cache])).stdout);
  const out = path.join(dir, 'exp');
  const ex = await runCli(['export', path.join(dir, 'r1'), '--out', out, '--format', 'onnx', '--quiet', '--cache', cache]);
  assert.equal(ex.code, 0, ex.stderr);
  const card = await checkCard(out, JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')), `its licence is as recorded when the run was trained (${rec.backbone.licence})`, 'local encoder');
  assert.match(card, /tokenizing, running the encoder and pooling are in `inference.mjs`/);
  const { stdout } = await run(process.execPath, [path.join(out, 'inference.mjs'), ...texts], { cwd: out });
  lines(stdout).forEach((g, i) => {
    assert.equal(g.label, want[i].label);
    assert.ok(Math.abs(g.probability - want[i].probability) < 1e-4);
  });
});

test('text flags and errors: --modality, a single class, image flags on text', async (t) => {
  const dir = await tempDir(t);
  const one = path.join(dir, 'one');
  await core.makeTextSample(one, { perClass: 5, classes: 2 });
  await (await import('node:fs/promises')).rm(path.join(one, 'shipping'), { recursive: true });
  // One class of .txt is not detected as text (a text dataset needs two classes): --modality says so.
  const r = await runCli(['train', one, '--modality', 'text', '--out', path.join(dir, 'r')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /only one class found \('billing'\)/);
  const m = await runCli(['train', one, '--modality', 'audio']);
  assert.match(m.stderr, /--modality must be text or image/);
  const u = await runCli(['train', one, '--modality', 'text', '--unfreeze', '1', '--out', path.join(dir, 'r3')]);
  assert.match(u.stderr, /--unfreeze applies to images only/);
});
