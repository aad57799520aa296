/**
 * `publishMany` on a three-master Redis Cluster of this test's own (test/helpers/redis-cluster.ts,
 * docs/decisions/0601-redis-publish-batches.md): a batch is split by hash tag (a user, the
 * notifications, the system feed), each group's events in one script call on its shard and its
 * users' every-user feed copies in one more. Checks: each user's events arrive in the batch's
 * order on the user's channel, on the administrators' feeds and in the user's log, across
 * shards, exactly where `publish` one by one puts them (another prefix on the same cluster);
 * resuming after an event of a batch works; a failing event stops its group there (the group's
 * events before it out, none after), while the other groups are published whole.
 */
import { Cluster } from 'ioredis';
import pino from 'pino';
import type { GatewayEvent } from '../../src/contracts/events';
import type { PublishItem } from '../../src/contracts/ports';
import { createTopics, type Topics } from '../../src/contracts/topics';
import { MAX_EVENTS_PER_CALL } from '../../src/infra/redis/publish-batch';
import { RedisEventPubSub } from '../../src/infra/redis/redis-pubsub';
import type { EventStream } from '../../src/lib/event-queue';
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster';
import { uniqueId } from '../helpers/services';
import { within } from '../helpers/wait';

const LOG = { maxEvents: 1_000, maxAllEvents: 1_000, maxAgeMs: 60_000 };
let cluster: TestRedisCluster;
let raw: Cluster;
const opened: RedisEventPubSub[] = [];
const streams: EventStream<GatewayEvent>[] = [];

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  raw = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })));
  raw.on('error', () => undefined);
}, 90_000);

afterAll(async () => {
  for (const stream of streams) await stream.return?.();
  await Promise.all(opened.map((p) => p.close()));
  raw?.disconnect();
  await cluster?.stop();
});

async function open(prefix: string): Promise<RedisEventPubSub> {
  const pubsub = new RedisEventPubSub(cluster.url, prefix, pino({ level: 'silent' }), { maxBuffered: 10_000, coalesceMs: 0 }, LOG);
  opened.push(pubsub);
  await pubsub.ready();
  return pubsub;
}

async function subscribe(pubsub: RedisEventPubSub, topic: string, options: Parameters<RedisEventPubSub['subscribe']>[1] = {}) {
  const stream = await pubsub.subscribe(topic, options);
  streams.push(stream);
  return stream;
}

async function takeEvents(stream: EventStream<GatewayEvent>, n: number): Promise<GatewayEvent[]> {
  const out: GatewayEvent[] = [];
  for (let i = 0; i < n; i++) {
    const next = await within(stream.next(), `event ${i + 1} of ${n}`);
    if (next.done) break;
    out.push(next.value);
  }
  return out;
}

const take = async (stream: EventStream<GatewayEvent>, n: number) => (await takeEvents(stream, n)).map((e) => e.eventId);

/** An event as received, its stream positions reduced to "present or empty" (they differ between two runs). */
function shape(event: GatewayEvent): unknown {
  const copy: Record<string, unknown> = { ...event };
  for (const field of ['logId', 'allLogId']) if (field in copy) copy[field] = copy[field] === '' ? '' : 'a position';
  return copy;
}

const order = (userId: string, id: string): GatewayEvent => ({
  family: 'order',
  eventId: id,
  type: 'order.completed',
  userId,
  occurredAt: '2026-12-01T00:00:00.000Z',
  orderId: `o-${id}`,
});

const notification = (id: string): GatewayEvent =>
  ({
    family: 'notification',
    eventId: id,
    type: 'notification.created',
    occurredAt: '2026-12-01T00:00:00.000Z',
    title: id,
  }) as unknown as GatewayEvent;

const system = (id: string): GatewayEvent =>
  ({ family: 'system', eventId: id, type: 'system.alert', occurredAt: '2026-12-01T00:00:00.000Z', message: id }) as unknown as GatewayEvent;

const USERS = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5'];

/** Users' orders interleaved (u0 with more than one call's worth), notifications and system events among them. */
function batch(topics: Topics): PublishItem[] {
  const items: PublishItem[] = [];
  for (let i = 0; i < Math.ceil(1.5 * MAX_EVENTS_PER_CALL) + 40; i++) {
    const user = i % 3 === 0 ? (USERS[(i / 3) % USERS.length] as string) : 'u0';
    const event = order(user, `${user}-${i}`);
    items.push({ topic: topics.user('order', user), event });
    if (i % 25 === 5)
      items.push({ topic: topics.audience('ALL'), event: notification(`n-${i}`), options: { log: topics.notificationLog() } });
    if (i % 40 === 9) items.push({ topic: topics.system(), event: system(`s-${i}`), options: { log: topics.systemLog() } });
  }
  return items;
}

