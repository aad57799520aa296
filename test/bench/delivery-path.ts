/**
 * The delivery path alone (issue 16, docs/decisions/0605): the gateway's CPU per delivery and heap
 * per subscribed socket in fan-out (C administrators, every event to every socket) beside a raw
 * `ws` server, with nothing else in the window: both servers take the same messages straight from
 * Redis (no RabbitMQ, no read model), so what differs is what happens between a Redis message
 * and the socket writes. `npm run bench`'s fan-out measures the whole system; this isolates the
 * part the per-socket work lives in, and repeats it (rounds alternate the servers) because one
 * window on a shared 2-core machine moves by tens of percent.
 *
 *   npm run -s build && npx tsc -p test --noEmit false --outDir .tmp/bench &&
 *   node .tmp/bench/test/bench/delivery-path.js [--c 1000] [--events 200] [--rate 20] [--rounds 2]
 *     [--servers gateway,raw] [--ids shared|distinct] [--profile] [--snapshot]
 *     [--gateway-env K=V,K=V]
 *
 * - gateway: `buildApp` from dist/ with its own database and topic prefix, the in-process event
 *   bus (idle), Redis for pub/sub; raw: a plain `ws` server on a Redis PSUBSCRIBE, each message
 *   parsed once, its frame built once per subscription id, the same Buffer to every socket.
 * - `--ids distinct` gives every client its own subscription id (what graphql-ws clients do: a
 *   UUID per operation), so no frame can be shared whole; `shared` (default) is the bench's one id.
 * - heap per socket: after `gc()`, subscribed minus idle (after 50 clients came and went), / C.
 * - `--profile`: each server's measured window, summarized like the bench's (profile.ts);
 *   `--snapshot`: heap snapshots of each server idle and subscribed (.tmp/profiles/), to compare.
 * Each server runs in its own process pinned to core 0, this process (clients, publisher) on core 1.
 */
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Session } from 'node:inspector';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import Redis from 'ioredis';
import { WebSocket, WebSocketServer } from 'ws';
import type * as AppModule from '../../src/app';
import type * as ConfigModule from '../../src/config';
import { normalizeEvent, withOwner } from '../../src/contracts/events';
import { createTopics } from '../../src/contracts/topics';
import { signHs } from '../helpers/jwt';
import { createTestDatabase, TEST_REDIS_URL } from '../helpers/services';
import { QUOTA_DOCUMENT, QUOTA_ID, quotaMessage } from './events';
import { formatSummary } from './profile';
import { repoRoot } from './server';

type Kind = 'gateway' | 'raw';
interface Spec {
  readonly kind: Kind;
  readonly redisUrl: string;
  readonly prefix: string;
  readonly secret: string;
  readonly databaseUrl?: string;
  /** Extra gateway environment (`--gateway-env K=V,K=V`). */
  readonly env?: Readonly<Record<string, string>>;
}
interface Stats {
  readonly cpu: NodeJS.CpuUsage;
  readonly heapUsed: number;
  readonly sockets: number;
  readonly subscriptions: number;
}
interface Server {
  readonly port: number;
  counts(): { sockets: number; subscriptions: number };
}

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i++) {
  const key = process.argv[i]?.replace(/^--/, '') ?? '';
  const value = process.argv[i + 1];
  if (value !== undefined && !value.startsWith('--')) {
    args.set(key, value);
    i++;
  } else args.set(key, 'true');
}
const C = Number(args.get('c') ?? 1000);
const EVENTS = Number(args.get('events') ?? 200);
const RATE = Number(args.get('rate') ?? 20);
const ROUNDS = Number(args.get('rounds') ?? 2);
const SERVERS = (args.get('servers') ?? 'gateway,raw').split(',') as Kind[];
const DISTINCT_IDS = args.get('ids') === 'distinct';
const PROFILE = args.has('profile');
const SNAPSHOT = args.has('snapshot');
/** `--perf`: `perf record -g` of the server during the measured window (.tmp/profiles/*.perf.data). */
const PERF = args.has('perf');
const GATEWAY_ENV = Object.fromEntries(
  (args.get('gateway-env') ?? '')
    .split(',')
    .filter((pair) => pair.includes('='))
    .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
);
const REDIS_URL = process.env.BENCH_REDIS_URL ?? TEST_REDIS_URL;

