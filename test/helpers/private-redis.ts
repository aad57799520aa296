/**
 * A Redis server of the test's own, on a free loopback port, that the test may stop and start
 * again without touching the shared one. Always `stop()` it in `afterAll`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import Redis from 'ioredis';
import { track } from './teardown';
import { waitFor } from './wait';
import { freePort } from './ports';

export interface PrivateRedis {
  readonly url: string;
  readonly port: number;
  /** Starts the server (again) on the same port and waits until it answers. */
  start(): Promise<void>;
  /** Stops the server (SIGTERM to its own PID) and waits until it has exited. */
  stop(): Promise<void>;
}

async function answers(port: number): Promise<boolean> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** Starts one on `port` (default: a free one). */
export async function privateRedis(port?: number): Promise<PrivateRedis> {
  port ??= await freePort();
  let child: ChildProcess | undefined;
  const listenOn = port;
  // Registered before the first start: a server that never answers is still stopped.
  track(`private redis-server on ${listenOn}`, () => handle.stop());
  const handle: PrivateRedis = {
    url: `redis://127.0.0.1:${listenOn}`,
    port: listenOn,
    async start() {
      if (child) return;
      child = spawn('redis-server', ['--port', String(listenOn), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
        stdio: 'ignore',
      });
      const spawned = child;
      spawned.once('error', () => {
        if (child === spawned) child = undefined;
      });
      await waitFor(() => answers(listenOn), `private redis on ${listenOn}`);
    },
    async stop() {
      const running = child;
      if (!running) return;
      child = undefined;
      if (running.exitCode !== null || running.signalCode !== null || running.pid === undefined) return;
      const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
      running.kill('SIGTERM');
      await exited;
    },
  };
  await handle.start();
  return handle;
}
