// Text fixtures made by code: a tiny WordPiece tokenizer.json (the Hugging
// Face format) and a tiny ONNX token-embedding encoder, written as a folder
// that the real encoder loader reads; labelled text datasets.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { core } from './helpers.mjs';

export const SPECIAL = ['[PAD]', '[UNK]', '[CLS]', '[SEP]'];
export const PIECES = ['the', 'a', 'my', 'order', 'refund', 'please', 'password', 'reset', 'login', 'cannot', 'not', 'is', 'late', 'where', 'ship', '##ping', '##ed', 'money', 'back', 'help', 'account', 'invoice', 'card', 'charge', '##s', 'want', 'i', 'to', '?', '.'];

/** tokenizer.json of a BERT-style WordPiece tokenizer over SPECIAL + PIECES (ids in that order). */
export function tinyTokenizerJson() {
  const vocab = Object.fromEntries([...SPECIAL, ...PIECES].map((w, i) => [w, i]));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [],
      special_tokens: { '[CLS]': { id: '[CLS]', ids: [2], tokens: ['[CLS]'] }, '[SEP]': { id: '[SEP]', ids: [3], tokens: ['[SEP]'] } },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}

/** Row i of the tiny encoder's table: [i, i mod 3, 1, -i / 2] (easy to average by hand). */
export function tinyRow(i) {
  return [i, i % 3, 1, -i / 2];
}

/** Writes model.onnx (a Gather over the table) + tokenizer.json (+ sidecar) into `dir`. */
export async function tinyEncoder(dir, sidecar) {
  await mkdir(dir, { recursive: true });
  const n = SPECIAL.length + PIECES.length;
  const table = Float32Array.from({ length: n * 4 }, (_, k) => tinyRow(Math.floor(k / 4))[k % 4]);
  await writeFile(path.join(dir, 'model.onnx'), core.tokenEmbeddingEncoder(table, 4));
  await writeFile(path.join(dir, 'tokenizer.json'), JSON.stringify(tinyTokenizerJson()));
  if (sidecar) await writeFile(path.join(dir, 'headstart-encoder.json'), JSON.stringify(sidecar));
  return dir;
}

/** Writes class folders of .txt files: `{label: [text, ...]}`. */
export async function textFolders(root, classes) {
  for (const [label, texts] of Object.entries(classes)) {
    await mkdir(path.join(root, label), { recursive: true });
    for (const [i, t] of texts.entries()) await writeFile(path.join(root, label, `${String(i).padStart(3, '0')}.txt`), t);
  }
  return root;
}
