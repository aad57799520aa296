/**
 * `publishMany` on the real Redis (docs/decisions/0601-redis-publish-batches.md): a batch is one
 * script call per `MAX_EVENTS_PER_CALL` events, and each event lands exactly where `publish`
 * puts it: the same channels, messages and logs, in the batch's order, live and retained;
 * resuming after an event of a batch works; a failing event stops the batch there, nothing after
 * it published or retained.
 */
import Redis from 'ioredis';
import pino from 'pino';
import type { GatewayEvent } from '../../src/contracts/events';
import type { PublishItem } from '../../src/contracts/ports';
import { createTopics, type Topics } from '../../src/contracts/topics';
import { MAX_EVENTS_PER_CALL } from '../../src/infra/redis/publish-batch';
import { RedisEventPubSub } from '../../src/infra/redis/redis-pubsub';
import type { EventStream } from '../../src/lib/event-queue';
import { privateRedis } from '../helpers/private-redis';
import { TEST_REDIS_URL, uniqueId } from '../helpers/services';
import { waitFor, within } from '../helpers/wait';

const silent = pino({ level: 'silent' });
const LOG = { maxEvents: 1_000, maxAllEvents: 1_000, maxAgeMs: 60_000 };
const opened: RedisEventPubSub[] = [];
const listeners: Redis[] = [];
const prefixes: string[] = [];
let raw: Redis;

function newPrefix(): string {
  const prefix = `${uniqueId('cpr-test')}:`;
  prefixes.push(prefix);
  return prefix;
}

async function open(prefix: string, log: typeof LOG = LOG): Promise<RedisEventPubSub> {
  const pubsub = new RedisEventPubSub(TEST_REDIS_URL, prefix, silent, { maxBuffered: 10_000, coalesceMs: 0 }, log);
  opened.push(pubsub);
  await pubsub.ready();
  return pubsub;
}

/** Every message published under `prefix`, in the order Redis delivered them: channel (without the prefix) and message. */
async function listen(prefix: string): Promise<{ channel: string; message: string }[]> {
  const listener = new Redis(TEST_REDIS_URL);
  listeners.push(listener);
  const heard: { channel: string; message: string }[] = [];
  listener.on('pmessage', (_pattern: string, channel: string, message: string) =>
    heard.push({ channel: channel.slice(prefix.length), message }),
  );
  await listener.psubscribe(`${prefix}*`);
  return heard;
}

beforeAll(() => {
  raw = new Redis(TEST_REDIS_URL);
});

afterAll(async () => {
  await Promise.all(opened.map((p) => p.close()));
  for (const listener of listeners) listener.disconnect();
  for (const prefix of prefixes) {
    const keys = await raw.keys(`${prefix}*`);
    if (keys.length > 0) await raw.del(...keys);
  }
  raw.disconnect();
});

const order = (userId: string, id: string): GatewayEvent => ({
  family: 'order',
  eventId: id,
  type: 'order.completed',
  userId,
  occurredAt: '2026-12-01T00:00:00.000Z',
  orderId: `o-${id}`,
});

const quota = (userId: string, id: string): GatewayEvent =>
  ({
    family: 'quota',
    kind: 'UPDATED',
    eventId: id,
    type: 'quota.updated',
    userId,
    occurredAt: '2026-12-01T00:00:00.000Z',
    quotaId: `q-${userId}`,
    limits: { maxDevices: 3 },
  }) as unknown as GatewayEvent;

const notification = (id: string, userId?: string): GatewayEvent =>
  ({
    family: 'notification',
    eventId: id,
    type: 'notification.created',
    occurredAt: '2026-12-01T00:00:00.000Z',
    ...(userId !== undefined ? { userId } : {}),
    title: `n-${id}`,
  }) as unknown as GatewayEvent;

const system = (id: string): GatewayEvent =>
  ({
    family: 'system',
    eventId: id,
    type: 'system.alert',
    occurredAt: '2026-12-01T00:00:00.000Z',
    message: `s-${id}`,
  }) as unknown as GatewayEvent;