const ids = (items: readonly PublishItem[], keep: (event: GatewayEvent) => boolean) =>
  items.filter((item) => keep(item.event)).map((item) => item.event.eventId);

const logIds = async (key: string) => (await raw.xrange(key, '-', '+')).map(([, fields]) => fields[1] as string);

it('publishes a batch across the shards in each user order, as publish one by one would, and resumes after an event of it', async () => {
  const runs = await Promise.all(
    ['one', 'batch'].map(async (how) => {
      const prefix = `${uniqueId(`cpr-test-${how}`)}:`;
      const topics = createTopics(prefix, { hashTags: true });
      const pubsub = await open(prefix);
      const users = await Promise.all(USERS.map((user) => subscribe(pubsub, topics.user('order', user))));
      const admin = await subscribe(pubsub, topics.allUsers('order'), { pattern: true });
      const notifications = await subscribe(pubsub, topics.audience('ALL'));
      const systemFeed = await subscribe(pubsub, topics.system());
      return { how, topics, pubsub, users, admin, notifications, systemFeed, items: batch(topics) };
    }),
  );
  const [one, many] = runs as [(typeof runs)[number], (typeof runs)[number]];
  for (const { topic, event, options } of one.items) await one.pubsub.publish(topic, event, options);
  await many.pubsub.publishMany(many.items);

  const { items } = many;
  // The users' events really are on more than one shard.
  const slots = new Set(await Promise.all(USERS.map((user) => raw.cluster('KEYSLOT', many.topics.userLog(user)))));
  expect(slots.size).toBeGreaterThan(1);
  const received: unknown[] = [];
  for (const run of runs) {
    const got: Record<string, unknown> = {};
    for (const [u, user] of USERS.entries()) {
      const mine = ids(items, (e) => e.family === 'order' && e.userId === user);
      const events = await takeEvents(run.users[u] as EventStream<GatewayEvent>, mine.length);
      expect(events.map((e) => e.eventId)).toEqual(mine);
      expect(await logIds(run.topics.userLog(user))).toEqual(mine);
      got[user] = events.map(shape);
    }
    // The administrators' feeds: every user's events, each user's in order (users interleave
    // differently: they are on different shards).
    const fed = await takeEvents(run.admin, ids(items, (e) => e.family === 'order').length);
    for (const user of USERS) {
      const theirs = fed.filter((e) => e.userId === user);
      expect(theirs.map((e) => e.eventId)).toEqual(ids(items, (e) => e.family === 'order' && e.userId === user));
      got[`feed of ${user}`] = theirs.map(shape);
    }
    const notified = await takeEvents(run.notifications, ids(items, (e) => e.family === 'notification').length);
    expect(notified.map((e) => e.eventId)).toEqual(ids(items, (e) => e.family === 'notification'));
    const alerted = await takeEvents(run.systemFeed, ids(items, (e) => e.family === 'system').length);
    expect(alerted.map((e) => e.eventId)).toEqual(ids(items, (e) => e.family === 'system'));
    got.notifications = notified.map(shape);
    got.system = alerted.map(shape);
    received.push(got);
    expect(await logIds(run.topics.notificationLog())).toEqual(ids(items, (e) => e.family === 'notification'));
    expect(await logIds(run.topics.systemLog())).toEqual(ids(items, (e) => e.family === 'system'));
    // Audience logs are sized like the every-user log and expire like the others.
    for (const key of [run.topics.userLog('u0'), run.topics.notificationLog(), run.topics.systemLog()]) {
      const ttl = await raw.pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(LOG.maxAgeMs);
    }
  }

  // The same messages (fields, positions present or empty) either way.
  expect(received[1]).toEqual(received[0]);

  // Resuming u0 after an event in the middle of the batch (past its first script call).
  const mine = ids(items, (e) => e.userId === 'u0');
  const after = mine[MAX_EVENTS_PER_CALL + 5] as string;
  const resumed = await subscribe(many.pubsub, many.topics.user('order', 'u0'), { resume: { after, userId: 'u0', accept: () => true } });
  await many.pubsub.publishMany([
    { topic: many.topics.user('order', 'u0'), event: order('u0', 'u0-later') },
    { topic: many.topics.user('order', 'u1'), event: order('u1', 'u1-later') },
  ]);
  const rest = mine.slice(mine.indexOf(after) + 1);
  expect(await take(resumed, rest.length + 1)).toEqual([...rest, 'u0-later']);
}, 60_000);

