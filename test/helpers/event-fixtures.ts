/**
 * Events as the bridge publishes them, one family per subscription field, and the widest
 * selection a client can make on each: shared by the unit tests of pushed payloads
 * (test/unit/push-delivery.test.ts, test/unit/compiled-execution.test.ts).
 */
import { getNamedType, isObjectType, type GraphQLObjectType } from 'graphql';
import { FIELDS_NOT_ON_EVENTS } from '../../src/contracts/entities';

export type SubscriptionField = keyof typeof events;

export const base = { userId: 'u1', occurredAt: '2026-11-25T00:00:00.000Z' };
/** One event per subscription field, as the bridge publishes it. */
export const events = {
  quotaChanged: {
    ...base,
    family: 'quota',
    eventId: 'q',
    type: 'quota.updated',
    quotaId: 'q1',
    kind: 'UPDATED',
    usagePercent: 5,
    limits: { maxDevices: 3 },
    usage: { currentDevices: 1 },
  },
  deviceStatusChanged: {
    ...base,
    family: 'device',
    eventId: 'd',
    type: 'device.started',
    deviceId: 'd1',
    previousStatus: 'IDLE',
    status: 'RUNNING',
  },
  orderCompleted: { ...base, family: 'order', eventId: 'o', type: 'order.completed', orderId: 'o1', amount: '59.90' },
  appInstalled: { ...base, family: 'app', eventId: 'a', type: 'app.installed', deviceId: 'd1', appId: 'x', packageName: 'com.x' },
  orderStatusChanged: {
    ...base,
    family: 'orderStatus',
    eventId: 'os',
    type: 'order.refunded',
    orderId: 'o1',
    status: 'REFUNDED',
    previousStatus: 'COMPLETED',
    amount: '59.90',
    reason: 'asked',
  },
  billingChanged: {
    ...base,
    family: 'billing',
    eventId: 'b',
    type: 'billing.payment_success',
    kind: 'PAYMENT_SUCCEEDED',
    amount: '100.00',
    balance: '250.50',
    paymentId: 'p1',
  },
  appInstallationChanged: {
    ...base,
    family: 'installation',
    eventId: 'ai',
    type: 'app.install.failed',
    deviceId: 'd1',
    appId: 'x',
    status: 'FAILED',
    error: 'no space',
  },
  deviceNotice: {
    ...base,
    family: 'deviceNotice',
    eventId: 'dn',
    type: 'device.expiration_warning',
    deviceId: 'd1',
    kind: 'EXPIRATION_WARNING',
    expiresAt: '2026-12-01T00:00:00.000Z',
    daysRemaining: 3,
  },
  notifications: {
    ...base,
    family: 'notification',
    eventId: 'n',
    type: 'notification.send',
    scope: 'USER',
    audience: { scope: 'USER', id: 'u1' },
    severity: 'INFO',
    title: 'Hi',
    message: 'Hello',
    data: { link: '/orders/1', n: 2, nested: { ok: true } },
  },
  systemEvents: {
    ...base,
    family: 'system',
    eventId: 's',
    type: 'system.error.critical',
    kind: 'ERROR',
    severity: 'CRITICAL',
    serviceName: 'billing',
    errorCode: 'E1',
    message: 'db down',
    data: { host: 'h1' },
  },
} as const;

/**
 * Every field of `type`, nested objects included (the widest selection a client can make in a
 * subscription: the fields eventSelectionRule refuses there are left out).
 */
export function everyField(type: GraphQLObjectType, depth = 0): string {
  return Object.values(type.getFields())
    .filter((field) => FIELDS_NOT_ON_EVENTS[type.name]?.[field.name] === undefined)
    .map((field) => {
      const named = getNamedType(field.type);
      return isObjectType(named) ? (depth < 3 ? `${field.name} { ${everyField(named, depth + 1)} }` : '') : field.name;
    })
    .filter(Boolean)
    .join(' ');
}

export const at = '2026-11-25T00:00:00.000Z';
/** Entities as the read model's write returns them (contracts/entities.ts). */
export const entities = {
  quota: {
    id: 'q1',
    userId: 'u1',
    planId: null,
    status: 'ACTIVE',
    limits: { maxDevices: 3, totalMemoryGB: 8.5 },
    usage: { currentDevices: 1 },
    validFrom: null,
    validUntil: at,
    autoRenew: false,
    version: 4,
    updatedAt: at,
  },
  device: {
    id: 'd1',
    userId: 'u1',
    name: 'phone',
    status: 'RUNNING',
    providerType: 'REDROID',
    cpuCores: 2,
    memoryMB: null,
    storageGB: 16,
    statusReason: null,
    failureType: null,
    recoveryStrategy: 'restart',
    recoveryAttempts: 1,
    version: 7,
    createdAt: at,
    updatedAt: at,
  },
  order: {
    id: 'o1',
    userId: 'u1',
    status: 'COMPLETED',
    amount: '59.90',
    deviceId: null,
    planId: 'p1',
    completedAt: at,
    cancelledAt: null,
    statusReason: null,
    version: 2,
    createdAt: at,
    updatedAt: at,
  },
  installation: {
    id: 'i1',
    deviceId: 'd1',
    userId: 'u1',
    appId: 'x',
    packageName: 'com.x',
    versionName: null,
    status: 'INSTALLED',
    installedAt: at,
    uninstalledAt: null,
    error: null,
    version: 1,
    updatedAt: at,
  },
};