const userItem = (topics: Topics, event: GatewayEvent): PublishItem => ({
  topic: topics.user(event.family, event.userId as string),
  event,
});

/** Takes `n` events from a stream (each within the default bound). */
async function take(stream: EventStream<GatewayEvent>, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const next = await within(stream.next(), `event ${i + 1} of ${n}`);
    if (next.done) break;
    out.push(next.value.eventId);
  }
  return out;
}

const idsIn = async (key: string) => (await raw.xrange(key, '-', '+')).map(([, fields]) => fields[1] as string);

it('keeps the order of a batch across its script calls, live and in the logs, and resumes after an event of a batch', async () => {
  const prefix = newPrefix();
  const topics = createTopics(prefix);
  const pubsub = await open(prefix);
  const count = 2 * MAX_EVENTS_PER_CALL + 17;
  // Mostly alternating, with runs of one user, so that both users' events cross every call's boundary.
  const users = Array.from({ length: count }, (_, i) => (i % 7 < 4 ? 'a' : 'b'));
  const events = users.map((user, i) => order(user, `${user}-${i}`));
  const ofUser = (user: string) => events.filter((e) => e.userId === user).map((e) => e.eventId);
  const [forA, forB, forAdmin] = await Promise.all([
    pubsub.subscribe(topics.user('order', 'a')),
    pubsub.subscribe(topics.user('order', 'b')),
    pubsub.subscribe(topics.allUsers('order'), { pattern: true }),
  ]);

  await pubsub.publishMany(events.map((e) => userItem(topics, e)));

  expect(await take(forA, ofUser('a').length)).toEqual(ofUser('a'));
  expect(await take(forB, ofUser('b').length)).toEqual(ofUser('b'));
  expect(await take(forAdmin, count)).toEqual(events.map((e) => e.eventId));
  expect(await idsIn(topics.userLog('a'))).toEqual(ofUser('a'));
  expect(await idsIn(topics.userLog('b'))).toEqual(ofUser('b'));
  expect(await idsIn(topics.allUsersLog())).toEqual(events.map((e) => e.eventId));
  for (const key of [topics.userLog('a'), topics.userLog('b'), topics.allUsersLog()]) {
    const ttl = await raw.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(LOG.maxAgeMs);
  }

  // Resuming after an event in the middle of the batch (the second call's part of it): the rest
  // of the batch from the log, then a later batch live, nothing twice.
  const after = ofUser('a')[MAX_EVENTS_PER_CALL / 2 + 10] as string;
  const resumed = await pubsub.subscribe(topics.user('order', 'a'), { resume: { after, userId: 'a', accept: () => true } });
  const later = [order('a', 'a-later-1'), order('b', 'b-later-1'), order('a', 'a-later-2')];
  await pubsub.publishMany(later.map((e) => userItem(topics, e)));
  await pubsub.publish(topics.user('order', 'a'), order('a', 'a-sentinel'));
  const rest = ofUser('a').slice(ofUser('a').indexOf(after) + 1);
  expect(await take(resumed, rest.length + 3)).toEqual([...rest, 'a-later-1', 'a-later-2', 'a-sentinel']);
  for (const stream of [forA, forB, forAdmin, resumed]) await stream.return?.();
});

/** A batch of every kind of event: users' (several families), audiences', the system feed's, and one without a log. */
function mixed(topics: Topics): PublishItem[] {
  return [
    userItem(topics, order('x', 'm1')),
    userItem(topics, quota('y', 'm2')),
    { topic: topics.audience('USER', 'x'), event: notification('m3', 'x'), options: { log: topics.notificationLog() } },
    userItem(topics, order('y', 'm4')),
    { topic: topics.system(), event: system('m5'), options: { log: topics.systemLog() } },
    { topic: topics.audience('ALL'), event: notification('m6'), options: { log: topics.notificationLog() } },
    // No user and no audience log: delivered, retained nowhere.
    { topic: topics.system(), event: system('m7') },
    userItem(topics, quota('x', 'm8')),
    userItem(topics, order('x', 'm9')),
  ];
}

