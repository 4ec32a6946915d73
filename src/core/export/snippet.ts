/** The generated Node inference script placed in every export folder. */
export function nodeSnippet(): string {
  return `// Classify images with this exported Headstart model in Node.js.
// Needs: npm install @tensorflow/tfjs sharp   (or @tensorflow/tfjs-node for speed)
// Usage:  node inference.mjs photo1.jpg photo2.png
import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';

const here = new URL('.', import.meta.url);
const meta = JSON.parse(await readFile(new URL('metadata.json', here), 'utf8'));
const modelJson = JSON.parse(await readFile(new URL('model.json', here), 'utf8'));
const weights = await Promise.all(modelJson.weightsManifest.flatMap((g) => g.paths).map((p) => readFile(new URL(p, here))));
const artifacts = {
  modelTopology: modelJson.modelTopology,
  weightSpecs: modelJson.weightsManifest.flatMap((g) => g.weights),
  weightData: new Uint8Array(Buffer.concat(weights)).buffer,
  signature: modelJson.signature,
};
const model = modelJson.format === 'graph-model'
  ? await tf.loadGraphModel(tf.io.fromMemory(artifacts))
  : await tf.loadLayersModel(tf.io.fromMemory(artifacts));

// The model takes RGB pixels 0..255, centre-cropped to a square of meta.imageSize.
async function pixels(file) {
  const { data } = await sharp(file).rotate().flatten({ background: '#ffffff' }).toColourspace('srgb')
    .resize(meta.imageSize, meta.imageSize, { fit: 'cover' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return tf.tensor3d(new Float32Array(data), [meta.imageSize, meta.imageSize, 3]);
}

for (const file of process.argv.slice(2)) {
  const x = tf.stack([await pixels(file)]);
  const probs = await model.predict(x).data();
  const top = [...probs].map((p, i) => ({ label: meta.labels[i], probability: p })).sort((a, b) => b.probability - a.probability);
  console.log(JSON.stringify({ path: file, label: top[0].label, probability: top[0].probability, top: top.slice(0, 5) }));
  x.dispose();
}
`;
}

/** A browser snippet for the model card. */
export function browserSnippet(format: string): string {
  const loader = format === 'graph-model' ? 'tf.loadGraphModel' : 'tf.loadLayersModel';
  return `import * as tf from '@tensorflow/tfjs';

const model = await ${loader}('/model/model.json');
const meta = await (await fetch('/model/metadata.json')).json();
// img: an <img>, <canvas> or <video>; centre-crop it to a square first for best results
const x = tf.tidy(() => tf.image.resizeBilinear(tf.browser.fromPixels(img), [meta.imageSize, meta.imageSize]).expandDims(0));
const probs = await model.predict(x).data();   // 0..255 pixels in, probabilities out
const best = probs.indexOf(Math.max(...probs));
console.log(meta.labels[best], probs[best]);`;
}
