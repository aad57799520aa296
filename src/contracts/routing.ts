/**
 * Routing keys the gateway consumes (CONTRACT §5) and AMQP topic-pattern matching, shared by the
 * RabbitMQ topology and the in-process bus so both route exactly alike.
 */

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

/** Binding patterns of the shared queue. Later issues add `device.#`, `order.*`, ... */
export const QUEUE_BINDINGS: readonly string[] = ['quota.*'];

export function isQuotaRoutingKey(key: string): key is QuotaRoutingKey {
  return Object.prototype.hasOwnProperty.call(QUOTA_ROUTING_KEYS, key);
}

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
