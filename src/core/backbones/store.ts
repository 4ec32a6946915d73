import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { CancelledError, HeadstartError, describeError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { exists, sha256, writeDirAtomic } from '../fsutil';
import { type CheckedModelDir, type ModelJson, MODEL_LIMITS, checkManifest, checkModelDir, checkTopology, checkWeightPath, readRegularFile } from '../tfjsio';
import { type BackboneEntry, type BackboneFile, CATALOGUE, findBackbone } from './catalogue';

/** The cache folder: HEADSTART_CACHE_DIR, else the platform's user cache folder. */
export function defaultCacheDir(): string {
  if (process.env.HEADSTART_CACHE_DIR) return path.resolve(process.env.HEADSTART_CACHE_DIR);
  const home = os.homedir();
  if (process.platform === 'win32') return path.join(process.env.LOCALAPPDATA ?? path.join(home, 'AppData', 'Local'), 'headstart', 'Cache');
  if (process.platform === 'darwin') return path.join(home, 'Library', 'Caches', 'headstart');
  return path.join(process.env.XDG_CACHE_HOME ?? path.join(home, '.cache'), 'headstart');
}

/** Folder of the bundled models: `models/` at the package root (beside dist/). */
export function bundledModelsDir(): string {
  return process.env.HEADSTART_MODELS_DIR ?? path.resolve(__dirname, '..', 'models');
}

/** A backbone ready to load: its catalogue entry (or one made for a local model) and its folder. */
export interface ResolvedBackbone {
  entry: BackboneEntry;
  dir: string;
  /** sha256 of model.json: part of every cache key, so a changed model never serves old features. */
  modelHash: string;
}

export interface DownloadOptions extends Progress {
  /** Refuse downloads larger than this many bytes. Default 300 MB. */
  maxBytes?: number;
  /** Injected for tests; default globalThis.fetch. */
  fetchImpl?: typeof fetch;
}

/**
 * Fetches `url`; a non-2xx status is a DOWNLOAD error. With `allowed`, redirects
 * are followed by hand and each target must pass it (shards stay in the model's
 * folder even when a server redirects).
 */
export async function fetchChecked(url: string, opts: DownloadOptions, allowed?: (target: URL) => string | undefined): Promise<Response> {
  const f = opts.fetchImpl ?? fetch;
  let current = url;
  for (let hops = 0; ; hops++) {
    let res: Response;
    try {
      res = await f(current, { signal: opts.signal, redirect: allowed ? 'manual' : 'follow' });
    } catch (err) {
      if (opts.signal?.aborted) throw new CancelledError();
      throw new HeadstartError('DOWNLOAD', `cannot download ${current}: ${String((err as Error).cause ?? (err as Error).message)}; check the network or use a bundled backbone (headstart backbones)`, { cause: err });
    }
    const location = res.headers.get('location');
    if (allowed && res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      const target = new URL(location, current);
      const why = allowed(target);
      if (why) throw new HeadstartError('DOWNLOAD', `${url} redirects to ${target.href}, ${why}; refusing it`);
      if (hops >= 5) throw new HeadstartError('DOWNLOAD', `${url} redirects more than 5 times; refusing it`);
      current = target.href;
      continue;
    }
    if (!res.ok) throw new HeadstartError('DOWNLOAD', `download of ${current} failed: HTTP ${res.status}`);
    return res;
  }
}

/** Why `target` is not inside the folder of `modelUrl` at its origin (after decoding percent-escapes), or undefined. */
function outsideModelFolder(target: URL, modelUrl: URL): string | undefined {
  if (target.origin !== modelUrl.origin) return `another origin than the model's (${modelUrl.origin})`;
  const folder = modelUrl.pathname.slice(0, modelUrl.pathname.lastIndexOf('/') + 1);
  let decoded: string;
  try {
    decoded = decodeURIComponent(target.pathname);
  } catch {
    return 'a path with a broken percent-escape'; // the reason is the answer; nothing else to report
  }
  if (!decoded.startsWith(decodeURIComponent(folder)) || decoded.split(/[\\/]/).includes('..')) return `outside the model's folder ${folder}`;
  return undefined;
}

/**
 * The URL of shard `p` of the model at `modelUrl`: resolved against it, and
 * only if it stays at the same origin, under model.json's folder. Checked
 * before any shard is requested; a DOWNLOAD error otherwise.
 */
export function shardUrl(p: unknown, modelUrl: string): string {
  const base = new URL(modelUrl);
  const unsafe = (why: string): never => {
    throw new HeadstartError('DOWNLOAD', `${modelUrl} names an unsafe shard path: ${String(p)} (${why}); shards must come from the model's own folder`);
  };
  try {
    checkWeightPath(p, modelUrl);
  } catch (err) {
    if (!(err instanceof HeadstartError)) throw err;
    unsafe('absolute, a URL, or with ..');
  }
  const target = new URL(p as string, base);
  const why = outsideModelFolder(target, base);
  if (why) unsafe(why);
  return target.href;
}

/** Reads a response body with a byte limit and progress callbacks. */
export async function readBody(res: Response, url: string, limit: number, onBytes: (n: number) => void, signal?: AbortSignal): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  try {
    for (;;) {
      throwIfAborted(signal);
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > limit) throw new HeadstartError('DOWNLOAD', `${url} is larger than expected (${total} > ${limit} bytes); refusing it`);
      chunks.push(Buffer.from(value));
      onBytes(value.length);
    }
  } catch (err) {
    if (signal?.aborted) throw new CancelledError();
    if (err instanceof HeadstartError) throw err;
    // fetch reports a dropped connection as a bare TypeError ('terminated').
    throw new HeadstartError('DOWNLOAD', `download of ${url} broke off after ${total} bytes (${String((err as Error).cause ?? (err as Error).message)}); check the network and try again`, { cause: err });
  } finally {
    reader.releaseLock();
  }
  return Buffer.concat(chunks);
}

