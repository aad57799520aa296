/**
 * The routing table (docs/event-catalogue.md is generated from it): every routing key the gateway consumes, the
 * subscriptions it feeds, what the key itself means (the status or kind it implies), how the
 * recipient is found, and whether a later event of the same entity supersedes it. This one
 * table drives the queue bindings, the bridge (`contracts/events.ts` normalizes by it), the
 * coalescing rules and the generated catalogue page `docs/event-catalogue.md`
 * (`npm run docs:catalogue`; a unit test fails when the page is stale). AMQP topic-pattern
 * matching lives here too, shared by the RabbitMQ topology and the in-process bus.
 */

/** The event families: one per subscription. */
export type EventFamily =
  'quota' | 'device' | 'order' | 'app' | 'orderStatus' | 'billing' | 'installation' | 'deviceNotice' | 'notification' | 'system';

/** The subscription field each family feeds. */
export const SUBSCRIPTION_OF_FAMILY: Readonly<Record<EventFamily, string>> = {
  quota: 'quotaChanged',
  device: 'deviceStatusChanged',
  order: 'orderCompleted',
  app: 'appInstalled',
  orderStatus: 'orderStatusChanged',
  billing: 'billingChanged',
  installation: 'appInstallationChanged',
  deviceNotice: 'deviceNotice',
  notification: 'notifications',
  system: 'systemEvents',
};

/**
 * How the bridge finds whom an event is for:
 * - `user`: the body's `userId`, required;
 * - `device`: the body's `userId`, else the owner of its `deviceId` in the read model;
 * - `installations`: every user the read model knows to have the app installed, one event each;
 * - `administrators`: nobody in particular; the administrators' system feed.
 */
export type OwnerLookup = 'user' | 'device' | 'installations' | 'administrators';

/** One row of the routing table. */
export interface Route {
  /** The families fed, the first one's event applied to the read model. */
  readonly feeds: readonly EventFamily[];
  /** The status or kind the key implies; null where the body says. */
  readonly means: string | null;
  readonly owner: OwnerLookup;
  /** Whether a later event of the same entity supersedes this one (see coalescing.ts). */
  readonly coalesced: boolean;
  /** The mapping, for the catalogue (one line). */
  readonly mapping: string;
}

const quota = (kind: string, coalesced: boolean): Route => ({
  feeds: ['quota'],
  means: kind,
  owner: 'user',
  coalesced,
  mapping: `kind ${kind}; limits, usage, usagePercent (or the largest of percentage), severity, status, validUntil`,
});
const device = (status: string | null, mapping: string, coalesced = true): Route => ({
  feeds: ['device'],
  means: status,
  owner: 'device',
  coalesced,
  mapping,
});
const order = (status: string, alsoCompleted: boolean): Route => ({
  feeds: alsoCompleted ? ['orderStatus', 'order'] : ['orderStatus'],
  means: status,
  owner: 'user',
  coalesced: false,
  mapping: `status ${status}; previousStatus, amount (decimal string as sent), reason, deviceId, planId`,
});
const billing = (kind: string, mapping: string): Route => ({ feeds: ['billing'], means: kind, owner: 'user', coalesced: false, mapping });
const installation = (status: string | null, mapping: string, alsoInstalled = false): Route => ({
  feeds: alsoInstalled ? ['installation', 'app'] : ['installation'],
  means: status,
  owner: 'device',
  coalesced: true,
  mapping,
});
const notice = (kind: string, mapping: string): Route => ({
  feeds: ['deviceNotice'],
  means: kind,
  owner: 'device',
  coalesced: false,
  mapping,
});
const system = (kind: string, mapping: string): Route => ({
  feeds: ['system'],
  means: kind,
  owner: 'administrators',
  coalesced: false,
  mapping,
});

const MONEY = 'money as decimal strings exactly as sent';

