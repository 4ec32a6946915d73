// The host's pure policy (src/host/policy.ts: path containment, panel message
// shapes, the files the panel may open) and the escaping html tag of the
// webview (src/shared/html.ts). Neither imports vscode; esbuild bundles them
// for plain Node here. Paths are real folders and symlinks in a temp folder.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import { root, tempDir } from './helpers.mjs';

/** Bundles a TypeScript module of the repository and imports it. */
async function load(rel) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'headstart-policy-'));
  const out = path.join(dir, `${path.basename(rel, '.ts')}.mjs`);
  await esbuild.build({ entryPoints: [path.join(root, rel)], bundle: true, platform: 'node', format: 'esm', outfile: out, logLevel: 'error' });
  const mod = await import(pathToFileURL(out).href);
  await rm(dir, { recursive: true, force: true });
  return mod;
}

const policy = await load('src/host/policy.ts');
const { html, escapeHtml, fixed, count } = await load('src/shared/html.ts');

/** A workspace `ws` with a dataset, an outside folder, and a sibling `ws-evil`. */
async function layout(t) {
  const base = await tempDir(t);
  const ws = path.join(base, 'ws');
  await mkdir(path.join(ws, 'data', 'cats'), { recursive: true });
  await mkdir(path.join(base, 'outside'), { recursive: true });
  await mkdir(path.join(base, 'ws-evil'), { recursive: true });
  await writeFile(path.join(ws, 'data', 'cats', 'a.jpg'), 'x');
  return { base, ws };
}

const inside = (p, roots, opts = {}) => policy.resolveInside(p, roots, { what: 'the folder', ...opts });

test('isWithin: a sibling with the same prefix is outside, the root itself only when not strict', () => {
  assert.equal(policy.isWithin('/ws/a', '/ws', { caseInsensitive: false }), true);
  assert.equal(policy.isWithin('/ws-evil/a', '/ws', { caseInsensitive: false }), false);
  assert.equal(policy.isWithin('/ws-evil', '/ws', { caseInsensitive: false }), false);
  assert.equal(policy.isWithin('/ws', '/ws', { caseInsensitive: false }), true);
  assert.equal(policy.isWithin('/ws', '/ws', { strict: true, caseInsensitive: false }), false);
  assert.equal(policy.isWithin('/', '/ws', { caseInsensitive: false }), false);
  // A name that starts with two dots is a child, not a parent.
  assert.equal(policy.isWithin('/ws/..hidden', '/ws', { caseInsensitive: false }), true);
});

test('isWithin: case folds only on a case-insensitive file system', () => {
  assert.equal(policy.isWithin('/WS/Models', '/ws', { caseInsensitive: true }), true);
  assert.equal(policy.isWithin('/WS/Models', '/ws', { caseInsensitive: false }), false);
  assert.equal(policy.isWithin('/WS-evil/x', '/ws', { caseInsensitive: true }), false);
});

test('resolveInside: relative folders resolve against the workspace; `..` cannot climb out', async (t) => {
  const { base, ws } = await layout(t);
  const ok = await inside('models/shapes', [ws], { strict: true });
  assert.deepEqual(ok, { ok: true, path: path.join(ws, 'models', 'shapes'), root: ws });
  for (const p of ['../outside', 'models/../../outside', path.join(ws, '..', 'outside', 'm'), path.join(base, 'ws-evil', 'm'), '/']) {
    const r = await inside(p, [ws], { strict: true });
    assert.equal(r.ok, false, `${p} refused`);
    assert.match(r.reason, /is outside/);
  }
  // The workspace folder itself is never an export folder.
  const self = await inside('.', [ws], { strict: true });
  assert.equal(self.ok, false);
  assert.match(self.reason, /folder itself/);
  // ...but it is a dataset (not strict).
  assert.equal((await inside('.', [ws])).ok, true);
});

test('resolveInside: a symlink out of the workspace is outside, even for folders not created yet', async (t) => {
  const { base, ws } = await layout(t);
  await symlink(path.join(base, 'outside'), path.join(ws, 'link'));
  for (const p of ['link', 'link/model', 'link/new/deeper/model']) {
    const r = await inside(p, [ws], { strict: true });
    assert.equal(r.ok, false, `${p} refused`);
    assert.match(r.reason, /resolves to .*outside/);
  }
  // A symlink that stays inside is fine, and the real path is what comes back.
  await symlink(path.join(ws, 'data'), path.join(ws, 'alias'));
  const r = await inside('alias/new/model', [ws], { strict: true });
  assert.deepEqual(r, { ok: true, path: path.join(ws, 'data', 'new', 'model'), root: ws });
  // A workspace reached through a symlink still contains its own folders.
  await symlink(ws, path.join(base, 'ws-link'));
  assert.equal((await inside(path.join(ws, 'models'), [path.join(base, 'ws-link')], { strict: true })).ok, true);
});

test('resolveInside: nonexistent nested folders resolve through their nearest existing ancestor', async (t) => {
  const { ws } = await layout(t);
  const deep = path.join(ws, 'a', 'b', 'c', 'd');
  assert.deepEqual(await policy.realPathNearest(deep), deep);
  assert.equal((await inside(deep, [ws], { strict: true })).ok, true);
  // A file on the way is not a refusal here: the writer reports it by name.
  assert.equal(await policy.realPathNearest(path.join(ws, 'data', 'cats', 'a.jpg', 'x')), path.join(ws, 'data', 'cats', 'a.jpg', 'x'));
});

