/**
 * Routing keys the gateway consumes (docs/event-catalogue.md) and AMQP topic-pattern matching, shared by the
 * RabbitMQ topology and the in-process bus so both route exactly alike.
 */

/** The event families: one per subscription. */
export type EventFamily = 'quota' | 'device' | 'order' | 'app';

/** Routing keys that feed `quotaChanged`, with the `kind` each one means. */
export const QUOTA_ROUTING_KEYS = {
  'quota.updated': 'UPDATED',
  'quota.alert': 'ALERT',
  'quota.exceeded': 'EXCEEDED',
  'quota.renewed': 'RENEWED',
  'quota.deducted': 'DEDUCTED',
  'quota.restored': 'RESTORED',
  'quota.deleted': 'DELETED',
} as const;
export type QuotaRoutingKey = keyof typeof QUOTA_ROUTING_KEYS;

/**
 * Routing keys that feed `deviceStatusChanged`, with the status each one implies (docs/event-catalogue.md);
 * `null` where the body says: `device.created` (its `status`, else CREATING) and
 * `device.status.changed` (`newStatus`).
 */
export const DEVICE_ROUTING_KEYS = {
  'device.created': null,
  'device.started': 'RUNNING',
  'device.stopped': 'STOPPED',
  'device.deleted': 'DELETED',
  'device.error': 'ERROR',
  'device.recovered': 'RUNNING',
  'device.status.changed': null,
} as const;
export type DeviceRoutingKey = keyof typeof DEVICE_ROUTING_KEYS;

/** Routing keys that feed `orderCompleted`. */
export const ORDER_ROUTING_KEYS = { 'order.completed': true, 'billing.order.completed': true } as const;
export type OrderRoutingKey = keyof typeof ORDER_ROUTING_KEYS;

/** Routing keys that feed `appInstalled`. */
export const APP_ROUTING_KEYS = { 'app.installed': true, 'app.install.completed': true } as const;
export type AppRoutingKey = keyof typeof APP_ROUTING_KEYS;

const has = (table: object, key: string) => Object.prototype.hasOwnProperty.call(table, key);

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

/** The family a routing key feeds, or undefined for a key no subscription takes. */
export function familyOf(routingKey: string): EventFamily | undefined {
  if (isQuotaRoutingKey(routingKey)) return 'quota';
  if (isDeviceRoutingKey(routingKey)) return 'device';
  if (isOrderRoutingKey(routingKey)) return 'order';
  if (isAppRoutingKey(routingKey)) return 'app';
  return undefined;
}

/** Every routing key some subscription takes. */
export const ALL_ROUTING_KEYS: readonly string[] = [
  ...Object.keys(QUOTA_ROUTING_KEYS),
  ...Object.keys(DEVICE_ROUTING_KEYS),
  ...Object.keys(ORDER_ROUTING_KEYS),
  ...Object.keys(APP_ROUTING_KEYS),
];

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
