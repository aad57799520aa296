#!/usr/bin/env node
/**
 * Runs jest for the named projects (comma-separated, from jest.config.js), passing every other
 * argument through: `node test/run-jest.mjs unit test/unit/config.test.ts -t defaults`. jest's
 * `--selectProjects` takes every word after it, so the scripts cannot simply append a path.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const [projects, ...args] = process.argv.slice(2);
if (!projects) {
  process.stderr.write('usage: node test/run-jest.mjs <unit|integration|disruptive>[,...] [jest arguments]\n');
  process.exit(2);
}

const child = spawn(process.execPath, [require.resolve('jest/bin/jest'), ...args, '--selectProjects', ...projects.split(',')], {
  stdio: 'inherit',
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