/** Events as the bridge produces them: full, sparse, and with nulls where the schema allows. */
export const variants: Record<keyof typeof events, object[]> = {
  quotaChanged: [
    events.quotaChanged,
    { ...events.quotaChanged, eventId: 'q4', quota: entities.quota },
    { ...events.quotaChanged, eventId: 'q5', quota: null },
    {
      ...base,
      family: 'quota',
      eventId: 'q2',
      type: 'quota.alert',
      kind: 'ALERT',
      severity: 'WARNING',
      usagePercent: 91.5,
      validUntil: '2026-12-01T00:00:00.000Z',
    },
    { ...base, family: 'quota', eventId: 'q3', type: 'quota.deleted', kind: 'DELETED', limits: null, usage: { usedCpuCores: 2.5 } },
  ],
  deviceStatusChanged: [
    events.deviceStatusChanged,
    { ...events.deviceStatusChanged, eventId: 'd3', device: entities.device },
    {
      ...base,
      family: 'device',
      eventId: 'd2',
      type: 'device.error',
      deviceId: 'd9',
      deviceName: 'phone',
      status: 'ERROR',
      reason: 'boot failed',
      providerType: 'REDROID',
    },
  ],
  orderCompleted: [
    events.orderCompleted,
    { ...events.orderCompleted, eventId: 'o3', order: entities.order },
    { ...base, family: 'order', eventId: 'o2', type: 'billing.order.completed', orderId: 'o2', deviceId: 'd1', planId: 'p1' },
  ],
  appInstalled: [
    events.appInstalled,
    { ...events.appInstalled, eventId: 'a3', installation: entities.installation },
    { ...events.appInstalled, eventId: 'a4', installation: null },
    {
      ...base,
      family: 'app',
      eventId: 'a2',
      type: 'app.install.completed',
      deviceId: 'd1',
      installationId: 'i1',
      appId: 'x',
      versionName: '1.2',
    },
  ],
  orderStatusChanged: [
    events.orderStatusChanged,
    { ...events.orderStatusChanged, eventId: 'os3', order: entities.order },
    {
      ...base,
      family: 'orderStatus',
      eventId: 'os2',
      type: 'billing.order.paid',
      orderId: 'o2',
      status: 'PAID',
      deviceId: 'd1',
      planId: 'p1',
    },
  ],
  billingChanged: [
    events.billingChanged,
    {
      ...base,
      family: 'billing',
      eventId: 'b2',
      type: 'billing.overdue',
      kind: 'OVERDUE',
      overdueAmount: '12.00',
      overdueDays: 7,
      threshold: null,
    },
  ],
  appInstallationChanged: [
    events.appInstallationChanged,
    { ...events.appInstallationChanged, eventId: 'ai3', installation: entities.installation },
    { ...base, family: 'installation', eventId: 'ai2', type: 'app.updated', packageName: 'com.x', versionName: '2.0', status: 'UPDATED' },
  ],
  deviceNotice: [
    events.deviceNotice,
    {
      ...base,
      family: 'deviceNotice',
      eventId: 'dn2',
      type: 'device.connection.failed',
      deviceId: 'd2',
      kind: 'CONNECTION_FAILED',
      retryCount: 4,
      message: 'timeout',
      snapshotId: null,
    },
  ],
  notifications: [
    events.notifications,
    {
      family: 'notification',
      eventId: 'n2',
      type: 'notification.announcement',
      occurredAt: base.occurredAt,
      scope: 'ALL',
      audience: { scope: 'ALL' },
      severity: 'CRITICAL',
      category: 'maintenance',
      title: 'Down',
      message: 'Tonight',
    },
  ],
  systemEvents: [
    events.systemEvents,
    {
      family: 'system',
      eventId: 's2',
      type: 'quota.metrics',
      occurredAt: base.occurredAt,
      kind: 'QUOTA_METRICS',
      data: { users: 3, list: [1, 'a', { b: null }] },
    },
  ],
};
