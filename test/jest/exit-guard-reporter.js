/**
 * A run that finished its tests but does not exit fails, with what keeps it alive, instead of
 * hanging until the CI limit. jest only prints "did not exit one second after the test run has
 * completed" and waits; this reporter, once the run is complete, waits EXIT_GUARD_SEC more
 * (default 20) on an unref'd timer (it never keeps the process alive itself), then lists the open
 * handles and exits with 1. In band (one file, or --runInBand) the tests ran in this process, so
 * these are the tests' handles; jest itself force-kills workers that do not exit.
 * `node test/run-jest.mjs` also kills jest from outside if even this cannot run.
 */
const fs = require('node:fs');
const net = require('node:net');

const SERVICES = new Map([
  ['5432', 'PostgreSQL'],
  ['6379', 'Redis'],
  ['5672', 'RabbitMQ'],
]);
for (const [name, service] of [
  ['TEST_DATABASE_URL', 'PostgreSQL'],
  ['TEST_REDIS_URL', 'Redis'],
  ['TEST_AMQP_URL', 'RabbitMQ'],
]) {
  try {
    const port = new URL(process.env[name] ?? '').port;
    if (port) SERVICES.set(port, service);
  } catch {
    // unset or not a URL: the defaults above
  }
}

function describe(handle) {
  if (handle === process.stdout || handle === process.stderr || handle === process.stdin) return undefined;
  if (handle instanceof net.Socket) {
    if (handle.remotePort === undefined) return handle._handle?.constructor?.name === 'Pipe' ? 'pipe' : 'socket (not connected)';
    const service = SERVICES.get(String(handle.remotePort));
    return `TCP socket ${handle.localAddress}:${handle.localPort} -> ${handle.remoteAddress}:${handle.remotePort}${service ? ` (${service})` : ''}`;
  }
  if (handle instanceof net.Server) {
    const address = handle.address();
    return `server listening on ${typeof address === 'object' && address ? `${address.address}:${address.port}` : address}`;
  }
  const name = handle?.constructor?.name ?? typeof handle;
  if (name === 'ChildProcess') return `child process ${handle.pid} (${handle.spawnargs?.join(' ')})`;
  if (name === 'Timeout')
    return `timer (${handle._idleTimeout} ms${handle._repeat ? ', repeating' : ''}) ${handle._onTimeout?.name || 'anonymous'}`;
  return name;
}

function openHandles() {
  // Undocumented but stable since Node 0.x; the documented getActiveResourcesInfo() has names only.
  const handles = typeof process._getActiveHandles === 'function' ? process._getActiveHandles() : [];
  const described = handles.map(describe).filter((d) => d !== undefined);
  const resources = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
  return { described, resources };
}

class ExitGuardReporter {
  constructor(globalConfig) {
    this.globalConfig = globalConfig;
    this.seconds = Number(process.env.EXIT_GUARD_SEC ?? 20);
  }

  onRunComplete() {
    // Tell the wrapper the summary is out: from now on it bounds the exit from outside.
    const fd = Number(process.env.EXIT_GUARD_FD);
    if (fd > 2) {
      try {
        fs.writeSync(fd, 'run complete\n');
      } catch {
        // not started by the wrapper
      }
    }
    if (this.globalConfig.watch || this.globalConfig.watchAll || !(this.seconds > 0)) return;
    const timer = setTimeout(() => {
      const { described, resources } = openHandles();
      process.stderr.write(
        [
          '',
          `exit guard: jest finished its tests ${this.seconds} s ago but has not exited; still open:`,
          ...(described.length > 0 ? described.map((d) => `  - ${d}`) : ['  (no handle objects; see the resources below)']),
          `  resources: ${resources.join(', ') || 'none'}`,
          'A helper that opens something must register it (test/helpers/teardown.ts). To see where each was',
          'opened, re-run the file alone with: npx jest --detectOpenHandles <file>',
          '',
        ].join('\n'),
      );
      process.exit(1);
    }, this.seconds * 1000);
    timer.unref();
  }
}

module.exports = ExitGuardReporter;
