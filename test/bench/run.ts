/**
 * `npm run bench`: issue 7's benchmark, with issue 16's system CPU and targets. For each scenario x
 * C x server: start the server in its own process (core 0), connect C clients from this process
 * (core 1), warm up, publish at a fixed rate through RabbitMQ, measure the server's CPU and
 * PostgreSQL's, Redis's and RabbitMQ's (system-cpu.ts); then print a table, the ratios to the
 * baselines, the targets as PASS/FAIL (targets.ts) and the Markdown for the README (report.ts),
 * and append JSON lines to test/bench/results/.
 *
 * Exits 1 when the gateway lost, duplicated or misrouted a delivery (correctness), never for a missed
 * speed target (reported). Every child is killed by PID on exit, error or signal, and every
 * queue, exchange, database and Redis key the run made is deleted.
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import amqp, { type Channel, type ChannelModel } from 'amqplib';
import Redis from 'ioredis';
import pg from 'pg';
import { loadConfig } from '../../src/config';
import { partitionTopology } from '../../src/infra/amqp/partition-topology';
import { Load, type Mode } from './load';
import { frontendScenario, frontendTable, type FrontendResult } from './frontend';
import { formatSummary } from './profile';
import { background, f, isGateway, markdownTable, postgresDetail, ratios, systemFigures, table, type Row } from './report';
import { delta, ServicesSampler } from './system-cpu';
import { evaluateTargets, formatVerdict, markdownTargets } from './targets';
import { repoRoot, type ServerKind, type ServerSpec, type ServerStats } from './server';

const AMQP_URL = process.env.BENCH_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const JWT_SECRET = `bench-${randomBytes(16).toString('hex')}`;

const USAGE = `npm run bench -- [flags]
  --quick                 smoke run (~2-3 min): small C, short windows
  --scenarios a,b         per-user,fan-out,broadcast,frontend (default the first three); broadcast: an announcement
                          to everyone on the gateway (plain users on notifications) beside the
                          baselines' fan-out (the same bytes to every socket), C and rate as fan-out;
                          frontend: push vs the 30 s polling pages do today (own gateway, 50 or 200 pages)
  --servers a,b           gateway,gateway-sse,raw,graphql-ws (default gateway,raw,graphql-ws;
                          gateway-sse: the gateway with GraphQL-over-SSE clients)
  --c 1000,5000           per-user socket counts (default 1000,5000,10000; quick 1000)
  --fanout-c 1000         fan-out socket counts (default 1000,5000; quick 300)
  --rate N                per-user events/s (default 1000)
  --fanout-rate N         fan-out events/s (default 20, at most 20000/C)
  --seconds N             measured window per phase (default 10; quick 3)
  --no-search             skip the per-user max-sustainable-rate search
  --profile               CPU-profile the gateway during each fixed-rate window, print the top functions
  --gateway-env K=V,K=V   extra environment for the gateway (e.g. EVENT_LOG_MAX_EVENTS=0 to compare without the retained log)
  --help`;

type Scenario = Mode | 'frontend';

interface Options {
  readonly quick: boolean;
  readonly scenarios: readonly Scenario[];
  readonly servers: readonly ServerKind[];
  readonly perUserC: readonly number[];
  readonly fanoutC: readonly number[];
  readonly rate: number;
  /** Undefined: 20 events/s, fewer for large C so deliveries stay at most 20,000/s. */
  readonly fanoutRate: number | undefined;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly drainMs: number;
  readonly search: boolean;
  readonly searchRates: readonly number[];
  readonly searchSeconds: number;
  readonly profile: boolean;
  /** Extra gateway configuration (`--gateway-env`). */
  readonly gatewayEnv: Readonly<Record<string, string>>;
}

