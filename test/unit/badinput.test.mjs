// Bad input through core.trainRun: every broken, hostile or odd file is
// either skipped with a reason in dataset.skipped or stops the run with a
// HeadstartError that names the problem, and never leaves a RUN_DIR behind.
import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { core, sharp, tempDir } from './helpers.mjs';
import { COLOURS, colourDataset, fastTrain, noisyImage, pngWithHeader, tinyBackbone, writeText } from './fixtures.mjs';

async function setup(t) {
  const dir = await tempDir(t);
  const backbone = await tinyBackbone(path.join(dir, 'tiny'));
  return { dir, backbone, cache: path.join(dir, 'cache') };
}

/** A truncated JPEG, a zero-byte file and a text file named .jpg. */
async function brokenFiles(folder) {
  await mkdir(folder, { recursive: true });
  const jpg = await sharp({ create: { width: 80, height: 60, channels: 3, background: 'orange' } }).jpeg().toBuffer();
  await writeFile(path.join(folder, 'trunc.jpg'), jpg.subarray(0, Math.floor(jpg.length * 0.6)));
  await writeFile(path.join(folder, 'zero.jpg'), Buffer.alloc(0));
  await writeFile(path.join(folder, 'text.jpg'), 'this is a text file, not a JPEG\n');
}

const reasonFor = (skipped, name) => skipped.filter((s) => path.basename(s.path) === name).map((s) => s.reason);

async function assertNoRunDir(out) {
  const parent = path.dirname(out);
  const left = (await readdir(parent).catch(() => [])).filter((n) => n.includes(path.basename(out)));
  assert.deepEqual(left, [], `nothing named like ${path.basename(out)} may be left in ${parent}`);
}