/** The routing table: every key the gateway consumes. */
export const ROUTES = {
  'quota.updated': quota('UPDATED', true),
  'quota.alert': quota('ALERT', false),
  'quota.exceeded': quota('EXCEEDED', false),
  'quota.renewed': quota('RENEWED', true),
  'quota.deducted': quota('DEDUCTED', true),
  'quota.restored': quota('RESTORED', true),
  'quota.deleted': quota('DELETED', false),

  'device.created': device(null, 'status from the body, else CREATING'),
  'device.started': device('RUNNING', 'status RUNNING'),
  'device.stopped': device('STOPPED', 'status STOPPED'),
  'device.deleted': device('DELETED', 'status DELETED (never coalesced: it ends the device)', false),
  'device.error': device('ERROR', 'status ERROR; reason from reason / error / errorMessage'),
  'device.recovered': device('RUNNING', 'status RUNNING'),
  'device.status.changed': device(null, 'previousStatus from oldStatus, status from newStatus'),
  'device.allocated': device('ALLOCATED', 'status ALLOCATED'),
  'device.released': device('IDLE', 'status IDLE'),
  'device.recovery_success': device('RUNNING', 'status RUNNING; failureType, recoveryStrategy, attempts'),
  'device.recovery_failed': device(
    'ERROR',
    'status ERROR; failureType, recoveryStrategy, attempts, reason (a failure: never coalesced)',
    false,
  ),
  'device.permanent_failure': device('ERROR', 'status ERROR; failureType, attempts, reason (a failure: never coalesced)', false),
  'device.cleaned': device(null, 'status DELETED when deleted is true, else STOPPED'),
  'device.expired': device('STOPPED', 'status STOPPED; reason'),
  'device.deletion_failed': device('ERROR', 'status ERROR; reason (a failure: never coalesced)', false),

  'order.paid': order('PAID', false),
  'order.completed': order('COMPLETED', true),
  'order.cancelled': order('CANCELLED', false),
  'order.refunded': order('REFUNDED', false),
  'order.failed': order('FAILED', false),
  'billing.order.paid': order('PAID', false),
  'billing.order.completed': order('COMPLETED', true),
  'billing.order.cancelled': order('CANCELLED', false),
  'billing.order.refunded': order('REFUNDED', false),
  'billing.order.failed': order('FAILED', false),

  'billing.payment_success': billing(
    'PAYMENT_SUCCEEDED',
    `kind PAYMENT_SUCCEEDED; amount, paymentId, orderId, paymentMethod, balance (newBalance / currentBalance); ${MONEY}`,
  ),
  'billing.payment_failed': billing('PAYMENT_FAILED', `kind PAYMENT_FAILED; amount, paymentId, orderId, paymentMethod, reason; ${MONEY}`),
  'billing.refund_completed': billing('REFUND_COMPLETED', `kind REFUND_COMPLETED; amount, paymentId, orderId, balance; ${MONEY}`),
  'billing.invoice_generated': billing('INVOICE_GENERATED', `kind INVOICE_GENERATED; invoiceId, amount, orderId; ${MONEY}`),
  'billing.low_balance': billing('LOW_BALANCE', `kind LOW_BALANCE; balance (currentBalance), threshold; ${MONEY}`),
  'billing.balance_low': billing('LOW_BALANCE', `kind LOW_BALANCE; balance (currentBalance), threshold; ${MONEY}`),
  'billing.overdue': billing('OVERDUE', `kind OVERDUE; overdueAmount, overdueDays, balance; ${MONEY}`),
  'billing.recharged': billing('RECHARGED', `kind RECHARGED; amount, balance (newBalance), paymentMethod; ${MONEY}`),

  'app.install.requested': installation('REQUESTED', 'status REQUESTED'),
  'app.installed': installation('INSTALLED', 'status INSTALLED; also appInstalled', true),
  'app.install.installed': installation('INSTALLED', 'status INSTALLED; also appInstalled', true),
  'app.install.completed': installation('INSTALLED', 'status INSTALLED; also appInstalled', true),
  'app.install.failed': installation('FAILED', 'status FAILED; error from error / errorMessage / reason'),
  'app.install_failed': installation('FAILED', 'status FAILED; error from error / errorMessage / reason'),
  'app.uninstall.requested': installation('UNINSTALLING', 'status UNINSTALLING'),
  'app.uninstall.completed': installation(null, 'status UNINSTALLED, or FAILED when the body status is failed (error as above)'),
  'app.install.uninstalled': installation('UNINSTALLED', 'status UNINSTALLED'),
  'app.uninstalled': installation('UNINSTALLED', 'status UNINSTALLED'),
  'app.updated': {
    feeds: ['installation'],
    means: 'UPDATED',
    owner: 'installations',
    coalesced: false,
    mapping: 'status UPDATED; a catalogue change (no user): one event per user with the app installed, eventId <eventId>:<userId>',
  },

  'device.expiration_warning': notice('EXPIRATION_WARNING', 'kind EXPIRATION_WARNING; expiresAt, daysRemaining'),
  'device.backup_created': notice('BACKUP_CREATED', 'kind BACKUP_CREATED; snapshotId, snapshotName'),
  'device.connection.connected': notice('CONNECTED', 'kind CONNECTED'),
  'device.connection.disconnected': notice('DISCONNECTED', 'kind DISCONNECTED; message (reason)'),
  'device.connection.failed': notice('CONNECTION_FAILED', 'kind CONNECTION_FAILED; retryCount, message (error)'),
  'device.connection.reconnecting': notice('RECONNECTING', 'kind RECONNECTING; retryCount'),

  'notification.send': {
    feeds: ['notification'],
    means: 'USER',
    owner: 'user',
    coalesced: false,
    mapping: 'scope USER; severity (info/warning/critical, also from priority), category (type), title, message, data (scrubbed)',
  },

  'system.error.critical': system(
    'ERROR',
    'kind ERROR, severity CRITICAL; serviceName, errorCode, message, data (scrubbed: no stackTrace)',
  ),
  'system.error.high': system('ERROR', 'kind ERROR, severity HIGH; serviceName, errorCode, message, data (scrubbed: no stackTrace)'),
  'system.error.medium': system('ERROR', 'kind ERROR, severity MEDIUM; serviceName, errorCode, message, data (scrubbed: no stackTrace)'),
  'system.error.low': system('ERROR', 'kind ERROR, severity LOW; serviceName, errorCode, message, data (scrubbed: no stackTrace)'),
  'device.backup_completed': system('BACKUP_REPORT', 'kind BACKUP_REPORT; message, data (the report, scrubbed)'),
  'device.backup_cleanup_completed': system('BACKUP_CLEANUP', 'kind BACKUP_CLEANUP; message, data (scrubbed)'),
  'quota.metrics': system('QUOTA_METRICS', 'kind QUOTA_METRICS; data (the metrics, scrubbed)'),
  'billing.usage_report_failed': system(
    'USAGE_REPORT_FAILED',
    'kind USAGE_REPORT_FAILED; serviceName, errorCode, message, data (scrubbed)',
  ),
} as const satisfies Record<string, Route>;

