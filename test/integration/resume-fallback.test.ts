/**
 * The pub/sub adapter's fallback when Redis does not hold `after`, on the real Redis: the durable
 * log's replay comes first, then live messages it did not already hold (placed by eventId); when
 * the durable log cannot be read, HISTORY_UNAVAILABLE rather than a resume with a possible gap.
 * The durable log here is a stand-in for the port (the shared PostgreSQL cannot be taken down;
 * the real one is tested in durable-event-log.test.ts and across a Redis restart in
 * test/disruptive/resume-redis-restart.test.ts).
 */
import pino from 'pino';
import { HistoryExpiredError, HistoryUnavailableError } from '../../src/contracts/errors';
import type { GatewayEvent } from '../../src/contracts/events';
import type { DurableEventLog } from '../../src/contracts/ports';
import { createTopics } from '../../src/contracts/topics';
import { RedisEventPubSub } from '../../src/infra/redis/redis-pubsub';
import { TEST_REDIS_URL, uniqueId } from '../helpers/services';
import { track } from '../helpers/teardown';
import { within } from '../helpers/wait';

const silent = pino({ level: 'silent' });
const prefix = `${uniqueId('cpr-test')}:`;
const topics = createTopics(prefix);
const LOG = { maxEvents: 50, maxAllEvents: 50, maxAgeMs: 60_000 };

const order = (userId: string, id: string): GatewayEvent => ({
  family: 'order',
  eventId: id,
  type: 'order.completed',
  userId,
  occurredAt: new Date().toISOString(),
  orderId: `o-${id}`,
});

function open(durable: DurableEventLog): RedisEventPubSub {
  const pubsub = new RedisEventPubSub(TEST_REDIS_URL, prefix, silent, { maxBuffered: 100, coalesceMs: 0 }, LOG, durable);
  track('redis pub/sub adapter', () => pubsub.close());
  return pubsub;
}

const acceptAll = () => true;

it('replays what the durable log holds after an id Redis lost, then live messages it did not hold, none twice', async () => {
  const user = uniqueId('fallback');
  // What PostgreSQL holds after `lost-1`: lost-2 and lost-3 (lost-3 committed, its publish still on its way).
  const durable: DurableEventLog = {
    readAfter: async (userId, after) =>
      userId === user && after === 'lost-1' ? [order(user, 'lost-2'), order(user, 'lost-3')] : undefined,
  };
  const pubsub = open(durable);
  await pubsub.ready();
  const topic = topics.user('order', user);
  const stream = await pubsub.subscribe(topic, { resume: { after: 'lost-1', userId: user, accept: acceptAll } });
  await pubsub.publish(topic, order(user, 'lost-3'));
  await pubsub.publish(topic, order(user, 'live-4'));
  const got: string[] = [];
  for (let i = 0; i < 3; i++) {
    const next = await within(stream.next(), `event ${i + 1}`);
    if (!next.done) got.push(next.value.eventId);
  }
  expect(got).toEqual(['lost-2', 'lost-3', 'live-4']);
  expect(pubsub.seam).toMatchObject({ resumed: 1, resumedFromDurable: 1, replayed: 2, duplicatesDropped: 1 });
  await stream.return?.();
  // Not in Redis and not in the durable log: past retention (or unknown).
  await expect(pubsub.subscribe(topic, { resume: { after: 'never', userId: user, accept: acceptAll } })).rejects.toBeInstanceOf(
    HistoryExpiredError,
  );
});

it('answers HISTORY_UNAVAILABLE when Redis lost after and the durable log cannot be read', async () => {
  const pubsub = open({
    readAfter: async () => {
      throw new Error('connection refused');
    },
  });
  await pubsub.ready();
  const user = uniqueId('unavailable');
  const refused = pubsub.subscribe(topics.user('order', user), { resume: { after: 'gone', userId: user, accept: acceptAll } });
  await expect(refused).rejects.toBeInstanceOf(HistoryUnavailableError);
  await expect(refused).rejects.toMatchObject({ extensions: { code: 'HISTORY_UNAVAILABLE' } });
});
