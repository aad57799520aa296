/** The bridge's decisions, on the in-process pub/sub: publish-then-ack, requeue, dead-letter, ignore. */
import pino from 'pino';
import { createEventBridge } from '../../src/bridge/event-bridge';
import type { GatewayEvent } from '../../src/contracts/events';
import { createTopics } from '../../src/contracts/topics';
import { MemoryPubSub } from '../../src/infra/memory/memory-pubsub';
import { deferred, type Deferred } from '../helpers/wait';

/** The in-process pub/sub whose publishes can be held back or made to fail. */
class ControlledPubSub extends MemoryPubSub {
  gate: Deferred<void> | undefined;
  failWith: Error | undefined;
  override async publish(topic: string, event: GatewayEvent): Promise<void> {
    if (this.gate) await this.gate.promise;
    if (this.failWith) throw this.failWith;
    return super.publish(topic, event);
  }
}

const topics = createTopics('t:');
const logger = pino({ level: 'silent' });
const body = (value: unknown) => Buffer.from(JSON.stringify(value));

function setup() {
  const pubsub = new ControlledPubSub();
  const bridge = createEventBridge({ pubsub, topics, maxMessageBytes: 10_000, logger });
  return { pubsub, bridge };
}

it("acknowledges only once the event is published, on the user's topic", async () => {
  const { pubsub, bridge } = setup();
  const events = await pubsub.subscribe(topics.user('quota', 'u1'));
  pubsub.gate = deferred<void>();
  let settled = false;
  const disposition = bridge.handle({ routingKey: 'quota.updated', body: body({ userId: 'u1' }), messageId: 'e1' }).then((d) => {
    settled = true;
    return d;
  });
  await new Promise((resolve) => setImmediate(resolve));
  expect(settled).toBe(false);
  pubsub.gate.resolve();
  await expect(disposition).resolves.toEqual({ action: 'ack' });
  await expect(events.next()).resolves.toMatchObject({ value: { eventId: 'e1', userId: 'u1' } });
  expect(bridge.counters).toEqual({ consumed: 1, bridged: 1, deadLettered: 0, ignored: 0, requeued: 0 });
});

it('requeues, never acknowledges, when the fan-out publish fails', async () => {
  const { pubsub, bridge } = setup();
  pubsub.failWith = new Error('Connection is closed.');
  await expect(bridge.handle({ routingKey: 'quota.updated', body: body({ userId: 'u1' }) })).resolves.toEqual({
    action: 'requeue',
    reason: 'fan-out publish failed: Connection is closed.',
  });
  expect(bridge.counters).toMatchObject({ bridged: 0, requeued: 1 });
});

it('dead-letters with the reason and acknowledges other routing keys as ignored', async () => {
  const { bridge } = setup();
  await expect(bridge.handle({ routingKey: 'quota.updated', body: body({ nope: 1 }) })).resolves.toEqual({
    action: 'dead-letter',
    reason: 'missing userId',
  });
  await expect(bridge.handle({ routingKey: 'quota.archived', body: body({ userId: 'u' }) })).resolves.toEqual({ action: 'ack' });
  expect(bridge.counters).toEqual({ consumed: 2, bridged: 0, deadLettered: 1, ignored: 1, requeued: 0 });
});

