/** CONTRACT §7 normalization without services: one message to its events, scrubbing, coalescing rules. */
import { coalescingKey } from '../../src/contracts/coalescing';
import {
  EventRejection,
  normalizeMessage,
  scrubJson,
  scrubText,
  type GatewayEvent,
  type IncomingMessage,
} from '../../src/contracts/events';
import { ROUTES, SUBSCRIPTION_OF_FAMILY, type Route } from '../../src/contracts/routing';
import { createTopics } from '../../src/contracts/topics';
import { perUserEventId } from '../../src/bridge/event-bridge';

const MAX = 262_144;
const NOW = () => new Date('2026-12-01T12:00:00.000Z');
const message = (routingKey: string, body: unknown, messageId = 'm1'): IncomingMessage => ({
  routingKey,
  body: Buffer.from(JSON.stringify(body)),
  messageId,
});
const drafts = (m: IncomingMessage) => normalizeMessage(m, MAX, NOW)?.drafts ?? [];

function rejection(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof EventRejection) return error.reason;
    throw error;
  }
  throw new Error('expected an EventRejection');
}

describe('one message, its events', () => {
  it('a completed order feeds orderStatusChanged (first: the read model applies it) and orderCompleted, with one eventId', () => {
    const [status, completed] = drafts(message('billing.order.completed', { userId: 'u', orderId: 'o', amount: 59.9 }));
    expect(status).toMatchObject({ family: 'orderStatus', status: 'COMPLETED', amount: '59.9', eventId: 'm1' });
    expect(completed).toMatchObject({ family: 'order', orderId: 'o', amount: '59.9', eventId: 'm1' });
  });

  it('an announcement is one event per audience it names, all with its eventId; none is refused', () => {
    const body = {
      eventId: 'a1',
      eventType: 'notification.announcement',
      payload: { title: 't', message: 'm', audience: { all: true, tenantId: 'T', role: 'ops', userIds: ['x', 'x', 'y'] } },
    };
    const events = drafts(message('notification.announcement', body));
    expect(events.map((e) => e.family === 'notification' && [e.scope, e.audience.id, e.eventId])).toEqual([
      ['ALL', undefined, 'a1'],
      ['TENANT', 'T', 'a1'],
      ['ROLE', 'ops', 'a1'],
      ['USER', 'x', 'a1'],
      ['USER', 'y', 'a1'],
    ]);
    expect(rejection(() => drafts(message('notification.announcement', { title: 't', message: 'm', audience: {} })))).toBe(
      'missing audience',
    );
  });

  it('app.updated names no user and no device: the bridge fans it out with a per-user id that stays short', () => {
    const [draft] = drafts(message('app.updated', { appId: 'a', deviceId: 'd', versionName: '2' }));
    expect(draft).toMatchObject({ family: 'installation', status: 'UPDATED', appId: 'a', versionName: '2' });
    expect(draft).not.toHaveProperty('deviceId');
    expect(draft).not.toHaveProperty('userId');
    expect(perUserEventId('e1', 'u1')).toBe('e1:u1');
    expect(perUserEventId('e'.repeat(190), 'u'.repeat(20))).toMatch(/^[0-9a-f]{32}$/);
    expect(perUserEventId('e'.repeat(190), 'u'.repeat(20))).toBe(perUserEventId('e'.repeat(190), 'u'.repeat(20)));
  });

  it('statuses and kinds arrive in any case; app.uninstall.completed is FAILED only when its status says so', () => {
    expect(
      drafts(message('app.uninstall.completed', { deviceId: 'd', appId: 'a', status: 'Failed', errorMessage: 'busy' }))[0],
    ).toMatchObject({ status: 'FAILED', error: 'busy' });
    expect(drafts(message('app.uninstall.completed', { deviceId: 'd', appId: 'a', status: 'SUCCESS' }))[0]).toMatchObject({
      status: 'UNINSTALLED',
    });
    expect(drafts(message('order.refunded', { userId: 'u', orderId: 'o', oldStatus: 'Completed' }))[0]).toMatchObject({
      status: 'REFUNDED',
      previousStatus: 'COMPLETED',
    });
    expect(drafts(message('device.cleaned', { deviceId: 'd', deleted: true }))[0]).toMatchObject({ status: 'DELETED' });
  });
});

