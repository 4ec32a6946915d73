// The main job on a fresh clone: a generated sample dataset, a head trained on
// the bundled offline backbone, and an exported model. Uses the CLI as a user would.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const work = path.join(root, '.headstart');
const cli = (...args) => execFileSync(process.execPath, [path.join(root, 'bin', 'headstart.js'), ...args], { stdio: ['ignore', 'pipe', 'inherit'], cwd: root }).toString();

const data = path.join(work, 'sample');
if (!existsSync(data)) process.stdout.write(cli('sample', data, '--per-class', '30', '--classes', '4'));
const run = path.join(work, 'runs', 'demo');
const train = JSON.parse(cli('train', data, '--out', run, '--force', '--json'));
const model = path.join(work, 'exports', 'demo');
const exp = JSON.parse(cli('export', run, '--out', model, '--quantize', 'auto', '--force', '--json'));
const cls = train.dataset.classes[0];
const pct = (x) => `${(x * 100).toFixed(1)}%`;
console.log(`
Headstart demo
  dataset        ${data} (${train.dataset.total} images, ${train.dataset.classes.length} classes)
  engine         features by ${train.engine}; head trained by ${train.headTrainer ?? `TF.js ${train.backend}`}
  head           ${train.selection ? `${train.selection.chosen}, chosen by ${train.selection.folds}-fold cross-validation (${pct(train.selection.meanAccuracy)} ± ${(train.selection.stdAccuracy * 100).toFixed(1)})` : 'as configured'}
  test accuracy  ${pct(train.test.accuracy)} on ${train.test.count} images (95% interval ${pct(train.test.interval.low)}–${pct(train.test.interval.high)}; raw-pixel baseline ${pct(train.baseline.accuracy)})
  run folder     ${run}
  exported model ${model}: ${exp.chosen}, ${(exp.exported.bytes / 1e6).toFixed(1)} MB (${(exp.exported.gzipBytes / 1e6).toFixed(1)} MB gzipped, ${((exp.exported.bytes / exp.float32.bytes) * 100).toFixed(0)}% of float32); test accuracy ${pct(exp.exported.accuracy)} (float32 ${pct(exp.float32.accuracy)})
  try it         node ${path.relative(root, path.join(model, 'inference.mjs'))} ${path.relative(root, path.join(data, cls, readdirSync(path.join(data, cls))[0]))}
`);
