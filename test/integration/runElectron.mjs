// The same mocha suite in desktop VS Code, via @vscode/test-electron, on a
// machine that can download VS Code (this one cannot: use runCodeServer.mjs).
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTests } from '@vscode/test-electron';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const core = createRequire(import.meta.url)(path.join(root, 'dist', 'core.js'));
const ws = await mkdtemp(path.join(os.tmpdir(), 'headstart-ws-'));
await core.makeSampleDataset(path.join(ws, 'shapes'), { perClass: 12, classes: 3, seed: 1 });
await core.makeSampleDataset(path.join(ws, 'shapes-cancel'), { perClass: 40, classes: 3, seed: 2 });
await core.makeSampleDataset(path.join(ws, 'shapes-crash'), { perClass: 40, classes: 3, seed: 3 });
await core.makeTextSample(path.join(ws, 'tickets'), { perClass: 16, seed: 3 });
let code = 0;
try {
  await runTests({
    version: '1.100.3',
    extensionDevelopmentPath: root,
    extensionTestsPath: path.join(root, 'test', 'integration', 'suite', 'index.js'),
    launchArgs: [ws, '--disable-extensions', '--disable-workspace-trust'],
  });
} catch (err) {
  console.error(`integration tests failed: ${err}`);
  code = 1;
} finally {
  await rm(ws, { recursive: true, force: true });
}
process.exit(code);
