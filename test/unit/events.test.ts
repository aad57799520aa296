import {
  decodeMessage,
  EventRejection,
  normalizeEvent,
  type GatewayEventDraft,
  type IncomingMessage,
  type QuotaEventMessage,
} from '../../src/contracts/events';
import { familyOf, isQuotaRoutingKey, QUEUE_BINDINGS, topicMatches } from '../../src/contracts/routing';
import { createTopics } from '../../src/contracts/topics';

const MAX = 262_144;
const NOW = new Date('2026-11-24T12:00:00.000Z');

function message(routingKey: string, body: unknown, props: Partial<IncomingMessage> = {}): IncomingMessage {
  return {
    routingKey,
    body: Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
    ...props,
  };
}

function draft(m: IncomingMessage): GatewayEventDraft {
  const result = normalizeEvent(m, MAX, () => NOW);
  if (!result) throw new Error(`no family takes ${m.routingKey}`);
  return result;
}

function normalize(m: IncomingMessage): QuotaEventMessage {
  const result = draft(m);
  if (result.family !== 'quota') throw new Error('expected a quota event');
  return result as QuotaEventMessage;
}

function rejection(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof EventRejection) return error.reason;
    throw error;
  }
  throw new Error('expected an EventRejection');
}

describe('quota event normalization (docs/event-catalogue.md)', () => {
  it('normalizes the flat body the platform sends for quota.updated, dropping unknown fields', () => {
    const event = normalize(
      message(
        'quota.updated',
        {
          userId: 'user-1',
          quotaId: 'q-1',
          type: 'updated',
          limits: { maxDevices: 10, totalMemoryGB: '64', bogus: 1 },
          usage: { currentDevices: 3, usedMemoryGB: 12.5 },
          status: 'active',
          timestamp: '2026-11-24T10:00:00.000Z',
          email: 'someone@example.com',
          _trace: { traceparent: '00-abc-def-01' },
        },
        { messageId: 'm-1' },
      ),
    );
    expect(event).toEqual({
      family: 'quota',
      eventId: 'm-1',
      type: 'quota.updated',
      userId: 'user-1',
      occurredAt: '2026-11-24T10:00:00.000Z',
      kind: 'UPDATED',
      quotaId: 'q-1',
      limits: { maxDevices: 10, totalMemoryGB: 64 },
      usage: { currentDevices: 3, usedMemoryGB: 12.5 },
      status: 'ACTIVE',
    });
  });

  it('unwraps the envelope: its eventId wins over messageId and its payload is the body', () => {
    const event = normalize(
      message(
        'quota.alert',
        {
          eventId: 'env-1',
          eventType: 'quota.alert',
          timestamp: '2026-11-24T09:00:00.000Z',
          payload: { userId: 42, usagePercent: 91.5, severity: 'warning' },
        },
        { messageId: 'm-2' },
      ),
    );
    expect(event).toMatchObject({
      eventId: 'env-1',
      userId: '42',
      kind: 'ALERT',
      usagePercent: 91.5,
      severity: 'warning',
      occurredAt: '2026-11-24T09:00:00.000Z',
    });
  });

  it('takes usagePercent as the largest of `percentage` when absent', () => {
    const event = normalize(message('quota.exceeded', { userId: 'u', percentage: { devices: 50, cpu: 120, memory: 'x' } }));
    expect(event.usagePercent).toBe(120);
    expect(event.kind).toBe('EXCEEDED');
  });

  it('derives occurredAt: own field, then timestamp, then the AMQP timestamp (ms), then now', () => {
    const own = normalize(message('quota.renewed', { userId: 'u', renewedAt: '2026-01-01T00:00:00Z', timestamp: '2026-02-01T00:00:00Z' }));
    expect(own.occurredAt).toBe('2026-01-01T00:00:00.000Z');
    const body = normalize(message('quota.renewed', { userId: 'u', timestamp: 1_790_000_000_000 }));
    expect(body.occurredAt).toBe(new Date(1_790_000_000_000).toISOString());
    const amqp = normalize(message('quota.renewed', { userId: 'u' }, { timestamp: 1_780_000_000_000 }));
    expect(amqp.occurredAt).toBe(new Date(1_780_000_000_000).toISOString());
    const received = normalize(message('quota.renewed', { userId: 'u', timestamp: 'not a date' }));
    expect(received.occurredAt).toBe(NOW.toISOString());
  });

  it('gives a message without ids a stable hash id: a redelivery keeps it, another body does not', () => {
    const a = normalize(message('quota.deducted', { userId: 'u', usage: { usedCpuCores: 2 } }));
    const again = normalize(message('quota.deducted', { userId: 'u', usage: { usedCpuCores: 2 } }));
    const other = normalize(message('quota.deducted', { userId: 'u', usage: { usedCpuCores: 3 } }));
    expect(a.eventId).toMatch(/^[0-9a-f]{32}$/);
    expect(again.eventId).toBe(a.eventId);
    expect(other.eventId).not.toBe(a.eventId);
  });

  it('reads a wrongly typed optional field as not sent, and keeps Int fields integral', () => {
    const event = normalize(
      message('quota.updated', { userId: 'u', limits: { maxDevices: 2.5, totalCpuCores: 'many', totalStorageGB: 100 }, status: 'weird' }),
    );
    expect(event.limits).toEqual({ totalStorageGB: 100 });
    expect(event.status).toBeUndefined();
  });

  it.each([
    ['not JSON', message('quota.updated', '{"userId": '), 'not JSON'],
    ['a JSON array', message('quota.updated', '[1,2]'), 'not a JSON object'],
    ['a JSON string', message('quota.updated', '"hello"'), 'not a JSON object'],
    ['invalid UTF-8', message('quota.updated', Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), 'invalid UTF-8'],
    ['no userId', message('quota.updated', { quotaId: 'q' }), 'missing userId'],
    ['a null userId', message('quota.updated', { userId: null }), 'missing userId'],
    ['an object userId', message('quota.updated', { userId: { $ne: 1 } }), 'invalid userId'],
    ['an empty userId', message('quota.updated', { userId: '  ' }), 'invalid userId'],
    ['an envelope without userId', message('quota.updated', { eventId: 'e', payload: { quotaId: 'q' } }), 'missing userId'],
  ])('rejects %s with a reason', (_name, m, reason) => {
    expect(rejection(() => normalize(m))).toBe(reason);
  });

  it('rejects a body over the size limit before parsing it', () => {
    const big = message('quota.updated', { userId: 'u', pad: 'x'.repeat(2_000) });
    expect(rejection(() => decodeMessage(big, 1_000))).toMatch(/^body too large/);
  });

  it('never lets __proto__ or constructor keys through', () => {
    const event = normalize(
      message(
        'quota.updated',
        '{"userId":"u","__proto__":{"polluted":true},"constructor":{"x":1},"limits":{"__proto__":{"maxDevices":9}}}',
      ),
    );
    expect(Object.keys(event).sort()).toEqual(['eventId', 'family', 'kind', 'limits', 'occurredAt', 'type', 'userId']);
    expect(Object.getPrototypeOf(event)).toBe(Object.prototype);
    expect((event as unknown as Record<string, unknown>).polluted).toBeUndefined();
    expect(event.limits).toEqual({});
    expect(event.limits?.maxDevices).toBeUndefined();
  });
});

