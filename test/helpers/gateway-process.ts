/**
 * A gateway in a child process of its own, started from the sources exactly as `npm start` runs
 * `main.ts` (loadConfig, buildApp, start; SIGTERM handling): for tests that need to kill an
 * instance for real (SIGKILL leaves no graceful stop: sockets drop, unacknowledged messages go
 * back to RabbitMQ). Every process started here is killed, by its pid, in `stopGatewayProcesses`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { bundleEntry } from './cli';
import { TEST_JWT_SECRET } from './services';
import { track } from './teardown';
import { deferred, within } from './wait';

const root = path.resolve(__dirname, '../..');

export interface GatewayProcess {
  readonly pid: number;
  readonly port: number;
  readonly wsUrl: string;
  readonly httpUrl: string;
  /** Resolves with the exit signal or code once the process is gone. */
  readonly exited: Promise<string>;
  /** Everything it wrote to stderr (start-up failures). */
  stderr(): string;
  kill(signal: NodeJS.Signals): void;
}

const children = new Set<ChildProcess>();

/** Starts `src/main.ts` with `env` (plus test defaults) and resolves once it listens. */
export async function startGatewayProcess(env: Record<string, string | undefined>): Promise<GatewayProcess> {
  const hook = await bundleEntry(path.join(root, 'test/fixtures/ts-register.ts'), 'ts-register');
  const child = spawn(process.execPath, ['-r', hook, path.join(root, 'src/main.ts')], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      PORT: '0',
      HOST: '127.0.0.1',
      JWT_SECRET: TEST_JWT_SECRET,
      // The "listening" line (info) carries the port.
      LOG_LEVEL: 'info',
      AMQP_REQUEUE_DELAY_MS: '100',
      SHUTDOWN_TIMEOUT_MS: '2000',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const exited = deferred<string>();
  const tracked = track(`gateway process ${child.pid ?? '(not started)'}`, () => killAndWait(child));
  child.once('exit', (code, signal) => {
    children.delete(child);
    tracked.untrack();
    exited.resolve(signal ?? String(code));
  });
  // A spawn failure (ENOENT, EAGAIN) emits 'error' and no 'exit'.
  child.once('error', (error) => {
    children.delete(child);
    tracked.untrack();
    exited.resolve(`spawn error: ${error.message}`);
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const listening = deferred<number>();
  let pending = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (!line.includes('listening on')) continue;
      try {
        listening.resolve((JSON.parse(line) as { port: number }).port);
      } catch {
        // not the JSON line we wait for
      }
    }
  });
  void exited.promise.then((how) => listening.reject(new Error(`gateway process exited (${how}) before listening: ${stderr}`)));
  const port = await within(listening.promise, 'the gateway process to listen', 60_000);
  return {
    pid: child.pid as number,
    port,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    httpUrl: `http://127.0.0.1:${port}/graphql`,
    exited: exited.promise,
    stderr: () => stderr,
    kill: (signal) => void child.kill(signal),
  };
}

function killAndWait(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** Kills every gateway process still running (afterAll; teardown does it too). */
export async function stopGatewayProcesses(): Promise<void> {
  await Promise.all([...children].map(killAndWait));
}
