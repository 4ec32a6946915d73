// `npm run test:ts`: the TypeScript tests that sit beside their sources
// (src/**/*.test.ts, webview/**/*.test.ts), run on node:test against the
// sources. Each is bundled by esbuild into a temp folder (CommonJS: the
// bundled libraries use require) and the folder is run with `node --test`.
// Only vscode-free modules can be tested here: 'vscode' is left external, so
// a test that reaches it fails loudly. `--` passes the rest to node --test.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Test files under `dir` (relative to the root), skipping what is not source. */
function testsUnder(dir) {
  const found = [];
  for (const e of readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) found.push(...testsUnder(rel));
    else if (e.name.endsWith('.test.ts')) found.push(rel);
  }
  return found;
}

const filter = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const tests = [...testsUnder('src'), ...testsUnder('webview')].filter((t) => !filter.length || filter.some((f) => t.includes(f)));
if (!tests.length) {
  console.error(`test:ts: no *.test.ts files${filter.length ? ` match ${filter.join(', ')}` : ''}`);
  process.exit(1);
}
const out = mkdtempSync(path.join(os.tmpdir(), 'headstart-test-ts-'));
let status = 1;
try {
  await esbuild.build({
    entryPoints: tests.map((t) => ({ in: path.join(root, t), out: t.replace(/\.ts$/, '') })),
    outdir: out,
    outExtension: { '.js': '.cjs' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    sourcemap: 'inline',
    logLevel: 'warning',
    external: ['vscode', '@tensorflow/*', 'sharp', 'onnxruntime-node'],
    // Tests find the repository (dist/worker.js, fixtures) through this.
    define: { 'process.env.HEADSTART_REPO_ROOT': JSON.stringify(root) },
  });
  const files = tests.map((t) => path.join(out, t.replace(/\.ts$/, '.cjs')));
  const r = spawnSync(process.execPath, ['--enable-source-maps', '--test', '--test-concurrency=1', ...files], { cwd: root, stdio: 'inherit' });
  status = r.status ?? 1;
} finally {
  rmSync(out, { recursive: true, force: true });
}
process.exit(status);
