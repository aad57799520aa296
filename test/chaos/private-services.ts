/**
 * Service instances of the chaos run's own: a RabbitMQ node, a Redis and a PostgreSQL cluster on
 * free loopback ports, with data directories under one temporary directory, so the run may stop
 * and restart them without touching the shared services other engineers and CI use. Every
 * process is started here and stopped here by its own pid or node name; `stopAll()` removes the
 * directory. Nothing is downloaded: the binaries are the machine's.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import amqp from 'amqplib';
import Redis from 'ioredis';
import pg from 'pg';
import { freePort } from '../helpers/ports';

export { freePort };

const run = promisify(execFile);

/** Polls `check` every 100 ms until it is true, or throws after `timeoutMs`. */
async function until(check: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < deadline && i < 100_000; i++) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

// ------------------------------------------------------------------ RabbitMQ

const RABBIT_SBIN = '/usr/lib/rabbitmq/lib/rabbitmq_server-3.10.8/sbin';

export interface PrivateRabbit {
  readonly url: string;
  readonly node: string;
  stopApp(): Promise<void>;
  startApp(): Promise<void>;
  stop(): Promise<void>;
}

async function startRabbit(dir: string): Promise<PrivateRabbit> {
  const port = await freePort();
  const distPort = await freePort();
  const node = `cprchaos-${process.pid}@localhost`;
  const base = path.join(dir, 'rabbitmq');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    // The Erlang cookie lives in HOME: the node and rabbitmqctl share this one.
    HOME: base,
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: path.join(base, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(base, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(base, 'enabled_plugins'),
    // Not the machine's files: they name the shared node and its port.
    RABBITMQ_CONFIG_FILE: path.join(base, 'rabbitmq.conf'),
    RABBITMQ_CONF_ENV_FILE: path.join(base, 'rabbitmq-env.conf'),
    RABBITMQ_ADVANCED_CONFIG_FILE: path.join(base, 'advanced.config'),
    ERL_EPMD_ADDRESS: '127.0.0.1',
  };
  await run('mkdir', ['-p', path.join(base, 'mnesia'), path.join(base, 'log')]);
  writeFileSync(path.join(base, 'enabled_plugins'), '[rabbitmq_consistent_hash_exchange].\n');
  writeFileSync(path.join(base, 'rabbitmq.conf'), `listeners.tcp.1 = 127.0.0.1:${port}\nloopback_users = none\n`);
  writeFileSync(path.join(base, 'rabbitmq-env.conf'), '');
  writeFileSync(path.join(base, 'advanced.config'), '[].\n');
  const child = spawn(path.join(RABBIT_SBIN, 'rabbitmq-server'), [], { env, stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ctl = (...args: string[]) => run(path.join(RABBIT_SBIN, 'rabbitmqctl'), ['-n', node, ...args], { env, timeout: 60_000 });
  const url = `amqp://guest:guest@127.0.0.1:${port}`;
  const answers = async () => {
    const connection = await amqp.connect(url);
    await connection.close();
    return true;
  };
  await until(answers, `the private RabbitMQ node ${node}`, 90_000);
  return {
    url,
    node,
    async stopApp() {
      await ctl('stop_app');
    },
    async startApp() {
      await ctl('start_app');
      await until(answers, 'RabbitMQ after start_app', 60_000);
    },
    async stop() {
      await ctl('stop').catch(() => child.kill('SIGKILL'));
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20_000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

// ------------------------------------------------------------------ Redis

export interface PrivateRedisServer {
  readonly url: string;
  /** `SHUTDOWN NOSAVE`, then the same server started again on the same port (empty). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function startRedis(dir: string): Promise<PrivateRedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const answers = async () => {
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return (await client.ping()) === 'PONG';
    } finally {
      client.disconnect();
    }
  };
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      stdio: 'ignore',
    });
    await until(answers, `private redis on ${port}`, 20_000);
  };
  const shutdown = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once('exit', () => resolve()));
    const client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    await client.call('SHUTDOWN', 'NOSAVE').catch(() => undefined);
    client.disconnect();
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    if (running.exitCode === null && running.signalCode === null) running.kill('SIGKILL');
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    async restart() {
      await shutdown();
      await start();
    },
    stop: shutdown,
  };
}

// ------------------------------------------------------------------ PostgreSQL

const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface PrivatePostgres {
  readonly url: string;
  /** `pg_ctl restart -m fast`: every connection is dropped. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function startPostgres(dir: string): Promise<PrivatePostgres> {
  const port = await freePort();
  const base = path.join(dir, 'postgres');
  const data = path.join(base, 'data');
  const sockets = path.join(base, 'sockets');
  await run('mkdir', ['-p', data, sockets]);
  // initdb and the server refuse to run as root: the postgres user owns this directory only.
  const { uid, gid } = os.userInfo({ encoding: 'utf8' }).uid === 0 ? await postgresIds() : { uid: -1, gid: -1 };
  if (uid >= 0) {
    chmodSync(dir, 0o755);
    for (const p of [base, data, sockets]) chownSync(p, uid, gid);
  }
  const asPostgres = (cmd: string, args: string[]) =>
    uid >= 0 ? run('runuser', ['-u', 'postgres', '--', cmd, ...args], { timeout: 120_000 }) : run(cmd, args, { timeout: 120_000 });
  await asPostgres(path.join(PG_BIN, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const options = `-p ${port} -k ${sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
  const ctl = (...args: string[]) =>
    asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', data, '-w', '-t', '60', '-l', path.join(base, 'log'), ...args]);
  await ctl('-o', options, 'start');
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    async restart() {
      await ctl('-m', 'fast', '-o', options, 'restart');
    },
    async stop() {
      await ctl('-m', 'immediate', 'stop').catch(() => undefined);
    },
  };
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const { stdout: uid } = await run('id', ['-u', 'postgres']);
  const { stdout: gid } = await run('id', ['-g', 'postgres']);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

// ------------------------------------------------------------------ all together

export interface PrivateServices {
  readonly rabbit: PrivateRabbit;
  readonly redis: PrivateRedisServer;
  readonly postgres: PrivatePostgres;
  /** Creates a database on the private cluster for one scenario. */
  database(name: string): Promise<string>;
  stopAll(): Promise<void>;
}

export async function startPrivateServices(): Promise<PrivateServices> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cprchaos-'));
  const started: { stop(): Promise<void> }[] = [];
  const stopAll = async () => {
    for (const service of started.reverse()) await service.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const [redis, postgres] = await Promise.all([startRedis(dir), startPostgres(dir)]);
    started.push(redis, postgres);
    const rabbit = await startRabbit(dir);
    started.push(rabbit);
    return {
      rabbit,
      redis,
      postgres,
      async database(name) {
        const client = new pg.Client({ connectionString: postgres.url });
        await client.connect();
        try {
          await client.query(`CREATE DATABASE "${name}"`);
        } finally {
          await client.end();
        }
        const url = new URL(postgres.url);
        url.pathname = `/${name}`;
        return url.toString();
      },
      stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
