// Runs export folders in a fresh Node process with the stock TF.js loaders
// (tf.loadLayersModel / tf.loadGraphModel through core.dirLoader), so that a
// test sees what a user's script would see, not the engine's own objects.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { root } from './helpers.mjs';

const run = promisify(execFile);

const childScript = `
const fs = require('node:fs');
const tf = require('@tensorflow/tfjs');
const core = require(${JSON.stringify(path.join(root, 'dist', 'core.js'))});
(async () => {
  const [filesJson, ...dirs] = process.argv.slice(1);
  const files = JSON.parse(filesJson);
  // The backend a user's Node script gets from the engine's choice (tfjs-node, else wasm): the
  // plain cpu backend would take seconds per MobileNet image. The loaders are the stock ones.
  await core.initBackend();
  for (const dir of dirs) {
    const meta = JSON.parse(fs.readFileSync(dir + '/metadata.json', 'utf8'));
    const json = JSON.parse(fs.readFileSync(dir + '/model.json', 'utf8'));
    const model = json.format === 'graph-model' ? await tf.loadGraphModel(core.dirLoader(dir)) : await tf.loadLayersModel(core.dirLoader(dir));
    for (const f of files) {
      const rgb = await core.readAndDecode(f, meta.imageSize);
      const probs = Array.from(model.predict(tf.tensor4d(Float32Array.from(rgb), [1, meta.imageSize, meta.imageSize, 3])).dataSync());
      console.log(JSON.stringify({ dir, path: f, backend: tf.getBackend(), probs }));
    }
    model.dispose();
  }
})().catch((err) => { console.error(err); process.exit(1); });
`;

/** Class probabilities per export folder from one fresh process: Map(dir → one row per file, in order). */
export async function probsInChild(dirs, files) {
  const { stdout } = await run(process.execPath, ['-e', childScript, JSON.stringify(files), ...dirs], { cwd: root, maxBuffer: 64 << 20 });
  const out = new Map(dirs.map((d) => [d, []]));
  for (const line of stdout.trim().split('\n')) {
    const l = JSON.parse(line);
    out.get(l.dir).push(l.probs);
  }
  return out;
}

/** Largest |a - b| over two equal-shaped lists of probability rows. */
export function maxAbsDiff(rows, expected) {
  let m = 0;
  rows.forEach((probs, i) => probs.forEach((p, c) => (m = Math.max(m, Math.abs(p - expected[i][c])))));
  return m;
}

/** The engine's probabilities (`headstart predict RUN_DIR`) as rows in label order. */
export function engineRows(lines, labels) {
  return lines.map((l) => labels.map((lab) => l.top.find((x) => x.label === lab).probability));
}