function parseOptions(argv: string[]): Options {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"\n${USAGE}`);
    const [key, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    const takesValue = ['scenarios', 'servers', 'c', 'fanout-c', 'rate', 'fanout-rate', 'seconds', 'gateway-env'].includes(key);
    if (!takesValue && !['quick', 'no-search', 'profile', 'help'].includes(key)) throw new Error(`unknown flag --${key}\n${USAGE}`);
    if (takesValue) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new Error(`--${key} needs a value`);
      flags.set(key, value);
    } else flags.set(key, true);
  }
  if (flags.has('help')) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const quick = flags.has('quick');
  const list = (key: string, fallback: readonly string[]) => {
    const v = flags.get(key);
    return typeof v === 'string'
      ? v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : fallback;
  };
  const ints = (key: string, fallback: readonly number[]) =>
    list(key, fallback.map(String)).map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new Error(`--${key}: ${s} is not an integer in 1..10000`);
      return n;
    });
  const num = (key: string, fallback: number, max: number) => {
    const v = flags.get(key);
    if (typeof v !== 'string') return fallback;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0 || n > max) throw new Error(`--${key}: ${v} is not a number in (0, ${max}]`);
    return n;
  };
  const scenarioNames = list('scenarios', ['per-user', 'fan-out', 'broadcast']);
  for (const s of scenarioNames)
    if (s !== 'per-user' && s !== 'fan-out' && s !== 'broadcast' && s !== 'frontend') throw new Error(`--scenarios: unknown "${s}"`);
  const scenarios = scenarioNames as Scenario[];
  const servers = list('servers', ['gateway', 'raw', 'graphql-ws']) as ServerKind[];
  for (const s of servers) if (!['gateway', 'gateway-sse', 'raw', 'graphql-ws'].includes(s)) throw new Error(`--servers: unknown "${s}"`);
  const rate = num('rate', 1000, 50_000);
  return {
    quick,
    scenarios,
    servers,
    perUserC: ints('c', quick ? [1000] : [1000, 5000, 10_000]),
    fanoutC: ints('fanout-c', quick ? [300] : [1000, 5000]),
    rate,
    fanoutRate: flags.has('fanout-rate') ? num('fanout-rate', 20, 1000) : undefined,
    seconds: num('seconds', quick ? 3 : 10, 120),
    warmupSeconds: quick ? 1 : 3,
    drainMs: quick ? 3000 : 5000,
    search: !flags.has('no-search'),
    searchRates: quick ? [2000, 4000] : [2000, 4000, 8000, 16_000],
    searchSeconds: quick ? 2 : 4,
    profile: flags.has('profile'),
    gatewayEnv: gatewayEnv(flags.get('gateway-env')),
  };
}

function gatewayEnv(value: string | true | undefined): Record<string, string> {
  if (typeof value !== 'string') return {};
  const env: Record<string, string> = {};
  for (const pair of value.split(',')) {
    const [key, ...rest] = pair.split('=');
    if (!key || !/^[A-Z][A-Z0-9_]*$/.test(key) || rest.length === 0) throw new Error(`--gateway-env: expected KEY=VALUE, got "${pair}"`);
    env[key] = rest.join('=');
  }
  return env;
}

// ---------------------------------------------------------------- processes and run resources

const children = new Set<ChildProcess>();
const runId = `cpr-bench_${process.pid}_${randomBytes(3).toString('hex')}`;
const exchange = `${runId}.x`;
const made = { queues: [] as string[], exchanges: [exchange], databases: [] as string[], redisPrefixes: [] as string[] };
let serial = 0;

