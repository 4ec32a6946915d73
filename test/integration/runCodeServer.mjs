// Runs the integration tests in a real VS Code (code-server + Debian's
// Chromium): the mocha suite inside the extension host, then the UI test that
// drives the panel and saves screenshots to test-results/screenshots/.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { format } from 'node:util';
import { codeServerBin, launchBrowser, remote, root, startCodeServer, workbenchUrl } from './codeServer.mjs';
import { runUiTest } from './uiTest.mjs';

const require = createRequire(import.meta.url);
const core = require(path.join(root, 'dist', 'core.js'));
const verbose = !!process.env.HEADSTART_TEST_VERBOSE;
const log = (m) => verbose && console.log(m);

if (!existsSync(codeServerBin)) execFileSync('bash', [path.join(root, 'scripts', 'install-code-server.sh')], { stdio: 'inherit' });

/** A foreign ONNX image model for "Choose an ONNX model…": a tiny TF.js convnet (NHWC 32 px, pooled) through Headstart's converter. */
async function writeOnnxModel(file) {
  const { tinyBackbone } = await import('../unit/fixtures.mjs');
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'headstart-byo-'));
  try {
    const modelJson = await tinyBackbone(tmp, { size: 32 });
    const conv = await core.convertTfjsModel(path.dirname(modelJson), { inputName: 'x', outputName: 'y' });
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, conv.bytes);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** A workspace with generated datasets (the suite trains on them). */
async function makeWorkspace(extra = true) {
  const ws = await mkdtemp(path.join(os.tmpdir(), 'headstart-ws-'));
  await core.makeSampleDataset(path.join(ws, 'shapes'), { perClass: 12, classes: 3, seed: 1 });
  if (extra) {
    await core.makeSampleDataset(path.join(ws, 'shapes-cancel'), { perClass: 40, classes: 3, seed: 2 });
    await core.makeSampleDataset(path.join(ws, 'shapes-crash'), { perClass: 40, classes: 3, seed: 3 });
    await core.makeTextSample(path.join(ws, 'tickets'), { perClass: 16, seed: 3 });
    await writeOnnxModel(path.join(ws, 'byo', 'tiny.onnx'));
  }
  return ws;
}

async function runSuite(server, browser, ws) {
  const page = await browser.newPage();
  let done;
  const exited = new Promise((resolve) => (done = resolve));
  await page.exposeFunction('codeAutomationLog', (type, args) => {
    console.log(format(...(Array.isArray(args) ? args : [args])));
  });
  await page.exposeFunction('codeAutomationExit', (code) => done(code));
  page.on('pageerror', (e) => log(`[page] ${e.message}`));
  const url = workbenchUrl(server, ws, [
    ['extensionDevelopmentPath', remote(server, root)],
    ['extensionTestsPath', remote(server, path.join(root, 'test', 'integration', 'suite', 'index.js'))],
  ]);
  await page.goto(url);
  const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), 15 * 60_000));
  const code = await Promise.race([exited, timeout]);
  await page.close();
  if (code === 'timeout') throw new Error('the integration suite did not finish within 15 minutes');
  return code;
}

let server;
let browser;
let failed = 0;
let passed = 0;
try {
  server = await startCodeServer({ log });
  browser = await launchBrowser();
  const ws = await makeWorkspace();
  console.log('# integration: mocha suite in the VS Code extension host (code-server)');
  const code = await runSuite(server, browser, ws);
  if (code === 0) passed++;
  else {
    failed++;
    console.log(`# integration suite exited with ${code}`);
  }
  console.log('# integration: UI test through the command palette and the panel');
  const uiWs = await makeWorkspace(false);
  try {
    await runUiTest(server, browser, uiWs, path.join(root, 'test-results', 'screenshots'));
    passed++;
    console.log('ok - UI test (screenshots in test-results/screenshots/)');
  } catch (err) {
    failed++;
    console.log(`not ok - UI test: ${err.stack ?? err}`);
  }
  await rm(ws, { recursive: true, force: true });
  await rm(uiWs, { recursive: true, force: true });
} catch (err) {
  failed++;
  console.log(`not ok - integration harness: ${err.stack ?? err}`);
} finally {
  await browser?.close();
  server?.stop();
}
console.log(`integration: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