test('resolveInside: a symlink loop, an empty path and a NUL byte are refused with a reason', async (t) => {
  const { ws } = await layout(t);
  await symlink(path.join(ws, 'loop'), path.join(ws, 'loop'));
  const loop = await inside('loop/x', [ws], { strict: true });
  assert.equal(loop.ok, false);
  assert.match(loop.reason, /cannot be resolved \(ELOOP\)/);
  for (const p of ['', '  ', 'a\0b', 42]) assert.equal((await inside(p, [ws])).ok, false);
  assert.match((await inside('x', [])).reason, /open a folder first/);
});

test('resolveInside: a missing root contains nothing; the next root is tried', async (t) => {
  const { base, ws } = await layout(t);
  const r = await inside(path.join(ws, 'data'), [path.join(base, 'nope'), ws]);
  assert.equal(r.ok, true);
});

test('openableFiles: the dataset examples, the mistakes and run.json of the run shown, nothing else', () => {
  const files = policy.openableFiles({
    dataset: { root: '/ws/d', total: 2, classes: [{ label: 'a', count: 1, example: '/ws/d/a/1.jpg' }, { label: 'b', count: 1 }], skipped: [], warnings: [] },
    result: { runDir: '/ws/.headstart/runs/r1', mistakes: [{ path: '/ws/d/b/2.jpg', thumb: '', label: 'b', predicted: 'a', probability: 0.9 }] },
  });
  assert.deepEqual([...files].sort(), ['/ws/.headstart/runs/r1/run.json', '/ws/d/a/1.jpg', '/ws/d/b/2.jpg']);
  assert.equal(policy.openableFiles({}).size, 0);
});

test('parseFromWebview: messages without the fields their type promises are dropped with a reason', () => {
  const form = { data: 'd', backbone: 'b', epochs: 1, batchSize: 1, learningRate: 0.1, hiddenUnits: 0, dropout: 0, val: 0.1, test: 0.1, seed: 1, unfreeze: 0, augment: 0 };
  assert.equal(policy.parseFromWebview({ type: 'openFile', path: '/x' }).ok, true);
  assert.equal(policy.parseFromWebview({ type: 'options', options: form }).ok, true);
  assert.equal(policy.parseFromWebview({ type: 'export', out: 'm', choices: { format: 'tfjs', quantize: 'auto', prune: 0, maxDrop: 1 } }).ok, true);
  const bad = [
    null,
    'openFile',
    { type: 'openFile', path: { toString: '/etc/passwd' } },
    { type: 'openRun', runDir: ['/'] },
    { type: 'options', options: { ...form, data: 7 } },
    { type: 'start', options: { ...form, epochs: '<img src=x onerror=alert(1)>' } },
    { type: 'export', out: 'm', choices: { format: 'exe', quantize: 'auto', prune: 0, maxDrop: 1 } },
    { type: 'export', out: 'm', choices: { format: 'tfjs', quantize: 'auto', prune: '0', maxDrop: 1 } },
    { type: 'distill' },
    { type: 'eval', code: '1' },
  ];
  for (const m of bad) {
    const r = policy.parseFromWebview(m);
    assert.equal(r.ok, false, JSON.stringify(m));
    assert.ok(r.reason.length > 5);
  }
});

test('every panel message and command has an action; everything that reads or writes files needs one', () => {
  for (const type of ['options', 'start', 'pickData', 'export', 'openFile', 'openSnippet', 'openRun', 'distill']) assert.ok(policy.PANEL_MESSAGE_ACTION[type], type);
  for (const type of ['ready', 'cancel']) assert.equal(policy.PANEL_MESSAGE_ACTION[type], undefined);
  for (const c of ['fineTune', 'fineTuneFolder', 'classifyImage', 'startTraining', 'exportModel', 'showRuns']) assert.ok(policy.COMMAND_ACTION[c], c);
});

test('html: every interpolated value is escaped, a number field holding markup stays text', () => {
  const evil = '<img src=x onerror=alert(1)>';
  const out = html`<td title="${evil}">${evil}</td><td>${count(evil)}</td><td>${fixed(evil, 3)}</td>`.value;
  assert.ok(!out.includes('<img'), out);
  assert.equal(out, '<td title="&#60;img src=x onerror=alert(1)&#62;">&#60;img src=x onerror=alert(1)&#62;</td><td>–</td><td>–</td>');
  // Quotes cannot close an attribute; nested html`` is kept, arrays are joined, nullish vanishes.
  assert.equal(html`<a data-arg="${'" onclick="x'}">`.value, '<a data-arg="&#34; onclick=&#34;x">');
  assert.equal(html`<ul>${['<b>', html`<li>${"'"}</li>`]}${undefined}${null}${false}</ul>`.value, '<ul>&#60;b&#62;<li>&#39;</li></ul>');
  assert.equal(escapeHtml(`&<>"'`), '&#38;&#60;&#62;&#34;&#39;');
  assert.equal(fixed(0.12345, 3), '0.123');
  assert.equal(count(12), '12');
  assert.equal(fixed('12', 1), '–', 'a numeric string from run.json is not a number');
});
