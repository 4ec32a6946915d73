import { NEG_STEMS, TOKEN_RE } from './tokenize';

/**
 * The generated Node script of a text export. The tokenizer's pattern and
 * contraction table are written from tokenize.ts itself; the lookup rules
 * below are tokenize.ts's wordKeys, and a test checks the script against
 * `predict RUN` in a fresh process.
 */
export function textSnippet(kind: 'word-average' | 'onnx-encoder', format: 'tfjs' | 'onnx'): string {
  const head =
    format === 'onnx'
      ? `import * as ort from 'onnxruntime-node';
const session = await ort.InferenceSession.create(fileURLToPath(new URL('model.onnx', here)));
const classify = async (x, n) => (await session.run({ features: new ort.Tensor('float32', x, [n, meta.headstart.featureSize]) })).probabilities.data;`
      : `import * as tf from '@tensorflow/tfjs';
const modelJson = JSON.parse(await readFile(new URL('model.json', here), 'utf8'));
const weights = await Promise.all(modelJson.weightsManifest.flatMap((g) => g.paths).map((p) => readFile(new URL(p, here))));
const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs: modelJson.weightsManifest.flatMap((g) => g.weights), weightData: new Uint8Array(Buffer.concat(weights)).buffer }));
const classify = async (x, n) => model.predict(tf.tensor2d(x, [n, meta.headstart.featureSize])).data();`;
  const embed =
    kind === 'word-average'
      ? `// Average word embedding: the vocabulary in vocab/ (int8 rows, one scale per row).
const manifest = JSON.parse(await readFile(new URL('vocab/manifest.json', here), 'utf8'));
const words = (await readFile(new URL('vocab/words.txt', here), 'utf8')).split('\\n').slice(0, manifest.count);
const rows = new Int8Array(await readFile(new URL('vocab/vectors.i8', here)));
const scales = new Float32Array(new Uint8Array(await readFile(new URL('vocab/scales.f32', here))).buffer);
const index = new Map(words.map((w, i) => [w, i]));
const TOKEN_RE = new RegExp(${JSON.stringify(TOKEN_RE.source)}, 'gu');
const NEG_STEMS = ${JSON.stringify(NEG_STEMS)};
const isWord = (t) => /\\p{L}/u.test(t);
// NFKC, lower-case, typographic apostrophes as ', then the token pattern.
const tokenize = (text) => text.normalize('NFKC').toLowerCase().replace(/[’‘ʼ]/g, "'").match(TOKEN_RE) ?? [];
// A word, else a hyphenated word's parts, else the part before an apostrophe (n't read as not).
function wordKeys(t) {
  if (index.has(t)) return [t];
  if (t.includes('-')) return t.split('-').filter((p) => p && isWord(p)).flatMap(wordKeys);
  const a = t.indexOf("'");
  if (a > 0) return t.endsWith("n't") ? [NEG_STEMS[t.slice(0, -3)] ?? t.slice(0, -3), 'not'] : [t.slice(0, a)];
  return [t];
}
const dims = manifest.dims;
function embed(text) {
  const v = new Float32Array(dims);
  let known = 0;
  let total = 0;
  for (const t of tokenize(text)) {
    if (!isWord(t)) continue;
    for (const k of wordKeys(t)) {
      total++;
      const i = index.get(k);
      if (i === undefined) continue;
      known++;
      for (let d = 0; d < dims; d++) v[d] += rows[i * dims + d] * scales[i];
    }
  }
  if (known) for (let d = 0; d < dims; d++) v[d] /= known;
  return v;
}
const embedAll = async (texts) => texts.map(embed);`
      : `// ONNX sentence encoder in encoder/: tokenizer.json through @huggingface/tokenizers, mean pooling over the mask.
import { Tokenizer } from '@huggingface/tokenizers';
const side = JSON.parse(await readFile(new URL('encoder/headstart-encoder.json', here), 'utf8').catch(() => '{}'));
const tokenizer = new Tokenizer(JSON.parse(await readFile(new URL('encoder/tokenizer.json', here), 'utf8')), {});
const { InferenceSession, Tensor } = await import('onnxruntime-node');
const encoder = await InferenceSession.create(fileURLToPath(new URL('encoder/model.onnx', here)));
const maxLength = side.maxLength ?? 256;
const pad = tokenizer.token_to_id('[PAD]') ?? tokenizer.token_to_id('<pad>') ?? 0;
async function embedAll(texts) {
  return Promise.all(texts.map(async (text) => {
    let ids = tokenizer.encode(text).ids;
    if (ids.length > maxLength) ids = [...ids.slice(0, maxLength - 1), ids.at(-1)];
    const feeds = { [side.inputIds ?? 'input_ids']: new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]) };
    if (encoder.inputNames.includes(side.attentionMask ?? 'attention_mask')) feeds[side.attentionMask ?? 'attention_mask'] = new Tensor('int64', new BigInt64Array(ids.length).fill(1n), [1, ids.length]);
    if (side.tokenTypeIds !== null && encoder.inputNames.includes(side.tokenTypeIds ?? 'token_type_ids')) feeds[side.tokenTypeIds ?? 'token_type_ids'] = new Tensor('int64', new BigInt64Array(ids.length), [1, ids.length]);
    const outName = side.output ?? (encoder.outputNames.includes('sentence_embedding') ? 'sentence_embedding' : encoder.outputNames.includes('last_hidden_state') ? 'last_hidden_state' : encoder.outputNames[0]);
    const out = (await encoder.run(feeds))[outName];
    const d = out.dims.at(-1);
    const v = new Float32Array(d);
    if (out.dims.length === 2) v.set(out.data.subarray(0, d));
    else if (side.pooling === 'cls') v.set(out.data.subarray(0, d));
    else { for (let j = 0; j < ids.length; j++) for (let k = 0; k < d; k++) v[k] += out.data[j * d + k] / ids.length; }
    if (side.normalize) { const n = Math.hypot(...v) || 1; for (let k = 0; k < d; k++) v[k] /= n; }
    return v;
  }));
}`;
  return `// Classify texts with this exported Headstart text model in Node.js.
// Needs: npm install ${format === 'onnx' ? 'onnxruntime-node' : '@tensorflow/tfjs'}${kind === 'onnx-encoder' ? ' onnxruntime-node @huggingface/tokenizers' : ''}
// Usage:  node inference.mjs "first text" "second text"     (no arguments: one text per line on stdin)
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = new URL('.', import.meta.url);
const meta = JSON.parse(await readFile(new URL('metadata.json', here), 'utf8'));
${head}
${embed}

let texts = process.argv.slice(2);
if (!texts.length) {
  let input = '';
  for await (const chunk of process.stdin) input += chunk;
  texts = input.split('\\n').filter((l) => l.trim());
}
const vectors = await embedAll(texts);
const d = meta.headstart.featureSize;
const x = new Float32Array(texts.length * d);
vectors.forEach((v, i) => x.set(v, i * d));
const probs = await classify(x, texts.length);
const k = meta.labels.length;
texts.forEach((text, i) => {
  const top = [...probs.slice(i * k, (i + 1) * k)].map((p, j) => ({ label: meta.labels[j], probability: p })).sort((a, b) => b.probability - a.probability);
  console.log(JSON.stringify({ text, label: top[0].label, probability: top[0].probability, top: top.slice(0, 5) }));
});
`;
}