/** A live message with its stream positions reduced to "present or empty" (they differ between two runs). */
function shape(message: string): unknown {
  const parsed = JSON.parse(message) as Record<string, unknown>;
  for (const field of ['logId', 'allLogId']) {
    if (field in parsed) parsed[field] = parsed[field] === '' ? '' : 'a position';
  }
  return { keys: Object.keys(parsed), ...parsed };
}

/** Each key under `prefix` (without it) with what it holds: the entries' fields of a stream. */
async function retained(prefix: string): Promise<Map<string, string[][]>> {
  const keys = (await raw.keys(`${prefix}*`)).sort();
  const out = new Map<string, string[][]>();
  for (const key of keys) {
    expect(await raw.type(key)).toBe('stream');
    const ttl = await raw.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    out.set(
      key.slice(prefix.length),
      (await raw.xrange(key, '-', '+')).map(([, fields]) => fields),
    );
  }
  return out;
}

it.each([
  ['with the event log', LOG],
  ['without an event log', { ...LOG, maxEvents: 0 }],
])('lands each event of a mixed batch where publish puts it, %s', async (_, log) => {
  const onePrefix = newPrefix();
  const batchPrefix = newPrefix();
  const [one, batch] = await Promise.all([open(onePrefix, log), open(batchPrefix, log)]);
  const [heardOne, heardBatch] = await Promise.all([listen(onePrefix), listen(batchPrefix)]);
  const items = mixed(createTopics(onePrefix));
  for (const { topic, event, options } of items) await one.publish(topic, event, options);
  await batch.publishMany(mixed(createTopics(batchPrefix)));
  await waitFor(() => heardOne.length === items.length && heardBatch.length === items.length, 'every message of both runs');

  expect(heardBatch.map((m) => ({ channel: m.channel, message: shape(m.message) }))).toEqual(
    heardOne.map((m) => ({ channel: m.channel, message: shape(m.message) })),
  );
  const logged = await retained(batchPrefix);
  expect(logged).toEqual(await retained(onePrefix));
  if (log.maxEvents === 0) {
    expect([...logged.keys()]).toEqual([]);
    for (const m of heardBatch) expect(JSON.parse(m.message)).not.toHaveProperty('logId');
  } else {
    const topics = createTopics('');
    expect([...logged.keys()].sort()).toEqual(
      [topics.userLog('x'), topics.userLog('y'), topics.allUsersLog(), topics.notificationLog(), topics.systemLog()].sort(),
    );
    const idsOf = (key: string) => (logged.get(key) ?? []).map((fields) => fields[1]);
    expect(idsOf(topics.userLog('x'))).toEqual(['m1', 'm8', 'm9']);
    expect(idsOf(topics.allUsersLog())).toEqual(['m1', 'm2', 'm4', 'm8', 'm9']);
    expect(idsOf(topics.notificationLog())).toEqual(['m3', 'm6']);
    expect(idsOf(topics.systemLog())).toEqual(['m5']);
    // The live message carries the positions the logs gave it.
    const first = JSON.parse(heardBatch[0]?.message as string) as { logId: string; allLogId: string };
    const firstPosition = async (key: string) => (await raw.xrange(`${batchPrefix}${key}`, '-', '+', 'COUNT', 1))[0]?.[0];
    const [userPosition, allPosition] = await Promise.all([firstPosition(topics.userLog('x')), firstPosition(topics.allUsersLog())]);
    expect(userPosition).toEqual(expect.any(String));
    expect(first).toMatchObject({ logId: userPosition, allLogId: allPosition, eventId: 'm1' });
  }
});

