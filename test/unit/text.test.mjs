// Text classification, phase 1: datasets of labelled texts (every input
// case), the tokenizer and averaging against hand-computed values, coverage,
// the embedding cache, TF-IDF, and an ONNX encoder + tokenizer.json made by
// code, through the real loading path.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import test from 'node:test';
import { core, tempDir } from './helpers.mjs';
import { PIECES, SPECIAL, textFolders, tinyEncoder, tinyRow } from './textFixtures.mjs';

const near = (a, b, eps = 1e-5) => assert.ok(Math.abs(a - b) <= eps, `${a} != ${b}`);
const reasonOf = (ds, name) => ds.skipped.find((s) => s.path.endsWith(name))?.reason;

test('class folders of .txt: encodings, bad bytes, empty texts, size cap, other files', async (t) => {
  const dir = await tempDir(t);
  await textFolders(dir, { billing: ['refund my card please', 'I was charged twice'], login: ['cannot reset my password'] });
  const w = (rel, bytes) => writeFile(path.join(dir, rel), bytes);
  await w('billing/bom.txt', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('invoice with BOM')]));
  await w('login/utf16le.txt', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('login fails — ß', 'utf16le')]));
  await w('login/utf16be.txt', Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from('big endian text', 'utf16le').swap16()]));
  await w('login/latin1.txt', Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x6f, 0x6b])); // "café ok" in Latin-1
  await w('login/odd16.txt', Buffer.from([0xff, 0xfe, 0x41]));
  await w('login/binary.txt', Buffer.from([0x61, 0x00, 0x62]));
  await w('billing/empty.txt', '');
  await w('billing/spaces.txt', '  \n\t  ');
  await w('billing/big.txt', 'word '.repeat(40));
  await w('billing/notes.md', 'not an example');
  const ds = await core.discoverTextDataset(dir, { maxBytes: 100 });
  assert.equal(ds.kind, 'text-folders');
  const texts = Object.fromEntries(ds.samples.map((s) => [path.basename(s.path), s.text]));
  assert.equal(texts['bom.txt'], 'invoice with BOM');
  assert.equal(texts['utf16le.txt'], 'login fails — ß');
  assert.equal(texts['utf16be.txt'], 'big endian text');
  assert.equal(ds.samples.find((s) => s.path.endsWith('utf16le.txt')).label, 'login');
  assert.match(reasonOf(ds, 'latin1.txt'), /not UTF-8 text \(invalid byte near offset 3\)/);
  assert.match(reasonOf(ds, 'odd16.txt'), /odd number of bytes/);
  assert.match(reasonOf(ds, 'binary.txt'), /NUL/);
  assert.match(reasonOf(ds, 'empty.txt'), /^empty/);
  assert.match(reasonOf(ds, 'spaces.txt'), /whitespace only/);
  assert.match(reasonOf(ds, 'big.txt'), /200 bytes, over the 100-byte limit/);
  assert.match(reasonOf(ds, 'notes.md'), /not a text file \(\.txt\)/);
  assert.equal(ds.samples.length, 6);
});

test('a FIFO in a class folder is skipped, not waited on', { skip: process.platform === 'win32' }, async (t) => {
  const dir = await tempDir(t);
  await textFolders(dir, { a: ['one'], b: ['two'] });
  const { execFileSync } = await import('node:child_process');
  execFileSync('mkfifo', [path.join(dir, 'a', 'pipe.txt')]);
  const ds = await core.discoverTextDataset(dir);
  assert.match(reasonOf(ds, 'pipe.txt'), /not a regular file/);
});

test('CSV: header detection by name, quoted fields, --text-column / --label-column, errors', async (t) => {
  const dir = await tempDir(t);
  const csv = path.join(dir, 'tickets.csv');
  await writeFile(csv, '\ufeffid,Sentence,Intent\n1,"Where is my order, please?",shipping\n2,"line one\nline two",billing\n3,,billing\n4,  ,billing\n5,no label here,\n');
  const ds = await core.discoverTextDataset(csv);
  assert.equal(ds.kind, 'text-csv');
  assert.deepEqual(ds.columns, { text: 'Sentence', label: 'Intent' });
  assert.deepEqual(ds.samples.map((s) => [s.text, s.label, s.rel]), [['Where is my order, please?', 'shipping', 'tickets.csv:2'], ['line one\nline two', 'billing', 'tickets.csv:3']]);
  assert.equal(ds.skipped.length, 3);
  assert.match(ds.skipped.find((s) => s.path.endsWith(':4')).reason, /line 4: empty/);
  assert.match(ds.skipped.find((s) => s.path.endsWith(':6')).reason, /no label/);
  const forced = await core.discoverTextDataset(csv, { textColumn: 'id', labelColumn: 'intent' });
  assert.equal(forced.samples[0].text, '1');
  await assert.rejects(core.discoverTextDataset(csv, { textColumn: 'nope' }), /has no column 'nope' \(--text-column\); its columns are: id, Sentence, Intent/);
  const bare = path.join(dir, 'bare.csv');
  await writeFile(bare, 'a,b\nx,y\n');
  await assert.rejects(core.discoverTextDataset(bare), /no text column .* and no label column .*--text-column and --label-column/);
  assert.equal(await core.detectModality(csv), 'text');
  assert.equal(await core.detectModality(bare), 'image');
});