export type RoutingKey = keyof typeof ROUTES;

/**
 * A key that feeds two subscriptions (the completed order keys, the INSTALLED app keys) is ONE
 * event, published on the first four subscriptions' topic and retained once: the richer §7 event
 * (`orderStatus`, `installation` fields) under the older family (`order`, `app`). The newer
 * subscription takes both its own family's topic and that one. So a message costs one publish and
 * one log entry whatever it feeds, and the older subscriptions' topics did not change.
 */
export const ALSO_ON: Readonly<Partial<Record<EventFamily, EventFamily>>> = { orderStatus: 'order', installation: 'app' };

/**
 * Whether an event of `eventFamily` from `routingKey` is for `family`'s subscription: its own
 * family, or the other family of a key that feeds both (published under the older one; the
 * durable log holds the one the read model applied, the newer).
 */
export function deliversTo(eventFamily: EventFamily, routingKey: string, family: EventFamily): boolean {
  if (eventFamily === family) return true;
  const feeds = routeOf(routingKey)?.feeds;
  return feeds !== undefined && feeds.includes(family) && feeds.includes(eventFamily);
}

/** Keys announcements are published under by `broadcastAnnouncement` (through the outbox). */
export const ANNOUNCEMENT_ROUTING_KEY = 'notification.announcement';

const has = (table: object, key: string) => Object.prototype.hasOwnProperty.call(table, key);

/** The route of a key, or undefined for a key no subscription takes. */
export function routeOf(routingKey: string): Route | undefined {
  if (routingKey === ANNOUNCEMENT_ROUTING_KEY) return ANNOUNCEMENT_ROUTE;
  return has(ROUTES, routingKey) ? (ROUTES as Record<string, Route>)[routingKey] : undefined;
}

/** The announcement's own row: its audience decides the topics, not a user or a device. */
export const ANNOUNCEMENT_ROUTE: Route = {
  feeds: ['notification'],
  means: null,
  owner: 'user',
  coalesced: false,
  mapping:
    'scope USER, TENANT, ROLE or ALL by the audience (userIds, tenantId, role, all); one publish per audience, never per user for all/tenant/role',
};

