import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { HeadstartError } from '../errors';
import { sha256, writeFileAtomic } from '../fsutil';
import { type ModelJson, type WeightEntry, storedByteLength, writeModelDir } from '../tfjsio';
import type { BackboneEntry, BackboneFile } from './catalogue';

/** Graph node as stored in a graph model's JSON GraphDef. */
export interface GraphNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, unknown>;
  device?: string;
}

export interface GraphTopology {
  node: GraphNode[];
  library?: unknown;
  versions?: unknown;
}

/** Node name of an input reference ("^ctrl", "name:1" -> "name"). */
export function inputNodeName(ref: string): string {
  return ref.replace(/^\^/, '').replace(/:\d+$/, '');
}

/** Names `output` depends on (itself included), following `inputsOf` back through the graph. */
function reachable(output: string, inputsOf: (name: string) => string[]): Set<string> {
  const keep = new Set<string>();
  const stack = [output];
  while (stack.length) {
    const name = stack.pop()!;
    if (keep.has(name)) continue;
    keep.add(name);
    stack.push(...inputsOf(name));
  }
  return keep;
}

/** Keeps only the nodes `output` depends on. */
export function pruneGraph(topology: GraphTopology, output: string): GraphTopology {
  const byName = new Map(topology.node.map((n) => [n.name, n]));
  if (!byName.has(output)) throw new HeadstartError('BAD_MODEL', `graph has no node named ${output}`);
  const keep = reachable(output, (name) => (byName.get(name)?.input ?? []).map(inputNodeName));
  return { ...topology, node: topology.node.filter((n) => keep.has(n.name)) };
}

interface KerasLayer {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: unknown[];
}

/** Keeps only the layers `output` depends on and makes `output` the model's output. */
export function truncateLayers(topology: { model_config: { config: { layers: KerasLayer[]; output_layers: unknown } } }, output: string): Set<string> {
  const layers = topology.model_config.config.layers;
  const byName = new Map(layers.map((l) => [l.name, l]));
  if (!byName.has(output)) throw new HeadstartError('BAD_MODEL', `model has no layer named ${output}`);
  const keep = reachable(output, (name) => ((byName.get(name)?.inbound_nodes ?? []) as Array<Array<[string, number, number]>>).flatMap((node) => node.map(([src]) => src)));
  topology.model_config.config.layers = layers.filter((l) => keep.has(l.name));
  topology.model_config.config.output_layers = [[output, 0, 0]];
  return keep;
}

function loadUmd(file: string): unknown {
  // nsfwjs ships its models as UMD modules that return JSON / base64 strings.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(file);
}

/**
 * Turns one nsfwjs model folder (model.min.js + group1-shard*.min.js) into a
 * plain TF.js model folder (model.json + weights.bin), cut at the entry's
 * feature node so it is a feature extractor and nothing more. Writes
 * `files.json` (bytes and sha256 of each file) beside them.
 */
export async function convertNsfwjsModel(srcDir: string, destDir: string, entry: BackboneEntry): Promise<BackboneFile[]> {
  const json = loadUmd(path.join(srcDir, 'model.min.js')) as ModelJson;
  const entries: WeightEntry[] = [];
  for (const group of json.weightsManifest) {
    const data = Buffer.concat(group.paths.map((p) => Buffer.from(String(loadUmd(path.join(srcDir, `${p}.min.js`))), 'base64')));
    let o = 0;
    for (const spec of group.weights) {
      const len = storedByteLength(spec);
      entries.push({ spec, bytes: new Uint8Array(data.buffer, data.byteOffset + o, len) });
      o += len;
    }
    if (o !== data.length) throw new HeadstartError('BAD_MODEL', `${srcDir}: shard bytes ${data.length} != manifest ${o}`);
  }
  let kept: WeightEntry[];
  const out: Omit<ModelJson, 'weightsManifest'> = { ...json, convertedBy: 'headstart (from nsfwjs)' };
  delete (out as Partial<ModelJson>).weightsManifest;
  if (entry.format === 'graph') {
    const topo = pruneGraph(json.modelTopology as GraphTopology, entry.featureNode);
    const names = new Set(topo.node.map((n) => n.name));
    kept = entries.filter((e) => names.has(e.spec.name));
    out.modelTopology = topo;
    const input = topo.node.find((n) => n.op === 'Placeholder')!.name;
    out.userDefinedMetadata = undefined;
    out.signature = {
      inputs: { [`${input}:0`]: { name: `${input}:0`, dtype: 'DT_FLOAT', tensorShape: { dim: [{ size: '-1' }, { size: String(entry.inputSize) }, { size: String(entry.inputSize) }, { size: '3' }] } } },
      outputs: { [`${entry.featureNode}:0`]: { name: `${entry.featureNode}:0`, dtype: 'DT_FLOAT', tensorShape: { dim: [{ size: '-1' }, { size: String(entry.featureSize) }] } } },
    };
  } else {
    const topo = structuredClone(json.modelTopology) as Parameters<typeof truncateLayers>[0] & { training_config?: unknown };
    const keep = truncateLayers(topo, entry.featureNode);
    delete topo.training_config;
    kept = entries.filter((e) => keep.has(e.spec.name.split('/')[0]!));
    out.modelTopology = topo;
  }
  await fs.rm(destDir, { recursive: true, force: true });
  await writeModelDir(destDir, out, kept);
  const files: BackboneFile[] = [];
  for (const name of ['model.json', 'weights.bin']) {
    const buf = await fs.readFile(path.join(destDir, name));
    files.push({ path: name, bytes: buf.length, sha256: sha256(buf) });
  }
  await writeFileAtomic(path.join(destDir, 'files.json'), JSON.stringify(files, null, 2));
  return files;
}
