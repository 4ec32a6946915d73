// `npm run test:integration`: sets up what the integration tests need
// (scripts/setup-integration.sh), then runs them in a real VS Code. Where the
// set-up cannot install something (no root, another OS), it says in one line
// what is missing and how to get it, and skips these tests; under CI
// (CI=true) a missing piece fails the run instead, so a green CI never hides it.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const setup = spawnSync('bash', [path.join(root, 'scripts', 'setup-integration.sh')], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
if (setup.status !== 0) {
  const ci = process.env.CI === 'true' || process.env.CI === '1';
  console.error(`integration tests ${ci ? 'cannot run' : 'SKIPPED'}: the set-up above lists what is missing; install it and run npm test again`);
  process.exit(ci ? 1 : 0);
}
const chromium = setup.stdout.trim().split('\n').pop();
const run = spawnSync(process.execPath, [path.join(root, 'test', 'integration', 'runCodeServer.mjs')], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, CHROMIUM_PATH: process.env.CHROMIUM_PATH ?? chromium },
});
process.exit(run.status ?? 1);