it("stops a group at its failing event (that user's later events not out), and publishes the other groups whole", async () => {
  const prefix = `${uniqueId('cpr-test-fail')}:`;
  const topics = createTopics(prefix, { hashTags: true });
  const pubsub = await open(prefix);
  const [forP, forQ, admin] = await Promise.all([
    subscribe(pubsub, topics.user('order', 'p')),
    subscribe(pubsub, topics.user('order', 'q')),
    subscribe(pubsub, topics.allUsers('order'), { pattern: true }),
  ]);
  // A log in p's slot (its hash tag) holding the wrong type: p's third event fails there.
  const brokenLog = `${prefix}log:{p}:broken`;
  await raw.set(brokenLog, 'not a stream');
  const items: PublishItem[] = [
    { topic: topics.user('order', 'p'), event: order('p', 'p1') },
    { topic: topics.user('order', 'q'), event: order('q', 'q1') },
    { topic: topics.user('order', 'p'), event: order('p', 'p2') },
    { topic: topics.user('order', 'p'), event: order('p', 'p3'), options: { log: brokenLog } },
    { topic: topics.user('order', 'q'), event: order('q', 'q2') },
    { topic: topics.user('order', 'p'), event: order('p', 'p4') },
    { topic: topics.user('order', 'q'), event: order('q', 'q3') },
  ];
  await expect(pubsub.publishMany(items)).rejects.toThrow(/WRONGTYPE.*event p3, 3 of 4 in this call/);
  // Sentinels: what arrives before them is all the batch published.
  await pubsub.publishMany([
    { topic: topics.user('order', 'p'), event: order('p', 'p-sentinel') },
    { topic: topics.user('order', 'q'), event: order('q', 'q-sentinel') },
  ]);
  expect(await take(forP, 3)).toEqual(['p1', 'p2', 'p-sentinel']);
  expect(await take(forQ, 4)).toEqual(['q1', 'q2', 'q3', 'q-sentinel']);
  const fed = await take(admin, 7);
  expect(fed.filter((id) => id.startsWith('p'))).toEqual(['p1', 'p2', 'p-sentinel']);
  expect(fed.filter((id) => id.startsWith('q'))).toEqual(['q1', 'q2', 'q3', 'q-sentinel']);
  expect(await logIds(topics.userLog('p'))).toEqual(['p1', 'p2', 'p-sentinel']);
  expect(await raw.get(brokenLog)).toBe('not a stream');
}, 30_000);

it("sizes an audience's log like the every-user log, as on one Redis", async () => {
  const prefix = `${uniqueId('cpr-test-audience')}:`;
  const topics = createTopics(prefix, { hashTags: true });
  const pubsub = new RedisEventPubSub(cluster.url, prefix, pino({ level: 'silent' }), undefined, { ...LOG, maxEvents: 3, maxAllEvents: 5 });
  opened.push(pubsub);
  await pubsub.ready();
  const items = Array.from({ length: 8 }, (_, i) => ({
    topic: topics.audience('ALL'),
    event: notification(`na-${i}`),
    options: { log: topics.notificationLog() },
  }));
  await pubsub.publishMany(items.slice(0, 4));
  for (const { topic, event, options } of items.slice(4)) await pubsub.publish(topic, event, options);
  expect(await logIds(topics.notificationLog())).toEqual(['na-3', 'na-4', 'na-5', 'na-6', 'na-7']);
});

it("without an event log, publishes a batch on the users' channels and feeds and retains nothing", async () => {
  const prefix = `${uniqueId('cpr-test-nolog')}:`;
  const topics = createTopics(prefix, { hashTags: true });
  const pubsub = new RedisEventPubSub(cluster.url, prefix, pino({ level: 'silent' }), undefined, { ...LOG, maxEvents: 0 });
  opened.push(pubsub);
  await pubsub.ready();
  const [forA, admin] = await Promise.all([
    subscribe(pubsub, topics.user('order', 'a')),
    subscribe(pubsub, topics.allUsers('order'), { pattern: true }),
  ]);
  const users = ['a', 'b', 'a', 'c', 'a'];
  await pubsub.publishMany(users.map((user, i) => ({ topic: topics.user('order', user), event: order(user, `${user}-${i}`) })));
  const events = await takeEvents(forA, 3);
  expect(events.map((e) => e.eventId)).toEqual(['a-0', 'a-2', 'a-4']);
  for (const event of events) expect(event).not.toHaveProperty('logId');
  const fed = await take(admin, 5);
  expect(fed.filter((id) => id.startsWith('a-'))).toEqual(['a-0', 'a-2', 'a-4']);
  expect(fed.sort()).toEqual(['a-0', 'a-2', 'a-4', 'b-1', 'c-3']);
  for (const user of ['a', 'b', 'c']) expect(await raw.exists(topics.userLog(user))).toBe(0);
});