// ---------------------------------------------------------------- the servers (child process)

async function startGateway(spec: Spec): Promise<Server> {
  const fromDist = createRequire(path.join(repoRoot(), 'dist', 'index.js'));
  const { buildApp } = fromDist('./app.js') as typeof AppModule;
  const { loadConfig } = fromDist('./config.js') as typeof ConfigModule;
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    DATABASE_URL: spec.databaseUrl,
    REDIS_URL: spec.redisUrl,
    REDIS_TOPIC_PREFIX: spec.prefix,
    JWT_SECRET: spec.secret,
    ...spec.env,
  });
  const app = buildApp(config);
  await app.start();
  return {
    port: app.port,
    counts: () => {
      const stats = app.stats();
      return { sockets: stats.sockets, subscriptions: Object.values(stats.subscriptions).reduce((a, b) => a + b, 0) };
    },
  };
}

/** The floor: parse once, select the fields by hand, one frame per id, the same Buffer to every socket. */
async function startRaw(spec: Spec): Promise<Server> {
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server, path: '/graphql', perMessageDeflate: false });
  const ids = new Map<WebSocket, string>();
  wss.on('connection', (ws) => {
    ws.on('error', () => undefined);
    ws.on('close', () => ids.delete(ws));
    ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(data.toString('utf8')) as { type?: string; id?: string };
      if (msg.type === 'connection_init') ws.send('{"type":"connection_ack"}');
      else if (msg.type === 'subscribe' && typeof msg.id === 'string') ids.set(ws, msg.id);
      else if (msg.type === 'complete') ids.delete(ws);
    });
  });
  const subscriber = new Redis(spec.redisUrl);
  await subscriber.psubscribe(createTopics(spec.prefix).allUsers('quota'));
  subscriber.on('pmessage', (_pattern: string, _channel: string, message: string) => {
    const e = JSON.parse(message) as Record<string, unknown>;
    const data = {
      quotaChanged: {
        eventId: e.eventId,
        type: e.type,
        userId: e.userId,
        occurredAt: e.occurredAt,
        quotaId: e.quotaId ?? null,
        kind: e.kind,
        usagePercent: e.usagePercent ?? null,
        limits: e.limits ?? null,
        usage: e.usage ?? null,
      },
    };
    const payload = JSON.stringify({ data });
    const frames = new Map<string, Buffer>();
    for (const [ws, id] of ids) {
      let frame = frames.get(id);
      if (!frame) frames.set(id, (frame = Buffer.from(`{"id":${JSON.stringify(id)},"type":"next","payload":${payload}}`)));
      ws.send(frame, { binary: false });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, counts: () => ({ sockets: wss.clients.size, subscriptions: ids.size }) };
}

async function serve(spec: Spec): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  const server = spec.kind === 'gateway' ? await startGateway(spec) : await startRaw(spec);
  let session: Session | undefined;
  const post = <T>(method: string, params: object = {}) =>
    new Promise<T>((resolve, reject) => session?.post(method, params, (err, res) => (err ? reject(err) : resolve(res as T))));
  process.on('message', (msg: { cmd: string; id: number; file?: string }) => {
    void (async () => {
      if (msg.cmd === 'stats') {
        gc();
        gc();
        const stats: Stats = { cpu: process.cpuUsage(), heapUsed: process.memoryUsage().heapUsed, ...server.counts() };
        process.send?.({ id: msg.id, ...stats });
      } else if (msg.cmd === 'snapshot') {
        gc();
        gc();
        process.send?.({ id: msg.id, file: writeHeapSnapshot(msg.file) });
      } else if (msg.cmd === 'cpu') {
        process.send?.({ id: msg.id, cpu: process.cpuUsage() });
      } else if (msg.cmd === 'counts') {
        process.send?.({ id: msg.id, ...server.counts() });
      } else if (msg.cmd === 'profile-start') {
        session = new Session();
        session.connect();
        await post('Profiler.enable');
        await post('Profiler.setSamplingInterval', { interval: 100 });
        await post('Profiler.start');
        process.send?.({ id: msg.id });
      } else if (msg.cmd === 'profile-stop') {
        const { profile } = await post<{ profile: unknown }>('Profiler.stop');
        session?.disconnect();
        if (msg.file) writeFileSync(msg.file, JSON.stringify(profile));
        process.send?.({ id: msg.id });
      }
    })();
  });
  process.on('disconnect', () => process.exit(0));
  process.send?.({ type: 'ready', port: server.port });
}

