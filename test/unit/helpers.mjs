// Shared helpers of the unit tests: the built engine (dist/core.js), temp
// folders, and datasets made by code. Nothing here fakes the engine.
import { createRequire } from 'node:module';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The engine as built by `npm run build`. */
export const core = require(path.join(root, 'dist', 'core.js'));
export const tf = require('@tensorflow/tfjs');
export const sharp = require('sharp');
export const cliPath = path.join(root, 'bin', 'headstart.js');

/** A fresh temp folder, removed when the test ends. */
export async function tempDir(t, prefix = 'headstart-test-') {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A temp folder inside the repository (so exported scripts resolve node_modules). */
export async function repoTempDir(t) {
  const base = path.join(root, 'test-results', 'tmp');
  await (await import('node:fs/promises')).mkdir(base, { recursive: true });
  const dir = await mkdtemp(path.join(base, 'case-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** One shared embedding / backbone cache for the test run (keeps tests fast, like a user's cache). */
export const cacheDir = path.join(os.tmpdir(), 'headstart-test-cache');

/** Writes a solid-colour image of the given format. */
export async function solidImage(file, { width = 64, height = 48, color = { r: 200, g: 30, b: 30 }, format = 'png', channels = 3 } = {}) {
  const bg = channels === 4 ? { ...color, alpha: 0.5 } : color;
  let img = sharp({ create: { width, height, channels, background: bg } });
  img = format === 'jpg' ? img.jpeg() : format === 'webp' ? img.webp() : format === 'gif' ? img.gif() : img.png();
  await img.toFile(file);
}

/** Runs the CLI in a child process; resolves {code, stdout, stderr}. */
export async function runCli(args, { env = {}, cwd = root, timeout = 300_000 } = {}) {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => {
    execFile(process.execPath, [cliPath, ...args], { cwd, env: { ...process.env, HEADSTART_CACHE_DIR: cacheDir, ...env }, timeout, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr, signal: err?.signal });
    });
  });
}
