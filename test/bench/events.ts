/**
 * What the benchmark publishes and what its clients select, shared by the load generator and the
 * two baseline servers so that all three servers are driven by, and answer, the same bytes.
 */

/** Subscription ids every bench client uses: a baseline may then write one frame to every socket. */
export const QUOTA_ID = 'q';
export const DEVICE_ID = 'd';

/** No `userId`: a user gets their own events; an administrator every user's (the firehose). */
export const QUOTA_DOCUMENT =
  'subscription { quotaChanged { eventId type userId occurredAt quotaId kind usagePercent ' +
  'limits { maxDevices totalCpuCores totalMemoryGB } usage { currentDevices usedCpuCores usedMemoryGB } } }';
export const DEVICE_DOCUMENT =
  'subscription { deviceStatusChanged { eventId type userId occurredAt deviceId deviceName previousStatus status reason providerType } }';

/** The SDL the graphql-ws baseline builds: the same types, trimmed to what the clients select. */
export const BASELINE_SDL = /* GraphQL */ `
  type QuotaLimits {
    maxDevices: Int
    totalCpuCores: Int
    totalMemoryGB: Float
  }
  type QuotaUsage {
    currentDevices: Int
    usedCpuCores: Int
    usedMemoryGB: Float
  }
  type QuotaEvent {
    eventId: ID!
    type: String!
    userId: ID!
    occurredAt: String!
    quotaId: ID
    kind: String!
    usagePercent: Float
    limits: QuotaLimits
    usage: QuotaUsage
  }
  type DeviceStatusEvent {
    eventId: ID!
    type: String!
    userId: ID!
    occurredAt: String!
    deviceId: ID!
    deviceName: String
    previousStatus: String
    status: String!
    reason: String
    providerType: String
  }
  type Query {
    ok: Boolean
  }
  type Subscription {
    quotaChanged(userId: ID): QuotaEvent!
    deviceStatusChanged(userId: ID, deviceId: ID): DeviceStatusEvent!
  }
`;

/**
 * The broadcast scenario's selection on the gateway: an announcement to everyone, received by
 * every plain user's `notifications` (about the size of the quota event the baselines fan out).
 */
export const NOTIFICATION_DOCUMENT =
  'subscription { notifications { eventId type userId occurredAt scope severity category title message } }';

/** The routing key `broadcastAnnouncement` relays through the outbox (CONTRACT §7). */
export const ANNOUNCEMENT_ROUTING_KEY = 'notification.announcement';

/** An announcement to everyone, as the outbox relay publishes it; about 250 bytes. */
export function announcementMessage(eventId: string, n: number): { routingKey: string; body: unknown } {
  return {
    routingKey: ANNOUNCEMENT_ROUTING_KEY,
    body: {
      eventId,
      eventType: ANNOUNCEMENT_ROUTING_KEY,
      timestamp: new Date().toISOString(),
      payload: {
        title: `Maintenance ${n}`,
        message: 'The platform restarts at 02:00 UTC for about five minutes.',
        severity: 'warning',
        category: 'maintenance',
        audience: { all: true },
      },
    },
  };
}

export const QUOTA_ROUTING_KEY = 'quota.updated';
export const DEVICE_ROUTING_KEY = 'device.status.changed';

const DEVICE_STATUSES = ['running', 'stopped'] as const;

/** A platform envelope (docs/events.md) about `userId`; about 300 bytes. */
export function quotaMessage(eventId: string, userId: string, n: number): { routingKey: string; body: unknown } {
  return {
    routingKey: QUOTA_ROUTING_KEY,
    body: {
      eventId,
      eventType: QUOTA_ROUTING_KEY,
      timestamp: new Date().toISOString(),
      payload: {
        userId,
        quotaId: `quota-${userId}`,
        limits: { maxDevices: 10, totalCpuCores: 40, totalMemoryGB: 64 },
        usage: { currentDevices: n % 10, usedCpuCores: (n % 10) * 4, usedMemoryGB: (n % 10) * 6.4 },
        usagePercent: (n % 10) * 10,
      },
    },
  };
}

export function deviceMessage(eventId: string, userId: string, n: number): { routingKey: string; body: unknown } {
  const from = DEVICE_STATUSES[n % 2] as string;
  const to = DEVICE_STATUSES[(n + 1) % 2] as string;
  return {
    routingKey: DEVICE_ROUTING_KEY,
    body: {
      eventId,
      eventType: DEVICE_ROUTING_KEY,
      timestamp: new Date().toISOString(),
      payload: {
        userId,
        deviceId: `device-${userId}`,
        deviceName: `phone ${userId}`,
        oldStatus: from,
        newStatus: to,
        providerType: 'redroid',
        reason: 'bench',
      },
    },
  };
}

export type BaselineField = 'quotaChanged' | 'deviceStatusChanged';

/**
 * What the baselines emit for a message: the gateway's output for the clients' selection, built
 * by hand in selection order (the work a hand-written server does, and no more).
 */
export function baselineEvent(
  routingKey: string,
  message: Record<string, unknown>,
): { field: BaselineField; userId: string; data: Record<string, unknown> } | undefined {
  const p = (message.payload ?? {}) as Record<string, unknown>;
  const userId = p.userId;
  if (typeof userId !== 'string') return undefined;
  const occurredAt = new Date(String(message.timestamp)).toISOString();
  if (routingKey === QUOTA_ROUTING_KEY) {
    const limits = (p.limits ?? {}) as Record<string, unknown>;
    const usage = (p.usage ?? {}) as Record<string, unknown>;
    return {
      field: 'quotaChanged',
      userId,
      data: {
        eventId: message.eventId,
        type: routingKey,
        userId,
        occurredAt,
        quotaId: p.quotaId ?? null,
        kind: 'UPDATED',
        usagePercent: p.usagePercent ?? null,
        limits: {
          maxDevices: limits.maxDevices ?? null,
          totalCpuCores: limits.totalCpuCores ?? null,
          totalMemoryGB: limits.totalMemoryGB ?? null,
        },
        usage: {
          currentDevices: usage.currentDevices ?? null,
          usedCpuCores: usage.usedCpuCores ?? null,
          usedMemoryGB: usage.usedMemoryGB ?? null,
        },
      },
    };
  }
  if (routingKey === DEVICE_ROUTING_KEY) {
    return {
      field: 'deviceStatusChanged',
      userId,
      data: {
        eventId: message.eventId,
        type: routingKey,
        userId,
        occurredAt,
        deviceId: p.deviceId,
        deviceName: p.deviceName ?? null,
        previousStatus: typeof p.oldStatus === 'string' ? p.oldStatus.toUpperCase() : null,
        status: String(p.newStatus).toUpperCase(),
        reason: p.reason ?? null,
        providerType: p.providerType ?? null,
      },
    };
  }
  return undefined;
}