it('stops a batch at an event that fails: the ones before it published and retained, none after it', async () => {
  const prefix = newPrefix();
  const topics = createTopics(prefix);
  const pubsub = await open(prefix);
  const heard = await listen(prefix);
  // A log key holding the wrong type: the script's XADD for that user fails.
  await raw.set(topics.userLog('broken'), 'not a stream');
  const items = [order('a', 'f1'), order('a', 'f2'), order('broken', 'f3'), order('a', 'f4'), order('b', 'f5')].map((e) =>
    userItem(topics, e),
  );
  const failed = pubsub.publishMany(items);
  await expect(failed).rejects.toThrow(/WRONGTYPE/);
  await expect(failed).rejects.toThrow(/event f3, 3 of 5 in this call/);
  // A sentinel after the failure: what arrives before it is all the batch published.
  await pubsub.publish(topics.user('order', 'a'), order('a', 'sentinel'));
  await waitFor(() => heard.some((m) => m.message.includes('"sentinel"')), 'the sentinel');
  expect(heard.map((m) => (JSON.parse(m.message) as GatewayEvent).eventId)).toEqual(['f1', 'f2', 'sentinel']);
  expect(await idsIn(topics.userLog('a'))).toEqual(['f1', 'f2', 'sentinel']);
  expect(await idsIn(topics.allUsersLog())).toEqual(['f1', 'f2', 'sentinel']);
  expect(await raw.exists(topics.userLog('b'))).toBe(0);
  expect(await raw.get(topics.userLog('broken'))).toBe('not a stream');

  // In the second call of a three-call batch: the first went out whole, the rest of the second
  // and the third not at all.
  heard.length = 0;
  const long = Array.from({ length: 2 * MAX_EVENTS_PER_CALL + 10 }, (_, i) =>
    userItem(topics, order(i === MAX_EVENTS_PER_CALL + 3 ? 'broken' : 'c', `g${i}`)),
  );
  await expect(pubsub.publishMany(long)).rejects.toThrow(
    new RegExp(`event g${MAX_EVENTS_PER_CALL + 3}, 4 of ${MAX_EVENTS_PER_CALL} in this call`),
  );
  await pubsub.publish(topics.user('order', 'c'), order('c', 'sentinel-2'));
  await waitFor(() => heard.some((m) => m.message.includes('"sentinel-2"')), 'the second sentinel');
  const expected = [...long.slice(0, MAX_EVENTS_PER_CALL + 3).map((item) => item.event.eventId), 'sentinel-2'];
  expect(heard.map((m) => (JSON.parse(m.message) as GatewayEvent).eventId)).toEqual(expected);
  expect(await idsIn(topics.userLog('c'))).toEqual(expected);
});

it('loads its script again when Redis no longer has it (SCRIPT FLUSH, a restart), and keeps the order', async () => {
  // A Redis of this test's own: flushing the shared one's scripts would touch every other client.
  const own = await privateRedis();
  const prefix = newPrefix();
  const topics = createTopics(prefix);
  const pubsub = new RedisEventPubSub(own.url, prefix, silent, { maxBuffered: 100, coalesceMs: 0 }, LOG);
  const admin = new Redis(own.url);
  try {
    await pubsub.ready();
    const stream = await pubsub.subscribe(topics.user('order', 'a'));
    await pubsub.publishMany([userItem(topics, order('a', 's1')), userItem(topics, order('a', 's2'))]);
    await admin.script('FLUSH');
    await pubsub.publishMany([userItem(topics, order('a', 's3')), userItem(topics, order('a', 's4'))]);
    await admin.script('FLUSH');
    await pubsub.publish(topics.user('order', 'a'), order('a', 's5'));
    expect(await take(stream, 5)).toEqual(['s1', 's2', 's3', 's4', 's5']);
    expect((await admin.xrange(topics.userLog('a'), '-', '+')).map(([, fields]) => fields[1])).toEqual(['s1', 's2', 's3', 's4', 's5']);
    await stream.return?.();
  } finally {
    admin.disconnect();
    await pubsub.close();
    await own.stop();
  }
});