// ---------------------------------------------------------------- the runner (this process)

function pin(pid: number, core: number): void {
  if (os.cpus().length >= 2) spawnSync('taskset', ['-a', '-pc', String(core), String(pid)], { stdio: 'ignore' });
}

class Child {
  private seq = 0;
  private readonly waiting = new Map<number, (msg: Record<string, unknown>) => void>();
  constructor(
    readonly process: ChildProcess,
    readonly port: number,
  ) {
    process.on('message', (msg: { id?: number }) => {
      const resolve = msg.id === undefined ? undefined : this.waiting.get(msg.id);
      if (resolve && msg.id !== undefined) this.waiting.delete(msg.id);
      resolve?.(msg);
    });
  }
  request<T>(cmd: string, extra: object = {}): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${cmd}`)), 60_000);
      this.waiting.set(id, (msg) => {
        clearTimeout(timer);
        resolve(msg as T);
      });
      this.process.send({ cmd, id, ...extra });
    });
  }
}

async function startChild(spec: Spec): Promise<Child> {
  const child = fork(__filename, [], {
    execArgv: [
      '--expose-gc',
      ...(PERF ? ['--perf-basic-prof-only-functions'] : []),
      ...(process.env.DELIVERY_NODE_ARGS ?? '').split(' ').filter(Boolean),
    ],
    env: { ...process.env, DELIVERY_SERVER: JSON.stringify(spec) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  if (child.pid !== undefined) pin(child.pid, 0);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${spec.kind}: not ready within 120 s`)), 120_000);
    child.on('message', (msg: { type?: string; port?: number }) => {
      if (msg.type !== 'ready') return;
      clearTimeout(timer);
      resolve(msg.port as number);
    });
    child.once('exit', (code) => reject(new Error(`${spec.kind}: exited with ${code}`)));
  });
  return new Child(child, port);
}

/** C administrator clients; `received` counts `next` frames. */
class Clients {
  received = 0;
  private readonly sockets: WebSocket[] = [];
  constructor(
    private readonly port: number,
    private readonly secret: string,
  ) {}

  async open(count: number, tag: string): Promise<void> {
    const now = Math.floor(Date.now() / 1000);
    const openOne = (i: number) =>
      new Promise<void>((resolve, reject) => {
        const token = signHs(this.secret, { sub: `${tag}-admin${i}`, roles: ['admin'], iat: now, exp: now + 3600 });
        const ws = new WebSocket(`ws://127.0.0.1:${this.port}/graphql`, 'graphql-transport-ws', { perMessageDeflate: false });
        const id = DISTINCT_IDS ? randomUUID() : QUOTA_ID;
        ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
        ws.on('error', reject);
        ws.on('message', (data: Buffer) => {
          if (data.includes('"type":"next"')) this.received++;
          else if (data.includes('connection_ack')) {
            ws.send(JSON.stringify({ id, type: 'subscribe', payload: { query: QUOTA_DOCUMENT } }));
            resolve();
          }
        });
        this.sockets.push(ws);
      });
    for (let i = 0; i < count; i += 100) await Promise.all(Array.from({ length: Math.min(100, count - i) }, (_, k) => openOne(i + k)));
  }

