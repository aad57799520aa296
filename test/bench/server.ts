/**
 * One benchmarked server in its own process (forked by run.ts with --expose-gc), driven over IPC:
 *   child -> {type:'ready', port}
 *   {cmd:'stats', id}   -> gc, then {type:'stats', id, cpu, mem, sockets, subscriptions}
 *   {cmd:'profile-start'} / {cmd:'profile-stop', file} -> a CPU profile of just that window
 *   {cmd:'stop'}        -> {type:'stopped'}, exit
 * The configuration arrives as JSON in BENCH_SERVER (kind + names unique to the run).
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Session } from 'node:inspector';
import path from 'node:path';
import type * as AppModule from '../../src/app';
import type * as ConfigModule from '../../src/config';
import type * as LoggerModule from '../../src/logger';
import { startGraphqlWsServer, startRawServer, type BenchServerConfig, type RunningServer } from './baselines';

/** `gateway-sse`: the same gateway, driven by GraphQL-over-SSE clients instead of graphql-ws. */
export type ServerKind = 'gateway' | 'gateway-sse' | 'raw' | 'graphql-ws';

export interface ServerSpec extends BenchServerConfig {
  readonly kind: ServerKind;
  /** Gateway only. */
  readonly databaseUrl?: string;
  readonly redisUrl?: string;
  readonly topicPrefix?: string;
  readonly dlq?: string;
  readonly dlx?: string;
  /** Extra gateway environment (`--gateway-env`). */
  readonly env?: Readonly<Record<string, string>>;
  /** The queues its backlog waits in (the gateway's router and partition queues; else `queue`). */
  readonly backlogQueues?: readonly string[];
}

export interface ServerStats {
  readonly cpu: NodeJS.CpuUsage;
  readonly mem: NodeJS.MemoryUsage;
  readonly sockets: number;
  readonly subscriptions: number;
}

/** The repository root (holds package.json), from wherever tsc put this file. */
export function repoRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const parent = path.dirname(dir);
    if (path.basename(dir) === '.tmp') return parent;
    dir = parent;
  }
  return process.cwd();
}

/**
 * The gateway from `dist/` (what `npm run build` made), not tsc's copy under .tmp: the app finds
 * its migrations and GraphiQL assets relative to its own files, which only `dist/` places right.
 */
async function startGateway(spec: ServerSpec): Promise<RunningServer> {
  const dist = path.join(repoRoot(), 'dist');
  // Loaded by path at run time (dist/ is built just before), typed as the sources it was built from.
  const fromDist = createRequire(path.join(dist, 'index.js'));
  const { buildApp } = fromDist('./app.js') as typeof AppModule;
  const { loadConfig } = fromDist('./config.js') as typeof ConfigModule;
  const { createLogger } = fromDist('./logger.js') as typeof LoggerModule;
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    DATABASE_URL: spec.databaseUrl,
    REDIS_URL: spec.redisUrl,
    AMQP_URL: spec.amqpUrl,
    AMQP_EXCHANGE: spec.exchange,
    AMQP_QUEUE: spec.queue,
    AMQP_DLQ: spec.dlq,
    AMQP_DLX: spec.dlx,
    REDIS_TOPIC_PREFIX: spec.topicPrefix,
    JWT_SECRET: spec.jwtSecret,
    ...spec.env,
  });
  const app = buildApp(config, createLogger(config.logLevel));
  await app.start();
  return {
    port: app.port,
    counts() {
      const stats = app.stats();
      const { sse, multipart } = stats.sessions.transports;
      // Connections of every transport: SSE and multipart streams count as the sockets they are.
      return {
        sockets: stats.sockets + sse.open + multipart.open,
        subscriptions: Object.values(stats.subscriptions).reduce((a, b) => a + b, 0),
      };
    },
    stop: () => app.stop(),
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.env.BENCH_SERVER ?? '{}') as ServerSpec;
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  const server =
    spec.kind === 'gateway' || spec.kind === 'gateway-sse'
      ? await startGateway(spec)
      : spec.kind === 'raw'
        ? await startRawServer(spec)
        : await startGraphqlWsServer(spec);
  let session: Session | undefined;
  const post = <T>(method: string, params?: object) =>
    new Promise<T>((resolve, reject) => session?.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res as T))));

  process.on('message', (raw: { cmd: string; id?: number; file?: string }) => {
    void (async () => {
      if (raw.cmd === 'stats') {
        // Twice: the first pass may only queue finalizers that free more on the second.
        gc();
        gc();
        const stats: ServerStats = { cpu: process.cpuUsage(), mem: process.memoryUsage(), ...server.counts() };
        process.send?.({ type: 'stats', id: raw.id, ...stats });
      } else if (raw.cmd === 'counts') {
        process.send?.({ type: 'counts', id: raw.id, ...server.counts() });
      } else if (raw.cmd === 'profile-start') {
        session = new Session();
        session.connect();
        await post('Profiler.enable');
        await post('Profiler.setSamplingInterval', { interval: 100 });
        await post('Profiler.start');
        process.send?.({ type: 'profiling', id: raw.id });
      } else if (raw.cmd === 'profile-stop') {
        const { profile } = await post<{ profile: unknown }>('Profiler.stop');
        session?.disconnect();
        session = undefined;
        if (raw.file) writeFileSync(raw.file, JSON.stringify(profile));
        process.send?.({ type: 'profiled', id: raw.id, file: raw.file });
      } else if (raw.cmd === 'stop') {
        await server.stop().catch(() => undefined);
        process.send?.({ type: 'stopped', id: raw.id });
        process.exit(0);
      }
    })().catch((error: unknown) => process.send?.({ type: 'error', id: raw.id, message: String(error) }));
  });
  // The runner going away (crash, SIGKILL) must not leave this server behind.
  process.on('disconnect', () => process.exit(0));
  process.send?.({ type: 'ready', port: server.port });
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`bench server failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