describe('device, order and app events (docs/event-catalogue.md)', () => {
  it.each([
    ['device.started', {}, 'RUNNING'],
    ['device.recovered', {}, 'RUNNING'],
    ['device.stopped', {}, 'STOPPED'],
    ['device.deleted', {}, 'DELETED'],
    ['device.error', {}, 'ERROR'],
    ['device.created', {}, 'CREATING'],
    ['device.created', { status: 'idle' }, 'IDLE'],
    ['device.created', { status: 'nonsense' }, 'CREATING'],
    ['device.status.changed', { oldStatus: 'running', newStatus: 'paused' }, 'PAUSED'],
    // The routing key's status wins over a contradicting body.
    ['device.started', { status: 'stopped' }, 'RUNNING'],
  ])('%s %j means %s', (key, extra, status) => {
    expect(draft(message(key, { userId: 'u', deviceId: 'd1', ...extra }))).toMatchObject({ family: 'device', status });
  });

  it('maps oldStatus/newStatus to previousStatus/status, lower case in, upper case out', () => {
    expect(
      draft(message('device.status.changed', { userId: 'u', deviceId: 'd', oldStatus: 'running', newStatus: 'error', reason: 'adb lost' })),
    ).toEqual(expect.objectContaining({ previousStatus: 'RUNNING', status: 'ERROR', reason: 'adb lost' }));
  });

  it.each([
    ['device.status.changed', { userId: 'u', deviceId: 'd' }, 'missing status'],
    ['device.status.changed', { userId: 'u', deviceId: 'd', newStatus: 'warming' }, 'invalid status'],
    ['device.started', { userId: 'u' }, 'missing deviceId'],
    ['device.started', { userId: 'u', deviceId: ['d'] }, 'invalid deviceId'],
    ['device.started', { userId: { evil: true }, deviceId: 'd' }, 'invalid userId'],
    ['order.completed', { userId: 'u' }, 'missing orderId'],
    ['order.completed', { orderId: 'o' }, 'missing userId'],
    ['app.installed', { userId: 'u', appId: 'a' }, 'missing deviceId'],
    ['app.installed', { userId: 'u', deviceId: 'd' }, 'missing appId'],
  ])('rejects %s %j: %s', (key, body, reason) => {
    expect(rejection(() => draft(message(key, body)))).toBe(reason);
  });

  it('leaves the owner open when a device or app event names only the device', () => {
    const app = draft(message('app.install.completed', { deviceId: 'd', applicationId: 'a1', packageName: 'com.x' }));
    expect(app).toEqual(expect.objectContaining({ family: 'app', deviceId: 'd', appId: 'a1', packageName: 'com.x' }));
    expect(app.userId).toBeUndefined();
    expect(draft(message('device.error', { deviceId: 'd' })).userId).toBeUndefined();
  });

  it('keeps an order amount exactly as the platform sent it', () => {
    expect(draft(message('order.completed', { userId: 'u', orderId: 'o', amount: '59.90' }))).toMatchObject({ amount: '59.90' });
    expect(draft(message('order.completed', { userId: 'u', orderId: 'o', amount: 12.5 }))).toMatchObject({ amount: '12.5' });
    expect(draft(message('order.completed', { userId: 'u', orderId: 'o', amount: 'lots' }))).not.toHaveProperty('amount');
  });

  it("takes each routing key's own time field before timestamp", () => {
    const t = (key: string, body: object) =>
      draft(message(key, { userId: 'u', deviceId: 'd', orderId: 'o', appId: 'a', ...body })).occurredAt;
    expect(t('device.started', { startedAt: '2026-01-01T00:00:00Z', stoppedAt: '2026-02-01T00:00:00Z', timestamp: 1 })).toBe(
      '2026-01-01T00:00:00.000Z',
    );
    expect(t('device.stopped', { startedAt: '2026-01-01T00:00:00Z', stoppedAt: '2026-02-01T00:00:00Z' })).toBe('2026-02-01T00:00:00.000Z');
    expect(t('app.installed', { installedAt: 1_790_000_000_000 })).toBe(new Date(1_790_000_000_000).toISOString());
    expect(t('device.recovered', { recoveredAt: '2026-03-01T00:00:00Z' })).toBe('2026-03-01T00:00:00.000Z');
    expect(t('order.completed', { occurredAt: '2026-04-01T00:00:00Z', completedAt: '2026-05-01T00:00:00Z' })).toBe(
      '2026-04-01T00:00:00.000Z',
    );
  });

  it('does not believe an event time further ahead than clock skew explains, and takes the next source', () => {
    const micro = NOW.getTime() * 1000; // microseconds sent where milliseconds belong: year 55,000
    const e = draft(message('device.started', { userId: 'u', deviceId: 'd', startedAt: micro, timestamp: '2026-11-24T11:00:00Z' }));
    expect(e.occurredAt).toBe('2026-11-24T11:00:00.000Z');
    expect(draft(message('device.stopped', { userId: 'u', deviceId: 'd' }, { timestamp: micro })).occurredAt).toBe(NOW.toISOString());
    const soon = new Date(NOW.getTime() + 60_000).toISOString();
    expect(draft(message('device.stopped', { userId: 'u', deviceId: 'd', stoppedAt: soon })).occurredAt).toBe(soon);
  });

  it.each([
    ['a NUL in the user id', { userId: 'u\u0000x', deviceId: 'd' }, 'invalid userId'],
    ['a newline in the device id', { userId: 'u', deviceId: 'd\n1' }, 'invalid deviceId'],
  ])('refuses %s (PostgreSQL could never store it)', (_name, body, reason) => {
    expect(rejection(() => draft(message('device.started', body)))).toBe(reason);
  });

  it('ignores routing keys no subscription takes, without even decoding them', () => {
    expect(normalizeEvent(message('device.heartbeat', 'not json at all'), MAX)).toBeUndefined();
    expect(familyOf('billing.order.completed')).toBe('order');
    expect(familyOf('constructor')).toBeUndefined();
  });

  it('binds the queue to exactly the routing keys of docs/event-catalogue.md', () => {
    expect([...QUEUE_BINDINGS].sort()).toEqual(
      [
        'quota.updated',
        'quota.alert',
        'quota.exceeded',
        'quota.renewed',
        'quota.deducted',
        'quota.restored',
        'quota.deleted',
        'device.created',
        'device.started',
        'device.stopped',
        'device.deleted',
        'device.error',
        'device.recovered',
        'device.status.changed',
        'order.completed',
        'billing.order.completed',
        'app.installed',
        'app.install.completed',
        // CONTRACT §7
        'device.allocated',
        'device.released',
        'device.recovery_success',
        'device.recovery_failed',
        'device.permanent_failure',
        'device.cleaned',
        'device.expired',
        'device.deletion_failed',
        'order.paid',
        'order.cancelled',
        'order.refunded',
        'order.failed',
        'billing.order.paid',
        'billing.order.cancelled',
        'billing.order.refunded',
        'billing.order.failed',
        'billing.payment_success',
        'billing.payment_failed',
        'billing.refund_completed',
        'billing.invoice_generated',
        'billing.low_balance',
        'billing.balance_low',
        'billing.overdue',
        'billing.recharged',
        'app.install.requested',
        'app.install.installed',
        'app.install.failed',
        'app.install_failed',
        'app.uninstall.requested',
        'app.uninstall.completed',
        'app.install.uninstalled',
        'app.uninstalled',
        'app.updated',
        'device.expiration_warning',
        'device.backup_created',
        'device.connection.connected',
        'device.connection.disconnected',
        'device.connection.failed',
        'device.connection.reconnecting',
        'notification.send',
        'notification.announcement',
        'system.error.critical',
        'system.error.high',
        'system.error.medium',
        'system.error.low',
        'device.backup_completed',
        'device.backup_cleanup_completed',
        'quota.metrics',
        'billing.usage_report_failed',
        'user.sessions.revoked',
        'auth.sessions.revoked',
      ].sort(),
    );
  });
});

