/** The router stage's decisions and their order (no broker): keys, device owners, waits, dead letters. */
import { PartitionRouter } from '../../src/bridge/partition-router';
import type { GatewayEvent, IncomingMessage } from '../../src/contracts/events';
import type { RouteDecision } from '../../src/contracts/partition';
import type { ReadModel } from '../../src/contracts/ports';
import { deferred, waitFor, type Deferred } from '../helpers/wait';

const message = (routingKey: string, body: unknown, messageId?: string): IncomingMessage => ({
  routingKey,
  body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
  messageId,
});

/** A read model whose owner lookups answer when the test says. */
class HeldReadModel implements ReadModel {
  readonly lookups: { deviceId: string; answer: Deferred<string | undefined> }[] = [];
  ownerOfDevice(deviceId: string): Promise<string | undefined> {
    const answer = deferred<string | undefined>();
    this.lookups.push({ deviceId, answer });
    return answer.promise;
  }
  // The router only asks for owners; what apply hands back is the bridge's business.
  async apply(event: GatewayEvent): Promise<GatewayEvent> {
    return event;
  }
}

function setup(readModel?: ReadModel, ownerAttempts = 3) {
  const out: { tag: string; decision: RouteDecision }[] = [];
  const router = new PartitionRouter<string>({
    forward: (tag, decision) => out.push({ tag, decision }),
    readModel,
    maxMessageBytes: 10_000,
    ownerAttempts,
    retryDelayMs: 5,
  });
  return { router, out, tags: () => out.map((o) => o.tag) };
}

it('keys flat and envelope bodies by their user, in arrival order; bad ones are dead-lettered at once', () => {
  const { router, out } = setup();
  router.push(message('quota.updated', { userId: 'u1' }), 'a');
  router.push(
    message('device.status.changed', {
      eventId: 'e2',
      eventType: 'device.status.changed',
      payload: { userId: 'u2', deviceId: 'd2', newStatus: 'running' },
    }),
    'b',
  );
  router.push(message('quota.updated', '{not json'), 'c');
  router.push(message('quota.updated', { quotaId: 'q' }), 'd');
  router.push(message('something.else', { userId: 'u1' }), 'e');
  expect(out).toEqual([
    { tag: 'a', decision: { action: 'partition', key: 'u1' } },
    { tag: 'b', decision: { action: 'partition', key: 'u2' } },
    { tag: 'c', decision: { action: 'dead-letter', reason: 'not JSON' } },
    { tag: 'd', decision: { action: 'dead-letter', reason: 'missing userId' } },
    { tag: 'e', decision: { action: 'ignore' } },
  ]);
});

it("gives a device-only event the owner learned from the device's earlier events, without a lookup", () => {
  const readModel = new HeldReadModel();
  const { router, out } = setup(readModel);
  router.push(message('device.created', { userId: 'alice', deviceId: 'd1' }), 'created');
  router.push(message('app.install.completed', { deviceId: 'd1', appId: 'a1', installationId: 'i1' }), 'installed');
  expect(out.map((o) => o.decision)).toEqual([
    { action: 'partition', key: 'alice' },
    { action: 'partition', key: 'alice' },
  ]);
  expect(readModel.lookups).toHaveLength(0);
});

it('holds the messages behind a read-model lookup, so nothing overtakes the device-only event', async () => {
  const readModel = new HeldReadModel();
  const { router, tags, out } = setup(readModel);
  router.push(message('device.started', { deviceId: 'd9' }), 'device-only');
  router.push(message('quota.updated', { userId: 'bob' }), 'after');
  expect(tags()).toEqual([]);
  readModel.lookups[0]!.answer.resolve('bob');
  await waitFor(() => out.length === 2, 'both forwarded');
  expect(tags()).toEqual(['device-only', 'after']);
  expect(out[0]!.decision).toEqual({ action: 'partition', key: 'bob' });
});

it('lets an owner-less message wait aside, and releases it before the event that teaches its owner', async () => {
  const readModel = new HeldReadModel();
  const { router, tags, out } = setup(readModel, 100);
  router.push(message('device.stopped', { deviceId: 'd5' }), 'waits');
  readModel.lookups[0]!.answer.resolve(undefined);
  await waitFor(() => router.counters.waited === 1, 'the message to step aside');
  router.push(message('quota.updated', { userId: 'carol' }), 'flows');
  router.push(message('device.stopped', { deviceId: 'd5' }), 'waits too');
  expect(tags()).toEqual(['flows']);
  router.push(message('device.created', { userId: 'dave', deviceId: 'd5' }), 'teacher');
  expect(tags()).toEqual(['flows', 'waits', 'waits too', 'teacher']);
  expect(out.slice(1).map((o) => o.decision)).toEqual([
    { action: 'partition', key: 'dave' },
    { action: 'partition', key: 'dave' },
    { action: 'partition', key: 'dave' },
  ]);
  router.close();
});

it('dead-letters as unknown owner once the read model never knew the device', async () => {
  const { router, out } = setup({ ownerOfDevice: async () => undefined, apply: async (event) => event }, 3);
  router.push(message('device.error', { deviceId: 'ghost' }), 'ghost');
  router.push(message('quota.updated', { userId: 'erin' }), 'next');
  await waitFor(() => out.length === 2, 'both settled');
  expect(out).toEqual([
    { tag: 'next', decision: { action: 'partition', key: 'erin' } },
    { tag: 'ghost', decision: { action: 'dead-letter', reason: 'unknown owner' } },
  ]);
});
