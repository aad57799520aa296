#!/usr/bin/env node
/**
 * Runs jest for the named projects (comma-separated, from jest.config.js), passing every other
 * argument through: `node test/run-jest.mjs unit test/unit/config.test.ts -t defaults`. jest's
 * `--selectProjects` takes every word after it, so the scripts cannot simply append a path.
 *
 * The outer half of the exit guard (the inner one is test/jest/exit-guard-reporter.js): once
 * jest reports the run complete, it has EXIT_GUARD_SEC (default 20) plus 10 s to exit; after
 * that it is killed and this exits non-zero, so a run whose tests finished never hangs CI.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const [projects, ...args] = process.argv.slice(2);
if (!projects) {
  process.stderr.write('usage: node test/run-jest.mjs <unit|integration|disruptive>[,...] [jest arguments]\n');
  process.exit(2);
}
const guardSec = Number(process.env.EXIT_GUARD_SEC ?? 20);
const outerMs = (guardSec + 10) * 1000;

const child = spawn(process.execPath, [require.resolve('jest/bin/jest'), ...args, '--selectProjects', ...projects.split(',')], {
  // fd 3: the reporter writes "run complete" there.
  stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
  env: { ...process.env, EXIT_GUARD_FD: '3' },
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));

let killedByGuard = false;
child.stdio[3]?.on('data', (chunk) => {
  if (!String(chunk).includes('run complete') || !(guardSec > 0)) return;
  setTimeout(() => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    killedByGuard = true;
    process.stderr.write(
      `\nexit guard: jest completed its run ${outerMs / 1000} s ago and neither exited nor reported its open handles; killing it (pid ${child.pid}).\n` +
        'Re-run the files of this run one by one with --detectOpenHandles to find what stays open.\n',
    );
    child.kill('SIGKILL');
  }, outerMs).unref();
});
child.stdio[3]?.on('error', () => undefined);

child.on('exit', (code, signal) => process.exit(killedByGuard ? 1 : (code ?? (signal ? 1 : 0))));
