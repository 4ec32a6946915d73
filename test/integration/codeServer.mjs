// Starts code-server (a real VS Code) on 127.0.0.1 with throwaway folders, and
// Debian's Chromium through playwright-core. See ../shared/ENVIRONMENT.md.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const codeServerBin = path.join(root, '.tools', 'code-server', 'node_modules', '.bin', 'code-server');

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** Starts code-server on a free port; resolves once it answers HTTP. */
export async function startCodeServer({ log = () => {} } = {}) {
  if (!existsSync(codeServerBin)) throw new Error(`code-server is not installed at ${codeServerBin}; run scripts/install-code-server.sh`);
  const home = await mkdtemp(path.join(os.tmpdir(), 'headstart-cs-'));
  const dirs = Object.fromEntries(['user-data', 'extensions', 'config', 'data', 'cache'].map((d) => [d, path.join(home, d)]));
  await Promise.all(Object.values(dirs).map((d) => mkdir(d, { recursive: true })));
  await mkdir(path.join(dirs['user-data'], 'User'), { recursive: true });
  await writeFile(path.join(dirs['user-data'], 'User', 'settings.json'), JSON.stringify({ 'workbench.startupEditor': 'none', 'workbench.tips.enabled': false, 'extensions.autoCheckUpdates': false, 'extensions.autoUpdate': false, 'telemetry.telemetryLevel': 'off' }));
  const port = await freePort();
  const proc = spawn(codeServerBin, ['--bind-addr', `127.0.0.1:${port}`, '--auth', 'none', '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', '--disable-getting-started-override', '--user-data-dir', dirs['user-data'], '--extensions-dir', dirs.extensions], {
    env: { ...process.env, XDG_CONFIG_HOME: dirs.config, XDG_DATA_HOME: dirs.data, XDG_CACHE_HOME: dirs.cache, HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  proc.stdout.on('data', (d) => log(`[code-server] ${d.toString().trimEnd()}`));
  proc.stderr.on('data', (d) => log(`[code-server] ${d.toString().trimEnd()}`));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`code-server exited with ${proc.exitCode}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('code-server did not start within 60 s');
    await new Promise((r) => setTimeout(r, 250));
  }
  const stop = () => {
    try {
      process.kill(-proc.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  };
  return { url, port, home, proc, stop };
}

/** Launches headless Chromium (Debian's) with the flags this machine needs. */
export async function launchBrowser() {
  const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'headstart-chromium-'));
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

/** The workbench URL that opens `folder` with extra workbench `payload` entries. */
export function workbenchUrl(server, folder, payload = []) {
  const q = new URLSearchParams({ folder });
  if (payload.length) q.set('payload', JSON.stringify(payload));
  return `${server.url}/?${q}`;
}

export const remote = (server, p) => `vscode-remote://127.0.0.1:${server.port}${p}`;
