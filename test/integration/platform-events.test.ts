/**
 * CONTRACT §7 end to end on the real services, across two gateway instances sharing one queue,
 * topic prefix and database: every routing key of the table with a body shaped as the platform
 * publishes it (flat with `type` and `timestamp`, or the envelope `{ eventId, eventType, version,
 * timestamp, source, payload }`; numbers where the gateway emits decimal strings; statuses in
 * lower case; `_trace` in the body), the owner lookup of device-only events, the `app.updated`
 * fan-out to every user with the app installed, and what must never reach a client (a stack
 * trace, an e-mail, a `_trace`). Published on RabbitMQ, consumed by either instance, received
 * by a graphql-ws client on the other.
 */
import Redis from 'ioredis';
import {
  AppInstallationChangedDocument,
  AppInstalledDocument,
  BillingChangedDocument,
  DeviceFailoverDocument,
  DeviceFailoverStateDocument,
  DeviceNoticeDocument,
  InstallationsWithErrorDocument,
  NotificationsDocument,
  OrderCompletedDocument,
  OrderHistoryDocument,
  OrderStatusChangedDocument,
  SystemEventsDocument,
} from '../generated/graphql';
import { disposeClients, http, subscribe, token, wsClient, type Subscription } from '../helpers/clients';
import { realServicesEnv, startGateway, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { TEST_REDIS_URL, uniqueId } from '../helpers/services';
import { gatewaySuite } from '../helpers/suite';

const suite = gatewaySuite();
let second: TestGateway;
let tap: Redis;
const crossedRedis: { channel: string; message: string }[] = [];

const alice = uniqueId('alice');
const admin = uniqueId('admin');
const device = uniqueId('dev');
const T0 = '2026-12-01T08:00:00.000Z';
const TRACE = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', baggage: 'secret=1' };
const STACK =
  'Error: connection refused\n    at Object.connect (/srv/billing/db.js:12:5)\n    at process.processTicksAndRejections (node:internal)';

type Field =
  | 'orderStatusChanged'
  | 'orderCompleted'
  | 'billingChanged'
  | 'appInstallationChanged'
  | 'appInstalled'
  | 'deviceStatusChanged'
  | 'deviceNotice'
  | 'notifications'
  | 'systemEvents';
type AnySub = Subscription<Record<string, unknown>>;
const subs = {} as Record<Field, AnySub>;

/** The same environment as the suite's gateway: another instance of the same deployment. */
function sameDeployment(gateway: TestGateway): Record<string, string> {
  const { config } = gateway;
  if (config.amqp.kind !== 'amqp' || config.redis.kind !== 'redis' || config.database.kind !== 'postgres') {
    throw new Error('the suite gateway runs on the real services');
  }
  return {
    AMQP_EXCHANGE: config.amqp.exchange,
    AMQP_QUEUE: config.amqp.queue,
    AMQP_DLQ: config.amqp.deadLetterQueue,
    AMQP_DLX: config.amqp.deadLetterExchange,
    REDIS_TOPIC_PREFIX: config.redis.topicPrefix,
  };
}

beforeAll(async () => {
  second = await startGateway(realServicesEnv(suite.database.url, sameDeployment(suite.gateway)));
  tap = new Redis(TEST_REDIS_URL);
  tap.on('pmessage', (_pattern: string, channel: string, message: string) => crossedRedis.push({ channel, message }));
  await tap.psubscribe(`${suite.gateway.config.redis.topicPrefix}*`);
  // The subscribers on the second instance; the queue's consumer may be either.
  const user = wsClient(second.wsUrl, { authorization: `Bearer ${token(alice)}` }).client;
  const root = wsClient(second.wsUrl, { authorization: `Bearer ${token(admin, { roles: ['admin'] })}` }).client;
  const as = <T>(s: Subscription<T>) => s as unknown as AnySub;
  subs.orderStatusChanged = as(subscribe(user, OrderStatusChangedDocument, {}));
  subs.orderCompleted = as(subscribe(user, OrderCompletedDocument, {}));
  subs.billingChanged = as(subscribe(user, BillingChangedDocument, {}));
  subs.appInstallationChanged = as(subscribe(user, AppInstallationChangedDocument, {}));
  subs.appInstalled = as(subscribe(user, AppInstalledDocument, {}));
  subs.deviceStatusChanged = as(subscribe(user, DeviceFailoverDocument, {}));
  subs.deviceNotice = as(subscribe(user, DeviceNoticeDocument, {}));
  subs.notifications = as(subscribe(user, NotificationsDocument, {}));
  subs.systemEvents = as(subscribe(root, SystemEventsDocument, {}));
  for (const field of Object.keys(subs)) await waitForSubscriptions(second, 1, field);
  // The device the owner lookups resolve: known to the read model from its first event.
  await suite.peer.publish('device.created', {
    userId: alice,
    deviceId: device,
    deviceName: 'phone',
    status: 'idle',
    type: 'device.created',
    timestamp: T0,
  });
  expect((await subs.deviceStatusChanged.next()).data?.deviceStatusChanged).toMatchObject({
    deviceId: device,
    status: 'IDLE',
    userId: alice,
  });
});

afterAll(async () => {
  await disposeClients();
  tap?.disconnect();
});

/** A flat body as the platform's services publish it. */
const flat = (type: string, fields: Record<string, unknown>) => ({ ...fields, type, timestamp: T0, _trace: TRACE });
/** The envelope as the platform's event bus library publishes it. */
const envelope = (eventType: string, fields: Record<string, unknown>) => ({
  eventId: uniqueId('env'),
  eventType,
  version: '1.0',
  timestamp: T0,
  source: 'platform-service',
  payload: { ...fields, _trace: TRACE },
});

/** [routing key, body, what each subscription it feeds receives] */
type Case = [string, Record<string, unknown>, Partial<Record<Field, Record<string, unknown>>>];
const withUser = (fields: Record<string, unknown>) => ({ userId: alice, ...fields });

const ORDER_KEYS: [string, string][] = [
  ['paid', 'PAID'],
  ['completed', 'COMPLETED'],
  ['cancelled', 'CANCELLED'],
  ['refunded', 'REFUNDED'],
  ['failed', 'FAILED'],
];
const orderCases: Case[] = ORDER_KEYS.flatMap(([action, status], i): Case[] =>
  ['order', 'billing.order'].map((prefix, j): Case => {
    const key = `${prefix}.${action}`;
    const orderId = `ord-${i}-${j}`;
    const body = withUser({
      orderId,
      amount: j === 0 ? '59.90' : 59.9,
      status: action,
      oldStatus: 'pending',
      reason: action === 'failed' ? 'card declined' : undefined,
      planId: 'plan-pro',
    });
    const expected: Case[2] = {
      orderStatusChanged: {
        type: key,
        orderId,
        status,
        previousStatus: 'PENDING',
        amount: j === 0 ? '59.90' : '59.9',
        planId: 'plan-pro',
        reason: action === 'failed' ? 'card declined' : null,
      },
    };
    if (action === 'completed') expected.orderCompleted = { type: key, orderId, amount: j === 0 ? '59.90' : '59.9', planId: 'plan-pro' };
    return [key, j === 0 ? flat(key, body) : envelope(key, body), expected];
  }),
);

const billingCases: Case[] = [
  [
    'billing.payment_success',
    flat('payment_success', withUser({ paymentId: 'pay-1', orderId: 'ord-9', amount: 100, newBalance: '250.50', paymentMethod: 'wechat' })),
    {
      billingChanged: {
        kind: 'PAYMENT_SUCCEEDED',
        paymentId: 'pay-1',
        orderId: 'ord-9',
        amount: '100',
        balance: '250.50',
        paymentMethod: 'wechat',
      },
    },
  ],
  [
    'billing.payment_failed',
    envelope(
      'billing.payment_failed',
      withUser({ paymentId: 'pay-2', amount: '30.00', reason: 'insufficient funds', email: 'alice@example.com' }),
    ),
    { billingChanged: { kind: 'PAYMENT_FAILED', paymentId: 'pay-2', amount: '30.00', reason: 'insufficient funds' } },
  ],
  [
    'billing.refund_completed',
    flat('refund_completed', withUser({ paymentId: 'pay-1', amount: '19.99', currentBalance: 270.49 })),
    { billingChanged: { kind: 'REFUND_COMPLETED', amount: '19.99', balance: '270.49' } },
  ],
  [
    'billing.invoice_generated',
    envelope('billing.invoice_generated', withUser({ invoiceId: 'inv-7', amount: '59.90', orderId: 'ord-9' })),
    { billingChanged: { kind: 'INVOICE_GENERATED', invoiceId: 'inv-7', amount: '59.90' } },
  ],
  [
    'billing.low_balance',
    flat('low_balance', withUser({ currentBalance: '4.20', threshold: 10 })),
    { billingChanged: { kind: 'LOW_BALANCE', balance: '4.20', threshold: '10' } },
  ],
  [
    'billing.balance_low',
    envelope('billing.balance_low', withUser({ currentBalance: 3.5, threshold: '10.00' })),
    { billingChanged: { kind: 'LOW_BALANCE', balance: '3.5', threshold: '10.00' } },
  ],
  [
    'billing.overdue',
    flat('overdue', withUser({ overdueAmount: '88.00', overdueDays: 15, currentBalance: '-88.00' })),
    { billingChanged: { kind: 'OVERDUE', overdueAmount: '88.00', overdueDays: 15, balance: '-88.00' } },
  ],
  [
    'billing.recharged',
    envelope('billing.recharged', withUser({ amount: '200.00', newBalance: '112.00', paymentMethod: 'alipay' })),
    { billingChanged: { kind: 'RECHARGED', amount: '200.00', balance: '112.00', paymentMethod: 'alipay' } },
  ],
];

// Device-only bodies (no userId): the owner comes from the read model.
const installationCases: Case[] = [
  [
    'app.install.requested',
    flat('app.install.requested', {
      deviceId: device,
      installationId: 'inst-1',
      applicationId: 'app-maps',
      packageName: 'com.example.maps',
    }),
    { appInstallationChanged: { status: 'REQUESTED', installationId: 'inst-1', appId: 'app-maps', deviceId: device, userId: alice } },
  ],
  [
    'app.install.installed',
    envelope('app.install.installed', { deviceId: device, installationId: 'inst-1', appId: 'app-maps', versionName: '1.0.0' }),
    {
      appInstallationChanged: { status: 'INSTALLED', installationId: 'inst-1' },
      appInstalled: { installationId: 'inst-1', appId: 'app-maps' },
    },
  ],
  [
    'app.installed',
    flat('app.installed', withUser({ deviceId: device, installationId: 'inst-2', appId: 'app-chat', packageName: 'com.example.chat' })),
    {
      appInstallationChanged: { status: 'INSTALLED', installationId: 'inst-2' },
      appInstalled: { installationId: 'inst-2', packageName: 'com.example.chat' },
    },
  ],
  [
    'app.install.completed',
    envelope('app.install.completed', { deviceId: device, installationId: 'inst-3', appId: 'app-mail' }),
    { appInstallationChanged: { status: 'INSTALLED', installationId: 'inst-3' }, appInstalled: { installationId: 'inst-3' } },
  ],
  [
    'app.install.failed',
    flat('app.install.failed', {
      deviceId: device,
      installationId: 'inst-4',
      appId: 'app-game',
      error: 'INSTALL_FAILED_INSUFFICIENT_STORAGE',
      stackTrace: STACK,
    }),
    { appInstallationChanged: { status: 'FAILED', installationId: 'inst-4', error: 'INSTALL_FAILED_INSUFFICIENT_STORAGE' } },
  ],
  [
    'app.install_failed',
    envelope('app.install_failed', { deviceId: device, installationId: 'inst-5', appId: 'app-bank', errorMessage: 'signature mismatch' }),
    { appInstallationChanged: { status: 'FAILED', installationId: 'inst-5', error: 'signature mismatch' } },
  ],
  [
    'app.uninstall.requested',
    flat('app.uninstall.requested', { deviceId: device, installationId: 'inst-3', appId: 'app-mail' }),
    { appInstallationChanged: { status: 'UNINSTALLING', installationId: 'inst-3' } },
  ],
  [
    'app.uninstall.completed',
    envelope('app.uninstall.completed', { deviceId: device, installationId: 'inst-3', appId: 'app-mail', status: 'success' }),
    { appInstallationChanged: { status: 'UNINSTALLED', installationId: 'inst-3' } },
  ],
  [
    'app.uninstall.completed',
    flat('app.uninstall.completed', {
      deviceId: device,
      installationId: 'inst-2',
      appId: 'app-chat',
      status: 'FAILED',
      error: 'device busy',
    }),
    { appInstallationChanged: { status: 'FAILED', installationId: 'inst-2', error: 'device busy' } },
  ],
  [
    'app.install.uninstalled',
    envelope('app.install.uninstalled', { deviceId: device, installationId: 'inst-5', appId: 'app-bank' }),
    { appInstallationChanged: { status: 'UNINSTALLED', installationId: 'inst-5' } },
  ],
  [
    'app.uninstalled',
    flat('app.uninstalled', withUser({ deviceId: device, installationId: 'inst-4', appId: 'app-game' })),
    { appInstallationChanged: { status: 'UNINSTALLED', installationId: 'inst-4' } },
  ],
];

const deviceCases: Case[] = [
  ['device.allocated', flat('device.allocated', { deviceId: device, userId: alice }), { deviceStatusChanged: { status: 'ALLOCATED' } }],
  ['device.released', envelope('device.released', { deviceId: device }), { deviceStatusChanged: { status: 'IDLE' } }],
  [
    'device.recovery_failed',
    flat('device.recovery_failed', {
      deviceId: device,
      failureType: 'adb_timeout',
      recoveryStrategy: 'restart',
      attempts: '3',
      error: 'still down',
    }),
    {
      deviceStatusChanged: { status: 'ERROR', failureType: 'adb_timeout', recoveryStrategy: 'restart', attempts: 3, reason: 'still down' },
    },
  ],
  [
    'device.recovery_success',
    envelope('device.recovery_success', { deviceId: device, failureType: 'adb_timeout', recoveryStrategy: 'recreate', attempts: 4 }),
    { deviceStatusChanged: { status: 'RUNNING', recoveryStrategy: 'recreate', attempts: 4, reason: null } },
  ],
  [
    'device.permanent_failure',
    flat('device.permanent_failure', {
      deviceId: device,
      failureType: 'host_lost',
      attempts: 5,
      errorMessage: `host gone\n    at Recovery.run (/srv/failover.js:1:1)`,
    }),
    { deviceStatusChanged: { status: 'ERROR', failureType: 'host_lost', attempts: 5, reason: 'host gone' } },
  ],
  [
    'device.deletion_failed',
    envelope('device.deletion_failed', { deviceId: device, reason: 'volume busy' }),
    { deviceStatusChanged: { status: 'ERROR', reason: 'volume busy' } },
  ],
  [
    'device.expired',
    flat('device.expired', { deviceId: device, reason: 'plan ended' }),
    { deviceStatusChanged: { status: 'STOPPED', reason: 'plan ended' } },
  ],
  ['device.cleaned', envelope('device.cleaned', { deviceId: device, deleted: false }), { deviceStatusChanged: { status: 'STOPPED' } }],
];

const noticeCases: Case[] = [
  [
    'device.expiration_warning',
    flat('device.expiration_warning', { deviceId: device, expiresAt: '2026-12-08T00:00:00Z', daysRemaining: 7 }),
    {
      deviceNotice: {
        kind: 'EXPIRATION_WARNING',
        expiresAt: '2026-12-08T00:00:00.000Z',
        daysRemaining: 7,
        deviceId: device,
        userId: alice,
      },
    },
  ],
  [
    'device.backup_created',
    envelope('device.backup_created', { deviceId: device, snapshotId: 'snap-1', snapshotName: 'nightly' }),
    { deviceNotice: { kind: 'BACKUP_CREATED', snapshotId: 'snap-1', snapshotName: 'nightly' } },
  ],
  [
    'device.connection.connected',
    flat('device.connection.connected', { deviceId: device, userId: alice }),
    { deviceNotice: { kind: 'CONNECTED' } },
  ],
  [
    'device.connection.disconnected',
    envelope('device.connection.disconnected', { deviceId: device, reason: 'client closed' }),
    { deviceNotice: { kind: 'DISCONNECTED', message: 'client closed' } },
  ],
  [
    'device.connection.failed',
    flat('device.connection.failed', { deviceId: device, retryCount: 2, error: 'ICE failed' }),
    { deviceNotice: { kind: 'CONNECTION_FAILED', retryCount: 2, message: 'ICE failed' } },
  ],
  [
    'device.connection.reconnecting',
    envelope('device.connection.reconnecting', { deviceId: device, attempt: 3 }),
    { deviceNotice: { kind: 'RECONNECTING', retryCount: 3 } },
  ],
];

const notificationCases: Case[] = [
  [
    'notification.send',
    flat(
      'notification.send',
      withUser({
        title: 'Order paid',
        message: 'Thanks, alice@example.com',
        priority: 'high',
        category: 'billing',
        data: { orderId: 'ord-1', email: 'alice@example.com', _trace: TRACE, nested: { stackTrace: STACK, ok: 1 } },
      }),
    ),
    {
      notifications: {
        scope: 'USER',
        severity: 'CRITICAL',
        category: 'billing',
        title: 'Order paid',
        message: 'Thanks, [redacted]',
        data: { orderId: 'ord-1', nested: { ok: 1 } },
        userId: alice,
      },
    },
  ],
  [
    'notification.send',
    envelope('notification.send', withUser({ title: 'Welcome', content: 'Hello', severity: 'info' })),
    { notifications: { scope: 'USER', severity: 'INFO', title: 'Welcome', message: 'Hello', data: null } },
  ],
];

const systemCases: Case[] = [
  [
    'system.error.critical',
    flat('system.error.critical', {
      serviceName: 'billing-service',
      errorCode: 'DB_DOWN',
      message: `connection refused\n    at Object.connect (/srv/billing/db.js:12:5)`,
      stackTrace: STACK,
      error: { stack: STACK },
      contactEmail: 'ops@example.com',
      host: 'billing-1',
    }),
    {
      systemEvents: {
        kind: 'ERROR',
        severity: 'CRITICAL',
        serviceName: 'billing-service',
        errorCode: 'DB_DOWN',
        message: 'connection refused',
        data: { host: 'billing-1', error: {} },
        userId: null,
      },
    },
  ],
  [
    'system.error.high',
    envelope('system.error.high', { serviceName: 'device-service', errorCode: 'ADB', message: 'adb lost' }),
    { systemEvents: { kind: 'ERROR', severity: 'HIGH', serviceName: 'device-service' } },
  ],
  [
    'system.error.medium',
    flat('system.error.medium', { service: 'app-service', code: 'SLOW', message: 'slow' }),
    { systemEvents: { kind: 'ERROR', severity: 'MEDIUM', serviceName: 'app-service', errorCode: 'SLOW' } },
  ],
  [
    'system.error.low',
    envelope('system.error.low', { serviceName: 'notify', message: 'retry' }),
    { systemEvents: { kind: 'ERROR', severity: 'LOW' } },
  ],
  [
    'device.backup_completed',
    flat('device.backup_completed', { totalDevices: 12, succeeded: 11, failed: 1, durationMs: 5400 }),
    { systemEvents: { kind: 'BACKUP_REPORT', data: { totalDevices: 12, succeeded: 11, failed: 1, durationMs: 5400 } } },
  ],
  [
    'device.backup_cleanup_completed',
    envelope('device.backup_cleanup_completed', { deletedSnapshots: 40, freedGB: 120.5 }),
    { systemEvents: { kind: 'BACKUP_CLEANUP', data: { deletedSnapshots: 40, freedGB: 120.5 } } },
  ],
  [
    'quota.metrics',
    flat('quota.metrics', { totalUsers: 300, overQuota: 4 }),
    { systemEvents: { kind: 'QUOTA_METRICS', data: { totalUsers: 300, overQuota: 4 } } },
  ],
  [
    'billing.usage_report_failed',
    envelope('billing.usage_report_failed', { serviceName: 'billing-service', errorCode: 'REPORT', message: 'S3 down', stackTrace: STACK }),
    { systemEvents: { kind: 'USAGE_REPORT_FAILED', errorCode: 'REPORT', message: 'S3 down', data: null } },
  ],
];

const CASES: Case[] = [
  ...orderCases,
  ...billingCases,
  ...installationCases,
  ...deviceCases,
  ...noticeCases,
  ...notificationCases,
  ...systemCases,
];

describe('every routing key of CONTRACT §7, flat and envelope, across two instances', () => {
  it.each(CASES.map((c, i) => [c[0], i, c] as const))(
    '%s (case %i) reaches its subscription(s) as mapped',
    async (key, i, [, sent, expected]) => {
      const messageId = uniqueId('m');
      // Each a second after the one before, as the platform would send them: the read model orders
      // one entity's events by time (equal times by eventId).
      const at = new Date(Date.parse(T0) + (i + 1) * 1_000).toISOString();
      const body = { ...sent, timestamp: at };
      await suite.peer.publish(key, body, { messageId });
      const eventId = 'eventId' in body ? body.eventId : messageId;
      for (const [field, fields] of Object.entries(expected) as [Field, Record<string, unknown>][]) {
        const result = await subs[field].next();
        expect(result.errors).toBeUndefined();
        const event = result.data?.[field] as Record<string, unknown>;
        expect(event).toMatchObject({ eventId, type: key, occurredAt: at, ...fields });
        const wire = JSON.stringify(event);
        expect(wire).not.toMatch(/traceparent|baggage|_trace|@example\.com|stackTrace|processTicksAndRejections|\n\s+at /);
      }
    },
  );

  it('covers every §7 routing key of the table', () => {
    const covered = new Set(CASES.map(([key]) => key));
    const table = [
      ...ORDER_KEYS.flatMap(([a]) => [`order.${a}`, `billing.order.${a}`]),
      'billing.payment_success',
      'billing.payment_failed',
      'billing.refund_completed',
      'billing.invoice_generated',
      'billing.low_balance',
      'billing.balance_low',
      'billing.overdue',
      'billing.recharged',
      'app.install.requested',
      'app.installed',
      'app.install.installed',
      'app.install.completed',
      'app.install.failed',
      'app.install_failed',
      'app.uninstall.requested',
      'app.uninstall.completed',
      'app.install.uninstalled',
      'app.uninstalled',
      'device.allocated',
      'device.released',
      'device.recovery_success',
      'device.recovery_failed',
      'device.permanent_failure',
      'device.cleaned',
      'device.expired',
      'device.deletion_failed',
      'device.expiration_warning',
      'device.backup_created',
      'device.connection.connected',
      'device.connection.disconnected',
      'device.connection.failed',
      'device.connection.reconnecting',
      'notification.send',
      'system.error.critical',
      'system.error.high',
      'system.error.medium',
      'system.error.low',
      'device.backup_completed',
      'device.backup_cleanup_completed',
      'quota.metrics',
      'billing.usage_report_failed',
    ];
    // app.updated has its own test below (its fan-out needs several users).
    expect(table.filter((key) => !covered.has(key))).toEqual([]);
  });

  it('device.cleaned with deleted: true means DELETED, and the row stays for later owner lookups', async () => {
    const gone = uniqueId('gone');
    await suite.peer.publish('device.created', flat('device.created', { userId: alice, deviceId: gone }));
    expect((await subs.deviceStatusChanged.next()).data?.deviceStatusChanged).toMatchObject({ deviceId: gone, status: 'CREATING' });
    await suite.peer.publish('device.cleaned', envelope('device.cleaned', { deviceId: gone, deleted: true }));
    expect((await subs.deviceStatusChanged.next()).data?.deviceStatusChanged).toMatchObject({
      deviceId: gone,
      status: 'DELETED',
      userId: alice,
    });
    await suite.peer.publish('device.backup_created', flat('device.backup_created', { deviceId: gone, snapshotId: 'last' }));
    expect((await subs.deviceNotice.next()).data?.deviceNotice).toMatchObject({ deviceId: gone, userId: alice, snapshotId: 'last' });
  });
});

describe('the read model after the events', () => {
  it("an order's status and its history are queryable", async () => {
    const orderId = uniqueId('hist');
    const steps: [string, string, Record<string, unknown>][] = [
      ['order.paid', '2026-12-01T09:00:00.000Z', { amount: '59.90' }],
      ['billing.order.completed', '2026-12-01T09:01:00.000Z', {}],
      ['order.refunded', '2026-12-01T10:00:00.000Z', { reason: 'customer asked' }],
    ];
    for (const [key, at, extra] of steps) {
      await suite.peer.publish(key, { userId: alice, orderId, status: key.split('.').pop(), timestamp: at, ...extra });
      expect((await subs.orderStatusChanged.next()).data?.orderStatusChanged).toMatchObject({ orderId, occurredAt: at });
      if (key.endsWith('completed')) await subs.orderCompleted.next();
    }
    const read = await http(suite.gateway.httpUrl, OrderHistoryDocument, { token: token(alice), variables: { id: orderId } });
    expect(read.body.errors).toBeUndefined();
    expect(read.body.data?.order).toMatchObject({
      status: 'REFUNDED',
      statusReason: 'customer asked',
      amount: '59.90',
      completedAt: '2026-12-01T09:01:00.000Z',
      statusHistory: [
        { status: 'PAID', reason: null, occurredAt: '2026-12-01T09:00:00.000Z' },
        { status: 'COMPLETED', occurredAt: '2026-12-01T09:01:00.000Z' },
        { status: 'REFUNDED', reason: 'customer asked', occurredAt: '2026-12-01T10:00:00.000Z' },
      ],
    });
    // Another user's order answers as a missing one.
    const other = await http(suite.gateway.httpUrl, OrderHistoryDocument, { token: token(uniqueId('eve')), variables: { id: orderId } });
    expect(other.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });

  it('installations keep their lifecycle status and error; the device its failover fields', async () => {
    const apps = await http(suite.gateway.httpUrl, InstallationsWithErrorDocument, {
      token: token(alice),
      variables: { deviceId: device },
    });
    expect(apps.body.errors).toBeUndefined();
    const byId = Object.fromEntries((apps.body.data?.appInstallations ?? []).map((row) => [row.id, row]));
    expect(byId['inst-1']).toMatchObject({ status: 'INSTALLED', appId: 'app-maps', versionName: '1.0.0', error: null });
    // inst-2's uninstall failed: it is still there, FAILED with the platform's error.
    expect(byId['inst-2']).toMatchObject({ status: 'FAILED', error: 'device busy' });
    const rows = await suite.sql.query('SELECT id, status, error FROM app_installation WHERE device_id = $1 ORDER BY id', [device]);
    expect(rows).toEqual(
      expect.arrayContaining([
        { id: 'inst-3', status: 'UNINSTALLED', error: null },
        { id: 'inst-4', status: 'UNINSTALLED', error: null },
        { id: 'inst-5', status: 'UNINSTALLED', error: null },
      ]),
    );
    const state = await http(suite.gateway.httpUrl, DeviceFailoverStateDocument, { token: token(alice), variables: { id: device } });
    expect(state.body.data?.device).toMatchObject({ status: 'STOPPED' });
    const [failover] = await suite.sql.query('SELECT failure_type, recovery_attempts FROM device WHERE id = $1', [device]);
    // The last status (device.cleaned) carried no failover details: they belong to the status they came with.
    expect(failover).toEqual({ failure_type: null, recovery_attempts: null });
  });
});

describe('resuming a subscription whose keys arrive on two topics', () => {
  it('orderStatusChanged after: PAID, COMPLETED (on the orderCompleted topic) and REFUNDED replay in publish order, once, then live', async () => {
    const carol = uniqueId('carol');
    const orderId = uniqueId('ord');
    const client = wsClient(suite.gateway.wsUrl, { authorization: `Bearer ${token(carol)}` }).client;
    const live = subscribe(client, OrderStatusChangedDocument, {});
    const completed = subscribe(client, OrderCompletedDocument, {});
    await waitForSubscriptions(suite.gateway, 1, 'orderCompleted');
    const ids: string[] = [];
    for (const [key, n] of [
      ['order.paid', 1],
      ['billing.order.completed', 2],
      ['order.refunded', 3],
    ] as const) {
      const id = uniqueId(`r${n}`);
      ids.push(id);
      await suite.peer.publish(key, { userId: carol, orderId, timestamp: `2026-12-02T00:00:0${n}.000Z` }, { messageId: id });
      expect((await live.next()).data?.orderStatusChanged).toMatchObject({ eventId: id });
    }
    expect((await completed.next()).data?.orderCompleted).toMatchObject({ eventId: ids[1], orderId });
    const resumed = subscribe(client, OrderStatusChangedDocument, { after: ids[0] });
    expect((await resumed.next()).data?.orderStatusChanged).toMatchObject({ eventId: ids[1], status: 'COMPLETED' });
    expect((await resumed.next()).data?.orderStatusChanged).toMatchObject({ eventId: ids[2], status: 'REFUNDED' });
    const next = uniqueId('r4');
    await suite.peer.publish('order.completed', { userId: carol, orderId: uniqueId('o2') }, { messageId: next });
    expect((await resumed.next()).data?.orderStatusChanged).toMatchObject({ eventId: next, status: 'COMPLETED' });
    expect(resumed.pending()).toBe(0);
  });
});

describe('app.updated: a catalogue change with no user', () => {
  it('reaches every user with the app installed, one event each with its own eventId, and nobody else', async () => {
    const appId = uniqueId('app');
    const [bob, carol, dave] = [uniqueId('bob'), uniqueId('carol'), uniqueId('dave')];
    const on = (user: string) =>
      subscribe(wsClient(suite.gateway.wsUrl, { authorization: `Bearer ${token(user)}` }).client, AppInstallationChangedDocument, {});
    const [forBob, forCarol, forDave] = [on(bob), on(carol), on(dave)];
    await waitForSubscriptions(suite.gateway, 3, 'appInstallationChanged');
    // Bob has it on two devices, Carol on one; Dave had it and uninstalled it.
    const install = async (user: string, deviceId: string, sub: typeof forBob) => {
      await suite.peer.publish('app.installed', { userId: user, deviceId, appId, installationId: uniqueId('i') });
      expect((await sub.next()).data?.appInstallationChanged).toMatchObject({ status: 'INSTALLED', appId });
    };
    await install(bob, uniqueId('d'), forBob);
    await install(bob, uniqueId('d'), forBob);
    await install(carol, uniqueId('d'), forCarol);
    const daveDevice = uniqueId('d');
    await suite.peer.publish('app.installed', { userId: dave, deviceId: daveDevice, appId, installationId: 'dave-i' });
    await forDave.next();
    await suite.peer.publish('app.uninstalled', { userId: dave, deviceId: daveDevice, appId, installationId: 'dave-i' });
    expect((await forDave.next()).data?.appInstallationChanged).toMatchObject({ status: 'UNINSTALLED' });

    const id = uniqueId('upd');
    await suite.peer.publish('app.updated', envelope('app.updated', { appId, versionName: '2.0.0', packageName: 'com.example.app' }), {
      messageId: id,
    });
    const eventId = (await forBob.next()).data?.appInstallationChanged;
    const body = { status: 'UPDATED', appId, versionName: '2.0.0', deviceId: null, type: 'app.updated' };
    expect(eventId).toMatchObject({ ...body, userId: bob });
    const carolGot = (await forCarol.next()).data?.appInstallationChanged;
    expect(carolGot).toMatchObject({ ...body, userId: carol });
    expect(eventId?.eventId).not.toBe(carolGot?.eventId);
    expect(eventId?.eventId).toMatch(new RegExp(`:${bob}$`));
    // Dave's next event is his own next one: nothing of the update came before it.
    await suite.peer.publish('app.install.requested', { userId: dave, deviceId: daveDevice, appId, installationId: 'dave-2' });
    expect((await forDave.next()).data?.appInstallationChanged).toMatchObject({ status: 'REQUESTED', installationId: 'dave-2' });
    // Bob got it once, not once per device.
    await suite.peer.publish('app.install.requested', { userId: bob, deviceId: uniqueId('d'), appId: 'other', installationId: 'bob-next' });
    expect((await forBob.next()).data?.appInstallationChanged).toMatchObject({ installationId: 'bob-next' });
  });

  it('an update of an app nobody has is acknowledged, reaching no one', async () => {
    const deadLettered = () => suite.gateway.app.stats().bridge.deadLettered + second.app.stats().bridge.deadLettered;
    const before = deadLettered();
    const id = uniqueId('upd-none');
    await suite.peer.publish('app.updated', flat('app.updated', { appId: uniqueId('nobody') }), { messageId: id });
    // Flowing on: the next event for alice arrives, and no dead letter was made of the update.
    await suite.peer.publish('device.connection.connected', { userId: alice, deviceId: device });
    expect((await subs.deviceNotice.next()).data?.deviceNotice).toMatchObject({ kind: 'CONNECTED' });
    expect(deadLettered()).toBe(before);
  });
});

describe('dead letters and what never reaches a client', () => {
  it.each([
    ['billing.payment_success', { paymentId: 'p' }, 'missing userId'],
    ['order.refunded', { userId: alice }, 'missing orderId'],
    ['device.connection.failed', { userId: alice }, 'missing deviceId'],
    ['device.expiration_warning', { deviceId: uniqueId('ghost') }, 'unknown owner'],
    ['app.install.failed', { deviceId: uniqueId('ghost'), appId: 'a' }, 'unknown owner'],
    ['notification.send', { userId: alice, message: 'no title' }, 'missing title'],
    ['notification.send', { title: 'no user', message: 'm' }, 'missing userId'],
    ['notification.send', { userId: alice, title: 't', message: 'x'.repeat(5_000) }, 'invalid message: longer than 4000 characters'],
    [
      'notification.send',
      { userId: alice, title: 't', message: 'x'.repeat(10 * 1024 * 1024) },
      expect.stringMatching(/^body too large: \d+ bytes exceeds \d+$/),
    ],
  ])('%s %#: dead-lettered with its reason, and good events keep flowing', async (key, body, reason) => {
    const id = uniqueId('bad');
    await suite.peer.publish(key, body, { messageId: id });
    const dead = await suite.peer.take(
      suite.gateway.config.amqp.deadLetterQueue,
      (m) => m.properties.messageId === id,
      `dead letter ${id}`,
    );
    expect(dead.properties.headers?.['x-rejection-reason']).toEqual(reason);
    const good = uniqueId('good');
    await suite.peer.publish('billing.recharged', { userId: alice, amount: '1.00' }, { messageId: good });
    expect((await subs.billingChanged.next()).data?.billingChanged).toMatchObject({ eventId: good });
  });

  it('a system.error with a stack trace reaches administrators without it, and never crosses Redis with it', async () => {
    const id = uniqueId('stack');
    await suite.peer.publish(
      'system.error.critical',
      { serviceName: 'x', message: STACK, stackTrace: STACK, details: { stack: STACK, note: 'n' } },
      { messageId: id },
    );
    const got = (await subs.systemEvents.next()).data?.systemEvents as Record<string, unknown>;
    expect(got).toMatchObject({ eventId: id, message: 'Error: connection refused', data: { details: { note: 'n' } } });
    const crossed = crossedRedis.filter((m) => m.message.includes(id));
    expect(crossed.length).toBe(1);
    expect(crossed[0]?.channel).toBe(`${suite.gateway.config.redis.topicPrefix}system:all`);
    expect(crossed[0]?.message).not.toMatch(/at Object\.connect|stackTrace|"stack"/);
  });

  it('systemEvents is FORBIDDEN to anyone but administrators; the socket stays open', async () => {
    const client = wsClient(suite.gateway.wsUrl, { authorization: `Bearer ${token(uniqueId('user'))}` }).client;
    const denied = subscribe(client, SystemEventsDocument, {});
    expect((await denied.next()).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const own = subscribe(client, NotificationsDocument, {});
    await waitForSubscriptions(suite.gateway, 1, 'notifications');
    own.unsubscribe();
  });
});

afterAll(() => {
  // Checked last: nothing that crossed Redis carried what must never reach a client.
  expect(crossedRedis.length).toBeGreaterThanOrEqual(CASES.length);
  for (const { message } of crossedRedis)
    expect(message).not.toMatch(/traceparent|baggage|_trace|@example\.com|stackTrace|processTicksAndRejections/);
});
