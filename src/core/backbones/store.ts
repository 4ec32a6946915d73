import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { CancelledError, HeadstartError, throwIfAborted } from '../errors';
import type { Progress } from '../events';
import { exists, sha256, writeDirAtomic } from '../fsutil';
import { type ModelJson, expectedGroupBytes } from '../tfjsio';
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

async function fetchChecked(url: string, opts: DownloadOptions): Promise<Response> {
  const f = opts.fetchImpl ?? fetch;
  let res: Response;
  try {
    res = await f(url, { signal: opts.signal });
  } catch (err) {
    if (opts.signal?.aborted) throw new CancelledError();
    throw new HeadstartError('DOWNLOAD', `cannot download ${url}: ${String((err as Error).cause ?? (err as Error).message)}; check the network or use a bundled backbone (headstart backbones)`, { cause: err });
  }
  if (!res.ok) throw new HeadstartError('DOWNLOAD', `download of ${url} failed: HTTP ${res.status}`);
  return res;
}

/** Reads a response body with a byte limit and progress callbacks. */
async function readBody(res: Response, url: string, limit: number, onBytes: (n: number) => void, signal?: AbortSignal): Promise<Buffer> {
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
  const jsonBuf = await readBody(await fetchChecked(url, opts), url, 20_000_000, () => undefined, opts.signal);
  let json: ModelJson;
  try {
    json = JSON.parse(jsonBuf.toString('utf8')) as ModelJson;
  } catch (err) {
    throw new HeadstartError('DOWNLOAD', `${url} did not return a model.json`, { cause: err });
  }
  if (!Array.isArray(json.weightsManifest)) throw new HeadstartError('DOWNLOAD', `${url} is not a TF.js model.json (no weightsManifest)`);
  const groupBytes = expectedGroupBytes(json.weightsManifest);
  const total = groupBytes.reduce((a, b) => a + b, 0);
  if (total > maxBytes) throw new HeadstartError('DOWNLOAD', `${url} needs ${total} bytes of weights, over the ${maxBytes}-byte limit`);
  const check = (name: string, buf: Buffer): BackboneFile => {
    const digest = sha256(buf);
    const want = known.find((k) => k.path === name);
    if (want?.sha256 && want.sha256 !== digest) throw new HeadstartError('DOWNLOAD', `${name} from ${url} has sha256 ${digest}, expected ${want.sha256}; the download is corrupt or the file changed upstream`);
    return { path: name, bytes: buf.length, sha256: digest };
  };
  return writeDirAtomic(destDir, async (tmp) => {
    const files: BackboneFile[] = [check('model.json', jsonBuf)];
    let done = 0;
    const started = Date.now();
    for (const [g, group] of json.weightsManifest.entries()) {
      let got = 0;
      for (const p of group.paths) {
        if (path.isAbsolute(p) || p.split(/[\\/]/).includes('..')) throw new HeadstartError('DOWNLOAD', `${url} names an unsafe shard path: ${p}`);
        const shardUrl = new URL(p, url).toString();
        const buf = await readBody(await fetchChecked(shardUrl, opts), shardUrl, groupBytes[g]! - got, (n) => {
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
    await fs.writeFile(path.join(tmp, 'files.json'), JSON.stringify(files, null, 2));
    return files;
  }, { overwrite: true });
}

type LayersConfig = { layers: Array<{ name?: string; config: { name?: string; batch_input_shape?: number[] } }>; output_layers?: Array<[string]> };

/** Builds a catalogue-like entry for a user's own model.json. */
async function localEntry(modelJson: string): Promise<BackboneEntry> {
  const json = JSON.parse(await fs.readFile(modelJson, 'utf8')) as ModelJson & { modelTopology: { node?: Array<{ name: string; op: string; attr?: { shape?: { shape?: { dim?: Array<{ size: string }> } } } }> } };
  const graph = Array.isArray(json.modelTopology?.node);
  let inputSize = 224;
  let featureNode: string;
  if (graph) {
    const nodes = json.modelTopology.node!;
    const input = nodes.find((n) => n.op === 'Placeholder');
    const dims = input?.attr?.shape?.shape?.dim?.map((d) => Number(d.size));
    if (dims && dims.length === 4 && dims[1]! > 0) inputSize = dims[1]!;
    const consumed = new Set(nodes.flatMap((n) => ((n as { input?: string[] }).input ?? []).map((r) => r.replace(/^\^/, '').replace(/:\d+$/, ''))));
    featureNode = nodes.filter((n) => !consumed.has(n.name) && n.op !== 'Const').at(-1)?.name ?? '';
  } else {
    // Converted from Keras: {model_config: {class_name, config}}; saved by TF.js itself: {class_name, config}.
    const topo = json.modelTopology as { model_config?: { config?: LayersConfig }; class_name?: string; config?: LayersConfig } | undefined;
    const cfg = topo?.model_config?.config ?? (topo?.class_name ? topo.config : undefined);
    if (!cfg || !Array.isArray(cfg.layers) || !cfg.layers.length) throw new HeadstartError('BAD_MODEL', `${modelJson}: only layers models (sequential or functional) and graph models are supported as backbones`);
    const shape = cfg.layers[0]?.config.batch_input_shape;
    if (shape && shape.length === 4 && shape[1]) inputSize = shape[1];
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
  let dir: string;
  let resolvedEntry: BackboneEntry;
  if (entry) {
    resolvedEntry = entry;
    if (entry.bundled) {
      dir = path.join(bundledModelsDir(), entry.id);
      if (!(await exists(path.join(dir, 'model.json')))) {
        throw new HeadstartError('NOT_FOUND', `bundled backbone ${entry.id} is missing from ${dir}; run \`npm run build\` to extract it from the nsfwjs package`);
      }
    } else {
      dir = path.join(cacheDir, 'backbones', entry.id);
      if (!(await exists(path.join(dir, 'files.json')))) {
        await downloadModel(entry.url!, dir, [], opts);
      }
    }
  } else if (/[\\/]|\.json$/.test(idOrPath) || (await exists(idOrPath))) {
    const file = idOrPath.endsWith('.json') ? idOrPath : path.join(idOrPath, 'model.json');
    if (!(await exists(file))) throw new HeadstartError('NOT_FOUND', `no model.json at ${file}`);
    resolvedEntry = await localEntry(file);
    dir = path.dirname(path.resolve(file));
  } else {
    throw new HeadstartError('BAD_INPUT', `unknown backbone '${idOrPath}'; choose one of: ${CATALOGUE.map((e) => e.id).join(', ')}, or give a path to a model.json`);
  }
  const modelJson = await fs.readFile(path.join(dir, 'model.json'));
  // A local model retrained in place keeps its model.json: its weights belong to its identity too (the key of
  // the embedding and ONNX caches). Catalogue models never change once resolved.
  let modelHash = sha256(modelJson);
  if (!entry) {
    const hash = createHash('sha256').update(modelJson);
    const groups = (JSON.parse(modelJson.toString('utf8')) as Partial<ModelJson>).weightsManifest;
    for (const p of Array.isArray(groups) ? groups.flatMap((g) => g.paths) : []) {
      const shard = path.resolve(dir, p);
      if (!(await exists(shard))) throw new HeadstartError('BAD_MODEL', `${path.join(dir, 'model.json')} lists weight file '${p}', which is missing`);
      hash.update(await fs.readFile(shard));
    }
    modelHash = hash.digest('hex');
  }
  return { entry: resolvedEntry, dir, modelHash };
}

/** True when the backbone can be used without a download. */
export async function isCached(entry: BackboneEntry, cacheDir: string): Promise<boolean> {
  if (entry.bundled) return exists(path.join(bundledModelsDir(), entry.id, 'model.json'));
  return exists(path.join(cacheDir, 'backbones', entry.id, 'files.json'));
}