  close(): void {
    for (const ws of this.sockets) ws.terminate();
    this.sockets.length = 0;
  }
}

function startPerf(pid: number, kind: Kind): { stop(): Promise<void> } {
  mkdirSync(path.join(repoRoot(), '.tmp', 'profiles'), { recursive: true });
  const file = path.join(repoRoot(), '.tmp', 'profiles', `delivery-path-${kind}-c${C}.perf.data`);
  const perf = spawn('perf', ['record', '-F', '1999', '-g', '-p', String(pid), '-o', file], { stdio: 'ignore' });
  process.stdout.write(`  perf record of ${kind} (pid ${pid}) into ${file}\n`);
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        perf.once('exit', () => resolve());
        if (perf.pid !== undefined) process.kill(perf.pid, 'SIGINT');
      }),
  };
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function measure(
  kind: Kind,
  round: number,
): Promise<{ cpuPerDelivery: number; heapPerSocket: number; idleCpuPerSec: number; profile?: string; idleProfile?: string }> {
  const prefix = `cpr-dp-${randomBytes(4).toString('hex')}:`;
  const secret = `dp-${randomBytes(8).toString('hex')}`;
  const database = kind === 'gateway' ? await createTestDatabase() : undefined;
  const child = await startChild({ kind, redisUrl: REDIS_URL, prefix, secret, databaseUrl: database?.url, env: GATEWAY_ENV });
  const publisher = new Redis(REDIS_URL);
  const topics = createTopics(prefix);
  const clients = new Clients(child.port, secret);
  let n = 0;
  const publish = async (count: number) => {
    const interval = 1000 / RATE;
    const start = Date.now();
    for (let i = 0; i < count; i++) {
      const wait = start + i * interval - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const userId = `user-${n % 10_000}`;
      const { routingKey, body } = quotaMessage(`dp-${round}-${n}`, userId, n);
      const draft = normalizeEvent({ routingKey, body: Buffer.from(JSON.stringify(body)) }, 1 << 20);
      if (!draft) throw new Error('the bench quota message no longer normalizes');
      await publisher.publish(topics.user('quota', userId), JSON.stringify(withOwner(draft, userId)));
      n++;
    }
  };
  try {
    const counts = () => child.request<{ sockets: number; subscriptions: number }>('counts');
    const prewarm = new Clients(child.port, secret);
    await prewarm.open(50, 'warm');
    await until(async () => (await counts()).subscriptions >= 50, 'prewarm subscriptions');
    prewarm.close();
    await until(async () => (await counts()).sockets === 0, 'prewarm sockets closed');
    const snapshot = async (when: string) => {
      if (!SNAPSHOT) return;
      mkdirSync(path.join(repoRoot(), '.tmp', 'profiles'), { recursive: true });
      const file = path.join(repoRoot(), '.tmp', 'profiles', `delivery-path-${kind}-c${C}-${when}.heapsnapshot`);
      await child.request('snapshot', { file });
      process.stdout.write(`  heap snapshot ${file}\n`);
    };
    await snapshot('idle');
    const idle = await child.request<Stats>('stats');
    await clients.open(C, 'dp');
    await until(async () => (await counts()).subscriptions >= C, `${C} subscriptions`);
    const subscribed = await child.request<Stats>('stats');
    await snapshot('subscribed');
    await publish(Math.min(50, EVENTS));
    await until(() => clients.received >= Math.min(50, EVENTS) * C, 'warm-up deliveries');
    // What the server spends with nothing to deliver (keep-alive, leases, polls), per second.
    const idleProfile = path.join(repoRoot(), '.tmp', 'profiles', `delivery-path-${kind}-c${C}-idle-${Date.now()}.cpuprofile`);
    if (PROFILE) await child.request('profile-start');
    const quiet0 = await child.request<Pick<Stats, 'cpu'>>('cpu');
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const quiet1 = await child.request<Pick<Stats, 'cpu'>>('cpu');
    if (PROFILE) await child.request('profile-stop', { file: idleProfile });
    const idleCpuPerSec = (quiet1.cpu.user + quiet1.cpu.system - quiet0.cpu.user - quiet0.cpu.system) / 5;
    let profile: string | undefined;
    if (PROFILE) {
      mkdirSync(path.join(repoRoot(), '.tmp', 'profiles'), { recursive: true });
      profile = path.join(repoRoot(), '.tmp', 'profiles', `delivery-path-${kind}-c${C}-${Date.now()}.cpuprofile`);
      await child.request('profile-start');
    }
    const before = await child.request<Stats>('stats');
    const perf = PERF ? startPerf(child.process.pid!, kind) : undefined;
    const expected = clients.received + EVENTS * C;
    await publish(EVENTS);
    await until(() => clients.received >= expected, 'deliveries');
    await perf?.stop();
    const after = await child.request<Stats>('stats');
    if (profile) await child.request('profile-stop', { file: profile });
    const cpu = after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system;
    return {
      cpuPerDelivery: cpu / (EVENTS * C),
      heapPerSocket: (subscribed.heapUsed - idle.heapUsed) / C,
      idleCpuPerSec,
      profile,
      idleProfile: PROFILE ? idleProfile : undefined,
    };
  } finally {
    clients.close();
    publisher.disconnect();
    if (child.process.pid !== undefined && child.process.exitCode === null) process.kill(child.process.pid, 'SIGKILL');
    await database?.drop();
  }
}

