/**
 * Every routing key of docs/event-catalogue.md, flat and in the envelope, from RabbitMQ through the bridge
 * and Redis to a graphql-ws subscriber: the exact normalized event each one becomes, and what is
 * dead-lettered instead. Also proves that what crosses Redis carries no field outside the types.
 */
import Redis from 'ioredis';
import { AppInstalledDocument, DeviceStatusChangedDocument, OrderCompletedDocument, QuotaChangedDocument } from '../generated/graphql';
import { openPlatformPeer, type PlatformPeer } from '../helpers/amqp';
import { disposeClients, subscribe, token, wsClient, type Subscription } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { createTestDatabase, TEST_REDIS_URL, uniqueId, type TestDatabase } from '../helpers/services';
import { waitFor } from '../helpers/wait';

let database: TestDatabase;
let gateway: TestGateway;
let peer: PlatformPeer;
let tap: Redis;
const crossedRedis: string[] = [];
const user = uniqueId('cat');
type Family = 'quota' | 'device' | 'order' | 'app';
const subs = {} as Record<Family, Subscription<Record<string, unknown>>>;

beforeAll(async () => {
  database = await createTestDatabase();
  gateway = await startGateway(realServicesEnv(database.url));
  peer = await openPlatformPeer();
  // A raw Redis subscriber on this run's prefix: what every instance would receive.
  tap = new Redis(TEST_REDIS_URL);
  tap.on('pmessage', (_pattern: string, _channel: string, message: string) => crossedRedis.push(message));
  await tap.psubscribe(`${gateway.config.redis.topicPrefix}*`);
  const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(user)}` }).client;
  subs.quota = subscribe(client, QuotaChangedDocument, {});
  subs.device = subscribe(client, DeviceStatusChangedDocument, {});
  subs.order = subscribe(client, OrderCompletedDocument, {});
  subs.app = subscribe(client, AppInstalledDocument, {});
  for (const field of ['quotaChanged', 'deviceStatusChanged', 'orderCompleted', 'appInstalled']) {
    await waitForSubscriptions(gateway, 1, field);
  }
});

afterAll(async () => {
  await disposeClients();
  await stopGateways();
  await peer?.close();
  tap?.disconnect();
  await database?.drop();
});

const FIELD: Record<Family, string> = {
  quota: 'quotaChanged',
  device: 'deviceStatusChanged',
  order: 'orderCompleted',
  app: 'appInstalled',
};

/** Every selected field of each event type, null unless the case says otherwise. */
const NULLS: Record<Family, Record<string, null>> = {
  quota: { quotaId: null, limits: null, usage: null, usagePercent: null, severity: null, status: null, validUntil: null },
  device: { deviceName: null, previousStatus: null, reason: null, providerType: null },
  order: { amount: null, deviceId: null, planId: null },
  app: { installationId: null, appId: null, packageName: null, versionName: null },
};

const T0 = '2026-11-20T08:00:00.000Z';
const T1 = '2026-11-20T09:30:00.000Z';

/** [routing key, family, platform payload, the event's domain fields the subscriber must get] */
type Case = [string, Family, Record<string, unknown>, Record<string, unknown>];
const CASES: Case[] = [
  [
    'quota.updated',
    'quota',
    { quotaId: 'q1', limits: { maxDevices: 5 }, status: 'active' },
    { kind: 'UPDATED', quotaId: 'q1', limits: expect.objectContaining({ maxDevices: 5, totalCpuCores: null }), status: 'ACTIVE' },
  ],
  ['quota.alert', 'quota', { usagePercent: 91, severity: 'warning' }, { kind: 'ALERT', usagePercent: 91, severity: 'warning' }],
  ['quota.exceeded', 'quota', { percentage: { devices: 80, cpu: 104.5 } }, { kind: 'EXCEEDED', usagePercent: 104.5 }],
  ['quota.renewed', 'quota', { validUntil: '2026-12-31T00:00:00Z' }, { kind: 'RENEWED', validUntil: '2026-12-31T00:00:00.000Z' }],
  [
    'quota.deducted',
    'quota',
    { usage: { usedCpuCores: 4, usedMemoryGB: 7.5 } },
    { kind: 'DEDUCTED', usage: expect.objectContaining({ usedCpuCores: 4, usedMemoryGB: 7.5, currentDevices: null }) },
  ],
  [
    'quota.restored',
    'quota',
    { usage: { currentDevices: 1 } },
    { kind: 'RESTORED', usage: expect.objectContaining({ currentDevices: 1 }) },
  ],
  ['quota.deleted', 'quota', { quotaId: 'q1' }, { kind: 'DELETED', quotaId: 'q1' }],
  [
    'device.created',
    'device',
    { deviceId: 'd1', deviceName: 'Phone 1', providerType: 'redroid' },
    { deviceId: 'd1', deviceName: 'Phone 1', providerType: 'redroid', status: 'CREATING' },
  ],
  [
    'device.started',
    'device',
    { deviceId: 'd1', previousStatus: 'stopped' },
    { deviceId: 'd1', previousStatus: 'STOPPED', status: 'RUNNING' },
  ],
  ['device.stopped', 'device', { deviceId: 'd1' }, { deviceId: 'd1', status: 'STOPPED' }],
  ['device.deleted', 'device', { deviceId: 'd1' }, { deviceId: 'd1', status: 'DELETED' }],
  ['device.error', 'device', { deviceId: 'd1', reason: 'adb unreachable' }, { deviceId: 'd1', status: 'ERROR', reason: 'adb unreachable' }],
  ['device.recovered', 'device', { deviceId: 'd1', oldStatus: 'error' }, { deviceId: 'd1', previousStatus: 'ERROR', status: 'RUNNING' }],
  [
    'device.status.changed',
    'device',
    { deviceId: 'd1', oldStatus: 'running', newStatus: 'paused' },
    { deviceId: 'd1', previousStatus: 'RUNNING', status: 'PAUSED' },
  ],
  [
    'order.completed',
    'order',
    { orderId: 'o1', amount: '59.90', planId: 'p-basic' },
    { orderId: 'o1', amount: '59.90', planId: 'p-basic' },
  ],
  ['billing.order.completed', 'order', { orderId: 'o2', amount: 120, deviceId: 'd1' }, { orderId: 'o2', amount: '120', deviceId: 'd1' }],
  [
    'app.installed',
    'app',
    { deviceId: 'd1', appId: 'a1', packageName: 'com.example', versionName: '1.2.0', installationId: 'i1' },
    { deviceId: 'd1', appId: 'a1', packageName: 'com.example', versionName: '1.2.0', installationId: 'i1' },
  ],
  ['app.install.completed', 'app', { deviceId: 'd1', applicationId: 'a2' }, { deviceId: 'd1', appId: 'a2' }],
];

/** What the platform adds that must never reach a client. */
const NOISE = {
  email: 'someone@example.com',
  _trace: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
  internalCost: 3,
};

describe.each(['flat', 'envelope'] as const)('%s bodies', (shape) => {
  it.each(CASES)('%s reaches its subscription, exactly normalized', async (key, family, payload, fields) => {
    const id = uniqueId(`${key}-${shape}`);
    const body =
      shape === 'flat'
        ? { userId: user, ...payload, ...NOISE, timestamp: T0 }
        : { eventId: id, eventType: key, timestamp: T1, payload: { userId: user, ...payload, ...NOISE } };
    await peer.publish(key, body, { messageId: shape === 'flat' ? id : `amqp-${id}` });
    const result = await subs[family].next();
    expect(result.errors).toBeUndefined();
    expect(result.data?.[FIELD[family]]).toEqual({
      eventId: id,
      type: key,
      userId: user,
      occurredAt: shape === 'flat' ? T0 : T1,
      ...NULLS[family],
      ...fields,
    });
    // Nor the log positions the live message carries (logId, allLogId: the gateway's own).
    expect(JSON.stringify(result)).not.toMatch(/email|_trace|traceparent|internalCost|logId/);
  });
});

describe('eventId and occurredAt fallbacks', () => {
  it('takes the event own time field first, then the body timestamp, then the AMQP timestamp, then the time received', async () => {
    await peer.publish('device.started', { userId: user, deviceId: 'd9', startedAt: T1, timestamp: T0 }, { messageId: uniqueId('own') });
    expect((await subs.device.next()).data?.deviceStatusChanged).toMatchObject({ occurredAt: T1 });
    const amqpTime = Date.parse('2026-11-21T00:00:00.000Z');
    await peer.publish('order.completed', { userId: user, orderId: 'o9' }, { messageId: uniqueId('amqp'), timestamp: amqpTime });
    expect((await subs.order.next()).data?.orderCompleted).toMatchObject({ occurredAt: new Date(amqpTime).toISOString() });
    const before = Date.now();
    await peer.publish('app.installed', { userId: user, deviceId: 'd9', appId: 'a9' }, { messageId: uniqueId('none') });
    const received = (await subs.app.next()).data?.appInstalled as { occurredAt: string };
    expect(Date.parse(received.occurredAt)).toBeGreaterThanOrEqual(before - 1_000);
    expect(Date.parse(received.occurredAt)).toBeLessThanOrEqual(Date.now());
  });

  it('gives a message with neither envelope id nor messageId a stable id: a redelivery keeps it', async () => {
    const body = { userId: user, orderId: uniqueId('o') };
    await peer.publish('order.completed', body);
    await peer.publish('order.completed', body);
    const first = (await subs.order.next()).data?.orderCompleted as { eventId: string };
    const second = (await subs.order.next()).data?.orderCompleted as { eventId: string };
    expect(first.eventId).toMatch(/^[0-9a-f]{32}$/);
    expect(second.eventId).toBe(first.eventId);
  });
});

describe('dead letters', () => {
  it.each([
    ['app.install.completed', { deviceId: uniqueId('ghost'), appId: 'a' }, 'unknown owner'],
    ['device.error', { deviceId: uniqueId('ghost') }, 'unknown owner'],
    ['device.status.changed', { userId: 'u', deviceId: 'd', newStatus: 'warming' }, 'invalid status'],
    ['order.completed', { userId: 'u' }, 'missing orderId'],
    ['device.started', '{"userId":"u",', 'not JSON'],
  ])('%s %j is dead-lettered with the reason %j, and good events keep flowing', async (key, body, reason) => {
    const id = uniqueId('bad');
    await peer.publish(key, body, { messageId: id });
    const dead = await gateway_dlq(id);
    expect(dead.properties.headers?.['x-rejection-reason']).toBe(reason);
    expect(dead.properties.headers?.['x-original-routing-key']).toBe(key);
    const good = uniqueId('good');
    await peer.publish('order.completed', { userId: user, orderId: good }, { messageId: good });
    expect((await subs.order.next()).data?.orderCompleted).toMatchObject({ eventId: good });
  });
});

function gateway_dlq(messageId: string) {
  return peer.take(gateway.config.amqp.deadLetterQueue, (m) => m.properties.messageId === messageId, `dead letter ${messageId}`);
}

// Checked last (jest runs a file's tests in order), over every event the tests above published.
it('the retained log (resuming with after) holds what was published, nothing more', async () => {
  const redis = new Redis(TEST_REDIS_URL);
  try {
    const log = await redis.xrange(`${gateway.config.redis.topicPrefix}log:all`, '-', '+');
    expect(log.length).toBeGreaterThanOrEqual(CASES.length * 2);
    for (const [, fields] of log) expect(fields.join(' ')).not.toMatch(/email|_trace|traceparent|internalCost|logId/);
  } finally {
    redis.disconnect();
  }
});

it('what crossed Redis is exactly what the every-user log holds, with no field outside the types', async () => {
  // Each live message starts with its two positions in the retained logs (resuming with `after`),
  // the only fields besides the event's own; clients never see them (checked per case above).
  const redis = new Redis(TEST_REDIS_URL);
  try {
    const logged = (await redis.xrange(`${gateway.config.redis.topicPrefix}log:all`, '-', '+')).map(([id]) => id);
    // The tap is another connection: its last messages may still be on the way.
    await waitFor(() => crossedRedis.length >= logged.length, `${logged.length} messages on the tap`);
    for (const message of crossedRedis) {
      expect(message).not.toMatch(/email|_trace|traceparent|internalCost/);
      expect(message).toMatch(/^\{"logId":"\d+-\d+","allLogId":"\d+-\d+",/);
    }
    expect(crossedRedis.map((message) => (JSON.parse(message) as { allLogId: string }).allLogId)).toEqual(logged);
  } finally {
    redis.disconnect();
  }
});
