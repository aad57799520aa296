/**
 * The retained event log on the real Redis, through the pub/sub adapter: the bounds (count and
 * age, observable with XLEN/XRANGE/PTTL), resuming after an eventId, HISTORY_EXPIRED, replayed
 * events bypassing coalescing, and the seam: live publishes racing the replay read are neither
 * lost nor repeated.
 */
import Redis from 'ioredis';
import pino from 'pino';
import { coalescingKey, combine, supersedes } from '../../src/contracts/coalescing';
import { HistoryExpiredError } from '../../src/contracts/errors';
import type { GatewayEvent } from '../../src/contracts/events';
import { createTopics } from '../../src/contracts/topics';
import { RedisEventPubSub } from '../../src/infra/redis/redis-pubsub';
import type { EventStream } from '../../src/lib/event-queue';
import { TEST_REDIS_URL, uniqueId } from '../helpers/services';
import { waitFor, within } from '../helpers/wait';

const silent = pino({ level: 'silent' });
const prefix = `${uniqueId('cpr-test')}:`;
const topics = createTopics(prefix);
const opened: RedisEventPubSub[] = [];
let raw: Redis;

function open(log: { maxEvents: number; maxAllEvents: number; maxAgeMs: number }, coalesceMs = 0): RedisEventPubSub {
  const pubsub = new RedisEventPubSub(
    TEST_REDIS_URL,
    prefix,
    silent,
    { maxBuffered: 1_000, coalesceMs, classify: coalescingKey, supersedes, combine },
    log,
  );
  opened.push(pubsub);
  return pubsub;
}

beforeAll(() => {
  raw = new Redis(TEST_REDIS_URL);
});

afterAll(async () => {
  await Promise.all(opened.map((p) => p.close()));
  const keys = await raw.keys(`${prefix}*`);
  if (keys.length > 0) await raw.del(...keys);
  raw.disconnect();
});

const order = (userId: string, id: string): GatewayEvent => ({
  family: 'order',
  eventId: id,
  type: 'order.completed',
  userId,
  occurredAt: new Date().toISOString(),
  orderId: `o-${id}`,
});

const quotaUpdated = (userId: string, id: string, n: number): GatewayEvent =>
  ({
    family: 'quota',
    kind: 'UPDATED',
    eventId: id,
    type: 'quota.updated',
    userId,
    occurredAt: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
    quotaId: `q-${userId}`,
    limits: { maxDevices: n },
  }) as unknown as GatewayEvent;

const quotaDeleted = (userId: string, id: string, n: number): GatewayEvent =>
  ({
    family: 'quota',
    kind: 'DELETED',
    eventId: id,
    type: 'quota.deleted',
    userId,
    occurredAt: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
    quotaId: `q-${userId}`,
  }) as unknown as GatewayEvent;

const acceptAll = () => true;

/** Takes `n` events from a stream (each within the default bound). */
async function take(stream: EventStream<GatewayEvent>, n: number): Promise<GatewayEvent[]> {
  const out: GatewayEvent[] = [];
  for (let i = 0; i < n; i++) {
    const next = await within(stream.next(), `event ${i + 1} of ${n}`);
    if (next.done) break;
    out.push(next.value);
  }
  return out;
}

const idsIn = async (key: string) => (await raw.xrange(key, '-', '+')).map(([, fields]) => fields[1]);

it('keeps the last EVENT_LOG_MAX_EVENTS per user and EVENT_LOG_MAX_ALL in all, in publish order', async () => {
  const pubsub = open({ maxEvents: 5, maxAllEvents: 7, maxAgeMs: 60_000 });
  await pubsub.ready();
  for (let n = 1; n <= 12; n++) {
    await pubsub.publish(topics.user('order', 'count-a'), order('count-a', `ca-${n}`));
    if (n % 4 === 0) await pubsub.publish(topics.user('order', 'count-b'), order('count-b', `cb-${n}`));
  }
  expect(await raw.xlen(topics.userLog('count-a'))).toBe(5);
  expect(await idsIn(topics.userLog('count-a'))).toEqual(['ca-8', 'ca-9', 'ca-10', 'ca-11', 'ca-12']);
  expect(await idsIn(topics.userLog('count-b'))).toEqual(['cb-4', 'cb-8', 'cb-12']);
  expect(await raw.xlen(topics.allUsersLog())).toBe(7);
  expect(await idsIn(topics.allUsersLog())).toEqual(['ca-8', 'cb-8', 'ca-9', 'ca-10', 'ca-11', 'ca-12', 'cb-12']);
  // The entry holds the event as published, without the positions spliced into the live message.
  const [[, fields]] = (await raw.xrevrange(topics.userLog('count-a'), '+', '-', 'COUNT', 1)) as [[string, string[]]];
  expect(JSON.parse(fields[3] as string)).toMatchObject({ eventId: 'ca-12', orderId: 'o-ca-12' });
  expect(fields[3]).not.toMatch(/logId/);
});

