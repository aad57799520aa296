/**
 * Which events are state-like, and about which entity (storm protection, see
 * `lib/event-queue.ts`). A state-like event carries the entity's whole current state, so when
 * several arrive for one entity within `EVENT_COALESCE_MS` only the latest needs to reach the
 * client. Transitions a user must see (alerts, exceeded, deletion) and facts (orders, app
 * installs) are never coalesced; they only keep their place in order.
 *
 * - quota: per user; `quota.updated|deducted|restored|renewed` are state-like (they carry limits
 *   and usage); `quota.alert|exceeded|deleted` are not.
 * - device: per device; every status change is state-like (the latest status is the state),
 *   except `DELETED`, which ends the device and must never be replaced or overtaken.
 *   Failover failures (`device.recovery_failed`, `device.permanent_failure`,
 *   `device.deletion_failed`: the routing table's `coalesced: false`) are never replaced either:
 *   a RUNNING that follows must not erase that a recovery failed.
 * - installation: per installation (device and app); the lifecycle status is state-like
 *   (REQUESTED, UNINSTALLING, UNINSTALLED), except FAILED (a failure), UPDATED (a catalogue fact)
 *   and INSTALLED (it also feeds appInstalled, whose events were never coalesced).
 * - order, app, order status, billing, device notices, notifications, system events: facts,
 *   never coalesced (payments, failures, notices: each one matters; they keep the bounded buffer,
 *   and their order).
 */
import type { GatewayEvent, QuotaEventKind } from './events';
import { routeOf } from './routing';

const STATE_LIKE_QUOTA_KINDS: ReadonlySet<QuotaEventKind> = new Set<QuotaEventKind>(['UPDATED', 'DEDUCTED', 'RESTORED', 'RENEWED']);

/**
 * Of two state-like events of one entity, the one to keep: the later `occurredAt` (ISO-8601 UTC,
 * so strings compare in time order), the later arrival on a tie.
 */
export function supersedes(next: GatewayEvent, current: GatewayEvent): boolean {
  return next.occurredAt >= current.occurredAt;
}

/**
 * Two state-like events of one entity as one: the newer (by `occurredAt`) with the fields it lacks
 * taken from the older, as the read model ends up after applying both in time order. Platform
 * quota events are often partial (limits in one, usage in the next): replacing one by the other
 * would lose what only the first carried.
 */
export function combine(current: GatewayEvent, next: GatewayEvent): GatewayEvent {
  const [older, newer] = supersedes(next, current) ? [current, next] : [next, current];
  if (newer.family === 'quota' && older.family === 'quota') {
    return {
      ...older,
      ...newer,
      limits: older.limits || newer.limits ? { ...older.limits, ...newer.limits } : undefined,
      usage: older.usage || newer.usage ? { ...older.usage, ...newer.usage } : undefined,
    } as GatewayEvent;
  }
  if (newer.family === 'device' && older.family === 'device') {
    // The status fields are the newer event's alone; names are filled in.
    return { ...newer, deviceName: newer.deviceName ?? older.deviceName, providerType: newer.providerType ?? older.providerType };
  }
  if (newer.family === 'installation' && older.family === 'installation') {
    return {
      ...newer,
      appId: newer.appId ?? older.appId,
      packageName: newer.packageName ?? older.packageName,
      versionName: newer.versionName ?? older.versionName,
    };
  }
  return newer;
}

/** The entity an event is about and whether only its latest state matters; undefined: never coalesced. */
export function coalescingKey(event: GatewayEvent): { entity: string; coalesce: boolean } | undefined {
  switch (event.family) {
    case 'quota':
      return { entity: `quota:${event.userId}`, coalesce: STATE_LIKE_QUOTA_KINDS.has(event.kind) };
    case 'device':
      return { entity: `device:${event.deviceId}`, coalesce: event.status !== 'DELETED' && routeOf(event.type)?.coalesced !== false };
    case 'installation': {
      if (event.deviceId === undefined) return undefined;
      const app = event.installationId ?? event.appId ?? event.packageName ?? '';
      return {
        entity: `installation:${event.deviceId}:${app}`,
        // INSTALLED also reaches appInstalled, whose events are facts: never replaced.
        coalesce:
          event.status !== 'FAILED' &&
          event.status !== 'UPDATED' &&
          event.status !== 'INSTALLED' &&
          routeOf(event.type)?.coalesced !== false,
      };
    }
    default:
      return undefined;
  }
}

type Coalescing = ReturnType<typeof coalescingKey>;
const classified = new WeakMap<GatewayEvent, Coalescing | null>();

/**
 * `coalescingKey`, computed once per event however many subscriptions it reaches (they all get
 * the same object from the pub/sub): no key string and object per subscriber and event.
 */
export function sharedCoalescingKey(event: GatewayEvent): Coalescing {
  let key = classified.get(event);
  if (key === undefined) {
    key = coalescingKey(event) ?? null;
    classified.set(event, key);
  }
  return key ?? undefined;
}