/**
 * Downloads a TF.js model (model.json and the shards its manifest names) into
 * `destDir`, atomically. Shard sizes are checked against the weights manifest
 * and sha256 against `known` where given.
 */
export async function downloadModel(url: string, destDir: string, known: BackboneFile[] = [], opts: DownloadOptions = {}): Promise<BackboneFile[]> {
  const maxBytes = opts.maxBytes ?? 300_000_000;
  const emit = opts.onEvent ?? (() => undefined);
  emit({ type: 'phase', phase: 'download', message: `downloading ${url}` });
  const jsonBuf = await readBody(await fetchChecked(url, opts), url, MODEL_LIMITS.maxJsonBytes, () => undefined, opts.signal);
  let json: ModelJson;
  try {
    json = JSON.parse(jsonBuf.toString('utf8')) as ModelJson;
  } catch (err) {
    throw new HeadstartError('DOWNLOAD', `${url} did not return a model.json`, { cause: err });
  }
  if (!json || !Array.isArray(json.weightsManifest) || !json.weightsManifest.every((g) => Array.isArray(g?.paths))) throw new HeadstartError('DOWNLOAD', `${url} is not a TF.js model.json (no weightsManifest)`);
  // Every shard URL is checked before the first one is requested.
  const urls = json.weightsManifest.map((g) => g.paths.map((p) => shardUrl(p, url)));
  const groupBytes = checkManifest(json.weightsManifest, url);
  checkTopology(json.modelTopology, url);
  const total = groupBytes.reduce((a, b) => a + b, 0);
  if (total > maxBytes) throw new HeadstartError('DOWNLOAD', `${url} needs ${total} bytes of weights, over the ${maxBytes}-byte limit`);
  const check = (name: string, buf: Buffer): BackboneFile => {
    const digest = sha256(buf);
    const want = known.find((k) => k.path === name);
    if (want?.sha256 && want.sha256 !== digest) throw new HeadstartError('DOWNLOAD', `${name} from ${url} has sha256 ${digest}, expected ${want.sha256}; the download is corrupt or the file changed upstream`);
    if (want?.bytes !== undefined && want.bytes !== buf.length) throw new HeadstartError('DOWNLOAD', `${name} from ${url} is ${buf.length} bytes, expected ${want.bytes}; the download is corrupt or the file changed upstream`);
    return { path: name, bytes: buf.length, sha256: digest };
  };
  const modelUrl = new URL(url);
  return writeDirAtomic(destDir, async (tmp) => {
    const files: BackboneFile[] = [check('model.json', jsonBuf)];
    let done = 0;
    const started = Date.now();
    for (const [g, group] of json.weightsManifest.entries()) {
      let got = 0;
      for (const [i, p] of group.paths.entries()) {
        const u = urls[g]![i]!;
        const res = await fetchChecked(u, opts, (target) => outsideModelFolder(target, modelUrl));
        const buf = await readBody(res, u, groupBytes[g]! - got, (n) => {
          done += n;
          const rate = done / Math.max(0.001, (Date.now() - started) / 1000);
          emit({ type: 'progress', phase: 'download', done, total, rate, unit: 'B', eta: (total - done) / Math.max(rate, 1) });
        }, opts.signal);
        got += buf.length;
        files.push(check(p, buf));
        await fs.mkdir(path.dirname(path.join(tmp, p)), { recursive: true });
        await fs.writeFile(path.join(tmp, p), buf);
      }
      if (got !== groupBytes[g]) throw new HeadstartError('DOWNLOAD', `weights of ${url} are ${got} bytes, the manifest says ${groupBytes[g]}; the download was cut short`);
    }
    await fs.writeFile(path.join(tmp, 'model.json'), jsonBuf);
    // The cache's record of what was downloaded: verified on every load (verifyFiles).
    await fs.writeFile(path.join(tmp, FILES_JSON), JSON.stringify(files, null, 2));
    return files;
  }, { overwrite: true });
}