describe('what never reaches a client', () => {
  it('scrubs stack traces, e-mails, traces and credentials from JSON at any depth, and bounds it', () => {
    expect(
      scrubJson({
        ok: 1,
        stackTrace: 's',
        Stack: 's',
        _trace: {},
        userEmail: 'a@b.co',
        nested: [{ password: 'p', note: 'mail me at a@b.co' }],
      }),
    ).toEqual({ ok: 1, nested: [{ note: 'mail me at [redacted]' }] });
    expect(scrubJson({ big: 'x'.repeat(20_000) })).toBeUndefined();
    expect(scrubJson('not an object')).toBeUndefined();
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 10; i++) deep = { deep };
    expect(JSON.stringify(scrubJson(deep))).not.toContain('leaf');
  });

  it('cuts a stack trace off free text', () => {
    expect(scrubText('boom\n    at a (/x.js:1:1)\n    at b (/y.js:2:2)')).toBe('boom');
    expect(scrubText('plain')).toBe('plain');
  });

  it('a system event keeps neither stackTrace nor a stack in its message', () => {
    const [event] = drafts(
      message('system.error.high', {
        message: 'Error: x\n    at y (z.js:1:1)',
        stackTrace: 'Error: x\n    at y',
        serviceName: 's',
        extra: { stack: 'at' },
      }),
    );
    expect(event).toMatchObject({ kind: 'ERROR', severity: 'HIGH', message: 'Error: x', data: { extra: {} } });
    expect(JSON.stringify(event)).not.toMatch(/stackTrace|"stack"|at y/);
  });
});

describe('coalescing only where a later event supersedes an earlier one', () => {
  const event = (key: string, body: Record<string, unknown>) =>
    ({ ...drafts(message(key, { userId: 'u', ...body }))[0], userId: 'u' }) as GatewayEvent;
  it.each<[string, Record<string, unknown>, boolean | undefined]>([
    ['device.allocated', { deviceId: 'd' }, true],
    ['device.recovery_failed', { deviceId: 'd' }, false],
    ['device.permanent_failure', { deviceId: 'd' }, false],
    ['device.deletion_failed', { deviceId: 'd' }, false],
    ['app.install.requested', { deviceId: 'd', appId: 'a' }, true],
    ['app.install.failed', { deviceId: 'd', appId: 'a' }, false],
    ['app.installed', { deviceId: 'd', appId: 'a' }, false],
    ['app.uninstall.requested', { deviceId: 'd', appId: 'a' }, true],
    ['order.paid', { orderId: 'o' }, undefined],
    ['billing.payment_success', {}, undefined],
    ['billing.payment_failed', {}, undefined],
    ['device.connection.failed', { deviceId: 'd' }, undefined],
    ['notification.send', { title: 't', message: 'm' }, undefined],
    ['system.error.critical', {}, undefined],
  ])('%s: %s', (key, body, coalesce) => {
    expect(coalescingKey(event(key, body))?.coalesce).toBe(coalesce);
  });

  it('the routing table says the same for every key it marks as not coalesced', () => {
    const never = Object.entries(ROUTES as Record<string, Route>)
      .filter(([, route]) => !route.coalesced)
      .map(([, route]) => route.feeds[0]);
    expect(new Set(never)).toEqual(
      new Set(['quota', 'device', 'orderStatus', 'billing', 'installation', 'deviceNotice', 'notification', 'system']),
    );
    expect(Object.keys(SUBSCRIPTION_OF_FAMILY)).toHaveLength(10);
  });
});

describe('audience topics', () => {
  const topics = createTopics('p:');
  it('one channel per audience, ids escaped so none reads as a pattern', () => {
    expect(topics.audience('ALL')).toBe('p:notification:all');
    expect(topics.audience('TENANT', 't1')).toBe('p:notification:tenant:t1');
    expect(topics.audience('ROLE', 'ops*')).toBe('p:notification:role:ops%2A');
    expect(topics.audience('USER', 'u1')).toBe('p:notification:user:u1');
    expect(() => topics.audience('TENANT')).toThrow();
    expect(topics.system()).toBe('p:system:all');
  });
});