it("trims entries older than EVENT_LOG_MAX_AGE_SEC (Redis time) and lets an idle user's log expire", async () => {
  const maxAgeMs = 1_000;
  const pubsub = open({ maxEvents: 100, maxAllEvents: 100, maxAgeMs });
  await pubsub.ready();
  const key = topics.userLog('age');
  const topic = topics.user('order', 'age');
  const redisNow = async () => {
    const [seconds, micros] = await raw.time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  };
  const ms = (streamId: string) => Number(streamId.split('-')[0]);
  const t0 = await redisNow();
  for (let n = 1; n <= 3; n++) await pubsub.publish(topic, order('age', `age-${n}`));
  expect(await raw.xlen(key)).toBe(3);
  const ttl = await raw.pttl(key);
  expect(ttl).toBeGreaterThan(0);
  expect(ttl).toBeLessThanOrEqual(maxAgeMs);
  await waitFor(async () => (await redisNow()) > t0 + 600, 'the first three to be 600 ms old');
  await pubsub.publish(topic, order('age', 'age-4'));
  await waitFor(async () => (await redisNow()) > t0 + maxAgeMs + 100, 'the first three to pass the bound');
  await pubsub.publish(topic, order('age', 'age-5'));
  const entries = await raw.xrange(key, '-', '+');
  const newest = ms(entries[entries.length - 1]?.[0] as string);
  const kept = entries.map(([, fields]) => fields[1]);
  expect(kept).not.toEqual(expect.arrayContaining(['age-1']));
  expect(kept.filter((id) => ['age-1', 'age-2', 'age-3'].includes(id as string))).toEqual([]);
  // Exactly the entries within the bound of the newest remain (age-4 by its own timestamp).
  for (const [id] of entries) expect(ms(id)).toBeGreaterThanOrEqual(newest - maxAgeMs);
  expect(kept[kept.length - 1]).toBe('age-5');
  // Idle: the whole key goes maxAge after its last event.
  await waitFor(async () => (await raw.exists(key)) === 0, 'the idle log to expire', 5_000);
});

it('resumes after a retained eventId: the events after it, then live ones; an id not retained is HISTORY_EXPIRED', async () => {
  const pubsub = open({ maxEvents: 5, maxAllEvents: 50, maxAgeMs: 60_000 });
  await pubsub.ready();
  const topic = topics.user('order', 'resume');
  for (let n = 1; n <= 8; n++) await pubsub.publish(topic, order('resume', `r-${n}`));
  const stream = await pubsub.subscribe(topic, { resume: { after: 'r-5', userId: 'resume', accept: acceptAll } });
  await pubsub.publish(topic, order('resume', 'r-9'));
  expect((await take(stream, 4)).map((e) => e.eventId)).toEqual(['r-6', 'r-7', 'r-8', 'r-9']);
  await stream.return?.();

  // r-3 was trimmed (only the last five are kept); r-404 never existed; both answer alike.
  for (const after of ['r-3', 'r-404']) {
    const refused = pubsub.subscribe(topic, { resume: { after, userId: 'resume', accept: acceptAll } });
    await expect(refused).rejects.toBeInstanceOf(HistoryExpiredError);
    await expect(refused).rejects.toMatchObject({ extensions: { code: 'HISTORY_EXPIRED' } });
  }
  // Another user's log does not hold this user's ids.
  await expect(
    pubsub.subscribe(topics.user('order', 'other'), { resume: { after: 'r-8', userId: 'other', accept: acceptAll } }),
  ).rejects.toBeInstanceOf(HistoryExpiredError);

  // Administrators without userId resume from the every-user log (pattern subscription).
  await pubsub.publish(topics.user('order', 'someone'), order('someone', 's-1'));
  const all = await pubsub.subscribe(topics.allUsers('order'), {
    pattern: true,
    resume: { after: 'r-8', userId: null, accept: acceptAll },
  });
  await pubsub.publish(topics.user('order', 'resume'), order('resume', 'r-10'));
  expect((await take(all, 3)).map((e) => e.eventId)).toEqual(['r-9', 's-1', 'r-10']);
  await all.return?.();
});