const FILES_JSON = 'files.json';

/**
 * Checks a model folder against its files.json (bytes and sha256 of model.json
 * and of every weight file the manifest names). Returns why it fails, or
 * undefined when every file matches.
 */
export async function verifyFiles(dir: string, checked: CheckedModelDir): Promise<string | undefined> {
  let recorded: BackboneFile[];
  try {
    const buf = await readRegularFile(path.join(dir, FILES_JSON));
    recorded = JSON.parse(buf.toString('utf8')) as BackboneFile[];
    if (!Array.isArray(recorded)) return `${FILES_JSON} is not a list of files`;
  } catch (err) {
    return `${FILES_JSON} is unreadable (${describeError(err)})`;
  }
  const byPath = new Map(recorded.map((f) => [f?.path, f]));
  const names = ['model.json', ...checked.json.weightsManifest.flatMap((g) => g.paths)];
  const real = new Map(checked.json.weightsManifest.flatMap((g, gi) => g.paths.map((p, i) => [p, checked.groups[gi]![i]!] as const)));
  for (const name of names) {
    const want = byPath.get(name);
    if (!want?.sha256) return `${name} has no checksum in ${FILES_JSON}`;
    const buf = name === 'model.json' ? checked.jsonBytes : await readRegularFile(real.get(name)!);
    const got = sha256(buf);
    if (got !== want.sha256) return `${name} has sha256 ${got}, but ${want.sha256} was recorded when it was downloaded`;
  }
  return undefined;
}

type LayersConfig = { layers: Array<{ name?: string; config: { name?: string; batch_input_shape?: number[] } }>; output_layers?: Array<[string]> };

/** Largest square input of a local model, pixels (every supported backbone takes 224 or 299). */
export const MAX_INPUT_SIZE = 2048;

function checkInputSize(n: number, modelJson: string): number {
  if (!Number.isInteger(n) || n < 8 || n > MAX_INPUT_SIZE) throw new HeadstartError('BAD_MODEL', `${modelJson} declares an input of ${n} pixels a side; a backbone's input must be from 8 to ${MAX_INPUT_SIZE}`);
  return n;
}

