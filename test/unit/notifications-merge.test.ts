/** The notifications subscription over audience topics, on the in-process pub/sub: once per eventId, ends once, resumes in order. */
import type { GraphQLContext, Services } from '../../src/contracts/context';
import type { NotificationAudience, NotificationEventMessage } from '../../src/contracts/events';
import { createTopics } from '../../src/contracts/topics';
import { audiencesOf, subscribeToNotifications } from '../../src/domains/notification/notification-subscription';
import { MemoryPubSub } from '../../src/infra/memory/memory-pubsub';

const topics = createTopics('t:');
/** The event id a stream's `next()` gave, undefined once it ended. */
const eventId = (result: IteratorResult<{ eventId: string }>) => (result.done ? undefined : result.value.eventId);
const user = { id: 'u1', roles: ['ops', 'ops'], tenantId: 'T', isAdmin: false, expiresAt: Date.now() + 60_000 };

function setup(log = false) {
  const pubsub = new MemoryPubSub(undefined, log ? { maxEvents: 100, maxAllEvents: 100, maxAgeMs: 60_000 } : undefined);
  const live: Record<string, number> = {};
  const services = {
    pubsub,
    topics,
    onSubscriptionChange: (field: string, d: number) => (live[field] = (live[field] ?? 0) + d),
  } as unknown as Services;
  const context: GraphQLContext = { user, services };
  const publish = (eventId: string, audience: NotificationAudience, title = eventId) => {
    const event: NotificationEventMessage = {
      family: 'notification',
      eventId,
      type: 'notification.announcement',
      occurredAt: '2026-12-01T00:00:00.000Z',
      scope: audience.scope,
      audience,
      severity: 'INFO',
      title,
      message: 'm',
    };
    return pubsub.publish(topics.audience(audience.scope, audience.id), event, { log: topics.notificationLog() });
  };
  return { pubsub, live, context, publish };
}

it('matches the token: its user, tenant, each role once, everyone', () => {
  expect(audiencesOf(user)).toEqual([
    { scope: 'USER', id: 'u1' },
    { scope: 'TENANT', id: 'T' },
    { scope: 'ROLE', id: 'ops' },
    { scope: 'ALL' },
  ]);
});

it('pulled: an announcement reaching the caller through several audiences comes once; others are not seen', async () => {
  const { context, publish, live, pubsub } = setup();
  const stream = await subscribeToNotifications(context, { field: 'notifications' });
  expect(live.notifications).toBe(1);
  expect(pubsub.subscriptionCount).toBe(4);
  await publish('a1', { scope: 'TENANT', id: 'T' });
  await publish('a1', { scope: 'ROLE', id: 'ops' });
  await publish('x', { scope: 'TENANT', id: 'other' });
  await publish('a2', { scope: 'ALL' });
  expect(eventId(await stream.next())).toBe('a1');
  expect(eventId(await stream.next())).toBe('a2');
  await stream.return?.();
  expect(live.notifications).toBe(0);
  expect(pubsub.subscriptionCount).toBe(0);
});

it('pushed: the sink gets each eventId once, and onEnd runs once when the stream ends', async () => {
  const { context, publish, pubsub } = setup();
  const stream = await subscribeToNotifications(context, { field: 'notifications' });
  const got: string[] = [];
  let ends = 0;
  stream.attach({
    offer: (event) => {
      got.push(event.eventId);
      return true;
    },
    ended: () => ends++,
  });
  await publish('b1', { scope: 'USER', id: 'u1' });
  await publish('b1', { scope: 'ALL' });
  await publish('b2', { scope: 'ROLE', id: 'ops' });
  expect(got).toEqual(['b1', 'b2']);
  await stream.return?.();
  await stream.return?.();
  expect(ends).toBe(1);
  expect(pubsub.subscriptionCount).toBe(0);
});

it("resumes after an eventId from the one notifications log: the caller's audiences, in publish order, once", async () => {
  const { context, publish } = setup(true);
  await publish('c0', { scope: 'ALL' });
  await publish('c1', { scope: 'ROLE', id: 'ops' });
  await publish('c2', { scope: 'TENANT', id: 'elsewhere' });
  await publish('c3', { scope: 'TENANT', id: 'T' });
  await publish('c3', { scope: 'ROLE', id: 'ops' });
  await publish('c4', { scope: 'USER', id: 'u1' });
  const stream = await subscribeToNotifications(context, { field: 'notifications', after: 'c0' });
  await publish('c5', { scope: 'ALL' });
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) ids.push(String(eventId(await stream.next())));
  expect(ids).toEqual(['c1', 'c3', 'c4', 'c5']);
  await stream.return?.();
});