function killChildren(): void {
  for (const child of children) {
    if (child.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
}

function pin(pid: number, core: number): boolean {
  const r = spawnSync('taskset', ['-a', '-pc', String(core), String(pid)], { stdio: 'ignore' });
  return r.status === 0;
}

class ServerProcess {
  private nextId = 0;
  private readonly waiting = new Map<number, (msg: Record<string, unknown>) => void>();
  port = 0;

  private constructor(
    readonly kind: ServerKind,
    private readonly child: ChildProcess,
  ) {}

  static async start(spec: ServerSpec, pinned: boolean): Promise<ServerProcess> {
    const script = path.join(__dirname, 'server.js');
    const child = fork(script, [], {
      execArgv: ['--expose-gc'],
      env: { ...process.env, BENCH_SERVER: JSON.stringify(spec) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    children.add(child);
    if (pinned && child.pid !== undefined) pin(child.pid, 0);
    const server = new ServerProcess(spec.kind, child);
    child.on('message', (msg: Record<string, unknown>) => {
      const id = msg.id as number | undefined;
      if (id !== undefined) {
        const resolve = server.waiting.get(id);
        server.waiting.delete(id);
        resolve?.(msg);
      }
    });
    server.port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${spec.kind} server not ready within 120 s`)), 120_000);
      child.on('message', (msg: { type?: string; port?: number }) => {
        if (msg.type === 'ready') {
          clearTimeout(timer);
          resolve(msg.port as number);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${spec.kind} server exited with ${code} before it was ready`));
      });
    });
    child.on('exit', (code, signal) => {
      children.delete(child);
      for (const resolve of server.waiting.values()) resolve({ type: 'error', message: `server exited (${code ?? signal})` });
      server.waiting.clear();
    });
    return server;
  }

  request(cmd: string, extra: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${this.kind} server: no answer to ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, (msg) => {
        clearTimeout(timer);
        if (msg.type === 'error') reject(new Error(`${this.kind} server: ${String(msg.message)}`));
        else resolve(msg);
      });
      this.child.send({ cmd, id, ...extra });
    });
  }

  async stats(): Promise<ServerStats> {
    return (await this.request('stats')) as unknown as ServerStats;
  }

  async counts(): Promise<{ sockets: number; subscriptions: number }> {
    return (await this.request('counts')) as unknown as { sockets: number; subscriptions: number };
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    await this.request('stop', {}, 30_000).catch(() => undefined);
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
    if (this.child.exitCode === null && this.child.pid !== undefined) process.kill(this.child.pid, 'SIGKILL');
    children.delete(this.child);
  }
}