/** Builds a catalogue-like entry for a user's own model.json (already checked by checkModelDir). */
function localEntry(modelJson: string, parsed: ModelJson): BackboneEntry {
  const json = parsed as ModelJson & { modelTopology: { node?: Array<{ name: string; op: string; attr?: { shape?: { shape?: { dim?: Array<{ size: string }> } } } }> } };
  const graph = Array.isArray(json.modelTopology?.node);
  let inputSize = 224;
  let featureNode: string;
  if (graph) {
    const nodes = json.modelTopology.node!;
    const input = nodes.find((n) => n.op === 'Placeholder');
    const dims = input?.attr?.shape?.shape?.dim?.map((d) => Number(d.size));
    if (dims && dims.length === 4 && dims[1]! > 0) inputSize = checkInputSize(dims[1]!, modelJson);
    const consumed = new Set(nodes.flatMap((n) => ((n as { input?: string[] }).input ?? []).map((r) => r.replace(/^\^/, '').replace(/:\d+$/, ''))));
    featureNode = nodes.filter((n) => !consumed.has(n.name) && n.op !== 'Const').at(-1)?.name ?? '';
  } else {
    // Converted from Keras: {model_config: {class_name, config}}; saved by TF.js itself: {class_name, config}.
    const topo = json.modelTopology as { model_config?: { config?: LayersConfig }; class_name?: string; config?: LayersConfig } | undefined;
    const cfg = topo?.model_config?.config ?? (topo?.class_name ? topo.config : undefined);
    if (!cfg || !Array.isArray(cfg.layers) || !cfg.layers.length) throw new HeadstartError('BAD_MODEL', `${modelJson}: only layers models (sequential or functional) and graph models are supported as backbones`);
    const shape = cfg.layers[0]?.config.batch_input_shape;
    if (shape && shape.length === 4 && shape[1]) inputSize = checkInputSize(shape[1], modelJson);
    // Sequential models list no output layers: their output is the last layer.
    featureNode = cfg.output_layers?.[0]?.[0] ?? cfg.layers.at(-1)!.config.name ?? cfg.layers.at(-1)!.name!;
  }
  return {
    id: `local:${path.resolve(modelJson)}`,
    title: `Local model ${path.basename(path.dirname(modelJson))}`,
    task: 'image',
    format: graph ? 'graph' : 'layers',
    inputSize,
    inputRange: [0, 1],
    featureNode,
    pool: true,
    featureSize: 0, // measured when loaded
    licence: 'as given by its owner',
    source: path.resolve(modelJson),
    bundled: false,
    approxBytes: 0,
  };
}

/**
 * Resolves a backbone id (catalogue) or a path to a local model.json / model
 * folder into a folder on disk, downloading remote entries on first use.
 */