test('a messy class-folder dataset: every bad file is skipped with a reason, the rest trains', async (t) => {
  const { dir, backbone, cache } = await setup(t);
  const data = path.join(dir, 'data');
  await colourDataset(data, { classes: { red: 'red', blue: 'blue' }, perClass: 6, seed: 4 });
  const red = path.join(data, 'red');
  await brokenFiles(red);
  await writeFile(path.join(red, 'huge.png'), pngWithHeader(100_000, 100_000));
  await symlink(path.join(dir, 'does-not-exist.jpg'), path.join(red, 'dangling.jpg'));
  await symlink('self.jpg', path.join(red, 'self.jpg'));
  await mkdir(path.join(red, 'folder.jpg'));
  await symlink('.', path.join(red, 'loop')); // a folder link to its own folder
  await symlink('..', path.join(data, 'blue', 'up')); // a folder link to the dataset root
  // The same file in two classes.
  await noisyImage(path.join(red, 'same.png'), { r: 128, g: 0, b: 128 }, new core.Rng(99));
  await copyFile(path.join(red, 'same.png'), path.join(data, 'blue', 'same.png'));

  const out = path.join(dir, 'run');
  const res = await core.trainRun(fastTrain(backbone, data, out, cache));
  const skipped = res.dataset.skipped;
  assert.match(reasonFor(skipped, 'trunc.jpg')[0], /truncated or damaged/);
  assert.deepEqual(reasonFor(skipped, 'zero.jpg'), ['empty file (0 bytes)']);
  assert.match(reasonFor(skipped, 'text.jpg')[0], /not a readable image/);
  assert.match(reasonFor(skipped, 'huge.png')[0], /100000x100000, over the \d+-pixel limit/);
  assert.match(reasonFor(skipped, 'dangling.jpg')[0], /broken link \(ENOENT\)/);
  assert.match(reasonFor(skipped, 'self.jpg')[0], /symbolic link loop/);
  assert.match(reasonFor(skipped, 'loop')[0], /folder link loop/);
  assert.match(reasonFor(skipped, 'up')[0], /folder link loop/);
  const same = skipped.filter((s) => path.basename(s.path) === 'same.png');
  assert.equal(same.length, 2, 'both copies left out');
  for (const s of same) assert.match(s.reason, /labelled 'blue' and 'red'.*conflicting labels/);
  assert.equal(skipped.length, 10, JSON.stringify(skipped, null, 1));
  for (const s of skipped) assert.ok(path.isAbsolute(s.path) && s.reason.length > 5);

  assert.equal(res.dataset.total, 12, 'only the good images are used');
  assert.deepEqual(res.dataset.classes, ['blue', 'red']);
  const record = JSON.parse(await readFile(path.join(out, 'run.json'), 'utf8'));
  assert.deepEqual(record.dataset.skipped, skipped, 'run.json records the same skips');
  assert.ok(!record.samples.some((s) => /folder\.jpg|same\.png|loop|up\//.test(s.rel)));
  assert.ok(res.dataset.warnings.some((w) => /identical content under two labels/.test(w)));
});

test('a manifest may not reach outside its folder (.., absolute paths, links); unreadable entries are skipped', async (t) => {
  const { dir, backbone, cache } = await setup(t);
  const data = path.join(dir, 'data');
  const files = await colourDataset(path.join(data, 'imgs'), { classes: { r: 'red', b: 'blue' }, perClass: 5, seed: 5 });
  await noisyImage(path.join(dir, 'outside.png'), { r: 1, g: 2, b: 3 }, new core.Rng(1));
  await symlink(path.join(dir, 'outside.png'), path.join(data, 'link.png'));
  await symlink(path.join(data, 'nowhere.png'), path.join(data, 'dangling.png'));
  await symlink('self.png', path.join(data, 'self.png'));
  await mkdir(path.join(data, 'folder.jpg'));
  const rows = [
    'path,label',
    ...files.r.map((f) => `${path.relative(data, f)},red`),
    ...files.b.map((f) => `${path.relative(data, f)},blue`),
    '../outside.png,red',
    `${path.join(dir, 'outside.png')},red`,
    'imgs/../../outside.png,red',
    'link.png,red',
    'dangling.png,blue',
    'self.png,blue',
    'folder.jpg,blue',
    'notes.txt,blue',
  ];
  await writeText(path.join(data, 'notes.txt'), 'x');
  await writeFile(path.join(data, 'labels.csv'), rows.join('\n'));
  const res = await core.trainRun(fastTrain(backbone, path.join(data, 'labels.csv'), path.join(dir, 'run'), cache));
  const byPath = Object.fromEntries(res.dataset.skipped.map((s) => [s.path, s.reason]));
  assert.match(byPath['../outside.png'], /line 12: path is outside the manifest's folder/);
  assert.match(byPath[path.join(dir, 'outside.png')], /line 13: path is outside the manifest's folder/);
  assert.match(byPath['imgs/../../outside.png'], /outside the manifest's folder/);
  assert.match(byPath['link.png'], /line 15: path links outside the manifest's folder/);
  assert.match(byPath['dangling.png'], /file not found/);
  assert.match(byPath['self.png'], /symbolic link loop/);
  assert.match(byPath['folder.jpg'], /line 18: not a regular file \(a folder\)/);
  assert.match(byPath[path.join(data, 'notes.txt')], /not an image type/);
  assert.equal(res.dataset.skipped.length, 8, JSON.stringify(res.dataset.skipped, null, 1));
  assert.equal(res.dataset.total, 10);
  assert.equal(res.dataset.kind, 'csv');
});

test('unicode and odd characters in labels and file names round-trip into run.json', async (t) => {
  const { dir, backbone, cache } = await setup(t);
  const data = path.join(dir, 'data');
  // The café folder is written decomposed (NFD, as macOS stores names); its label comes out composed (NFC).
  const classes = { 'cafe\u0301 ☕': 'red', 'a,b "q"': 'blue', 'with  spaces ': 'green' };
  const rng = new core.Rng(6);
  const names = ['ünï cødé 1.png', 'x,y "z" 2.png', '日本 語 3.png', "it's #4.png", 'plain-5.png'];
  for (const [folder, colour] of Object.entries(classes)) {
    for (const n of names) await noisyImage(path.join(data, folder, n), COLOURS[colour], rng);
  }
  const out = path.join(dir, 'rün ☕');
  const res = await core.trainRun(fastTrain(backbone, data, out, cache));
  const labels = ['a,b "q"', 'café ☕', 'with  spaces '];
  assert.deepEqual(res.dataset.classes, labels);
  assert.deepEqual(res.dataset.skipped, []);
  const record = JSON.parse(await readFile(path.join(out, 'run.json'), 'utf8'));
  assert.deepEqual(record.labels, labels);
  assert.deepEqual(record.test.labels, labels);
  assert.deepEqual(Object.keys(record.dataset.counts).sort(), [...labels].sort());
  const rels = record.samples.map((s) => s.rel);
  for (const [folder] of Object.entries(classes)) for (const n of names) assert.ok(rels.includes(path.join(folder, n)), `${folder}/${n}`);
  // Predicting from the run folder reads those paths back.
  const file = path.join(data, 'a,b "q"', 'x,y "z" 2.png');
  const [line] = await core.predictFiles(out, [file], { cacheDir: cache, workers: 1 });
  assert.equal(line.path, file);
  assert.ok(labels.includes(line.label));
});

test('no usable data: empty folder, no images, one class, a class that never decodes', async (t) => {
  const { dir, backbone, cache } = await setup(t);
  const out = path.join(dir, 'out', 'run');
  const run = (data, extra) => core.trainRun(fastTrain(backbone, data, out, cache, extra));

  const empty = path.join(dir, 'empty');
  await mkdir(empty);
  await assert.rejects(run(empty), { code: 'NO_DATA', message: /no images found/ });

  const noImages = path.join(dir, 'no-images');
  await writeText(path.join(noImages, 'a', 'readme.txt'), 'x');
  await writeText(path.join(noImages, 'b', 'data.json'), '{}');
  await assert.rejects(run(noImages), { code: 'NO_DATA', message: /no images found/ });

  const one = path.join(dir, 'one');
  await colourDataset(one, { classes: { lonely: 'red' }, perClass: 5 });
  await assert.rejects(run(one), { code: 'NO_DATA', message: /only one class found \('lonely'\)/ });

  const dead = path.join(dir, 'dead');
  await colourDataset(dead, { classes: { red: 'red', green: 'green' }, perClass: 4 });
  await brokenFiles(path.join(dead, 'broken'));
  await assert.rejects(run(dead), (err) => {
    assert.equal(err.code, 'NO_DATA');
    assert.match(err.message, /class 'broken' has no readable images; 3 files failed: /);
    assert.match(err.message, /text\.jpg \(not a readable image/);
    assert.match(err.message, /trunc\.jpg \(truncated or damaged/);
    assert.match(err.message, /zero\.jpg \(empty file/);
    return true;
  });

  const tooFew = path.join(dir, 'too-few');
  await colourDataset(tooFew, { classes: { red: 'red', green: 'green' }, perClass: 4 });
  await colourDataset(tooFew, { classes: { blue: 'blue' }, perClass: 2 });
  await assert.rejects(run(tooFew), { code: 'NO_DATA', message: /'blue' \(2 distinct images\) need at least 3/ });

  // The same image copied under both classes: nothing is left to learn from.
  const clash = path.join(dir, 'clash');
  await colourDataset(path.join(clash, 'a'), { classes: { x: 'red' }, perClass: 3, seed: 8 });
  await colourDataset(path.join(clash, 'b'), { classes: { x: 'red' }, perClass: 3, seed: 8 });
  await assert.rejects(run(clash), { code: 'NO_DATA', message: /conflicting labels fewer than two classes remain/ });

  await assertNoRunDir(out);
});

test('bad settings and paths stop the run before any work, with the option named', async (t) => {
  const { dir, backbone, cache } = await setup(t);
  const data = path.join(dir, 'data');
  await colourDataset(data, { perClass: 4 });
  const out = path.join(dir, 'run');
  const run = (extra) => core.trainRun(fastTrain(backbone, data, out, cache, extra));
  await assert.rejects(run({ data: path.join(dir, 'nope') }), { code: 'NOT_FOUND', message: /dataset .*nope not found/ });
  await assert.rejects(run({ data: path.join(dir, 'tiny', 'model.json') }), { code: 'BAD_INPUT', message: /neither a folder nor a \.csv/ });
  await assert.rejects(run({ epochs: 0 }), { code: 'BAD_INPUT', message: /--epochs/ });
  await assert.rejects(run({ batchSize: 1.5 }), { code: 'BAD_INPUT', message: /--batch/ });
  await assert.rejects(run({ learningRate: -1 }), { code: 'BAD_INPUT', message: /--lr/ });
  await assert.rejects(run({ dropout: 1 }), { code: 'BAD_INPUT', message: /--dropout/ });
  await assert.rejects(run({ val: 0.7 }), { code: 'BAD_INPUT', message: /--val/ });
  await assert.rejects(run({ unfreeze: 2 }), { code: 'BAD_INPUT', message: /--unfreeze/ });
  await assert.rejects(run({ backbone: 'no-such-net' }), { code: 'BAD_INPUT', message: /unknown backbone 'no-such-net'/ });
  await writeText(path.join(dir, 'bad-model', 'model.json'), '{"modelTopology": {"weird": true}, "weightsManifest": []}');
  await assert.rejects(run({ backbone: path.join(dir, 'bad-model', 'model.json') }), { code: 'BAD_MODEL' });
  await assertNoRunDir(out);

  await core.trainRun(fastTrain(backbone, data, out, cache));
  await assert.rejects(run(), { code: 'EXISTS', message: /already exists/ });
  const again = await run({ force: true, seed: 3 });
  assert.equal(again.runDir, out);
  assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('.run')), [], 'no temp folder left after replacing');
});