async function newDatabase(): Promise<string> {
  const name = `${runId.replace(/[^a-z0-9_]/gi, '_')}_${++serial}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  made.databases.push(name);
  const url = new URL(DATABASE_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** `AMQP_PARTITIONS`' default, as the gateway reads it. */
const DEFAULT_PARTITIONS = loadConfig({}).amqp.partitions;

async function serverSpec(kind: ServerKind, options: Options): Promise<ServerSpec> {
  const n = ++serial;
  const queue = `${runId}.${kind}.${n}.events`;
  made.queues.push(queue);
  const base = { kind, amqpUrl: AMQP_URL, exchange, queue, jwtSecret: JWT_SECRET };
  if (!isGateway(kind)) return base;
  const dlq = `${runId}.${n}.dlq`;
  const dlx = `${runId}.${n}.dlx`;
  const topicPrefix = `${runId}:${n}:`;
  made.queues.push(dlq);
  made.exchanges.push(dlx);
  made.redisPrefixes.push(topicPrefix);
  // The gateway consumes a router queue and its partitions (docs/cluster.md), not `queue` itself.
  const partitions = Number(options.gatewayEnv?.AMQP_PARTITIONS ?? DEFAULT_PARTITIONS);
  const topology = partitionTopology(queue, partitions);
  const backlogQueues = partitions > 0 ? [topology.router, ...topology.partitions] : [queue];
  made.queues.push(...backlogQueues.filter((q) => q !== queue));
  if (partitions > 0) made.exchanges.push(topology.exchange);
  return { ...base, databaseUrl: await newDatabase(), redisUrl: REDIS_URL, topicPrefix, dlq, dlx, env: options.gatewayEnv, backlogQueues };
}

async function cleanup(): Promise<void> {
  // Wait (bounded) for the killed children's exit so they are reaped, not left as zombies.
  const exits = [...children]
    .filter((c) => c.exitCode === null && c.signalCode === null)
    .map((c) => new Promise((resolve) => c.once('exit', resolve)));
  killChildren();
  await Promise.race([Promise.all(exits), new Promise((resolve) => setTimeout(resolve, 2000))]);
  const steps: Promise<unknown>[] = [];
  steps.push(
    (async () => {
      const connection = await amqp.connect(AMQP_URL);
      connection.on('error', () => undefined);
      // A channel closes on the first failed command; one per deletion keeps the others going.
      for (const q of made.queues) {
        const ch = await connection.createChannel();
        ch.on('error', () => undefined);
        await ch.deleteQueue(q).catch(() => undefined);
        await ch.close().catch(() => undefined);
      }
      for (const x of made.exchanges) {
        const ch = await connection.createChannel();
        ch.on('error', () => undefined);
        await ch.deleteExchange(x).catch(() => undefined);
        await ch.close().catch(() => undefined);
      }
      await connection.close();
    })(),
  );
  steps.push(
    (async () => {
      if (made.databases.length === 0) return;
      const admin = new pg.Client({ connectionString: DATABASE_URL });
      await admin.connect();
      for (const name of made.databases) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).catch(() => undefined);
      await admin.end();
    })(),
  );
  steps.push(
    (async () => {
      if (made.redisPrefixes.length === 0) return;
      const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
      redis.on('error', () => undefined);
      await redis.connect();
      for (const prefix of made.redisPrefixes) {
        let cursor = '0';
        // Bounded: at most 1000 scan rounds per prefix.
        for (let round = 0; round < 1000; round++) {
          const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
          if (keys.length > 0) await redis.del(...keys);
          cursor = nextCursor;
          if (cursor === '0') break;
        }
      }
      redis.disconnect();
    })(),
  );
  const results = await Promise.allSettled(steps);
  for (const r of results) if (r.status === 'rejected') process.stderr.write(`cleanup: ${String(r.reason)}\n`);
}

// ---------------------------------------------------------------- measuring

const cpuOf = (s: ServerStats) => s.cpu.user + s.cpu.system;

/** The services' CPU sampler (PostgreSQL, Redis, RabbitMQ), set up by main. */
let servicesSampler: ServicesSampler | undefined;
const services = (): ServicesSampler => {
  if (!servicesSampler) throw new Error('the services sampler is not set up');
  return servicesSampler;
};

/** The database a gateway spec names (its backends are the gateway's own), none for a baseline. */
function databaseOf(spec: ServerSpec): string[] {
  return spec.databaseUrl ? [decodeURIComponent(new URL(spec.databaseUrl).pathname.slice(1))] : [];
}

async function waitForSubscriptions(server: ServerProcess, expected: number, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { subscriptions } = await server.counts();
    if (subscriptions >= expected) return;
    if (Date.now() > deadline) throw new Error(`${server.kind}: ${subscriptions} of ${expected} subscriptions live after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Waits (bounded) until the server's queue is empty and no event reached a client for 300 ms, so
 * an earlier phase's backlog is not worked off inside the next phase's CPU window.
 */
async function settle(kind: ServerKind, queues: readonly string[], channel: Channel, load: Load, timeoutMs = 60_000): Promise<void> {
  const waiting = async () => {
    let count = 0;
    for (const queue of queues) count += (await channel.checkQueue(queue)).messageCount;
    return count;
  };
  await waitFor(
    async () => (await waiting()) === 0 && performance.now() - load.lastAnyReceive > 300,
    `${kind}: backlog worked off`,
    timeoutMs,
  ).catch((error: unknown) => process.stderr.write(`warning: ${String(error)}\n`));
}

async function measure(
  opts: Options,
  mode: Mode,
  c: number,
  kind: ServerKind,
  channel: Channel,
  pinned: boolean,
  log: (line: string) => void,
): Promise<Row> {
  const spec = await serverSpec(kind, opts);
  const server = await ServerProcess.start(spec, pinned);
  const sse = kind === 'gateway-sse';
  const loadOptions = {
    url: sse ? `http://127.0.0.1:${server.port}/graphql/stream` : `ws://127.0.0.1:${server.port}/graphql`,
    transport: sse ? ('sse' as const) : ('ws' as const),
    mode,
    jwtSecret: JWT_SECRET,
    channel,
    exchange,
    baseline: !isGateway(kind),
  };
  const load = new Load({ ...loadOptions, clients: c, runTag: `${runId.slice(-6)}s${serial}` });
  const perSocket = mode === 'per-user' ? 2 : 1;
  try {
    // One-time costs (lazy caches, JIT) of the connect path are not per-socket memory: a few
    // clients come and go before the idle figure is taken.
    const prewarm = new Load({ ...loadOptions, clients: Math.min(50, c), runTag: `${runId.slice(-6)}w${serial}` });
    await prewarm.connect();
    await waitForSubscriptions(server, prewarm.connected * perSocket);
    prewarm.close();
    await waitFor(async () => (await server.counts()).sockets === 0, `${kind}: prewarm sockets closed`);
    const idle = await server.stats();
    const t0 = Date.now();
    await load.connect();
    await waitForSubscriptions(server, c * perSocket);
    log(`  ${c} sockets subscribed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const subscribed = await server.stats();
    // At most 20,000 deliveries/s: 40,000/s already overloaded the raw baseline and plain graphql-ws
    // here (seconds of backlog), and an overloaded server batches, which flatters its CPU per delivery.
    const rate = mode === 'per-user' ? opts.rate : (opts.fanoutRate ?? Math.max(1, Math.min(20, Math.round(20_000 / c))));
    await load.phase(rate, opts.warmupSeconds, opts.drainMs);
    await settle(server.kind, spec.backlogQueues ?? [spec.queue], channel, load);

    let profile: string | undefined;
    if (opts.profile && isGateway(kind)) {
      mkdirSync(path.join(repoRoot(), '.tmp', 'profiles'), { recursive: true });
      profile = path.join(repoRoot(), '.tmp', 'profiles', `${mode}-c${c}-gateway-${runId}.cpuprofile`);
      await server.request('profile-start');
    }
    const databases = databaseOf(spec);
    const before = await server.stats();
    const servicesBefore = await services().sample('start', databases);
    const fixed = await load.phase(rate, opts.seconds, opts.drainMs);
    const servicesAfter = await services().sample('end', databases);
    const after = await server.stats();
    if (profile) await server.request('profile-stop', { file: profile });
    const cpuUs = cpuOf(after) - cpuOf(before);
    const servicesCpu = delta(servicesBefore, servicesAfter);
    const system = systemFigures(cpuUs, servicesCpu, fixed.events, fixed.delivered);
    const perEvent = (us: number | undefined) => (us === undefined ? '-' : (us / Math.max(1, fixed.events)).toFixed(1));
    log(
      `  ${rate}/s: ${fixed.delivered}/${fixed.expected} delivered, p50 ${fixed.p50.toFixed(2)} p99 ${fixed.p99.toFixed(2)} max ${fixed.max.toFixed(1)} ms, ` +
        `${(cpuUs / Math.max(1, fixed.delivered)).toFixed(1)} µs CPU/delivery; per event: PostgreSQL ${perEvent(servicesCpu.postgres)}, ` +
        `Redis ${perEvent(servicesCpu.redis)}, system ${system.systemPerEventUs.toFixed(1)}, RabbitMQ ${perEvent(servicesCpu.rabbitmq)} µs`,
    );

    let search: Row['search'];
    if (mode === 'per-user' && opts.search) {
      const steps: NonNullable<Row['search']>['steps'] = [];
      let maxSustainableRate: number | null =
        fixed.lost + fixed.late === 0 && fixed.p99 <= 100 && fixed.deliveriesPerSec >= 0.95 * rate ? rate : null;
      // Past 20 C/s one user's events of a family come closer than the 100 ms coalescing window.
      for (const stepRate of opts.searchRates.filter((r) => r > rate && r <= 16 * c)) {
        if (maxSustainableRate === null) break;
        await settle(server.kind, spec.backlogQueues ?? [spec.queue], channel, load);
        const s0 = await server.stats();
        const v0 = await services().sample('start');
        const step = await load.phase(stepRate, opts.searchSeconds, opts.drainMs);
        const v1 = await services().sample('end');
        const s1 = await server.stats();
        const ok = step.p99 <= 100 && step.lost + step.late === 0 && step.deliveriesPerSec >= 0.95 * stepRate;
        const stepCpu = cpuOf(s1) - cpuOf(s0);
        steps.push({
          ...step,
          ok,
          cpuPerEventUs: stepCpu / Math.max(1, step.events),
          systemPerEventUs: systemFigures(stepCpu, delta(v0, v1), step.events, step.delivered).systemPerEventUs,
        });
        log(
          `  search ${stepRate}/s: ${ok ? 'ok' : 'over'} (p99 ${step.p99.toFixed(1)} ms, lost ${step.lost}, late ${step.late}, ${step.deliveriesPerSec.toFixed(0)} deliveries/s)`,
        );
        if (!ok) break;
        maxSustainableRate = stepRate;
      }
      search = { steps, maxSustainableRate };
    }
    return {
      scenario: mode,
      c,
      server: kind,
      fixed,
      cpuUs,
      cpuPerDeliveryUs: cpuUs / Math.max(1, fixed.delivered),
      cpuPerEventUs: cpuUs / Math.max(1, fixed.events),
      services: servicesCpu,
      ...system,
      heapPerSocketBytes: (subscribed.mem.heapUsed - idle.mem.heapUsed) / c,
      rssPerSocketBytes: (subscribed.mem.rss - idle.mem.rss) / c,
      idle: { heapUsed: idle.mem.heapUsed, rss: idle.mem.rss },
      subscribed: { heapUsed: subscribed.mem.heapUsed, rss: subscribed.mem.rss },
      search,
      problems: [...load.problems],
      profile,
    };
  } finally {
    load.close();
    await server.stop();
  }
}

// ---------------------------------------------------------------- report

function gitCommit(): string {
  const r = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: repoRoot(), encoding: 'utf8' });
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: repoRoot(), encoding: 'utf8' });
  return `${r.stdout.trim() || 'unknown'}${dirty.stdout.trim() ? '+dirty' : ''}`;
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const started = Date.now();
  const log = (line: string) => process.stdout.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  const pinned = os.cpus().length >= 2 && pin(process.pid, 1);
  log(
    `bench ${runId}: ${os.cpus().length} CPUs, node ${process.version}, ` +
      (pinned ? 'servers pinned to core 0, load generator to core 1' : 'not pinned (taskset unavailable or one CPU)'),
  );
  if (opts.profile) log('profiling the gateway: its CPU figures include the profiler overhead');

  const connection: ChannelModel = await amqp.connect(AMQP_URL);
  connection.on('error', () => undefined);
  // Plain channel, no publisher confirms: the clock starts at the publish call, and confirms would
  // only add broker round-trips to the load generator. Persistent, as the platform publishes.
  const channel = await connection.createChannel();
  channel.on('error', (error: Error) => process.stderr.write(`publisher channel: ${error.message}\n`));
  await channel.assertExchange(exchange, 'topic', { durable: true });

  // One connection each to Redis (INFO cpu) and PostgreSQL (the bench databases' backends), idle
  // inside the windows: the sampler queries them just outside.
  const infoRedis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  infoRedis.on('error', () => undefined);
  await infoRedis.connect();
  const statsDb = new pg.Client({ connectionString: DATABASE_URL });
  statsDb.on('error', () => undefined);
  await statsDb.connect();
  servicesSampler = new ServicesSampler({
    redisInfo: () => infoRedis.info('cpu'),
    backendPids: async (databases) =>
      (await statsDb.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = ANY($1)', [databases])).rows.map(
        (r) => r.pid,
      ),
  });
  const probe = await servicesSampler.sample('start');
  const found = (['postgres', 'redis', 'rabbitmq'] as const).filter((k) => probe[k] !== undefined);
  const absent = (['postgres', 'redis', 'rabbitmq'] as const).filter((k) => probe[k] === undefined);
  log(
    `services' CPU measured machine-wide for ${found.join(', ') || 'none'}` +
      (absent.length > 0 ? ` (not found on this machine: ${absent.join(', ')}; shown as -, counted as 0)` : ''),
  );

  const rows: Row[] = [];
  const scenarios: [Mode, number][] = [
    ...(opts.scenarios.includes('per-user') ? opts.perUserC.map((c): [Mode, number] => ['per-user', c]) : []),
    ...(opts.scenarios.includes('fan-out') ? opts.fanoutC.map((c): [Mode, number] => ['fan-out', c]) : []),
    ...(opts.scenarios.includes('broadcast') ? opts.fanoutC.map((c): [Mode, number] => ['broadcast', c]) : []),
  ];
  for (const [mode, c] of scenarios) {
    for (const kind of opts.servers) {
      log(`${mode} C=${c} ${kind}`);
      rows.push(await measure(opts, mode, c, kind, channel, pinned, log));
    }
  }
  let frontend: FrontendResult | undefined;
  if (opts.scenarios.includes('frontend')) {
    log('frontend: push vs 30 s polling');
    const server = await ServerProcess.start(await serverSpec('gateway', opts), pinned);
    try {
      frontend = await frontendScenario({
        port: server.port,
        jwtSecret: JWT_SECRET,
        channel,
        exchange,
        users: opts.quick ? 50 : 200,
        eventsPerUser: opts.quick ? 6 : 20,
        observeSec: opts.quick ? 30 : 120,
        runTag: `${runId.slice(-6)}f${serial}`,
        log,
        subscriptions: (count) => waitForSubscriptions(server, count),
      });
    } finally {
      await server.stop();
    }
  }
  await connection.close().catch(() => undefined);
  infoRedis.disconnect();
  await statsDb.end().catch(() => undefined);

  const resultsDir = path.join(repoRoot(), 'test', 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const date = new Date().toISOString();
  const file = path.join(resultsDir, `${date.replace(/[:.]/g, '-')}.jsonl`);
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    node: process.version,
    date,
    commit: gitCommit(),
    pinned,
    quick: opts.quick,
  };
  for (const r of rows) appendFileSync(file, `${JSON.stringify({ ...r, machine, options: opts })}\n`);
  if (frontend) appendFileSync(file, `${JSON.stringify({ scenario: 'frontend', ...frontend, machine, options: opts })}\n`);

  const out: string[] = [
    '',
    `Results (${date}, ${machine.cpus} CPUs ${machine.cpuModel ?? ''}, node ${machine.node}, commit ${machine.commit})`,
    '',
  ];
  if (rows.length > 0) out.push(table(rows), '');
  if (frontend) out.push(...frontendTable(frontend), '');
  out.push('Ratios (lower is better for the gateway; system = the server + PostgreSQL + Redis):', ...ratios(rows), '');
  const background_ = [...background(rows), ...postgresDetail(rows)];
  if (background_.length > 0) out.push(...background_, '');
  const verdicts = evaluateTargets(rows);
  out.push("Targets (issue 16, and issue 7's it did not replace):", ...verdicts.map(formatVerdict), '');
  const searched = rows.filter((r) => r.search);
  if (searched.length > 0) {
    out.push('Max sustainable per-user rate (p99 <= 100 ms, nothing lost, >= 95% of the target delivered):');
    for (const r of searched) {
      const steps = r.search?.steps
        .map(
          (s) =>
            `${s.targetRate}/s ${s.ok ? 'ok' : 'over'} p99 ${f(s.p99, 1)} ms, ${f(s.cpuPerEventUs, 1)} µs CPU/event (system ${f(s.systemPerEventUs, 1)})`,
        )
        .join('; ');
      out.push(`  C=${r.c} ${r.server}: ${r.search?.maxSustainableRate ?? `< ${r.fixed.targetRate}`} ev/s${steps ? ` (${steps})` : ''}`);
    }
    out.push('');
  }
  if (rows.length > 0) {
    // Ready to paste into the README and docs/benchmarks.md; also written beside the JSON lines.
    const markdown = [
      `\`npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\`, ${date.slice(0, 10)}, ` +
        `${machine.cpus} CPUs ${machine.cpuModel ?? ''}, node ${machine.node}, commit \`${machine.commit.slice(0, 7)}${machine.commit.endsWith('+dirty') ? '+dirty' : ''}\`; ` +
        `raw lines in \`${path.relative(repoRoot(), file)}\`. CPU µs per delivery (per-user: one delivery per event); ` +
        'system = the server + PostgreSQL + Redis, machine-wide deltas over the window; RabbitMQ apart.',
      '',
      markdownTable(rows),
      '',
      markdownTargets(verdicts),
    ].join('\n');
    writeFileSync(file.replace(/\.jsonl$/, '.md'), `${markdown}\n`);
    out.push('Markdown (README / docs/benchmarks.md):', '', markdown, '');
  }
  const incorrect = (r: Row) =>
    r.fixed.lost > 0 || r.fixed.duplicated > 0 || r.fixed.misrouted > 0 || r.search?.steps.some((s) => s.duplicated > 0 || s.misrouted > 0);
  // The baselines are references, not the product: their failures (plain graphql-ws terminating
  // sockets whose pong queued behind its backlog) are reported, but only the gateway's fail the run.
  const bad = rows.filter((r) => incorrect(r) && isGateway(r.server));
  const baselineBad = rows.filter((r) => incorrect(r) && !isGateway(r.server));
  const late = rows.filter((r) => r.fixed.late > 0);
  if (late.length > 0) {
    out.push(
      `late: ${late.map((r) => `${r.scenario} C=${r.c} ${r.server} ${r.fixed.late}`).join(', ')} deliveries still on their way when the ` +
        `window closed (60 s after the last publish, deliveries still arriving): the server could not keep up; not counted as lost`,
    );
  }
  const withProblems = rows.filter((r) => r.problems.length > 0);
  for (const r of withProblems)
    out.push(`problems ${r.scenario} C=${r.c} ${r.server}: ${r.problems.length}, first: ${r.problems.slice(0, 3).join(' | ')}`);
  for (const r of rows) if (r.profile) out.push('', `${r.scenario} C=${r.c} gateway, fixed-rate window:`, formatSummary(r.profile, 25));
  out.push('', `raw results: ${path.relative(repoRoot(), file)}`);
  if (baselineBad.length > 0) {
    out.push(
      `baseline (not the gateway) lost, duplicated or misrouted deliveries in ${baselineBad.map((r) => `${r.scenario} C=${r.c} ${r.server}`).join(', ')}`,
    );
  }
  out.push(
    bad.length > 0
      ? `CORRECTNESS FAILURE: lost, duplicated or misrouted deliveries in ${bad.map((r) => `${r.scenario} C=${r.c} ${r.server}`).join(', ')}`
      : 'gateway correctness: 0 lost, 0 duplicated, 0 misrouted',
  );
  process.stdout.write(`${out.join('\n')}\n`);
  log('done');
  return bad.length > 0 ? 1 : 0;
}

let cleaning: Promise<void> | undefined;
const finish = (code: number) => {
  cleaning ??= cleanup();
  void cleaning.finally(() => process.exit(code));
};
process.on('exit', killChildren);
process.on('SIGINT', () => finish(130));
process.on('SIGTERM', () => finish(143));
main().then(finish, (error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  finish(2);
});