export async function resolveBackbone(idOrPath: string, cacheDir: string, opts: DownloadOptions = {}): Promise<ResolvedBackbone> {
  const entry = findBackbone(idOrPath);
  if (entry?.bundled) {
    const dir = path.join(bundledModelsDir(), entry.id);
    if (!(await exists(path.join(dir, 'model.json')))) {
      throw new HeadstartError('NOT_FOUND', `bundled backbone ${entry.id} is missing from ${dir}; run \`npm run build\` to extract it from the nsfwjs package`);
    }
    const checked = await checkModelDir(dir);
    const why = await verifyFiles(dir, checked);
    if (why) throw new HeadstartError('BAD_MODEL', `bundled backbone ${entry.id} in ${dir} is damaged: ${why}; run \`npm run build\` (or reinstall) to extract it again`);
    return { entry, dir, modelHash: sha256(checked.jsonBytes) };
  }
  if (entry && entry.format !== 'onnx') return resolveRemote(entry, cacheDir, opts);
  if (entry || /\.onnx$|^https?:\/\//i.test(idOrPath)) throw new HeadstartError('BAD_INPUT', `backbone ${idOrPath} is an ONNX model: it runs in ONNX Runtime only, as a frozen feature extractor (not with --unfreeze or --engine tfjs)`);
  if (/[\\/]|\.json$/.test(idOrPath) || (await exists(idOrPath))) {
    const file = idOrPath.endsWith('.json') ? idOrPath : path.join(idOrPath, 'model.json');
    if (!(await exists(file))) throw new HeadstartError('NOT_FOUND', `no model.json at ${file}`);
    const dir = path.dirname(path.resolve(file));
    // Paths, links, file types and sizes are checked before a byte of weights is read.
    const checked = await checkModelDir(dir);
    // A local model retrained in place keeps its model.json: its weights belong to its identity too (the key of
    // the embedding and ONNX caches).
    const hash = createHash('sha256').update(checked.jsonBytes);
    for (const shard of checked.groups.flat()) hash.update(await readRegularFile(shard));
    return { entry: localEntry(file, checked.json), dir, modelHash: hash.digest('hex') };
  }
  throw new HeadstartError('BAD_INPUT', `unknown backbone '${idOrPath}'; choose one of: ${CATALOGUE.map((e) => e.id).join(', ')}, or give a path to a model.json`);
}

/**
 * A remote catalogue entry from the cache, downloaded on first use. Every load
 * verifies the cached files against the sha256 recorded at download; a
 * mismatch downloads the model again (a warning says so), and where that
 * fails too it is a BAD_MODEL error naming the folder to delete.
 */
async function resolveRemote(entry: BackboneEntry, cacheDir: string, opts: DownloadOptions): Promise<ResolvedBackbone> {
  const dir = path.join(cacheDir, 'backbones', entry.id);
  if (await exists(path.join(dir, FILES_JSON))) {
    let why: string | undefined;
    let checked: CheckedModelDir | undefined;
    try {
      checked = await checkModelDir(dir);
      why = await verifyFiles(dir, checked);
    } catch (err) {
      if (!(err instanceof HeadstartError)) throw err;
      why = err.message;
    }
    if (!why && checked) return { entry, dir, modelHash: sha256(checked.jsonBytes) };
    opts.onEvent?.({ type: 'warning', message: `cached backbone ${entry.id} in ${dir} is damaged (${why}); downloading it again` });
    try {
      await downloadModel(entry.url!, dir, entry.files ?? [], opts);
    } catch (err) {
      if (!(err instanceof HeadstartError)) throw err;
      throw new HeadstartError('BAD_MODEL', `cached backbone ${entry.id} is damaged (${why}) and could not be downloaded again (${err.message}); delete ${dir} and run again when online`, { cause: err });
    }
  } else {
    await downloadModel(entry.url!, dir, entry.files ?? [], opts);
  }
  const checked = await checkModelDir(dir);
  const why = await verifyFiles(dir, checked);
  if (why) throw new HeadstartError('BAD_MODEL', `backbone ${entry.id} in ${dir} fails its checksum right after download (${why}); delete ${dir} and try again`);
  return { entry, dir, modelHash: sha256(checked.jsonBytes) };
}

/** True when the backbone can be used without a download. */
export async function isCached(entry: BackboneEntry, cacheDir: string): Promise<boolean> {
  if (entry.bundled) return exists(path.join(bundledModelsDir(), entry.id, 'model.json'));
  return exists(path.join(cacheDir, 'backbones', entry.id, FILES_JSON));
}


/** File name of a downloaded ONNX model inside its cache folder. */
export const REMOTE_ONNX_FILE = 'model.onnx';

/** Largest ONNX model downloaded without an explicit maxBytes: 1 GB (compact backbones are 5–100 MB). */
const MAX_ONNX_BYTES = 1_000_000_000;

/**
 * Downloads one ONNX model file from `url` into `destDir` (model.onnx and its
 * files.json record), atomically, with progress and cancellation. Bytes and
 * sha256 are checked against `known` where given; redirects are followed
 * (model hosts serve files from a CDN), the sha256 recorded here is what
 * every later load is checked against.
 */
export async function downloadOnnxFile(url: string, destDir: string, known: BackboneFile | undefined, opts: DownloadOptions = {}): Promise<Buffer> {
  const maxBytes = opts.maxBytes ?? MAX_ONNX_BYTES;
  const emit = opts.onEvent ?? (() => undefined);
  emit({ type: 'phase', phase: 'download', message: `downloading ${url}` });
  const res = await fetchChecked(url, opts);
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) {
    await res.body?.cancel();
    throw new HeadstartError('DOWNLOAD', `${url} is ${declared} bytes, over the ${maxBytes}-byte limit`);
  }
  const total = Number.isFinite(declared) ? declared : (known?.bytes ?? 0);
  let done = 0;
  const started = Date.now();
  const buf = await readBody(res, url, maxBytes, (n) => {
    done += n;
    const rate = done / Math.max(0.001, (Date.now() - started) / 1000);
    emit({ type: 'progress', phase: 'download', done, total: Math.max(total, done), rate, unit: 'B', eta: (Math.max(total, done) - done) / Math.max(rate, 1) });
  }, opts.signal);
  const digest = sha256(buf);
  if (known?.sha256 && known.sha256 !== digest) throw new HeadstartError('DOWNLOAD', `${url} has sha256 ${digest}, expected ${known.sha256}; the download is corrupt or the file changed upstream`);
  if (known?.bytes !== undefined && known.bytes !== buf.length) throw new HeadstartError('DOWNLOAD', `${url} is ${buf.length} bytes, expected ${known.bytes}; the download is corrupt or the file changed upstream`);
  await writeDirAtomic(destDir, async (tmp) => {
    await fs.writeFile(path.join(tmp, REMOTE_ONNX_FILE), buf);
    await fs.writeFile(path.join(tmp, FILES_JSON), JSON.stringify([{ path: REMOTE_ONNX_FILE, bytes: buf.length, sha256: digest }], null, 2));
  }, { overwrite: true });
  return buf;
}

