// A 200-file slice of `npm run fuzz`: hostile images made from a seed go
// through scan + decode of dist/core.js in a child process; the run must end
// with no crash, no hang, no skip without a reason and a peak under 1 GB.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { root } from './helpers.mjs';

test('fuzz: 200 hostile files through the data path, every one decoded or skipped with a reason, peak RSS under 1 GB', async () => {
  const script = path.join(root, 'scripts', 'fuzz.mjs');
  const { code, stdout, stderr } = await new Promise((resolve) => {
    execFile(process.execPath, [script, '--count', '200', '--seed', '7', '--json'], { cwd: root, timeout: 300_000, maxBuffer: 16 << 20 }, (err, out, errOut) =>
      resolve({ code: err ? (err.code ?? err.signal) : 0, stdout: out, stderr: errOut }),
    );
  });
  const res = JSON.parse(stdout.trim().split('\n').pop());
  assert.equal(code, 0, `fuzz failed: ${JSON.stringify(res.problems)} ${stderr}`);
  assert.equal(res.tried, 200);
  assert.equal(res.crashed + res.hung + res.unexplained, 0);
  assert.equal(res.decoded + res.skipped, 200);
  assert.ok(res.decoded > 10 && res.skipped > 50, `a real mix: ${res.decoded} decoded, ${res.skipped} skipped`);
  assert.ok(res.peakRssMb > 0 && res.peakRssMb <= 1024, `peak ${res.peakRssMb} MB`);
  // The hostile entries that must be refused, by name.
  const reasons = Object.keys(res.reasons).join('\n');
  assert.match(reasons, /file is N MB, over the N MB limit/);
  assert.match(reasons, /strip \(over the N:N limit\)/);
});
