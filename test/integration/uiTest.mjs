// UI test: drives the real workbench (code-server in Chromium) like a user —
// command palette → Fine-tune a Model… wizard → panel → Start → results →
// Export — and saves screenshots along the way.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { remote, root, workbenchUrl } from './codeServer.mjs';

export async function runUiTest(server, browser, ws, shotsDir) {
  await mkdir(shotsDir, { recursive: true });
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
    assert.match(acc, /\d+\.\d% test accuracy/);
    await panel.locator('#results').scrollIntoViewIfNeeded();
    await shot('3-results.png');

    // Export through the panel with the default compression (auto within 1 point).
    await panel.locator('#e-go').click();
    await panel.locator('#export-result').waitFor({ timeout: 180_000 });
    assert.ok(existsSync(path.join(ws, 'models', 'shapes', 'model.json')), 'exported into the workspace');
    await panel.locator('#export').scrollIntoViewIfNeeded();
    await shot('4-export.png');
  } catch (err) {
    await shot('failure.png').catch(() => undefined);
    throw err;
  } finally {
    await page.close();
  }
}
