/**
 * The embedded defaults resume too: the in-process pub/sub keeps the same bounded log in memory,
 * replays what followed `after` (uncoalesced, through the subscription's filter) before live
 * events, and answers HISTORY_EXPIRED for what it no longer holds.
 */
import { coalescingKey, combine, supersedes } from '../../src/contracts/coalescing';
import { HistoryExpiredError } from '../../src/contracts/errors';
import type { GatewayEvent } from '../../src/contracts/events';
import { createTopics } from '../../src/contracts/topics';
import { MemoryPubSub } from '../../src/infra/memory/memory-pubsub';

const topics = createTopics('t:');
const quota = (userId: string, id: string, n: number) =>
  ({
    family: 'quota',
    kind: 'UPDATED',
    eventId: id,
    type: 'quota.updated',
    userId,
    occurredAt: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
    quotaId: `q-${userId}`,
  }) as unknown as GatewayEvent;
const order = (userId: string, id: string) =>
  ({ family: 'order', eventId: id, type: 'order.completed', userId, occurredAt: new Date().toISOString(), orderId: id }) as GatewayEvent;

function pubsub(maxEvents = 4) {
  return new MemoryPubSub(
    { maxBuffered: 100, coalesceMs: 60_000, classify: coalescingKey, supersedes, combine },
    { maxEvents, maxAllEvents: 6, maxAgeMs: 60_000 },
  );
}

it('replays what followed after, uncoalesced and filtered, then live events; keeps the last maxEvents', async () => {
  const p = pubsub();
  for (let n = 1; n <= 5; n++) await p.publish(topics.user('quota', 'u'), quota('u', `q${n}`, n));
  await p.publish(topics.user('order', 'u'), order('u', 'o1'));
  const stream = await p.subscribe(topics.user('quota', 'u'), {
    resume: { after: 'q3', userId: 'u', accept: (e) => e.family === 'quota' },
  });
  await p.publish(topics.user('quota', 'u'), quota('u', 'q6', 6));
  const got: string[] = [];
  for (let i = 0; i < 3; i++) got.push(((await stream.next()).value as GatewayEvent).eventId);
  expect(got).toEqual(['q4', 'q5', 'q6']);
  // Five quota and one order, four kept: q1 and q2 are gone.
  await expect(p.subscribe(topics.user('quota', 'u'), { resume: { after: 'q2', userId: 'u', accept: () => true } })).rejects.toBeInstanceOf(
    HistoryExpiredError,
  );
  await expect(p.subscribe(topics.user('quota', 'v'), { resume: { after: 'q5', userId: 'v', accept: () => true } })).rejects.toBeInstanceOf(
    HistoryExpiredError,
  );
  await stream.return?.();
});

it("administrators resume every user's events from the every-user log", async () => {
  const p = pubsub();
  await p.publish(topics.user('order', 'a'), order('a', 'a1'));
  await p.publish(topics.user('order', 'b'), order('b', 'b1'));
  await p.publish(topics.user('order', 'a'), order('a', 'a2'));
  const stream = await p.subscribe(topics.allUsers('order'), { pattern: true, resume: { after: 'a1', userId: null, accept: () => true } });
  const eventId = (result: IteratorResult<GatewayEvent>) => (result.done ? undefined : result.value.eventId);
  expect([eventId(await stream.next()), eventId(await stream.next())]).toEqual(['b1', 'a2']);
  await stream.return?.();
});

it('publishMany: each event as publish, in order, live and retained; a failing event stops the batch there', async () => {
  const p = pubsub(10);
  const live = await p.subscribe(topics.user('order', 'a'));
  const all = await p.subscribe(topics.allUsers('order'), { pattern: true });
  const events = [order('a', 'm1'), order('b', 'm2'), order('a', 'm3')];
  await p.publishMany(events.map((event) => ({ topic: topics.user('order', event.userId as string), event })));
  const next = async (stream: typeof live) => ((await stream.next()).value as GatewayEvent).eventId;
  expect([await next(live), await next(live)]).toEqual(['m1', 'm3']);
  expect([await next(all), await next(all), await next(all)]).toEqual(['m1', 'm2', 'm3']);
  const resumed = await p.subscribe(topics.user('order', 'a'), { resume: { after: 'm1', userId: 'a', accept: () => true } });
  expect(await next(resumed)).toBe('m3');

  // An event whose JSON throws (a BigInt): the batch rejects there, nothing after it goes out.
  const broken = { ...order('a', 'm5'), amount: 1n } as unknown as GatewayEvent;
  const batch = [order('a', 'm4'), broken, order('a', 'm6')].map((event) => ({ topic: topics.user('order', 'a'), event }));
  await expect(p.publishMany(batch)).rejects.toThrow(/BigInt/);
  await p.publish(topics.user('order', 'a'), order('a', 'm7'));
  expect([await next(live), await next(live)]).toEqual(['m4', 'm7']);
  for (const stream of [live, all, resumed]) await stream.return?.();
});
