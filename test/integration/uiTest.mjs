// UI test: drives the real workbench (code-server in Chromium) like a user —
// command palette → Fine-tune a Model… wizard → panel → Start → results →
// Export — and saves screenshots along the way. Then the panel's guards: a
// second Export into the same folder asks in a modal (Cancel keeps it), and a
// hostile run.json (markup in its number fields) renders as text.
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { remote, root, workbenchUrl } from './codeServer.mjs';

const EVIL = '<img src=x id=pwned onerror="document.body.dataset.pwned=1">';

/** A run.json as a hostile repository could ship it: markup where numbers belong. */
async function writeHostileRun(ws) {
  const dir = path.join(ws, '.headstart', 'runs', 'evil-run');
  await mkdir(dir, { recursive: true });
  const data = path.join(ws, 'shapes');
  const run = {
    version: 1,
    createdAt: '2000-01-01T00:00:00.000Z',
    config: { data, epochs: 2, batchSize: 8, learningRate: 0.001, hiddenUnits: 0, dropout: 0, val: 0.1, test: 0.2, seed: 1, backbone: 'mobilenet-v2-140' },
    backend: 'wasm',
    backbone: { id: 'mobilenet-v2-140', title: 'MobileNetV2' },
    labels: ['a', EVIL],
    dataset: { root: data, total: 4, counts: {}, skipped: [], warnings: [] },
    history: [{ epoch: 1, loss: EVIL, accuracy: 0.5, valLoss: 0.5, valAccuracy: 0.5 }],
    test: { accuracy: 0.5, macroF1: 0.5, count: EVIL, labels: ['a', EVIL], perClass: [{ label: EVIL, precision: 1, recall: 1, f1: 1, support: EVIL }], confusion: [[EVIL, 0], [0, 1]], mistakes: [] },
    baseline: { accuracy: 0.5, verdict: 'n/a' },
    timings: { totalSeconds: 1 },
  };
  await writeFile(path.join(dir, 'run.json'), JSON.stringify(run));
}

export async function runUiTest(server, browser, ws, shotsDir) {
  await mkdir(shotsDir, { recursive: true });
  await writeHostileRun(ws);
  const page = await browser.newPage();
  const shot = (name) => page.screenshot({ path: path.join(shotsDir, name) });
  try {
    await page.goto(workbenchUrl(server, ws, [['extensionDevelopmentPath', remote(server, root)]]));
    await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
    await page.locator('.explorer-folders-view, .explorer-viewlet').first().waitFor({ timeout: 60_000 });

    // Command palette → the wizard. On a cold start the development extension's
    // contributions can arrive after the workbench: reopen the palette until the command is listed.
    const palette = page.locator('.quick-input-widget input');
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: 'Fine-tune a Model' }).first();
    for (let attempt = 0; ; attempt++) {
      await page.keyboard.press('F1');
      await palette.waitFor();
      await palette.fill('>Headstart: Fine-tune a Model');
      try {
        await row.waitFor({ timeout: 5_000 });
        break;
      } catch (err) {
        if (attempt >= 24) throw err;
        await page.keyboard.press('Escape');
      }
    }
    await page.keyboard.press('Enter');
    // Step 1: the dataset found in the workspace.
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'shapes' }).first().waitFor({ timeout: 60_000 });
    await page.locator('.quick-input-title', { hasText: 'dataset' }).waitFor();
    await page.keyboard.press('Enter');
    // Step 2: the backbone (default first).
    await page.locator('.quick-input-title', { hasText: 'backbone' }).waitFor({ timeout: 60_000 });
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'mobilenet-v2-140' }).first().waitFor();
    await page.keyboard.press('Enter');

    // The panel, options filled in.
    const panel = page.frameLocator('iframe.webview').frameLocator('#active-frame');
    await panel.locator('#start').waitFor({ timeout: 60_000 });
    await panel.locator('.classes figure').first().waitFor({ timeout: 60_000 });
    const dataValue = await panel.locator('#f-data').evaluate((el) => el.value);
    assert.equal(dataValue, path.join(ws, 'shapes'), 'the wizard filled in the dataset');
    await shot('1-options.png');

    await panel.locator('#start').click();
    await panel.locator('#cancel').waitFor({ state: 'visible', timeout: 60_000 });
    try {
      await panel.locator('#charts svg').first().waitFor({ timeout: 30_000 });
    } catch {
      // a very fast run may finish first; the screenshot then shows the end
    }
    await shot('2-training.png');

    await panel.locator('#test-accuracy').waitFor({ timeout: 180_000 });
    const acc = await panel.locator('#test-accuracy').textContent();
    assert.match(acc, /\d+\.\d% test accuracy on \d+ images \(95% CI \d+\.\d–\d+\.\d%\)/);
    // The head was left to auto: the cross-validated choice is shown as a table, the baseline with its interval.
    assert.match(await panel.locator('#selection caption').textContent(), /Head chosen by \d+-fold cross-validation/);
    assert.ok((await panel.locator('#selection tr.chosen').count()) === 1, 'the chosen configuration is marked');
    assert.match(await panel.locator('#baseline').textContent(), /95% CI/);
    await panel.locator('#h-res').evaluate((el) => el.scrollIntoView({ block: 'start' }));
    await shot('3-results.png');

    // Export through the panel with the default compression (auto within 1 point).
    await panel.locator('#e-go').click();
    await panel.locator('#export-result').waitFor({ timeout: 180_000 });
    assert.ok(existsSync(path.join(ws, 'models', 'shapes', 'model.json')), 'exported into the workspace');
    await panel.locator('#export').scrollIntoViewIfNeeded();
    await shot('4-export.png');

    // Export again into the same folder: a modal names it; Cancel replaces nothing.
    const modelJson = path.join(ws, 'models', 'shapes', 'model.json');
    const written = statSync(modelJson).mtimeMs;
    await panel.locator('#e-go').click();
    const dialog = page.locator('.monaco-dialog-box');
    await dialog.waitFor({ timeout: 30_000 });
    assert.match(await dialog.textContent(), /'models\/shapes' already exists/);
    await shot('5-replace-dialog.png');
    await dialog.locator('.monaco-button', { hasText: 'Cancel' }).click();
    await dialog.waitFor({ state: 'detached', timeout: 10_000 });
    assert.equal(statSync(modelJson).mtimeMs, written, 'the export folder was kept');

    // A hostile run.json: markup in a label shows as text, in a number field as '–'; no element is made.
    await panel.locator('a[data-action="run"]', { hasText: 'evil-run' }).click();
    await panel.locator('#test-accuracy', { hasText: 'test accuracy on – images' }).waitFor({ timeout: 30_000 });
    assert.ok((await panel.locator('.confusion th', { hasText: '<img src=x id=pwned' }).count()) >= 1, 'the label is shown as text');
    assert.equal(await panel.locator('#pwned').count(), 0, 'no element made from run.json values');
    assert.equal(await panel.locator('body[data-pwned]').count(), 0);
    await shot('6-hostile-run.png');
  } catch (err) {
    await shot('failure.png').catch(() => undefined);
    throw err;
  } finally {
    await page.close();
  }
}