describe('topics', () => {
  const topics = createTopics('p:');
  it('gives each user a channel of their own, and administrators a pattern over them', () => {
    expect(topics.user('quota', 'alice')).toBe('p:quota:user:alice');
    expect(topics.allUsers('quota')).toBe('p:quota:user:*');
  });
  it('escapes glob characters so no user id can equal or match the every-user pattern', () => {
    expect(topics.user('quota', '*')).toBe('p:quota:user:%2A');
    expect(topics.user('quota', 'a?[b]\\%')).toBe('p:quota:user:a%3F%5Bb%5D%5C%25');
    expect(topics.user('quota', '*')).not.toBe(topics.allUsers('quota'));
  });
});

describe('routing', () => {
  it('knows the quota routing keys and only those', () => {
    expect(isQuotaRoutingKey('quota.updated')).toBe(true);
    expect(isQuotaRoutingKey('quota.deleted')).toBe(true);
    expect(isQuotaRoutingKey('quota.unknown')).toBe(false);
    expect(isQuotaRoutingKey('toString')).toBe(false);
  });

  it.each([
    ['quota.*', 'quota.updated', true],
    ['quota.*', 'quota.a.b', false],
    ['quota.#', 'quota.a.b', true],
    ['quota.#', 'quota', true],
    ['*.completed', 'order.completed', true],
    ['*.completed', 'billing.order.completed', false],
    ['#.completed', 'billing.order.completed', true],
  ])('%s matches %s: %s', (pattern, key, expected) => {
    expect(topicMatches(pattern, key)).toBe(expected);
  });
});
