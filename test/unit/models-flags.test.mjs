// Hostile models from disk and from the network (issue 9, items 9 and 10):
// weight paths, links, file types and sizes are checked before a byte is
// read; shards come only from the model's own folder at its own origin;
// cached files are verified against the sha256 recorded at download.
// Models are made by code; the network is a loopback HTTP server.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { appendFile, copyFile, readFile, readdir, symlink, truncate, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { core, runCli, tempDir, tf } from './helpers.mjs';
import { colourDataset, tinyBackbone } from './fixtures.mjs';

/** A tiny model in `dir`; returns its parsed model.json and the model.json path. */
async function tinyModel(dir) {
  const file = await tinyBackbone(dir);
  return { file, json: JSON.parse(await readFile(file, 'utf8')) };
}

async function rewrite(file, change) {
  const json = JSON.parse(await readFile(file, 'utf8'));
  change(json);
  await writeFile(file, JSON.stringify(json));
}

/** Resolves a local model and loads it through dirLoader; both must fail with BAD_MODEL matching `re`, fast. */
async function refusedFast(dir, re, maxMs = 3000) {
  const t0 = Date.now();
  await assert.rejects(core.resolveBackbone(path.join(dir, 'model.json'), dir), (err) => {
    assert.equal(err.code, 'BAD_MODEL', err.message);
    assert.match(err.message, re);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
  await assert.rejects(core.readModelDir(dir), { code: 'BAD_MODEL', message: re });
  const ms = Date.now() - t0;
  assert.ok(ms < maxMs, `refused in ${ms} ms, without reading the weights`);
}

test('a manifest naming /dev/zero (absolute path) is refused before anything is read', { timeout: 20_000 }, async (t) => {
  const dir = await tempDir(t);
  const { file } = await tinyModel(dir);
  // 9 GB declared as a single uint8 weight of /dev/zero: the old code read it all.
  await rewrite(file, (j) => {
    j.weightsManifest = [{ paths: ['/dev/zero'], weights: j.weightsManifest[0].weights }];
  });
  await refusedFast(dir, /outside its folder: \/dev\/zero/);
  for (const p of ['file:///dev/zero', 'http://127.0.0.1:1/w.bin', '../w.bin', 'a/../../w.bin', '%2e%2e/w.bin', 'C:\\w.bin']) {
    await rewrite(file, (j) => {
      j.weightsManifest[0].paths = [p];
    });
    await refusedFast(dir, /outside its folder/);
  }
});

test('a weights file that is a FIFO or a huge sparse file is refused without being read', { timeout: 20_000 }, async (t) => {
  const dir = await tempDir(t);
  await tinyModel(dir);
  const weights = path.join(dir, 'weights.bin');
  await copyFile(weights, path.join(dir, 'real.bin'));
  // A 20 GB sparse file: its size says it is not this model's weights.
  await truncate(weights, 20 * 1024 ** 3);
  await refusedFast(dir, /are 21474836480 bytes, but the manifest's shapes and dtypes need \d+/);
  await writeFile(weights, '');
  execFileSync('rm', [weights]);
  execFileSync('mkfifo', [weights]);
  await refusedFast(dir, /weights file weights\.bin .*is not a regular file/);
});

test('a weights.bin linking outside the model folder is refused; a link inside it is fine', async (t) => {
  const root = await tempDir(t);
  const dir = path.join(root, 'model');
  await tinyModel(dir);
  const weights = path.join(dir, 'weights.bin');
  await copyFile(weights, path.join(root, 'outside.bin'));
  await copyFile(weights, path.join(dir, 'inside.bin'));
  execFileSync('rm', [weights]);
  await symlink(path.join(root, 'outside.bin'), weights);
  await refusedFast(dir, /weights file weights\.bin links outside the model's folder/);
  execFileSync('rm', [weights]);
  await symlink('inside.bin', weights);
  const r = await core.resolveBackbone(path.join(dir, 'model.json'), dir);
  assert.equal(r.entry.format, 'layers');
});

test('weights of the wrong size and absurd shapes are BAD_MODEL errors naming the weight or layer', async (t) => {
  const dir = await tempDir(t);
  const { file } = await tinyModel(dir);
  const original = await readFile(file, 'utf8');
  const weights = await readFile(path.join(dir, 'weights.bin'));
  await appendFile(path.join(dir, 'weights.bin'), Buffer.alloc(4));
  await refusedFast(dir, /weights of .* are \d+ bytes, but the manifest's shapes and dtypes need \d+/);
  await truncate(path.join(dir, 'weights.bin'), 100);
  await refusedFast(dir, /are 100 bytes/);
  await writeFile(path.join(dir, 'weights.bin'), weights);

  // A layer of 2e9 filters (the old code: "Invalid typed array length" or "Cannot read properties of undefined").
  await rewrite(file, (j) => {
    j.modelTopology.config.layers[1].config.filters = 2e9;
  });
  await refusedFast(dir, /layer conv2d_Conv2D\d+ declares filters 2000000000, over the limit of 65536/);
  // The same layer in the manifest too: its weight is named.
  await writeFile(file, original);
  await rewrite(file, (j) => {
    j.weightsManifest[0].weights[2].shape = [3, 3, 8, 2e9];
  });
  await refusedFast(dir, /weight conv2d_Conv2D\d+\/kernel of shape \[3,3,8,2000000000\] has 144000000000 elements, over the limit of 200000000/);
  for (const shape of [[-1, 3], [1.5], 'big', [1, 2, 3, 4, 5, 6, 7, 8, 9]]) {
    await writeFile(file, original);
    await rewrite(file, (j) => {
      j.weightsManifest[0].weights[0].shape = shape;
    });
    await refusedFast(dir, /weight conv2d_Conv2D\d+\/kernel has (an invalid dimension|no valid shape)/);
  }
  // An input of a million pixels a side.
  await writeFile(file, original);
  await rewrite(file, (j) => {
    j.modelTopology.config.layers[0].config.batch_input_shape = [null, 60000, 60000, 3];
  });
  await assert.rejects(core.resolveBackbone(file, dir), { code: 'BAD_MODEL', message: /declares an input of 60000 pixels a side/ });
});

test('train with a backbone of a 2e9-filter layer exits 1 with a one-line BAD_MODEL reason', { timeout: 120_000 }, async (t) => {
  const dir = await tempDir(t);
  const { file } = await tinyModel(path.join(dir, 'model'));
  await rewrite(file, (j) => {
    j.modelTopology.config.layers[1].config.filters = 2e9;
  });
  await colourDataset(path.join(dir, 'data'), { perClass: 3 });
  const res = await runCli(['train', path.join(dir, 'data'), '--backbone', file, '--out', path.join(dir, 'run'), '--epochs', '1', '--workers', '1'], { env: { HEADSTART_CACHE_DIR: path.join(dir, 'cache') } });
  assert.equal(res.code, 1, res.stderr);
  const last = res.stderr.trim().split('\n').at(-1);
  assert.match(last, /^headstart: .*layer conv2d_Conv2D\d+ declares filters 2000000000/);
  assert.doesNotMatch(res.stderr, /internal error/);
});

/** Serves `dir`; counts every request by path (decoded as the server sees it). `routes` overrides paths. */
async function serve(t, dir, routes = {}) {
  const requests = [];
  const server = http.createServer(async (req, res) => {
    const name = new URL(req.url, 'http://x').pathname;
    requests.push(name);
    if (routes[name]) return routes[name](req, res);
    try {
      const body = await readFile(path.join(dir, decodeURIComponent(name)));
      res.writeHead(200, { 'content-length': body.length }).end(body);
    } catch (err) {
      res.writeHead(err.code === 'ENOENT' ? 404 : 500).end();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { base: `http://127.0.0.1:${server.address().port}`, requests };
}

/** A tiny model served from `root/sub/`, with a copy of its weights at `root/escape.bin`. */
async function servedModel(t) {
  const root = await tempDir(t);
  const { file } = await tinyModel(path.join(root, 'sub'));
  await copyFile(path.join(root, 'sub', 'weights.bin'), path.join(root, 'escape.bin'));
  return { root, file };
}

test('downloadModel: absolute-URL, %2e%2e and redirected shards are refused without a request to them', async (t) => {
  const { root, file } = await servedModel(t);
  const other = await serve(t, root);
  const cases = {
    absolute: `${other.base}/sub/weights.bin`,
    'protocol-relative': `//127.0.0.1:${new URL(other.base).port}/sub/weights.bin`,
    'percent-dots': '%2e%2e/escape.bin',
    'percent-dots-upper': '%2E%2E%2Fescape.bin',
    'dot-dot': '../escape.bin',
  };
  const original = await readFile(file, 'utf8');
  const served = await serve(t, root, {
    '/sub/redirect.bin': (req, res) => res.writeHead(302, { location: `${other.base}/sub/weights.bin` }).end(),
    '/sub/redirect-up.bin': (req, res) => res.writeHead(302, { location: '/escape.bin' }).end(),
  });
  const cache = await tempDir(t);
  for (const [name, p] of Object.entries(cases)) {
    await writeFile(path.join(root, 'sub', `${name}.json`), original.replace('"weights.bin"', JSON.stringify(p)));
    await assert.rejects(core.downloadModel(`${served.base}/sub/${name}.json`, path.join(cache, name)), (err) => {
      assert.equal(err.code, 'DOWNLOAD', err.message);
      assert.match(err.message, /unsafe shard path/);
      return true;
    }, name);
  }
  assert.deepEqual(served.requests, Object.keys(cases).map((n) => `/sub/${n}.json`), 'only the model.json files were requested');
  for (const p of ['redirect.bin', 'redirect-up.bin']) {
    await writeFile(path.join(root, 'sub', `${p}.json`), original.replace('"weights.bin"', JSON.stringify(p)));
    await assert.rejects(core.downloadModel(`${served.base}/sub/${p}.json`, path.join(cache, p)), { code: 'DOWNLOAD', message: /redirects to .*(another origin|outside the model's folder)/ });
  }
  assert.deepEqual(other.requests, [], 'the other origin was never contacted');
  assert.ok(!served.requests.includes('/escape.bin'), 'nothing above the model folder was requested');
  assert.deepEqual(await readdir(cache), []);
  // The same model with its own shard downloads and loads.
  await core.downloadModel(`${served.base}/sub/model.json`, path.join(cache, 'ok'));
  const model = await tf.loadLayersModel(core.dirLoader(path.join(cache, 'ok')));
  model.dispose();
});

/** A remote catalogue entry answered by a loopback server: fetchImpl maps its folder onto the server. */
async function remoteEntry(t) {
  const { root } = await servedModel(t);
  const served = await serve(t, path.join(root, 'sub'));
  const entry = core.CATALOGUE.find((e) => !e.bundled);
  const remoteDir = entry.url.slice(0, entry.url.lastIndexOf('/') + 1);
  const fetchImpl = (url, init) => fetch(String(url).replace(remoteDir, `${served.base}/`), init);
  return { entry, served, fetchImpl, src: path.join(root, 'sub') };
}

test('a tampered cached shard is caught on the next load: re-downloaded when online, else a BAD_MODEL error naming the folder', async (t) => {
  const { entry, served, fetchImpl } = await remoteEntry(t);
  const cacheDir = await tempDir(t);
  const first = await core.resolveBackbone(entry.id, cacheDir, { fetchImpl });
  const shard = path.join(first.dir, 'weights.bin');
  const good = await readFile(shard);
  const files = JSON.parse(await readFile(path.join(first.dir, 'files.json'), 'utf8'));
  assert.deepEqual(files.map((f) => [f.path, f.bytes, f.sha256]), [['model.json', (await readFile(path.join(first.dir, 'model.json'))).length, core.sha256(await readFile(path.join(first.dir, 'model.json')))], ['weights.bin', good.length, core.sha256(good)]]);
  const tampered = Buffer.from(good);
  tampered[10] ^= 0xff; // same size, other bytes
  await writeFile(shard, tampered);
  const offline = () => Promise.reject(new TypeError('fetch failed', { cause: new Error('getaddrinfo ENOTFOUND') }));
  await assert.rejects(core.resolveBackbone(entry.id, cacheDir, { fetchImpl: offline }), (err) => {
    assert.equal(err.code, 'BAD_MODEL');
    assert.match(err.message, /cached backbone .* is damaged \(weights\.bin has sha256 [0-9a-f]{64}, but [0-9a-f]{64} was recorded when it was downloaded\) and could not be downloaded again .*; delete .* and run again when online/);
    assert.ok(err.message.includes(first.dir));
    return true;
  });
  assert.deepEqual(await readFile(shard), tampered, 'a failed re-download leaves the cache as it was');
  const before = served.requests.length;
  const events = [];
  const again = await core.resolveBackbone(entry.id, cacheDir, { fetchImpl, onEvent: (e) => events.push(e) });
  assert.ok(events.some((e) => e.type === 'warning' && /damaged .*downloading it again/.test(e.message)));
  assert.equal(served.requests.length - before, 2, 'model.json and its shard fetched again');
  assert.deepEqual(await readFile(shard), good);
  assert.equal(again.modelHash, first.modelHash);
  // A tampered model.json (another manifest) is caught the same way.
  await writeFile(path.join(first.dir, 'model.json'), (await readFile(path.join(first.dir, 'model.json'), 'utf8')).replace('"weights.bin"', '"weights.bin" '));
  await assert.rejects(core.resolveBackbone(entry.id, cacheDir, { fetchImpl: offline }), { code: 'BAD_MODEL', message: /model\.json has sha256/ });
});

test('a catalogue entry that pins a sha256 refuses a download that differs, and caches nothing', async (t) => {
  const { entry, fetchImpl, src } = await remoteEntry(t);
  const good = core.sha256(await readFile(path.join(src, 'weights.bin')));
  const cacheDir = await tempDir(t);
  t.after(() => {
    delete entry.files;
  });
  entry.files = [{ path: 'weights.bin', sha256: '0'.repeat(64) }];
  await assert.rejects(core.resolveBackbone(entry.id, cacheDir, { fetchImpl }), (err) => {
    assert.equal(err.code, 'DOWNLOAD');
    assert.match(err.message, new RegExp(`weights\\.bin from .* has sha256 ${good}, expected 0{64}`));
    return true;
  });
  assert.equal(await core.isCached(entry, cacheDir), false);
  entry.files = [{ path: 'weights.bin', sha256: good }];
  await core.resolveBackbone(entry.id, cacheDir, { fetchImpl });
  assert.equal(await core.isCached(entry, cacheDir), true);
});


// Flags (item 11): every numeric option is checked against the shared table,
// decimal notation only, with a one-line reason naming the flag, its range and
// what was given. None of these reaches a scan: DATA need not exist.
const BAD_FLAGS = [
  [['train', 'DATA', '--patience=-5'], '--patience must be a whole number from 0 to 1000 (got -5)'],
  [['train', 'DATA', '--augment=-1'], '--augment must be a whole number from 0 to 32 (got -1)'],
  [['train', 'DATA', '--lr', '0x1'], '--lr must be a number greater than 0 and at most 1 (got 0x1)'],
  [['train', 'DATA', '--epochs', '-1'], '--epochs must be a whole number from 1 to 1000 (got -1)'],
  [['train', 'DATA', '--epochs', ''], '--epochs must be a whole number from 1 to 1000 (got "")'],
  [['train', 'DATA', '--epochs', ' 5'], '--epochs must be a whole number from 1 to 1000 (got " 5")'],
  [['train', 'DATA', '--batch', '0b11'], '--batch must be a whole number from 1 to 4096 (got 0b11)'],
  [['train', 'DATA', '--lr', 'Infinity'], '--lr must be a number greater than 0 and at most 1 (got Infinity)'],
  [['train', 'DATA', '--lr', '0'], '--lr must be a number greater than 0 and at most 1 (got 0)'],
  [['train', 'DATA', '--hidden', '1.5'], '--hidden must be a whole number from 0 to 8192 (got 1.5)'],
  [['train', 'DATA', '--dropout', '1'], '--dropout must be a number at least 0 and less than 1 (got 1)'],
  [['train', 'DATA', '--val', '0.6'], '--val must be a number from 0 to 0.5 (got 0.6)'],
  [['train', 'DATA', '--test', '-0.1'], '--test must be a number from 0 to 0.5 (got -0.1)'],
  [['train', 'DATA', '--val', '0.5', '--test', '0.5'], '--val plus --test must leave images to train on (below 1; got 0.5 + 0.5)'],
  [['train', 'DATA', '--seed', '-3'], '--seed must be a whole number from 0 to 2147483647 (got -3)'],
  [['train', 'DATA', '--unfreeze', '-1'], '--unfreeze must be a whole number from 0 to 1000 (got -1)'],
  [['train', 'DATA', '--workers', '0'], '--workers must be a whole number from 1 to 64 (got 0)'],
  [['train', 'DATA', '--aug', 'crop=0x1'], '--aug crop must be a number from 0 to 0.5 (got 0x1)'],
  [['train', 'DATA', '--aug', 'flip=yes'], '--aug flip must be true, false, 1 or 0 (got "yes")'],
  [['export', 'RUN', '--out', 'X', '--prune', '1'], '--prune must be a number at least 0 and less than 1 (got 1)'],
  [['export', 'RUN', '--out', 'X', '--max-drop', '-1'], '--max-drop must be a number from 0 to 100 (got -1)'],
  [['distill', 'RUN', '--temperature', '0.5'], '--temperature must be a number from 1 to 20 (got 0.5)'],
  [['distill', 'RUN', '--alpha', '2'], '--alpha must be a number from 0 to 1 (got 2)'],
  [['sample', 'S', '--per-class', '0'], '--per-class must be a whole number from 1 to 10000 (got 0)'],
  [['sample', 'S', '--classes', '9'], '--classes must be a whole number from 2 to 4 (got 9)'],
  [['sample', 'S', '--seed', '1e400'], '--seed must be a whole number from 0 to 2147483647 (got 1e400)'],
  [['eval', 'RUN', '--workers', '99'], '--workers must be a whole number from 1 to 64 (got 99)'],
  [['backbones', '--cache', ''], '--cache needs a folder (got an empty value)'],
];

test('every bad numeric flag exits 1 with a one-line reason naming the flag, its range and the value given', { timeout: 300_000 }, async (t) => {
  const dir = await tempDir(t);
  const queue = [...BAD_FLAGS];
  const failures = [];
  // Four CLI processes at a time: each only parses its flags.
  await Promise.all(Array.from({ length: 4 }, async () => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      const [args, want] = job;
      const res = await runCli(args.map((a) => (/^[A-Z]+$/.test(a) ? path.join(dir, a.toLowerCase()) : a)), { cwd: dir, env: { HEADSTART_CACHE_DIR: path.join(dir, 'cache') }, timeout: 60_000 });
      const lines = res.stderr.trim().split('\n');
      if (res.code !== 1 || lines.length !== 1 || lines[0] !== `headstart: ${want}`) failures.push(`${args.join(' ')} → code ${res.code}: ${res.stderr.trim()}`);
    }
  }));
  assert.deepEqual(failures, []);
  assert.deepEqual(await readdir(dir), [], 'nothing was written');
});

test('the option table: ranges, decimal-only parsing, and the core checks agree with the CLI', () => {
  const bad = (fn, re) => assert.throws(fn, (e) => e.code === 'BAD_INPUT' && re.test(e.message) && !e.message.includes('\n'));
  assert.equal(core.parseOption('lr', '1e-3'), 0.001);
  assert.equal(core.parseOption('epochs', '+7'), 7);
  assert.equal(core.parseOption('test', '0'), 0);
  assert.equal(core.parseOption('val', '.25'), 0.25);
  assert.equal(core.parseOption('epochs', undefined), undefined);
  for (const text of ['0x1', '0b1', '0o7', '', ' ', '1 ', 'Infinity', '-Infinity', 'NaN', '1_000', '1,5', '--1']) {
    bad(() => core.parseOption('epochs', text), /^--epochs must be a whole number from 1 to 1000 \(got /);
  }
  core.checkSplit(0.15, 0);
  core.checkSplit(undefined, undefined);
  bad(() => core.checkSplit(0.5, 0.5), /--val plus --test/);
  for (const [name, o] of Object.entries(core.NUMERIC_OPTIONS)) {
    assert.equal(core.checkOption(name, o.default), o.default, `${name}: its default is in range`);
    bad(() => core.checkOption(name, o.max + 1), new RegExp(`^${o.label} must be `));
    bad(() => core.checkOption(name, o.min - 1), new RegExp(`^${o.label} must be `));
  }
  // The engine's own checks use the same table (the panel calls them, not the CLI).
  const head = { ...core.HEAD_DEFAULTS };
  core.validateHead(head);
  bad(() => core.validateHead({ ...head, patience: -5 }), /^--patience must be a whole number from 0 to 1000 \(got -5\)$/);
  bad(() => core.validateHead({ ...head, learningRate: Infinity }), /^--lr must be/);
  bad(() => core.validateHead({ ...head, epochs: -1 }), /^--epochs must be a whole number from 1 to 1000 \(got -1\)$/);
  bad(() => core.normaliseAugment({ views: -1 }), /^--augment must be a whole number from 0 to 32 \(got -1\)$/);
  bad(() => core.parseAugmentSpec('rotate=0x10', 2), /^--aug rotate must be a number from 0 to 45 \(got 0x10\)$/);
});