const keysFeeding = (family: EventFamily) =>
  Object.fromEntries(
    Object.entries(ROUTES as Record<string, Route>)
      .filter(([, route]) => route.feeds.includes(family))
      .map(([key, route]) => [key, route.means]),
  );

/** Routing keys that feed `quotaChanged`, with the `kind` each one means. */
export const QUOTA_ROUTING_KEYS = keysFeeding('quota') as Readonly<Record<QuotaRoutingKey, QuotaKind>>;
type QuotaKind = 'UPDATED' | 'ALERT' | 'EXCEEDED' | 'RENEWED' | 'DEDUCTED' | 'RESTORED' | 'DELETED';
export type QuotaRoutingKey =
  'quota.updated' | 'quota.alert' | 'quota.exceeded' | 'quota.renewed' | 'quota.deducted' | 'quota.restored' | 'quota.deleted';

/**
 * Routing keys that feed `deviceStatusChanged`, with the status each one implies
 * (docs/event-catalogue.md); `null` where the body says.
 */
export const DEVICE_ROUTING_KEYS = keysFeeding('device') as Readonly<Record<DeviceRoutingKey, string | null>>;
export type DeviceRoutingKey = { [K in RoutingKey]: (typeof ROUTES)[K]['feeds'][number] extends 'device' ? K : never }[RoutingKey];

/** Routing keys that feed `orderCompleted`. */
export const ORDER_ROUTING_KEYS = { 'order.completed': true, 'billing.order.completed': true } as const;
export type OrderRoutingKey = keyof typeof ORDER_ROUTING_KEYS;

/** Routing keys that feed `appInstalled`. */
export const APP_ROUTING_KEYS = { 'app.installed': true, 'app.install.installed': true, 'app.install.completed': true } as const;
export type AppRoutingKey = keyof typeof APP_ROUTING_KEYS;

export function isQuotaRoutingKey(key: string): key is QuotaRoutingKey {
  return has(QUOTA_ROUTING_KEYS, key);
}
export function isDeviceRoutingKey(key: string): key is DeviceRoutingKey {
  return has(DEVICE_ROUTING_KEYS, key);
}
export function isOrderRoutingKey(key: string): key is OrderRoutingKey {
  return has(ORDER_ROUTING_KEYS, key);
}
export function isAppRoutingKey(key: string): key is AppRoutingKey {
  return has(APP_ROUTING_KEYS, key);
}

/**
 * The family of the first four subscriptions a key feeds (quota, device, order, app), else its first family;
 * undefined for a key no subscription takes.
 */
export function familyOf(routingKey: string): EventFamily | undefined {
  const route = routeOf(routingKey);
  if (!route) return undefined;
  return route.feeds[route.feeds.length - 1];
}

/** Every routing key some subscription takes (the announcement key included). */
export const ALL_ROUTING_KEYS: readonly string[] = [...Object.keys(ROUTES), ANNOUNCEMENT_ROUTING_KEY];

/**
 * Platform events that revoke one user's sessions (`{ userId }`, flat or enveloped;
 * docs/transports.md#revocation): no subscription takes them, the bridge hands them to the
 * revocation store.
 */
export const SESSION_REVOCATION_ROUTING_KEYS: readonly string[] = ['user.sessions.revoked', 'auth.sessions.revoked'];

export function isSessionRevocationRoutingKey(key: string): boolean {
  return SESSION_REVOCATION_ROUTING_KEYS.includes(key);
}

/**
 * Binding patterns of the shared queue: exactly the keys above. Binding wider patterns
 * (`device.#`) would only fill the queue with messages the gateway acknowledges unread; a routing
 * key outside this list that still arrives (e.g. through an operator's extra binding) is
 * acknowledged and counted as ignored.
 */
export const QUEUE_BINDINGS: readonly string[] = [...ALL_ROUTING_KEYS, ...SESSION_REVOCATION_ROUTING_KEYS];

/** AMQP topic matching: `*` is exactly one word, `#` zero or more words. */
export function topicMatches(pattern: string, routingKey: string): boolean {
  const p = pattern.split('.');
  const k = routingKey.split('.');
  const match = (i: number, j: number): boolean => {
    if (i === p.length) return j === k.length;
    if (p[i] === '#') {
      for (let skip = j; skip <= k.length; skip++) if (match(i + 1, skip)) return true;
      return false;
    }
    return j < k.length && (p[i] === '*' || p[i] === k[j]) && match(i + 1, j + 1);
  };
  return match(0, 0);
}
