import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { HeadstartError } from '../errors';
import { exists, readJson, sha256, writeFileAtomic } from '../fsutil';
import type { BackboneEntry } from '../backbones/catalogue';
import type { ResolvedBackbone } from '../backbones/store';

/** File names of an ONNX backbone folder (a slimmed backbone). */
export const ONNX_BACKBONE_FILE = 'model.onnx';
export const ONNX_BACKBONE_META = 'backbone.json';

/**
 * An ONNX backbone folder's description: its catalogue-like entry (format
 * 'onnx'; the model takes 0..255 NHWC pixels, normalisation and pooling are
 * inside it, output `features`) and where it came from.
 */
export interface OnnxBackboneMeta {
  entry: BackboneEntry;
  /** How it was made from its parent backbone. */
  slim?: {
    parent: string;
    parentHash: string;
    fraction: number;
    hiddenChannels: number[];
    keptChannels: number[];
    /** Features (output channels of the final conv) before and after; absent: not cut (entry.featureSize is the parent's). */
    features?: { total: number; kept: number };
  };
}

/** The folder of an ONNX backbone named by a path to the folder, its model.onnx or its backbone.json; undefined for anything else. */
export async function onnxBackboneDir(idOrPath: string): Promise<string | undefined> {
  const p = path.resolve(idOrPath);
  const dir = /\.onnx$|backbone\.json$/.test(p) ? path.dirname(p) : p;
  return (await exists(path.join(dir, ONNX_BACKBONE_META))) ? dir : undefined;
}

/** Resolves an ONNX backbone folder: its entry, and the sha256 of its model file (its identity in every cache key). */
export async function resolveOnnxBackbone(dir: string): Promise<ResolvedBackbone> {
  const meta = await readJson<OnnxBackboneMeta>(path.join(dir, ONNX_BACKBONE_META), 'ONNX backbone description');
  if (meta.entry?.format !== 'onnx' || !(meta.entry.inputSize > 0)) throw new HeadstartError('BAD_MODEL', `${path.join(dir, ONNX_BACKBONE_META)} does not describe an ONNX backbone`);
  const file = path.join(dir, ONNX_BACKBONE_FILE);
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(file);
  } catch (err) {
    throw new HeadstartError('BAD_MODEL', `ONNX backbone ${dir} has no readable ${ONNX_BACKBONE_FILE} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, { cause: err });
  }
  return { entry: meta.entry, dir, modelHash: sha256(bytes) };
}

/** Writes an ONNX backbone folder (model + description), each file atomically. */
export async function writeOnnxBackbone(dir: string, bytes: Uint8Array, meta: OnnxBackboneMeta): Promise<void> {
  await writeFileAtomic(path.join(dir, ONNX_BACKBONE_FILE), bytes);
  await writeFileAtomic(path.join(dir, ONNX_BACKBONE_META), JSON.stringify(meta, null, 2));
}