async function main(): Promise<void> {
  pin(process.pid, 1);
  const ids = DISTINCT_IDS ? 'distinct ids' : 'one shared id';
  process.stdout.write(`delivery path: C=${C}, ${EVENTS} events at ${RATE}/s per window, ${ROUNDS} rounds, ${ids}\n`);
  const results: Record<Kind, { cpu: number[]; heap: number[] }> = { gateway: { cpu: [], heap: [] }, raw: { cpu: [], heap: [] } };
  for (let round = 0; round < ROUNDS; round++) {
    for (const kind of SERVERS) {
      const r = await measure(kind, round);
      results[kind].cpu.push(r.cpuPerDelivery);
      results[kind].heap.push(r.heapPerSocket);
      process.stdout.write(
        `  round ${round + 1} ${kind.padEnd(7)} ${r.cpuPerDelivery.toFixed(2)} µs CPU/delivery, ${(r.heapPerSocket / 1024).toFixed(2)} KB heap/socket, idle ${(r.idleCpuPerSec / 1000).toFixed(1)} ms CPU/s\n`,
      );
      if (r.idleProfile) process.stdout.write(`idle:\n${formatSummary(r.idleProfile, 20)}\n`);
      if (r.profile) process.stdout.write(`delivering:\n${formatSummary(r.profile, 30)}\n`);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  for (const kind of SERVERS) {
    const { cpu, heap } = results[kind];
    process.stdout.write(
      `${kind.padEnd(7)} median ${median(cpu).toFixed(2)} µs CPU/delivery, ${(median(heap) / 1024).toFixed(2)} KB heap/socket\n`,
    );
  }
  if (SERVERS.includes('gateway') && SERVERS.includes('raw')) {
    const ratio = (k: 'cpu' | 'heap') => median(results.gateway[k]) / median(results.raw[k]);
    process.stdout.write(`gateway/raw: CPU/delivery ${ratio('cpu').toFixed(2)}x, heap/socket ${ratio('heap').toFixed(2)}x\n`);
  }
}

if (require.main === module) {
  const spec = process.env.DELIVERY_SERVER;
  (spec ? serve(JSON.parse(spec) as Spec) : main()).catch((error: unknown) => {
    process.stderr.write(`delivery-path failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
