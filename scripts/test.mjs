// `npm test`: set-up, build, type checks, lint, unit tests, integration tests.
// The set-up (scripts/setup-tests.sh) installs what the tests need where it
// can (Debian packages as root, code-server into .tools/). What it cannot
// install is named in one line with how to get it; every test that does not
// need it still runs, and the end of the output says what was skipped. Under
// CI (CI=true) a missing piece fails the run instead, so a green CI never
// hides a missing install step.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ci = process.env.CI === 'true' || process.env.CI === '1';

/** Runs a step with inherited output; stops the run on failure. */
function step(name, cmd, args, env = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) {
    console.error(`npm test: ${name} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
}

const setup = spawnSync('bash', [path.join(root, 'scripts', 'setup-tests.sh')], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
const have = Object.fromEntries(
  (setup.stdout ?? '')
    .split('\n')
    .map((l) => l.split('='))
    .filter((kv) => kv.length === 2 && kv[1])
    .map(([k, v]) => [k.trim(), v.trim()]),
);
const skipped = [];
if (!have.redis) skipped.push('queue tests (no redis-server)');
if (!have.chromium || !have.codeServer) skipped.push(`integration tests (no ${[!have.chromium && 'Chromium', !have.codeServer && 'code-server'].filter(Boolean).join(' or ')})`);
if (skipped.length && ci) {
  console.error(`npm test: under CI every test must run; missing: ${skipped.join('; ')}`);
  process.exit(1);
}

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
step('build', npm, ['run', 'build', '--silent']);
step('type checks', npm, ['run', 'check-types', '--silent']);
step('lint', npm, ['run', 'lint', '--silent']);
step('typed unit tests', npm, ['run', 'test:ts', '--silent']);
// The queue tests start their own redis-server on a loopback port; without one they skip with the reason.
step('unit tests', npm, ['run', 'test:unit', '--silent'], have.redis ? { HEADSTART_REDIS_SERVER: have.redis } : { HEADSTART_REDIS_SERVER: '' });
if (have.chromium && have.codeServer) step('integration tests', process.execPath, [path.join(root, 'test', 'integration', 'runCodeServer.mjs')], { CHROMIUM_PATH: have.chromium });
if (skipped.length) console.error(`npm test: SKIPPED ${skipped.join('; ')}: install what the set-up lines above name, then run npm test again`);