/** Why a cached ONNX model fails its files.json record (bytes and sha256), or undefined when it matches. */
async function verifyOnnxFile(dir: string, known: BackboneFile | undefined): Promise<{ why?: string; bytes?: Buffer }> {
  let recorded: BackboneFile | undefined;
  let bytes: Buffer;
  try {
    recorded = (JSON.parse((await readRegularFile(path.join(dir, FILES_JSON))).toString('utf8')) as BackboneFile[]).find((f) => f?.path === REMOTE_ONNX_FILE);
    bytes = await readRegularFile(path.join(dir, REMOTE_ONNX_FILE));
  } catch (err) {
    return { why: `unreadable (${describeError(err)})` };
  }
  const got = sha256(bytes);
  if (!recorded?.sha256) return { why: `${REMOTE_ONNX_FILE} has no checksum in ${FILES_JSON}` };
  if (got !== recorded.sha256) return { why: `${REMOTE_ONNX_FILE} has sha256 ${got}, but ${recorded.sha256} was recorded when it was downloaded` };
  if (known?.sha256 && got !== known.sha256) return { why: `${REMOTE_ONNX_FILE} has sha256 ${got}, but the catalogue pins ${known.sha256}` };
  return { bytes };
}

/**
 * A remote ONNX model (a catalogue entry or a user's URL) from the cache
 * folder `dir`, downloaded on first use. Every load checks the file against
 * the sha256 recorded at download; a damaged copy is downloaded again (a
 * warning says so), and where that fails it is a BAD_MODEL error naming the
 * folder to delete. Returns the model's bytes.
 */
export async function resolveRemoteOnnx(url: string, dir: string, known: BackboneFile | undefined, opts: DownloadOptions = {}): Promise<Buffer> {
  if (await exists(path.join(dir, FILES_JSON))) {
    const v = await verifyOnnxFile(dir, known);
    if (v.bytes) return v.bytes;
    opts.onEvent?.({ type: 'warning', message: `cached ONNX model in ${dir} is damaged (${v.why}); downloading it again` });
    try {
      return await downloadOnnxFile(url, dir, known, opts);
    } catch (err) {
      if (!(err instanceof HeadstartError)) throw err;
      throw new HeadstartError('BAD_MODEL', `cached ONNX model in ${dir} is damaged (${v.why}) and could not be downloaded again (${err.message}); delete ${dir} and run again when online`, { cause: err });
    }
  }
  return downloadOnnxFile(url, dir, known, opts);
}
