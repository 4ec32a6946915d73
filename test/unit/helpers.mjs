// Shared helpers of the unit tests: the built engine (dist/core.js), temp
// folders, and datasets made by code. Nothing here fakes the engine.
import { createRequire } from 'node:module';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { after } from 'node:test';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The engine as built by `npm run build`. */
export const core = require(path.join(root, 'dist', 'core.js'));
export const tf = require('@tensorflow/tfjs');

/**
 * Counts every file opened through fs/promises.open (the engine's safe open
 * of images, hashes and markers) until restore(): tests that prove which
 * splits a step reads use it.
 */
export function countOpens() {
  const fsp = require('node:fs/promises');
  const reads = new Map();
  const orig = fsp.open;
  fsp.open = function (file, ...rest) {
    const key = path.resolve(String(file));
    reads.set(key, (reads.get(key) ?? 0) + 1);
    return orig.call(this, file, ...rest);
  };
  return { of: (file) => reads.get(path.resolve(file)) ?? 0, clear: () => reads.clear(), restore: () => void (fsp.open = orig) };
}
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
  const dir = await mkdtemp(path.join(await repoTempBase(), 'case-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function repoTempBase() {
  const base = path.join(root, 'test-results', 'tmp');
  await mkdir(base, { recursive: true });
  return base;
}

/** A temp folder inside the repository for a whole test file, removed when the file's tests end. */
export async function fileRepoTempDir(prefix) {
  const dir = await mkdtemp(path.join(await repoTempBase(), prefix));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Spawns the CLI and sends SIGINT once stderr matches `waitFor`; resolves {code, signal, stderr, sent}. */
export function interruptWhen(args, waitFor, env = {}, cwd = root) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (!sent && waitFor.test(stderr)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, stderr, sent }));
  });
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