it('replays only what the subscription takes (its filter), and never coalesces replayed events', async () => {
  const pubsub = open({ maxEvents: 50, maxAllEvents: 50, maxAgeMs: 60_000 }, 60_000);
  await pubsub.ready();
  const topic = topics.user('quota', 'coalesce');
  await pubsub.publish(topic, quotaUpdated('coalesce', 'q-1', 1));
  // An order in the same user's log: not for a quota subscription.
  await pubsub.publish(topics.user('order', 'coalesce'), order('coalesce', 'o-1'));
  for (let n = 2; n <= 5; n++) await pubsub.publish(topic, quotaUpdated('coalesce', `q-${n}`, n));
  const stream = await pubsub.subscribe(topic, {
    resume: { after: 'q-1', userId: 'coalesce', accept: (event) => event.family === 'quota' },
  });
  // Four state-like events of one entity, well within the coalescing window: all four arrive.
  expect((await take(stream, 4)).map((e) => e.eventId)).toEqual(['q-2', 'q-3', 'q-4', 'q-5']);
  // Live ones still coalesce: the first goes out at once, the next two within the window collapse
  // into one (the later, both combined). The window is a minute: a transition of the same quota
  // (not state-like, never coalesced) releases what is held first, so the test need not wait it out.
  await pubsub.publish(topic, quotaUpdated('coalesce', 'q-6', 6));
  expect((await take(stream, 1)).map((e) => e.eventId)).toEqual(['q-6']);
  await pubsub.publish(topic, quotaUpdated('coalesce', 'q-7', 7));
  await pubsub.publish(topic, quotaUpdated('coalesce', 'q-8', 8));
  await pubsub.publish(topic, quotaDeleted('coalesce', 'q-9', 9));
  expect(await take(stream, 2)).toEqual([
    expect.objectContaining({ eventId: 'q-8', limits: { maxDevices: 8 } }),
    expect.objectContaining({ eventId: 'q-9', kind: 'DELETED' }),
  ]);
  await stream.return?.();
});

it('loses and repeats nothing at the seam while live publishes race the replay read', async () => {
  const reader = open({ maxEvents: 1_000, maxAllEvents: 1_000, maxAgeMs: 60_000 });
  const writer = open({ maxEvents: 1_000, maxAllEvents: 1_000, maxAgeMs: 60_000 });
  await Promise.all([reader.ready(), writer.ready()]);
  const RESUME_AT = 40;
  let rounds = 0;
  let total = 0;
  // Both sides of the seam must have been taken at least once: live messages that were also in
  // the log (dropped) and ones that came after it while it was read (held, then delivered). The
  // writer publishes for as long as the subscribe call takes (and a little after), so the whole
  // seam window sees live publishes whatever the machine's load.
  for (; rounds < 20; rounds++) {
    const userId = `seam-${rounds}`;
    const topic = topics.user('order', userId);
    const id = (n: number) => `${userId}-${n}`;
    for (let n = 1; n <= RESUME_AT; n++) await writer.publish(topic, order(userId, id(n)));
    let published = RESUME_AT;
    let subscribed = false;
    const writing = (async () => {
      let afterSubscribed = 0;
      while ((!subscribed || afterSubscribed < 20) && published < 5_000) {
        const burst: Promise<void>[] = [];
        for (let i = 0; i < 5; i++) burst.push(writer.publish(topic, order(userId, id(++published))));
        await Promise.all(burst);
        if (subscribed) afterSubscribed += 5;
      }
    })();
    const stream = await reader.subscribe(topic, { resume: { after: id(RESUME_AT), userId, accept: acceptAll } });
    subscribed = true;
    await writing;
    total = published - RESUME_AT;
    const got = (await take(stream, total)).map((e) => e.eventId);
    await stream.return?.();
    expect(got).toEqual(Array.from({ length: total }, (_, i) => id(RESUME_AT + 1 + i)));
    await expect(stream.next()).resolves.toMatchObject({ done: true });
    if (rounds >= 2 && reader.seam.duplicatesDropped > 0 && reader.seam.heldAndReleased > 0) break;
  }
  console.log(
    `seam: ${rounds + 1} rounds (the last of ${total} events), exact each time; live duplicates dropped ${reader.seam.duplicatesDropped}, held and released ${reader.seam.heldAndReleased}`,
  );
  expect(reader.seam.duplicatesDropped).toBeGreaterThan(0);
  expect(reader.seam.heldAndReleased).toBeGreaterThan(0);
});
