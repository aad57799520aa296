/**
 * A three-master Redis Cluster of the test's own: the machine's `redis-server` binary started
 * three times with `--cluster-enabled yes` on free loopback ports in a temporary directory, joined
 * with `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`. Nothing on disk
 * besides the nodes' config files; `stop()` kills each node by its own PID and removes the
 * directory. Registered for teardown (helpers/teardown.ts) as soon as it exists, and killed on
 * `process` exit as a last resort; `stop()` it in `afterAll`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { track } from './teardown';
import { waitFor } from './wait';
import { freePort } from './ports';

export interface TestRedisCluster {
  readonly ports: readonly number[];
  /** `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3` */
  readonly url: string;
  /** A plain connection to one node (for PUBSUB SHARDCHANNELS, CLUSTER INFO). */
  node(port: number): Redis;
  stop(): Promise<void>;
}

/** Ports whose cluster bus port (port + 10000) is free too. */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await freePort();
    if (port + 10_000 > 65_535 || taken.has(port)) continue;
    const bus = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen(port + 10_000, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (bus) return port;
  }
  throw new Error('no free port pair for a cluster node');
}

const run = (file: string, args: string[], timeoutMs: number) =>
  new Promise<string>((resolve, reject) =>
    execFile(file, args, { timeout: timeoutMs }, (error, stdout, stderr) =>
      error ? reject(new Error(`${file} ${args.join(' ')}: ${stderr || error.message}`)) : resolve(stdout),
    ),
  );

export async function startRedisCluster(masters = 3): Promise<TestRedisCluster> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cpr-redis-cluster-'));
  const children: ChildProcess[] = [];
  const clients: Redis[] = [];
  const ports: number[] = [];
  const taken = new Set<number>();
  const stop = async () => {
    process.off('exit', killAll);
    for (const client of clients.splice(0)) client.disconnect();
    await Promise.all(
      children.splice(0).map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  const killAll = () => {
    for (const child of children) child.kill('SIGKILL');
  };
  process.on('exit', killAll);
  const tracked = track(`redis cluster in ${dir}`, stop);
  try {
    for (let i = 0; i < masters; i++) {
      const port = await clusterPort(taken);
      taken.add(port);
      ports.push(port);
      const child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          path.join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          '2000',
          '--save',
          '',
          '--appendonly',
          'no',
          '--dir',
          dir,
        ],
        { stdio: 'ignore' },
      );
      children.push(child);
    }
    const node = (port: number) => {
      const client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => null });
      client.on('error', () => undefined);
      clients.push(client);
      return client;
    };
    // A fresh probe per attempt: a connection refused before the node listened stays refused.
    const answers = async (port: number) => {
      const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        return (await probe.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        probe.disconnect();
      }
    };
    await waitFor(async () => (await Promise.all(ports.map(answers))).every(Boolean), 'cluster nodes to answer', 15_000);
    const probes = ports.map(node);
    await run(
      'redis-cli',
      ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
      30_000,
    );
    await waitFor(
      async () =>
        (await Promise.all(probes.map((p) => p.cluster('INFO').catch(() => '')))).every((info) => /cluster_state:ok/.test(String(info))),
      'the cluster to be ok on every node',
      20_000,
    );
    return { ports, url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`, node, stop: () => tracked.close() };
  } catch (error) {
    await tracked.close();
    throw error;
  }
}