test('CSV in UTF-16 with a BOM', async (t) => {
  const dir = await tempDir(t);
  const csv = path.join(dir, 'u16.csv');
  await writeFile(csv, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('text,label\r\nhéllo wörld,greet\r\n', 'utf16le')]));
  const ds = await core.discoverTextDataset(csv);
  assert.deepEqual(ds.samples.map((s) => [s.text, s.label]), [['héllo wörld', 'greet']]);
  assert.equal(await core.detectModality(csv), 'text');
});

test('JSONL: default keys, number labels, bad lines skipped with reasons', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'd.jsonl');
  await writeFile(file, ['{"body":"reset my password","category":"login"}', 'not json', '[1,2]', '{"body":42,"category":7}', '{"body":{"x":1},"category":"a"}', '{"body":"no label"}', ''].join('\n'));
  const ds = await core.discoverTextDataset(file);
  assert.deepEqual(ds.columns, { text: 'body', label: 'category' });
  assert.deepEqual(ds.samples.map((s) => [s.text, s.label]), [['reset my password', 'login'], ['42', '7']]);
  assert.match(reasonOf(ds, ':2'), /not valid JSON/);
  assert.match(reasonOf(ds, ':3'), /not a JSON object/);
  assert.match(reasonOf(ds, ':5'), /no text/);
  assert.match(reasonOf(ds, ':6'), /no label/);
});

test('duplicates by normalised content: grouped in one split, conflicting labels left out', async (t) => {
  const dir = await tempDir(t);
  const a = ['Hello  World', 'refund please', 'charge twice', 'card declined', 'invoice missing'];
  const b = ['hello world\n', 'password reset', 'cannot login', 'account locked', 'two factor'];
  await textFolders(dir, { a: [...a, 'Refund   PLEASE'], b });
  const ds = await core.discoverTextDataset(dir);
  const h = (text) => ds.samples.find((s) => s.text === text).hash;
  assert.equal(h('Hello  World'), h('hello world'));
  assert.equal(h('refund please'), h('Refund   PLEASE'));
  assert.notEqual(ds.samples.find((s) => s.text === 'refund please').exact, ds.samples.find((s) => s.text === 'Refund   PLEASE').exact);
  const split = core.splitDataset(ds.samples, { seed: 1 });
  assert.equal(split.conflicts.length, 2);
  assert.ok(split.conflicts.every((c) => /conflicting labels/.test(c.reason)));
  const refunds = split.samples.filter((s) => s.hash === h('refund please'));
  assert.equal(refunds.length, 2);
  assert.equal(refunds[0].split, refunds[1].split);
  const st = core.textStats(split.samples);
  assert.equal(st.examples.a.length, 3);
  assert.equal(st.words.max, 2);
});

test('tokenizer: lower-case, Unicode words, apostrophes, hyphens, numbers', () => {
  assert.deepEqual(core.tokenize("Don’t E-Mail the CAFÉ at 3.5 or 1,000 — ok? état_x mp3 'quoted'"), ["don't", 'e-mail', 'the', 'café', 'at', '3.5', 'or', '1,000', 'ok', 'état', 'x', 'mp3', 'quoted']);
  assert.deepEqual(core.tokenize('ﬁne'), ['fine']); // NFKC folds the ligature
  const known = (w) => ['do', 'not', 'can', 'will', 'company', 'state', 'art', 'of', 'the', 'e-mail'].includes(w);
  assert.deepEqual(core.wordKeys("don't", known), ['do', 'not']);
  assert.deepEqual(core.wordKeys("can't", known), ['can', 'not']);
  assert.deepEqual(core.wordKeys("won't", known), ['will', 'not']);
  assert.deepEqual(core.wordKeys("company's", known), ['company']);
  assert.deepEqual(core.wordKeys('state-of-the-art', known), ['state', 'of', 'the', 'art']);
  assert.deepEqual(core.wordKeys('e-mail', known), ['e-mail']);
  assert.deepEqual(core.wordKeys('zzz', known), ['zzz']);
  assert.equal(core.isWord('1,000'), false);
  assert.equal(core.isWord('mp3'), true);
});