describe("the platform's trace id", () => {
  const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

  /** A real pino logger writing JSON lines into memory. */
  function capturingLogger() {
    const lines: Record<string, unknown>[] = [];
    const stream = { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) };
    return { lines, logger: pino({ level: 'debug' }, stream) };
  }

  it.each([
    ['a flat body', { userId: 'u1', _trace: { traceparent: TRACEPARENT } }],
    ['an envelope', { eventId: 'env-1', eventType: 'quota.updated', _trace: { traceparent: TRACEPARENT }, payload: { userId: 'u1' } }],
    [
      "an envelope's payload",
      { eventId: 'env-1', eventType: 'quota.updated', payload: { userId: 'u1', _trace: { traceparent: TRACEPARENT } } },
    ],
  ])('is logged with the handling of %s, and never published', async (_what, message) => {
    const { lines, logger: log } = capturingLogger();
    const pubsub = new ControlledPubSub();
    const bridge = createEventBridge({ pubsub, topics, maxMessageBytes: 10_000, logger: log });
    const events = await pubsub.subscribe(topics.user('quota', 'u1'));
    await expect(bridge.handle({ routingKey: 'quota.updated', body: body(message), messageId: 'm1' })).resolves.toEqual({ action: 'ack' });
    const bridged = lines.find((line) => line.msg === 'event bridged');
    expect(bridged).toMatchObject({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', traceparent: TRACEPARENT, userId: 'u1' });
    const published = await events.next();
    expect(JSON.stringify(published.value)).not.toMatch(/_trace|traceparent|4bf92f35/);
  });

  it('is logged when the message is dead-lettered too; a malformed traceparent is left out', async () => {
    const { lines, logger: log } = capturingLogger();
    const bridge = createEventBridge({ pubsub: new ControlledPubSub(), topics, maxMessageBytes: 10_000, logger: log });
    await bridge.handle({ routingKey: 'quota.updated', body: body({ nope: 1, _trace: { traceparent: TRACEPARENT } }) });
    await bridge.handle({ routingKey: 'quota.updated', body: body({ nope: 2, _trace: { traceparent: '00-xyz-01' } }) });
    const [first, second] = lines.filter((line) => line.msg === 'event dead-lettered');
    expect(first).toMatchObject({ traceId: '4bf92f3577b34da6a3ce929d0e0e4736', reason: 'missing userId' });
    expect(second).toMatchObject({ reason: 'missing userId' });
    expect(second).not.toHaveProperty('traceId');
    expect(second).not.toHaveProperty('traceparent');
  });
});

describe('owner resolution and the read model', () => {
  function withReadModel(owners: Record<string, string>, applyFails?: Error) {
    const pubsub = new ControlledPubSub();
    const applied: GatewayEvent[] = [];
    const bridge = createEventBridge({
      pubsub,
      topics,
      maxMessageBytes: 10_000,
      logger,
      readModel: {
        ownerOfDevice: async (deviceId) => owners[deviceId],
        apply: async (event) => {
          if (applyFails) throw applyFails;
          applied.push(event);
          // What the read model hands back is what gets published: the event with its entity.
          return { ...event, installation: null } as GatewayEvent;
        },
      },
    });
    return { pubsub, bridge, applied };
  }

  it("publishes an event naming only a device on its owner's topic, after applying it", async () => {
    const { pubsub, bridge, applied } = withReadModel({ 'dev-1': 'owner-1' });
    const events = await pubsub.subscribe(topics.user('app', 'owner-1'));
    await expect(
      bridge.handle({ routingKey: 'app.install.completed', body: body({ deviceId: 'dev-1', appId: 'a' }), messageId: 'i1' }),
    ).resolves.toEqual({ action: 'ack' });
    expect(applied).toEqual([expect.objectContaining({ eventId: 'i1', userId: 'owner-1' })]);
    await expect(events.next()).resolves.toMatchObject({
      value: { eventId: 'i1', userId: 'owner-1', deviceId: 'dev-1', installation: null },
    });
  });

  it('dead-letters an unknown device as "unknown owner", with or without a read model', async () => {
    const { bridge } = withReadModel({});
    const msg = { routingKey: 'device.error', body: body({ deviceId: 'ghost' }) };
    await expect(bridge.handle(msg)).resolves.toEqual({ action: 'dead-letter', reason: 'unknown owner' });
    await expect(setup().bridge.handle(msg)).resolves.toEqual({ action: 'dead-letter', reason: 'unknown owner' });
  });

  it('requeues, and publishes nothing, when the read model fails', async () => {
    const { pubsub, bridge } = withReadModel({}, new Error('database is down'));
    const events = await pubsub.subscribe(topics.user('device', 'u'));
    await expect(bridge.handle({ routingKey: 'device.started', body: body({ userId: 'u', deviceId: 'd' }) })).resolves.toEqual({
      action: 'requeue',
      reason: 'read model failed: database is down',
    });
    expect(bridge.counters).toMatchObject({ bridged: 0, requeued: 1 });
    const next = events.next();
    await pubsub.publish(topics.user('device', 'u'), { marker: true } as unknown as GatewayEvent);
    await expect(next).resolves.toMatchObject({ value: { marker: true } });
  });
});

describe('an owner not known yet', () => {
  it('is tried again, up to ownerAttempts, before "unknown owner"; found meanwhile, the event goes out', async () => {
    const owners: Record<string, string> = {};
    const pubsub = new ControlledPubSub();
    const bridge = createEventBridge({
      pubsub,
      topics,
      maxMessageBytes: 10_000,
      logger,
      ownerAttempts: 3,
      readModel: { ownerOfDevice: async (id) => owners[id], apply: async (event) => event },
    });
    const late = { routingKey: 'app.installed', body: body({ deviceId: 'late', appId: 'a' }), messageId: 'late-1' };
    await expect(bridge.handle(late)).resolves.toMatchObject({
      action: 'requeue',
      reason: 'owner of the device not known yet (try 1 of 3)',
    });
    owners.late = 'u-late';
    await expect(bridge.handle(late)).resolves.toEqual({ action: 'ack' });

    const ghost = { routingKey: 'device.error', body: body({ deviceId: 'ghost' }), messageId: 'ghost-1' };
    await expect(bridge.handle(ghost)).resolves.toMatchObject({ action: 'requeue' });
    await expect(bridge.handle(ghost)).resolves.toMatchObject({ action: 'requeue' });
    await expect(bridge.handle(ghost)).resolves.toEqual({ action: 'dead-letter', reason: 'unknown owner' });
    expect(bridge.counters).toMatchObject({ bridged: 1, requeued: 3, deadLettered: 1 });
  });
});
