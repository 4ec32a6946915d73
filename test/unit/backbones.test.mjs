// Backend choice, the backbone catalogue, offline resolution of bundled and
// local models, and the download path (against a local HTTP server).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { copyFile, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { core, tempDir, tf } from './helpers.mjs';
import { tinyBackbone } from './fixtures.mjs';

test('initBackend returns one of tensorflow / wasm / cpu, and the same one again', async () => {
  const b = await core.initBackend();
  assert.ok(['tensorflow', 'wasm', 'cpu'].includes(b.name), b.name);
  assert.ok(Array.isArray(b.notes));
  assert.equal(tf.getBackend(), b.name);
  assert.equal((await core.initBackend()).name, b.name);
});

test('catalogue entries are complete and unique; bundled ones resolve offline', async (t) => {
  const ids = new Set();
  for (const e of core.CATALOGUE) {
    assert.ok(!ids.has(e.id), `duplicate id ${e.id}`);
    ids.add(e.id);
    assert.match(e.id, /^[a-z0-9.-]+$/);
    assert.ok(e.title.length > 3, e.id);
    assert.ok(['layers', 'graph'].includes(e.format) || (e.format === 'onnx' && e.onnxInput && /\.onnx$/.test(e.url)), e.id);
    assert.ok(Number.isInteger(e.inputSize) && e.inputSize >= 32, e.id);
    assert.ok(Number.isInteger(e.featureSize) && e.featureSize > 0, e.id);
    assert.ok(e.licence.length > 2, e.id);
    assert.ok(e.bundled || /^https:\/\//.test(e.url), `${e.id}: a remote entry needs an https url`);
  }
  assert.ok(ids.has(core.DEFAULT_BACKBONE));
  const cacheDir = await tempDir(t);
  // No fetch may happen for a bundled entry.
  const fetchImpl = () => assert.fail('a bundled backbone must not be downloaded');
  for (const e of core.CATALOGUE.filter((x) => x.bundled)) {
    const r = await core.resolveBackbone(e.id, cacheDir, { fetchImpl });
    assert.equal(r.entry.id, e.id);
    assert.ok((await stat(path.join(r.dir, 'model.json'))).size > 100);
    assert.match(r.modelHash, /^[0-9a-f]{64}$/);
    assert.equal(await core.isCached(e, cacheDir), true);
  }
  assert.deepEqual(await readdir(cacheDir), [], 'resolving bundled backbones writes nothing to the cache');
});

test('an unknown backbone id is a clear error naming the choices', async (t) => {
  const cacheDir = await tempDir(t);
  await assert.rejects(core.resolveBackbone('resnet-9000', cacheDir), (err) => {
    assert.equal(err.name, 'HeadstartError');
    assert.equal(err.code, 'BAD_INPUT');
    assert.match(err.message, /unknown backbone 'resnet-9000'/);
    assert.match(err.message, /mobilenet-v2-140/);
    return true;
  });
  await assert.rejects(core.resolveBackbone(path.join(cacheDir, 'nothing', 'model.json'), cacheDir), { code: 'NOT_FOUND' });
});

test('a local model.json saved by TF.js (sequential) resolves, with its input size measured', async (t) => {
  const dir = await tempDir(t);
  const file = await tinyBackbone(path.join(dir, 'tiny'), { size: 48 });
  const r = await core.resolveBackbone(file, dir);
  assert.equal(r.entry.format, 'layers');
  assert.equal(r.entry.inputSize, 48);
  assert.equal(r.dir, path.dirname(file));
  const opened = await core.openBackbone(file, { cacheDir: dir, workers: 1 });
  t.after(() => opened.dispose());
  assert.equal(opened.backbone.entry.featureSize, 16, 'feature size measured from the model');
});

/** Serves a folder's files; `routes` overrides a path with a handler (req, res). */
async function serve(t, dir, routes = {}) {
  const server = http.createServer(async (req, res) => {
    const name = decodeURIComponent(new URL(req.url, 'http://x').pathname.slice(1));
    if (routes[name]) return routes[name](req, res);
    try {
      const body = await readFile(path.join(dir, name));
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${server.address().port}`;
}

/** A tiny model whose weights are split over two shards, as converters write them. */
async function twoShardModel(dir) {
  await tinyBackbone(path.join(dir, 'src'));
  const json = JSON.parse(await readFile(path.join(dir, 'src', 'model.json'), 'utf8'));
  const weights = await readFile(path.join(dir, 'src', 'weights.bin'));
  const half = Math.floor(weights.length / 2);
  await writeFile(path.join(dir, 'group1-shard1of2.bin'), weights.subarray(0, half));
  await writeFile(path.join(dir, 'group1-shard2of2.bin'), weights.subarray(half));
  json.weightsManifest[0].paths = ['group1-shard1of2.bin', 'group1-shard2of2.bin'];
  await writeFile(path.join(dir, 'model.json'), JSON.stringify(json));
  return { json, bytes: weights.length, weights };
}

async function siblings(dest) {
  return (await readdir(path.dirname(dest))).filter((n) => n.includes(path.basename(dest)));
}

test('downloadModel: progress events, atomic landing, files.json, loadable', async (t) => {
  const src = await tempDir(t);
  const { bytes } = await twoShardModel(src);
  const base = await serve(t, src);
  const cache = await tempDir(t);
  const dest = path.join(cache, 'backbones', 'tiny');
  const events = [];
  const files = await core.downloadModel(`${base}/model.json`, dest, [], { onEvent: (e) => events.push(e) });
  assert.deepEqual(files.map((f) => f.path), ['model.json', 'group1-shard1of2.bin', 'group1-shard2of2.bin']);
  for (const f of files) assert.equal(f.sha256, core.sha256(await readFile(path.join(dest, f.path))));
  assert.deepEqual(JSON.parse(await readFile(path.join(dest, 'files.json'), 'utf8')), files);
  const progress = events.filter((e) => e.type === 'progress');
  assert.equal(events[0].type, 'phase');
  assert.ok(progress.length >= 2, 'one progress event per shard at least');
  for (const p of progress) {
    assert.equal(p.phase, 'download');
    assert.equal(p.unit, 'B');
    assert.equal(p.total, bytes);
    assert.ok(Number.isFinite(p.eta) && p.eta >= 0);
  }
  assert.ok(progress.every((p, i) => i === 0 || p.done > progress[i - 1].done), 'done grows');
  assert.equal(progress.at(-1).done, bytes);
  assert.deepEqual(await siblings(dest), ['tiny'], 'no temp folder left beside it');
  const model = await tf.loadLayersModel(core.dirLoader(dest));
  assert.equal(model.outputs[0].shape[1], 16);
  model.dispose();

  // Known checksums that match are accepted; a second download replaces the folder.
  await core.downloadModel(`${base}/model.json`, dest, files, {});
  assert.deepEqual(await siblings(dest), ['tiny']);
});

test('downloadModel: a shard shorter than the manifest says fails with DOWNLOAD and leaves nothing', async (t) => {
  const src = await tempDir(t);
  await twoShardModel(src);
  const short = (await readFile(path.join(src, 'group1-shard2of2.bin'))).subarray(0, 10);
  const base = await serve(t, src, { 'group1-shard2of2.bin': (req, res) => res.writeHead(200, { 'content-length': short.length }).end(short) });
  const cache = await tempDir(t);
  const dest = path.join(cache, 'tiny');
  await assert.rejects(core.downloadModel(`${base}/model.json`, dest), (err) => {
    assert.equal(err.code, 'DOWNLOAD');
    assert.match(err.message, /cut short/);
    return true;
  });
  assert.deepEqual(await readdir(cache), [], 'no destDir and no temp folder');
});

test('downloadModel: a connection dropped mid-shard is a DOWNLOAD error, not a raw network error', async (t) => {
  const src = await tempDir(t);
  await twoShardModel(src);
  const shard = await readFile(path.join(src, 'group1-shard1of2.bin'));
  const base = await serve(t, src, {
    'group1-shard1of2.bin': (req, res) => {
      res.writeHead(200, { 'content-length': shard.length });
      res.write(shard.subarray(0, 50), () => res.destroy());
    },
  });
  const cache = await tempDir(t);
  const dest = path.join(cache, 'tiny');
  await assert.rejects(core.downloadModel(`${base}/model.json`, dest), (err) => {
    assert.equal(err.name, 'HeadstartError', `${err.name}: ${err.message}`);
    assert.equal(err.code, 'DOWNLOAD');
    assert.match(err.message, /group1-shard1of2\.bin/);
    return true;
  });
  assert.deepEqual(await readdir(cache), []);
});

test('downloadModel: a longer shard, a wrong sha256, HTTP 404, an unsafe path and maxBytes are refused', async (t) => {
  const src = await tempDir(t);
  const { json, bytes } = await twoShardModel(src);
  const long = Buffer.concat([await readFile(path.join(src, 'group1-shard2of2.bin')), Buffer.alloc(4096)]);
  await writeFile(path.join(src, 'unsafe.json'), JSON.stringify({ ...json, weightsManifest: [{ ...json.weightsManifest[0], paths: ['../escape.bin'] }] }));
  const longSrc = await tempDir(t);
  await copyFile(path.join(src, 'model.json'), path.join(longSrc, 'model.json'));
  await copyFile(path.join(src, 'group1-shard1of2.bin'), path.join(longSrc, 'group1-shard1of2.bin'));
  await writeFile(path.join(longSrc, 'group1-shard2of2.bin'), long);
  const base = await serve(t, src);
  const longBase = await serve(t, longSrc);
  const cache = await tempDir(t);
  const dest = path.join(cache, 'tiny');

  await assert.rejects(core.downloadModel(`${longBase}/model.json`, dest), { code: 'DOWNLOAD', message: /larger than expected/ });
  const wrong = [{ path: 'group1-shard1of2.bin', sha256: '0'.repeat(64) }];
  await assert.rejects(core.downloadModel(`${base}/model.json`, dest, wrong), (err) => {
    assert.equal(err.code, 'DOWNLOAD');
    assert.match(err.message, /group1-shard1of2\.bin .*sha256 .*expected 0{64}/);
    return true;
  });
  await assert.rejects(core.downloadModel(`${base}/missing.json`, dest), { code: 'DOWNLOAD', message: /HTTP 404/ });
  await assert.rejects(core.downloadModel(`${base}/unsafe.json`, dest), { code: 'DOWNLOAD', message: /unsafe shard path/ });
  await assert.rejects(core.downloadModel(`${base}/model.json`, dest, [], { maxBytes: bytes - 1 }), (err) => {
    assert.equal(err.code, 'DOWNLOAD');
    assert.match(err.message, new RegExp(`${bytes} bytes of weights, over the ${bytes - 1}-byte limit`));
    return true;
  });
  await assert.rejects(core.downloadModel('http://127.0.0.1:1/model.json', dest), { code: 'DOWNLOAD', message: /cannot download/ });
  assert.deepEqual(await readdir(cache), [], 'no destDir and no temp folder after any failure');
});

test('downloadModel: aborting mid-shard rejects with CancelledError and leaves nothing', async (t) => {
  const src = await tempDir(t);
  await twoShardModel(src);
  const shard = await readFile(path.join(src, 'group1-shard1of2.bin'));
  // Sends half of the first shard, then stalls: only cancellation can end the download.
  const base = await serve(t, src, {
    'group1-shard1of2.bin': (req, res) => {
      res.writeHead(200, { 'content-length': shard.length });
      res.write(shard.subarray(0, 100));
    },
  });
  const cache = await tempDir(t);
  const dest = path.join(cache, 'tiny');
  const controller = new AbortController();
  const seen = [];
  await assert.rejects(
    core.downloadModel(`${base}/model.json`, dest, [], {
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type !== 'progress') return;
        seen.push(e.done);
        controller.abort();
      },
    }),
    (err) => {
      assert.equal(err.name, 'CancelledError');
      assert.ok(core.isCancelled(err));
      return true;
    },
  );
  assert.deepEqual(seen, [100], 'stopped at the first chunk');
  assert.deepEqual(await readdir(cache), []);

  // Aborted before it starts: cancelled too, not a network error.
  const pre = new AbortController();
  pre.abort();
  await assert.rejects(core.downloadModel(`${base}/model.json`, dest, [], { signal: pre.signal }), { name: 'CancelledError' });
  assert.deepEqual(await readdir(cache), []);
});

test('resolveBackbone: a remote catalogue entry downloads once into the cache, then resolves offline', async (t) => {
  const src = await tempDir(t);
  await twoShardModel(src);
  const base = await serve(t, src);
  const entry = core.CATALOGUE.find((e) => !e.bundled);
  const remoteDir = entry.url.slice(0, entry.url.lastIndexOf('/') + 1);
  const urls = [];
  // Stands in for the network: the entry's URLs are answered by the local server.
  const fetchImpl = (url, init) => {
    urls.push(String(url));
    return fetch(String(url).replace(remoteDir, `${base}/`), init);
  };
  const cacheDir = await tempDir(t);
  assert.equal(await core.isCached(entry, cacheDir), false);
  const events = [];
  const r = await core.resolveBackbone(entry.id, cacheDir, { fetchImpl, onEvent: (e) => events.push(e) });
  assert.equal(r.dir, path.join(cacheDir, 'backbones', entry.id));
  assert.deepEqual(urls, [entry.url, `${remoteDir}group1-shard1of2.bin`, `${remoteDir}group1-shard2of2.bin`]);
  assert.ok(events.some((e) => e.type === 'progress' && e.phase === 'download'));
  assert.equal(await core.isCached(entry, cacheDir), true);
  const again = await core.resolveBackbone(entry.id, cacheDir, { fetchImpl: () => assert.fail('no second download') });
  assert.equal(again.modelHash, r.modelHash);
  assert.deepEqual(await readdir(path.join(cacheDir, 'backbones')), [entry.id]);
});