/** A vocabulary folder of four words whose vectors quantize exactly (every component a multiple of max / 127). */
async function tinyVocab(t) {
  const dir = await tempDir(t);
  const rows = Float32Array.from([127, 0, -127, 254, 0, 254, 127, 0, 127, 127, 127, 127].map((v) => v / 127));
  await core.writeVocabulary(dir, ['hello', 'world', 'not', 'do'], rows, 3, { id: 'tiny', source: 'test', licence: 'test', sourceCount: 4 });
  return dir;
}

test('average word embedding: hand-computed mean and coverage, from files through loadVocabulary', async (t) => {
  const v = await core.loadVocabulary(await tinyVocab(t));
  // hello=[1,0,-1] world=[2,0,2] not=[1,0,1] do=[1,1,1]; "Hello, WORLD! Don't zzz 42": hello world do not + zzz unknown, 42 a number.
  const e = v.embed("Hello, WORLD! Don't zzz 42");
  assert.equal(e.words, 5);
  assert.equal(e.known, 4);
  [5 / 4, 1 / 4, 3 / 4].forEach((x, d) => near(e.vector[d], x));
  const none = v.embed('zzz qqq 123');
  assert.deepEqual([...none.vector], [0, 0, 0]);
  assert.equal(none.known, 0);
  const cov = core.coverageOf([e, none]);
  near(cov.tokens, 4 / 7);
  assert.equal(cov.emptyTexts, 1);
  assert.match(core.coverageWarning(cov, 'tiny'), /only 57% of the words are known to tiny \(1 texts have no known word\)/);
  assert.equal(core.coverageWarning(core.coverageOf([e]), 'tiny'), undefined);
});

test('a damaged vocabulary file is refused with the way out', async (t) => {
  const dir = await tempDir(t);
  const rows = new Float32Array([1, 2, 3]);
  await core.writeVocabulary(dir, ['x'], rows, 3, { id: 'tiny', source: 'test', licence: 'test', sourceCount: 1 });
  await writeFile(path.join(dir, 'vectors.i8'), Buffer.from([1, 2, 4]));
  await assert.rejects(core.loadVocabulary(dir), /does not match its manifest.*npm run build/);
});

test('int8 per-vector quantization error is at most half a step', () => {
  const rows = Float32Array.from({ length: 300 }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 7)));
  const { q, scales } = core.quantizeRows(rows, 100);
  for (let i = 0; i < 300; i++) assert.ok(Math.abs(q[i] * scales[Math.floor(i / 100)] - rows[i]) <= scales[Math.floor(i / 100)] / 2 + 1e-6);
});

test('the bundled vocabulary (built by npm run build) embeds English with high coverage', async () => {
  const e = await core.openGlove();
  assert.equal(e.featureSize, 100);
  const [r] = await e.embed(['Where is my refund? The package was shipped last week.']);
  assert.equal(r.known, r.words);
  assert.ok(Math.hypot(...r.vector) > 0.5);
  const [code] = await e.embed(['xq7f_9zz kk3j2 0x7ffe qwv_zzt']);
  assert.ok(code.known / code.words < 0.5, `code-like text has low coverage (${code.known}/${code.words})`);
});

test('embedding cache: the second pass embeds nothing and returns the same vectors', async (t) => {
  const cache = await tempDir(t);
  const dir = await tinyVocab(t);
  const v = await core.loadVocabulary(dir);
  let calls = 0;
  const embedder = { id: 'tiny', featureSize: 3, modelHash: v.hash, embed: async (texts) => ((calls += texts.length), texts.map((x) => v.embed(x))) };
  const items = ['hello world', 'do not', 'hello world'].map((text) => ({ text, exact: core.textExactHash(text) }));
  const first = await core.embedTexts(embedder, items, cache);
  assert.equal(first.computed, 2);
  assert.equal(calls, 2);
  const second = await core.embedTexts(embedder, items, cache);
  assert.equal(second.computed, 0);
  assert.equal(second.cached, 2);
  assert.equal(calls, 2);
  assert.deepEqual([...second.features.get(items[0].exact)], [...first.features.get(items[0].exact)]);
  assert.deepEqual(second.counts.get(items[1].exact), { known: 2, words: 2 });
  // Another model hash is another cache key: nothing stale is served.
  const other = await core.embedTexts({ ...embedder, modelHash: 'f'.repeat(64) }, items, cache);
  assert.equal(other.computed, 2);
});

