/**
 * The bridge's runs (issue 16): a user's waiting messages as one batch — one read-model batch, one
 * publish, in order — and what happens when one of them cannot go: it and everything after it are
 * requeued, nothing behind it is published.
 */
import pino from 'pino';
import { createEventBridge } from '../../src/bridge/event-bridge';
import type { GatewayEvent, IncomingMessage } from '../../src/contracts/events';
import type { PublishItem, ReadModel } from '../../src/contracts/ports';
import { createTopics } from '../../src/contracts/topics';
import { MemoryPubSub } from '../../src/infra/memory/memory-pubsub';

/** The in-process pub/sub, recording each `publishMany` call and able to fail one. */
class RecordingPubSub extends MemoryPubSub {
  readonly calls: string[][] = [];
  failNext: Error | undefined;
  override async publishMany(items: readonly PublishItem[]): Promise<void> {
    this.calls.push(items.map((item) => item.event.eventId));
    const failure = this.failNext;
    this.failNext = undefined;
    if (failure) throw failure;
    return super.publishMany(items);
  }
}

const topics = createTopics('t:');
const logger = pino({ level: 'silent' });
const quota = (id: string, userId = 'u1'): IncomingMessage => ({
  routingKey: 'quota.updated',
  body: Buffer.from(JSON.stringify({ userId, eventId: id })),
  messageId: id,
});

function setup(readModel?: Partial<ReadModel>) {
  const pubsub = new RecordingPubSub();
  const applied: string[] = [];
  const bridge = createEventBridge({
    pubsub,
    topics,
    maxMessageBytes: 10_000,
    logger,
    ownerAttempts: 2,
    readModel: {
      ownerOfDevice: async () => undefined,
      apply: async (event: GatewayEvent) => {
        applied.push(event.eventId);
        return event;
      },
      ...readModel,
    },
  });
  return { pubsub, bridge, applied };
}

async function collect(pubsub: MemoryPubSub, topic: string, count: number): Promise<() => Promise<string[]>> {
  const stream = await pubsub.subscribe(topic);
  return async () => {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) ids.push(((await stream.next()).value as GatewayEvent).eventId);
    return ids;
  };
}

it("publishes a run's events in order in one publishMany call, and acknowledges each", async () => {
  const { pubsub, bridge, applied } = setup();
  const read = await collect(pubsub, topics.user('quota', 'u1'), 5);
  const run = ['e1', 'e2', 'e3', 'e4', 'e5'].map((id) => quota(id));
  await expect(bridge.handleRun(run)).resolves.toEqual(run.map(() => ({ action: 'ack' })));
  expect(pubsub.calls).toEqual([['e1', 'e2', 'e3', 'e4', 'e5']]);
  expect(applied).toEqual(['e1', 'e2', 'e3', 'e4', 'e5']);
  await expect(read()).resolves.toEqual(['e1', 'e2', 'e3', 'e4', 'e5']);
  expect(bridge.counters).toEqual({ consumed: 5, bridged: 5, deadLettered: 0, ignored: 0, requeued: 0 });
});

it('runs of different users in the same turn share one publishMany call, each in its order', async () => {
  const { pubsub, bridge } = setup();
  const [a, b] = await Promise.all([
    bridge.handleRun([quota('a1', 'ua'), quota('a2', 'ua')]),
    bridge.handleRun([quota('b1', 'ub'), quota('b2', 'ub')]),
  ]);
  expect([...a, ...b].every((d) => d.action === 'ack')).toBe(true);
  expect(pubsub.calls).toEqual([['a1', 'a2', 'b1', 'b2']]);
});

it('keeps going past a dead letter or an ignored key, in order', async () => {
  const { pubsub, bridge } = setup();
  const run = [
    quota('e1'),
    { routingKey: 'quota.updated', body: Buffer.from('{"nope":1}'), messageId: 'bad' },
    { routingKey: 'quota.archived', body: Buffer.from('{"userId":"u1"}'), messageId: 'ign' },
    quota('e2'),
  ];
  await expect(bridge.handleRun(run)).resolves.toEqual([
    { action: 'ack' },
    { action: 'dead-letter', reason: 'missing userId' },
    { action: 'ack' },
    { action: 'ack' },
  ]);
  expect(pubsub.calls).toEqual([['e1', 'e2']]);
  expect(bridge.counters).toEqual({ consumed: 4, bridged: 2, deadLettered: 1, ignored: 1, requeued: 0 });
});

it('stops at an event the read model cannot apply: the ones before it go out, it and the events after it are requeued', async () => {
  const { pubsub, bridge } = setup({
    apply: async (event: GatewayEvent) => {
      if (event.eventId === 'e2') throw new Error('deadlock detected');
      return event;
    },
  });
  const bad = { routingKey: 'quota.updated', body: Buffer.from('{"nope":1}'), messageId: 'bad' };
  await expect(bridge.handleRun([quota('e1'), quota('e2'), bad, quota('e3')])).resolves.toEqual([
    { action: 'ack' },
    { action: 'requeue', reason: 'read model failed: deadlock detected' },
    // Settled without publishing anything: it stays settled (it cannot overtake anything).
    { action: 'dead-letter', reason: 'missing userId' },
    { action: 'requeue', reason: 'behind an earlier event that is retried' },
  ]);
  expect(pubsub.calls).toEqual([['e1']]);
  expect(bridge.counters).toEqual({ consumed: 4, bridged: 1, deadLettered: 1, ignored: 0, requeued: 2 });
});

it('requeues the whole run when the fan-out publish fails, and publishes it all on the retry', async () => {
  const { pubsub, bridge } = setup();
  pubsub.failNext = new Error('Connection is closed.');
  const run = [quota('e1'), quota('e2')];
  await expect(bridge.handleRun(run)).resolves.toEqual([
    { action: 'requeue', reason: 'fan-out publish failed: Connection is closed.' },
    { action: 'requeue', reason: 'behind an earlier event that is retried' },
  ]);
  await expect(bridge.handleRun(run)).resolves.toEqual([{ action: 'ack' }, { action: 'ack' }]);
  expect(pubsub.calls).toEqual([
    ['e1', 'e2'],
    ['e1', 'e2'],
  ]);
});

it('an owner not known yet stops the run there, after publishing what came before it', async () => {
  const { pubsub, bridge } = setup();
  const ghost: IncomingMessage = { routingKey: 'device.error', body: Buffer.from('{"deviceId":"ghost"}'), messageId: 'g1' };
  await expect(bridge.handleRun([quota('e1'), ghost, quota('e2')])).resolves.toEqual([
    { action: 'ack' },
    { action: 'requeue', reason: 'owner of the device not known yet (try 1 of 2)' },
    { action: 'requeue', reason: 'behind an earlier event that is retried' },
  ]);
  expect(pubsub.calls).toEqual([['e1']]);
  // The second try is the last: dead-lettered, and the rest of the run goes on.
  await expect(bridge.handleRun([ghost, quota('e2')])).resolves.toEqual([
    { action: 'dead-letter', reason: 'unknown owner' },
    { action: 'ack' },
  ]);
  expect(pubsub.calls).toEqual([['e1'], ['e2']]);
});