test('TF-IDF: hand-computed weights, unit rows, fitted on training texts only', () => {
  const m = core.fitTfidf(['a b', 'a c', 'a a d']);
  assert.deepEqual(m.terms, ['a', 'b', 'c', 'd']);
  near(m.idf[0], 1);
  near(m.idf[1], Math.log(4 / 2) + 1);
  const [x] = [core.transformTfidf(m, ['a a b e'])];
  const wa = 1 + Math.log(2);
  const wb = Math.log(2) + 1;
  const n = Math.hypot(wa, wb);
  [wa / n, wb / n, 0, 0].forEach((v, i) => near(x[i], v));
});

test('ONNX encoder + tokenizer.json made by code, through the real loading path', async (t) => {
  const dir = await tinyEncoder(path.join(await tempDir(t), 'enc'));
  const e = await core.openTextBackbone(dir, await tempDir(t));
  t.after(() => e.dispose());
  assert.equal(e.kind, 'onnx-encoder');
  assert.equal(e.featureSize, 4);
  const id = (tok) => [...SPECIAL, ...PIECES].indexOf(tok);
  // "Shipping my ORDER xyz" → [CLS] ship ##ping my order [UNK] [SEP]; a shorter text pads the batch.
  const [r, short] = await e.embed(['Shipping my ORDER xyz', 'help']);
  const ids = ['[CLS]', 'ship', '##ping', 'my', 'order', '[UNK]', '[SEP]'].map(id);
  const mean = [0, 1, 2, 3].map((d) => ids.reduce((a, i) => a + tinyRow(i)[d], 0) / ids.length);
  mean.forEach((x, d) => near(r.vector[d], x));
  assert.deepEqual([r.known, r.words], [4, 5]);
  const sids = ['[CLS]', 'help', '[SEP]'].map(id);
  [0, 1, 2, 3].forEach((d) => near(short.vector[d], sids.reduce((a, i) => a + tinyRow(i)[d], 0) / 3)); // padding masked out
  // Sidecar: first-token pooling, unit length, a token limit that keeps [SEP].
  const cls = await core.openTextBackbone(await tinyEncoder(path.join(await tempDir(t), 'enc2'), { pooling: 'cls', normalize: true, maxLength: 3 }), '/nonexistent');
  t.after(() => cls.dispose());
  const [c] = await cls.embed(['my order please']);
  const row = tinyRow(id('[CLS]'));
  row.forEach((x, d) => near(c.vector[d], x / Math.hypot(...row)));
  assert.deepEqual([c.known, c.words], [1, 1]);
  assert.notEqual(cls.modelHash, e.modelHash);
});

test('encoder folder errors name the missing piece', async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, 'x'));
  await assert.rejects(core.openTextBackbone(path.join(dir, 'x'), dir), /model\.onnx is missing/);
  const enc = await tinyEncoder(path.join(dir, 'bad'), { output: 'nope' });
  await assert.rejects(core.openTextBackbone(enc, dir), /has no output 'nope'/);
  await writeFile(path.join(enc, 'tokenizer.json'), '{not json');
  await assert.rejects(core.openTextBackbone(enc, dir), /tokenizer .*not JSON/);
  await assert.rejects(core.openTextBackbone('no-such-backbone', dir), /unknown text backbone 'no-such-backbone'/);
});

test('detectModality: .txt class folders are text, image folders stay image, --modality wins', async (t) => {
  const dir = await tempDir(t);
  await textFolders(dir, { a: ['x'], b: ['y'] });
  assert.equal(await core.detectModality(dir), 'text');
  assert.equal(await core.detectModality(dir, { modality: 'image' }), 'image');
  const img = await tempDir(t);
  await mkdir(path.join(img, 'c'));
  await writeFile(path.join(img, 'c', 'a.png'), 'x');
  assert.equal(await core.detectModality(img), 'image');
});

test('detectModality: a README.txt in one class folder, or beside images, leaves an image dataset alone', async (t) => {
  const dir = await tempDir(t);
  await textFolders(dir, { a: ['readme'] });
  await mkdir(path.join(dir, 'b'));
  await writeFile(path.join(dir, 'b', 'data.json'), '{}');
  assert.equal(await core.detectModality(dir), 'image');
  await writeFile(path.join(dir, 'b', 'notes.txt'), 'x');
  await writeFile(path.join(dir, 'b', 'cat.jpg'), 'x');
  assert.equal(await core.detectModality(dir), 'image');
});
