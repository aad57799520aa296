/**
 * The event wire contract (docs/events.md): how a raw AMQP message becomes a normalized gateway
 * event. Per event kind: an alias step (the platform's other names for a field, the status a
 * routing key implies) and one zod validator of the domain fields, from which the event's
 * TypeScript type is inferred. Validators keep only the fields they name, so unknown extras
 * (`_trace`, `email`, ...) never reach Redis or a client.
 *
 *   raw body --decodeMessage--> { payload, eventId, occurredAt } --normalizeEvent--> event draft
 *   draft (+ owner from the read model when the platform named only a device) --> GatewayEvent
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { AppInstallationEntity, DeviceEntity, OrderEntity, QuotaEntity } from './entities';
import {
  ANNOUNCEMENT_ROUTING_KEY,
  DEVICE_ROUTING_KEYS,
  familyOf,
  QUOTA_ROUTING_KEYS,
  routeOf,
  type DeviceRoutingKey,
  type EventFamily,
  type QuotaRoutingKey,
  type Route,
} from './routing';

/** A message as any event bus hands it to the bridge. */
export interface IncomingMessage {
  readonly routingKey: string;
  readonly body: Buffer;
  /** AMQP `messageId` property. */
  readonly messageId?: string;
  /** AMQP `timestamp` property (the platform sets milliseconds). */
  readonly timestamp?: number;
  /**
   * The partition key header (contracts/partition.ts) the router set: for an event that names
   * only a device, the owner the router resolved, so every instance publishes it for that user.
   */
  readonly partitionKey?: string;
}

/** Why a message is rejected; becomes the `x-rejection-reason` header of the dead letter. */
export class EventRejection extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'EventRejection';
  }
}

// ---------------------------------------------------------------- field parsers (liberal in)

const finiteNumber = z
  .union([
    z.number(),
    z
      .string()
      .trim()
      .regex(/^-?\d+(\.\d+)?$/, 'expected a number')
      .transform(Number),
  ])
  .refine(Number.isFinite, 'expected a finite number');

/** Control characters (NUL above all: PostgreSQL refuses it in text) never make a valid id. */
// eslint-disable-next-line no-control-regex -- matching control characters is this pattern's whole point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

const entityId = z.union([
  z
    .string()
    .trim()
    .min(1, 'must not be empty')
    .max(200, 'too long')
    .refine((s) => !CONTROL_CHARACTERS.test(s), 'control characters'),
  z.number().int().nonnegative().transform(String),
]);

/** Absent, null, or unparsable optional values all read as "not sent". */
const optional = <T extends z.ZodTypeAny>(schema: T) =>
  z.optional(
    z.unknown().transform((value) => {
      if (value === undefined || value === null) return undefined;
      const parsed = schema.safeParse(value);
      return parsed.success ? parsed.data : undefined;
    }),
  );

/** Parses ISO strings and epoch numbers (ms, or seconds when implausibly small) to ISO-8601. */
export function toIsoTime(value: unknown): string | undefined {
  let ms: number | undefined;
  if (typeof value === 'number' && Number.isFinite(value)) ms = value < 1e11 ? value * 1000 : value;
  else if (typeof value === 'string' && value.trim() !== '') {
    const trimmed = value.trim();
    ms = /^\d+(\.\d+)?$/.test(trimmed) ? toMs(Number(trimmed)) : Date.parse(trimmed);
  }
  if (ms === undefined || !Number.isFinite(ms)) return undefined;
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}
const toMs = (n: number) => (n < 1e11 ? n * 1000 : n);

const isoTime = z.optional(z.unknown().transform((v) => toIsoTime(v)));

const upperEnum = <T extends string>(values: readonly T[]) =>
  z.optional(
    z.unknown().transform((v) => {
      if (typeof v !== 'string') return undefined;
      const upper = v.trim().toUpperCase();
      return (values as readonly string[]).includes(upper) ? (upper as T) : undefined;
    }),
  );

const text = (max: number) =>
  z
    .string()
    .trim()
    .min(1)
    .max(max)
    .refine((s) => !s.includes('\u0000'), 'NUL character');

/** A required entity id: its absence and its malformation are told apart in the reason. */
const requiredId = (name: string) =>
  z.unknown().transform((v, ctx) => {
    if (v === undefined || v === null) {
      ctx.addIssue({ code: 'custom', message: `missing ${name}` });
      return z.NEVER;
    }
    const parsed = entityId.safeParse(v);
    if (!parsed.success) {
      ctx.addIssue({ code: 'custom', message: `invalid ${name}` });
      return z.NEVER;
    }
    return parsed.data;
  });

/** A money amount as a decimal string, kept exactly as sent (`"59.90"`); a number is stringified. */
const decimalString = z.union([
  z
    .string()
    .trim()
    .regex(/^-?\d{1,18}(\.\d{1,18})?$/),
  z.number().refine(Number.isFinite).transform(String),
]);

const upper = (v: unknown) => (typeof v === 'string' ? v.trim().toUpperCase() : v);

// ---------------------------------------------------------------- the common header

/** What every normalized event carries (docs/api.md#subscriptions). */
export interface EventHeader {
  readonly eventId: string;
  /** The routing key the event came from. */
  readonly type: string;
  readonly userId: string;
  /** ISO-8601. */
  readonly occurredAt: string;
}

/** An event before its owner is known: device and app events may name only a device. */
export type EventDraft<E extends EventHeader> = Omit<E, 'userId'> & { readonly userId?: string };

// ---------------------------------------------------------------- quota

/** Quota limit fields as the platform names them, with their number kind. */
export const QUOTA_LIMIT_FIELDS = {
  maxDevices: 'int',
  maxConcurrentDevices: 'int',
  maxCpuCoresPerDevice: 'int',
  maxMemoryMBPerDevice: 'int',
  maxStorageGBPerDevice: 'int',
  totalCpuCores: 'int',
  totalMemoryGB: 'float',
  totalStorageGB: 'float',
  maxBandwidthMbps: 'float',
  monthlyTrafficGB: 'float',
  maxUsageHoursPerDay: 'float',
  maxUsageHoursPerMonth: 'float',
} as const;

/** Quota usage fields as the platform names them, with their number kind. */
export const QUOTA_USAGE_FIELDS = {
  currentDevices: 'int',
  currentConcurrentDevices: 'int',
  usedCpuCores: 'int',
  usedMemoryGB: 'float',
  usedStorageGB: 'float',
  currentBandwidthMbps: 'float',
  monthlyTrafficUsedGB: 'float',
  todayUsageHours: 'float',
  monthlyUsageHours: 'float',
} as const;

const int32 = finiteNumber.refine((n) => Number.isInteger(n) && Math.abs(n) <= 2_147_483_647, 'expected a 32-bit integer');

/** An object of optional numbers; a field of the wrong kind reads as "not sent". */
const numberFields = <K extends string>(fields: Readonly<Record<K, 'int' | 'float'>>) =>
  z.object(
    Object.fromEntries(
      Object.entries(fields).map(([key, kind]) => [key, optional(kind === 'int' ? int32 : finiteNumber)]),
    ) as unknown as Record<K, z.ZodType<number | undefined>>,
  );

export const QUOTA_STATUSES = ['ACTIVE', 'EXCEEDED', 'SUSPENDED', 'EXPIRED'] as const;
export const QUOTA_EVENT_KINDS = Object.values(QUOTA_ROUTING_KEYS);
export type QuotaEventKind = (typeof QUOTA_EVENT_KINDS)[number];

/** The domain fields of a `quotaChanged` event. */
export const quotaEventFields = z.object({
  quotaId: optional(entityId),
  limits: optional(numberFields(QUOTA_LIMIT_FIELDS)),
  usage: optional(numberFields(QUOTA_USAGE_FIELDS)),
  usagePercent: optional(finiteNumber),
  severity: optional(text(50)),
  status: upperEnum(QUOTA_STATUSES),
  validUntil: isoTime,
});

export type QuotaLimits = Partial<Record<keyof typeof QUOTA_LIMIT_FIELDS, number>>;
export type QuotaUsage = Partial<Record<keyof typeof QUOTA_USAGE_FIELDS, number>>;
export type QuotaStatus = (typeof QUOTA_STATUSES)[number];

/** A normalized `quotaChanged` event: what is published to pub/sub and pushed to clients. */
export type QuotaEventMessage = EventHeader & {
  readonly family: 'quota';
  readonly kind: QuotaEventKind;
  /** Set by the bridge from the read model (contracts/entities.ts). */
  readonly quota?: QuotaEntity | null;
} & Readonly<z.output<typeof quotaEventFields>>;

/** `percentage` (per-resource percentages) gives `usagePercent` as its largest value. */
function quotaAliases(p: Record<string, unknown>): Record<string, unknown> {
  if (p.usagePercent !== undefined && p.usagePercent !== null) return p;
  if (!isPlainObject(p.percentage)) return p;
  const values = Object.values(p.percentage)
    .map((v) => finiteNumber.safeParse(v))
    .flatMap((r) => (r.success ? [r.data] : []));
  return values.length > 0 ? { ...p, usagePercent: Math.max(...values) } : p;
}

// ---------------------------------------------------------------- device

export const DEVICE_STATUSES = ['CREATING', 'IDLE', 'ALLOCATED', 'RUNNING', 'STOPPED', 'PAUSED', 'ERROR', 'DELETED'] as const;
export type DeviceStatus = (typeof DEVICE_STATUSES)[number];

const requiredDeviceStatus = z.unknown().transform((v, ctx) => {
  if (v === undefined || v === null || v === '') {
    ctx.addIssue({ code: 'custom', message: 'missing status' });
    return z.NEVER;
  }
  const status = upper(v);
  if (typeof status !== 'string' || !(DEVICE_STATUSES as readonly string[]).includes(status)) {
    ctx.addIssue({ code: 'custom', message: 'invalid status' });
    return z.NEVER;
  }
  return status as DeviceStatus;
});

/** The domain fields of a `deviceStatusChanged` event. */
export const deviceEventFields = z.object({
  deviceId: requiredId('deviceId'),
  deviceName: optional(text(200)),
  previousStatus: upperEnum(DEVICE_STATUSES),
  status: requiredDeviceStatus,
  reason: optional(text(1000)),
  providerType: optional(text(50)),
  failureType: optional(text(100)),
  recoveryStrategy: optional(text(100)),
  attempts: optional(int32),
});

export type DeviceStatusEventMessage = EventHeader & { readonly family: 'device'; readonly device?: DeviceEntity | null } & Readonly<
    z.output<typeof deviceEventFields>
  >;

const isDeviceStatus = (v: unknown): v is DeviceStatus =>
  typeof upper(v) === 'string' && (DEVICE_STATUSES as readonly string[]).includes(upper(v) as string);

/** The status a routing key implies, and the platform's other names for the fields. */
function deviceAliases(routingKey: DeviceRoutingKey, p: Record<string, unknown>): Record<string, unknown> {
  const implied = DEVICE_ROUTING_KEYS[routingKey];
  let status: unknown;
  if (implied) status = implied;
  else if (routingKey === 'device.created') status = isDeviceStatus(p.status) ? p.status : 'CREATING';
  else if (routingKey === 'device.cleaned') status = p.deleted === true || p.deleted === 'true' ? 'DELETED' : 'STOPPED';
  else status = p.newStatus ?? p.status;
  return {
    deviceId: p.deviceId,
    deviceName: p.deviceName,
    previousStatus: p.previousStatus ?? p.oldStatus,
    status,
    reason: reasonOf(p),
    providerType: p.providerType,
    failureType: p.failureType,
    recoveryStrategy: p.recoveryStrategy ?? p.strategy,
    attempts: p.attempts ?? p.attempt ?? p.retryCount,
  };
}

/** `reason` from `reason` / `error` (a string, or an object's message) / `errorMessage`. */
function reasonOf(p: Record<string, unknown>): unknown {
  const error =
    typeof p.error === 'string' ? p.error : isPlainObject(p.error) && typeof p.error.message === 'string' ? p.error.message : undefined;
  const reason = p.reason ?? error ?? p.errorMessage;
  return typeof reason === 'string' ? scrubText(reason) : reason;
}

// ---------------------------------------------------------------- order

/** The domain fields of an `orderCompleted` event. */
export const orderEventFields = z.object({
  orderId: requiredId('orderId'),
  amount: optional(decimalString),
  deviceId: optional(entityId),
  planId: optional(entityId),
});

export type OrderCompletedEventMessage = EventHeader & { readonly family: 'order'; readonly order?: OrderEntity | null } & Readonly<
    z.output<typeof orderEventFields>
  >;

// ---------------------------------------------------------------- app

/** The domain fields of an `appInstalled` event. */
export const appEventFields = z
  .object({
    installationId: optional(entityId),
    appId: optional(entityId),
    deviceId: requiredId('deviceId'),
    packageName: optional(text(255)),
    versionName: optional(text(100)),
  })
  .refine((e) => e.appId !== undefined || e.packageName !== undefined, { message: 'missing appId' });

export type AppInstalledEventMessage = EventHeader & {
  readonly family: 'app';
  readonly installation?: AppInstallationEntity | null;
} & Readonly<z.output<typeof appEventFields>>;

function appAliases(p: Record<string, unknown>): Record<string, unknown> {
  return { ...p, appId: p.appId ?? p.applicationId };
}

// ---------------------------------------------------------------- scrubbing (strict out)

/** An e-mail address anywhere in free text. */
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;
/** Where a stack trace starts in free text: the first `at ...` frame line. */
const STACK_FRAME = /\r?\n\s*at\s[\s\S]*$/;

/**
 * Free text as a client may see it: a stack trace appended to a message is cut off and e-mail
 * addresses are redacted (docs/api.md: no e-mail, no stack trace reaches a client).
 */
export function scrubText(value: string): string {
  return value.replace(STACK_FRAME, '').replace(EMAIL, '[redacted]');
}

/** Keys a `JSON` field never carries, whatever their value (case-insensitive). */
const SCRUBBED_KEYS =
  /^(stack|stacktrace|stack_trace|_trace|trace|traceparent|tracestate|email|e-mail|mail|password|token|secret|authorization)$|email/i;
/** Past this depth a JSON field's value is dropped: free-form data, not a document store. */
const MAX_JSON_DEPTH = 6;
/** The largest `JSON` field kept, serialized; a larger one is dropped rather than cut. */
export const MAX_JSON_FIELD_BYTES = 16_384;

function scrubValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return scrubText(value);
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'boolean' || value === null) return value;
  if (depth >= MAX_JSON_DEPTH) return undefined;
  if (Array.isArray(value)) return value.map((v) => scrubValue(v, depth + 1)).filter((v) => v !== undefined);
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      if (SCRUBBED_KEYS.test(key)) continue;
      const scrubbed = scrubValue(v, depth + 1);
      if (scrubbed !== undefined) out[key] = scrubbed;
    }
    return out;
  }
  return undefined;
}

/**
 * A `JSON` scalar field as it may leave the gateway: no stack trace, e-mail, `_trace` or
 * credential at any depth, bounded in depth and size. Undefined when nothing is left.
 */
export function scrubJson(value: unknown): Record<string, unknown> | undefined {
  if (!isPlainObject(value)) return undefined;
  const scrubbed = scrubValue(value, 0) as Record<string, unknown>;
  if (Object.keys(scrubbed).length === 0) return undefined;
  return JSON.stringify(scrubbed).length > MAX_JSON_FIELD_BYTES ? undefined : scrubbed;
}

/** Free text for a client: scrubbed, then bounded. */
const clientText = (max: number) =>
  z
    .string()
    .transform((s) => scrubText(s).trim())
    .pipe(text(max));

// ---------------------------------------------------------------- order status

export const ORDER_STATUSES = ['PENDING', 'PAID', 'COMPLETED', 'CANCELLED', 'REFUNDED', 'FAILED'] as const;
export type OrderStatusValue = (typeof ORDER_STATUSES)[number];

/** The domain fields of an `orderStatusChanged` event. */
export const orderStatusEventFields = z.object({
  orderId: requiredId('orderId'),
  status: z.enum(ORDER_STATUSES),
  previousStatus: upperEnum(ORDER_STATUSES),
  amount: optional(decimalString),
  reason: optional(clientText(1000)),
  deviceId: optional(entityId),
  planId: optional(entityId),
});

export type OrderStatusEventMessage = EventHeader & { readonly family: 'orderStatus'; readonly order?: OrderEntity | null } & Readonly<
    z.output<typeof orderStatusEventFields>
  >;

// ---------------------------------------------------------------- billing

export const BILLING_KINDS = [
  'PAYMENT_SUCCEEDED',
  'PAYMENT_FAILED',
  'REFUND_COMPLETED',
  'INVOICE_GENERATED',
  'LOW_BALANCE',
  'OVERDUE',
  'RECHARGED',
] as const;
export type BillingKind = (typeof BILLING_KINDS)[number];

/** The domain fields of a `billingChanged` event: money as decimal strings exactly as sent. */
export const billingEventFields = z.object({
  kind: z.enum(BILLING_KINDS),
  amount: optional(decimalString),
  balance: optional(decimalString),
  threshold: optional(decimalString),
  paymentId: optional(entityId),
  orderId: optional(entityId),
  invoiceId: optional(entityId),
  paymentMethod: optional(text(50)),
  reason: optional(clientText(1000)),
  overdueAmount: optional(decimalString),
  overdueDays: optional(int32),
});

export type BillingEventMessage = EventHeader & { readonly family: 'billing' } & Readonly<z.output<typeof billingEventFields>>;

function billingAliases(p: Record<string, unknown>): Record<string, unknown> {
  return {
    ...p,
    balance: p.balance ?? p.newBalance ?? p.currentBalance,
    threshold: p.threshold ?? p.lowBalanceThreshold,
    reason: reasonOf(p) ?? p.failureReason,
    overdueAmount: p.overdueAmount ?? (p.type === 'overdue' ? p.amount : undefined),
  };
}

// ---------------------------------------------------------------- app installation lifecycle

export const INSTALLATION_EVENT_STATUSES = ['REQUESTED', 'INSTALLED', 'FAILED', 'UNINSTALLING', 'UNINSTALLED', 'UPDATED'] as const;
export type InstallationEventStatus = (typeof INSTALLATION_EVENT_STATUSES)[number];

/** The domain fields of an `appInstallationChanged` event (`deviceId` absent only for `app.updated`). */
export const installationEventFields = z
  .object({
    installationId: optional(entityId),
    appId: optional(entityId),
    deviceId: optional(entityId),
    packageName: optional(text(255)),
    versionName: optional(text(100)),
    status: z.enum(INSTALLATION_EVENT_STATUSES),
    previousStatus: upperEnum(INSTALLATION_EVENT_STATUSES),
    error: optional(clientText(1000)),
  })
  .refine((e) => e.appId !== undefined || e.packageName !== undefined || e.installationId !== undefined, { message: 'missing appId' });

export type AppInstallationEventMessage = EventHeader & {
  readonly family: 'installation';
  readonly installation?: AppInstallationEntity | null;
} & Readonly<z.output<typeof installationEventFields>>;

function installationAliases(routingKey: string, route: Route, p: Record<string, unknown>): Record<string, unknown> {
  let status = route.means;
  if (routingKey === 'app.uninstall.completed') {
    status = typeof p.status === 'string' && p.status.trim().toLowerCase() === 'failed' ? 'FAILED' : 'UNINSTALLED';
  }
  return {
    ...p,
    appId: p.appId ?? p.applicationId,
    versionName: p.versionName ?? p.version ?? p.newVersion,
    status,
    previousStatus: p.previousStatus ?? p.oldStatus,
    error: status === 'FAILED' ? reasonOf(p) : undefined,
  };
}

// ---------------------------------------------------------------- device notices

export const DEVICE_NOTICE_KINDS = [
  'EXPIRATION_WARNING',
  'BACKUP_CREATED',
  'CONNECTED',
  'DISCONNECTED',
  'CONNECTION_FAILED',
  'RECONNECTING',
] as const;
export type DeviceNoticeKind = (typeof DEVICE_NOTICE_KINDS)[number];

/** The domain fields of a `deviceNotice` event. */
export const deviceNoticeEventFields = z.object({
  deviceId: requiredId('deviceId'),
  deviceName: optional(text(200)),
  kind: z.enum(DEVICE_NOTICE_KINDS),
  expiresAt: isoTime,
  daysRemaining: optional(int32),
  snapshotId: optional(entityId),
  snapshotName: optional(text(200)),
  retryCount: optional(int32),
  message: optional(clientText(1000)),
});

export type DeviceNoticeEventMessage = EventHeader & { readonly family: 'deviceNotice' } & Readonly<
    z.output<typeof deviceNoticeEventFields>
  >;

function noticeAliases(p: Record<string, unknown>): Record<string, unknown> {
  return {
    ...p,
    expiresAt: p.expiresAt ?? p.expireAt ?? p.expirationTime,
    daysRemaining: p.daysRemaining ?? p.remainingDays,
    snapshotId: p.snapshotId ?? p.backupId,
    snapshotName: p.snapshotName ?? p.backupName,
    retryCount: p.retryCount ?? p.attempts ?? p.attempt,
    message: p.message ?? reasonOf(p),
  };
}

// ---------------------------------------------------------------- notifications

export const NOTIFICATION_SCOPES = ['USER', 'TENANT', 'ROLE', 'ALL'] as const;
export type NotificationScope = (typeof NOTIFICATION_SCOPES)[number];
export const NOTIFICATION_SEVERITIES = ['INFO', 'WARNING', 'CRITICAL'] as const;
export type NotificationSeverity = (typeof NOTIFICATION_SEVERITIES)[number];

/** Longest notification title and message accepted; a longer one is refused, never cut. */
export const MAX_NOTIFICATION_TITLE = 200;
export const MAX_NOTIFICATION_MESSAGE = 4_000;

/** The domain fields of a `notifications` event. */
export const notificationEventFields = z.object({
  severity: z.preprocess((v) => {
    const s = upper(v);
    if (s === 'HIGH' || s === 'URGENT' || s === 'ERROR') return 'CRITICAL';
    if (s === 'MEDIUM' || s === 'WARN') return 'WARNING';
    return (NOTIFICATION_SEVERITIES as readonly unknown[]).includes(s) ? s : 'INFO';
  }, z.enum(NOTIFICATION_SEVERITIES)),
  category: optional(text(100)),
  title: z.unknown().transform((v, ctx) => requiredText(v, 'title', MAX_NOTIFICATION_TITLE, ctx)),
  message: z.unknown().transform((v, ctx) => requiredText(v, 'message', MAX_NOTIFICATION_MESSAGE, ctx)),
  data: z.optional(z.unknown().transform(scrubJson)),
});

function requiredText(v: unknown, name: string, max: number, ctx: z.RefinementCtx): string {
  if (typeof v !== 'string' || v.trim() === '') {
    ctx.addIssue({ code: 'custom', message: `missing ${name}` });
    return z.NEVER;
  }
  const parsed = clientText(max).safeParse(v);
  if (!parsed.success) {
    ctx.addIssue({
      code: 'custom',
      message: `invalid ${name}: ${v.length > max ? `longer than ${max} characters` : 'not printable text'}`,
    });
    return z.NEVER;
  }
  return parsed.data;
}

/**
 * Who an announcement or notification is for. Internal: it picks the topic and never reaches a
 * client (the GraphQL type has no such field).
 */
export interface NotificationAudience {
  readonly scope: NotificationScope;
  /** The user, tenant or role; absent for ALL. */
  readonly id?: string;
}

export type NotificationEventMessage = Omit<EventHeader, 'userId'> & {
  readonly family: 'notification';
  /** The recipient, for personal notifications (scope USER). */
  readonly userId?: string;
  readonly scope: NotificationScope;
  readonly audience: NotificationAudience;
} & Readonly<z.output<typeof notificationEventFields>>;

function notificationAliases(p: Record<string, unknown>): Record<string, unknown> {
  return {
    ...p,
    severity: p.severity ?? p.priority ?? p.level,
    category: p.category ?? p.notificationType,
    title: p.title ?? p.subject,
    message: p.message ?? p.content ?? p.body,
    data: p.data ?? p.metadata,
  };
}

/** The audience of an announcement as the mutation writes it (`audience` in the outbox body). */
const announcementAudience = z.object({
  all: z.optional(z.boolean()),
  tenantId: optional(entityId),
  role: optional(text(100)),
  userIds: optional(z.array(entityId).max(1_000)),
});

// ---------------------------------------------------------------- system events

export const SYSTEM_EVENT_KINDS = ['ERROR', 'BACKUP_REPORT', 'BACKUP_CLEANUP', 'QUOTA_METRICS', 'USAGE_REPORT_FAILED'] as const;
export type SystemEventKind = (typeof SYSTEM_EVENT_KINDS)[number];

/** The domain fields of a `systemEvents` event: `stackTrace` is never among them. */
export const systemEventFields = z.object({
  kind: z.enum(SYSTEM_EVENT_KINDS),
  severity: optional(
    z
      .string()
      .trim()
      .min(1)
      .max(20)
      .transform((s) => s.toUpperCase()),
  ),
  serviceName: optional(text(100)),
  errorCode: optional(text(100)),
  message: optional(clientText(2_000)),
  data: z.optional(z.unknown().transform(scrubJson)),
});

export type SystemEventMessage = Omit<EventHeader, 'userId'> & {
  readonly family: 'system';
  /** The user concerned, when the platform named one. */
  readonly userId?: string;
} & Readonly<z.output<typeof systemEventFields>>;

const SYSTEM_HEADER_FIELDS = new Set([
  'type',
  'timestamp',
  'eventId',
  'eventType',
  'version',
  'source',
  'serviceName',
  'service',
  'errorCode',
  'code',
  'message',
  'errorMessage',
  'severity',
  'userId',
  'data',
]);

function systemAliases(routingKey: string, route: Route, p: Record<string, unknown>): Record<string, unknown> {
  const fromKey = routingKey.startsWith('system.error.') ? routingKey.slice('system.error.'.length) : undefined;
  // Everything the platform sent besides the named fields is the report's data (scrubbed).
  const rest = Object.fromEntries(Object.entries(p).filter(([key]) => !SYSTEM_HEADER_FIELDS.has(key)));
  const data = isPlainObject(p.data) ? { ...rest, ...p.data } : rest;
  const error = isPlainObject(p.error) ? p.error : undefined;
  return {
    kind: route.means,
    severity: p.severity ?? fromKey,
    serviceName: p.serviceName ?? p.service ?? p.source,
    errorCode: p.errorCode ?? p.code ?? error?.code,
    message: p.message ?? p.errorMessage ?? error?.message ?? (typeof p.error === 'string' ? p.error : undefined),
    data,
  };
}

// ---------------------------------------------------------------- the union

/** A normalized event of any family, as published to pub/sub. */
export type GatewayEvent =
  | QuotaEventMessage
  | DeviceStatusEventMessage
  | OrderCompletedEventMessage
  | AppInstalledEventMessage
  | OrderStatusEventMessage
  | BillingEventMessage
  | AppInstallationEventMessage
  | DeviceNoticeEventMessage
  | NotificationEventMessage
  | SystemEventMessage;

/** The events that always belong to one user (every family but notifications and system events). */
export type UserEvent = Exclude<GatewayEvent, NotificationEventMessage | SystemEventMessage>;

export type GatewayEventDraft =
  | EventDraft<QuotaEventMessage>
  | EventDraft<DeviceStatusEventMessage>
  | EventDraft<OrderCompletedEventMessage>
  | EventDraft<AppInstalledEventMessage>
  | EventDraft<OrderStatusEventMessage>
  | EventDraft<BillingEventMessage>
  | EventDraft<AppInstallationEventMessage>
  | EventDraft<DeviceNoticeEventMessage>
  | NotificationEventMessage
  | SystemEventMessage;

/** The event type of each family. */
export interface EventOfFamily {
  quota: QuotaEventMessage;
  device: DeviceStatusEventMessage;
  order: OrderCompletedEventMessage;
  app: AppInstalledEventMessage;
  orderStatus: OrderStatusEventMessage;
  billing: BillingEventMessage;
  installation: AppInstallationEventMessage;
  deviceNotice: DeviceNoticeEventMessage;
  notification: NotificationEventMessage;
  system: SystemEventMessage;
}

// ---------------------------------------------------------------- envelope and decoding

const utf8 = new TextDecoder('utf-8', { fatal: true });

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The event's own time fields by routing key, most specific first; `timestamp` (body, then
 * envelope), the AMQP `timestamp` property and the time received are the fallbacks after these.
 */
const OWN_TIME_FIELDS: Readonly<Record<string, readonly string[]>> = {
  'quota.updated': ['updatedAt'],
  'quota.alert': ['alertedAt'],
  'quota.exceeded': ['exceededAt'],
  'quota.renewed': ['renewedAt'],
  'quota.deducted': ['deductedAt'],
  'quota.restored': ['restoredAt'],
  'quota.deleted': ['deletedAt'],
  'device.created': ['createdAt'],
  'device.started': ['startedAt'],
  'device.stopped': ['stoppedAt'],
  'device.deleted': ['deletedAt'],
  'device.error': ['failedAt', 'errorAt'],
  'device.recovered': ['recoveredAt'],
  'device.status.changed': ['changedAt'],
  'order.completed': ['completedAt', 'paidAt'],
  'billing.order.completed': ['completedAt', 'paidAt'],
  'app.installed': ['installedAt'],
  'app.install.completed': ['installedAt', 'completedAt'],
};

/** How far ahead of the gateway's clock an event's time may be before it is not believed. */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

/** A decoded message: the domain payload (flat body or the envelope's), its id and time. */
export interface DecodedMessage {
  readonly payload: Record<string, unknown>;
  readonly eventId: string;
  readonly occurredAt: string;
}

/**
 * Decodes a raw message: UTF-8, JSON, object; unwraps the envelope; derives `eventId` and
 * `occurredAt` by docs/events.md#eventid-and-occurredat's fallbacks. Throws `EventRejection` with the dead-letter reason.
 */
export function decodeMessage(message: IncomingMessage, maxBytes: number, now: () => Date = () => new Date()): DecodedMessage {
  if (message.body.length > maxBytes) {
    throw new EventRejection(`body too large: ${message.body.length} bytes exceeds ${maxBytes}`);
  }
  let text: string;
  try {
    text = utf8.decode(message.body);
  } catch {
    throw new EventRejection('invalid UTF-8');
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new EventRejection('not JSON');
  }
  if (!isPlainObject(body)) throw new EventRejection('not a JSON object');

  const isEnvelope = isPlainObject(body.payload) && ('eventType' in body || 'eventId' in body);
  const payload = isEnvelope ? (body.payload as Record<string, unknown>) : body;
  const envelopeId = isEnvelope ? entityId.safeParse(body.eventId) : undefined;

  const eventId =
    (envelopeId?.success ? envelopeId.data : undefined) ??
    (message.messageId && message.messageId.trim() !== '' ? message.messageId.trim() : undefined) ??
    createHash('sha256').update(message.routingKey).update('\0').update(message.body).digest('hex').slice(0, 32);

  // A time further in the future than any clock skew explains (a microsecond value read as
  // milliseconds lands in the year 55,000) is not the event's: it would pin the read model's row
  // forever, as nothing could be newer. It reads as "not sent", and the next source is tried.
  const received = now();
  const latest = received.getTime() + MAX_CLOCK_SKEW_MS;
  const plausible = (iso: string | undefined) => (iso !== undefined && Date.parse(iso) <= latest ? iso : undefined);
  let occurredAt: string | undefined;
  for (const field of ['occurredAt', ...(OWN_TIME_FIELDS[message.routingKey] ?? [])]) {
    occurredAt = plausible(toIsoTime(payload[field]));
    if (occurredAt) break;
  }
  occurredAt ??=
    plausible(toIsoTime(payload.timestamp)) ??
    (isEnvelope ? plausible(toIsoTime(body.timestamp)) : undefined) ??
    (message.timestamp !== undefined ? plausible(toIsoTime(Number(message.timestamp))) : undefined) ??
    received.toISOString();

  return { payload, eventId, occurredAt };
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid event';
  if (issue.message.startsWith('missing ') || issue.message.startsWith('invalid ')) return issue.message;
  const at = issue.path.length > 0 ? issue.path.join('.') : 'body';
  return `invalid ${at}: ${issue.message}`;
}

function parse<S extends z.ZodTypeAny>(schema: S, value: unknown): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new EventRejection(firstIssue(parsed.error));
  return parsed.data;
}

/** The payload's `userId`: undefined when absent; a malformed one is rejected. */
function userIdOf(payload: Record<string, unknown>): string | undefined {
  const v = payload.userId;
  if (v === undefined || v === null) return undefined;
  const parsed = entityId.safeParse(v);
  if (!parsed.success) throw new EventRejection('invalid userId');
  return parsed.data;
}

function requireUserId(payload: Record<string, unknown>): string {
  const userId = userIdOf(payload);
  if (userId === undefined) throw new EventRejection('missing userId');
  return userId;
}

/** The user a session-revocation message (`user.sessions.revoked`, `auth.sessions.revoked`) names; throws `EventRejection`. */
export function sessionsRevokedUserId(message: IncomingMessage, maxBytes: number): string {
  return requireUserId(decodeMessage(message, maxBytes).payload);
}

/** A message's drafts: one per family its routing key feeds, the read model's first. */
export interface NormalizedMessage {
  readonly route: Route;
  readonly drafts: readonly GatewayEventDraft[];
}

/**
 * Normalizes a message by the routing table: undefined for a key no subscription takes (the
 * bridge acknowledges and counts it); else one draft per family the key feeds, in the table's
 * order (the first is the one the read model applies). Drafts of device and app events may lack
 * their `userId` (the bridge resolves the owner). Throws `EventRejection` with the dead-letter
 * reason when any family's fields are missing or malformed: a message is taken whole or not at all.
 */
export function normalizeMessage(
  message: IncomingMessage,
  maxBytes: number,
  now: () => Date = () => new Date(),
): NormalizedMessage | undefined {
  const route = routeOf(message.routingKey);
  if (!route) return undefined;
  const decoded = decodeMessage(message, maxBytes, now);
  const { payload } = decoded;
  const header = { eventId: decoded.eventId, type: message.routingKey, occurredAt: decoded.occurredAt };
  if (message.routingKey === ANNOUNCEMENT_ROUTING_KEY) return { route, drafts: announcementDrafts(payload, header) };
  // The first four subscriptions' families validate first, so their dead-letter reasons stay.
  const drafts = [...route.feeds].reverse().map((family) => draftOf(family, message.routingKey, route, payload, header));
  return { route, drafts: drafts.reverse() };
}

/**
 * The event of the first four subscriptions' family a key feeds (docs/event-catalogue.md), else of its only
 * family: `normalizeMessage` for callers that want one event.
 */
export function normalizeEvent(
  message: IncomingMessage,
  maxBytes: number,
  now: () => Date = () => new Date(),
): GatewayEventDraft | undefined {
  const family = familyOf(message.routingKey);
  const normalized = normalizeMessage(message, maxBytes, now);
  return normalized?.drafts.find((draft) => draft.family === family) ?? normalized?.drafts[0];
}

type Header = { readonly eventId: string; readonly type: string; readonly occurredAt: string };

function draftOf(
  family: EventFamily,
  routingKey: string,
  route: Route,
  payload: Record<string, unknown>,
  header: Header,
): GatewayEventDraft {
  switch (family) {
    case 'quota': {
      const userId = requireUserId(payload);
      const fields = parse(quotaEventFields, quotaAliases(payload));
      return stripUndefined({
        family,
        ...header,
        userId,
        kind: QUOTA_ROUTING_KEYS[routingKey as QuotaRoutingKey],
        ...fields,
        limits: fields.limits && stripUndefined(fields.limits),
        usage: fields.usage && stripUndefined(fields.usage),
      });
    }
    case 'device': {
      const userId = userIdOf(payload);
      const fields = parse(deviceEventFields, deviceAliases(routingKey as DeviceRoutingKey, payload));
      return stripUndefined({ family, ...header, userId, ...fields });
    }
    case 'order': {
      const userId = requireUserId(payload);
      return stripUndefined({ family, ...header, userId, ...parse(orderEventFields, payload) });
    }
    case 'app': {
      const userId = userIdOf(payload);
      return stripUndefined({ family, ...header, userId, ...parse(appEventFields, appAliases(payload)) });
    }
    case 'orderStatus': {
      const userId = requireUserId(payload);
      const fields = parse(orderStatusEventFields, {
        ...payload,
        status: route.means,
        previousStatus: payload.previousStatus ?? payload.oldStatus,
        reason: reasonOf(payload) ?? payload.cancelReason ?? payload.refundReason,
      });
      return stripUndefined({ family, ...header, userId, ...fields });
    }
    case 'billing': {
      const userId = requireUserId(payload);
      return stripUndefined({ family, ...header, userId, ...parse(billingEventFields, { ...billingAliases(payload), kind: route.means }) });
    }
    case 'installation': {
      const userId = userIdOf(payload);
      const fields = parse(installationEventFields, installationAliases(routingKey, route, payload));
      if (route.owner !== 'installations' && fields.deviceId === undefined) throw new EventRejection('missing deviceId');
      // A catalogue change names no user and no device: whose it is comes from the installations.
      if (route.owner === 'installations')
        return stripUndefined({ family, ...header, ...fields, deviceId: undefined, installationId: undefined });
      return stripUndefined({ family, ...header, userId, ...fields });
    }
    case 'deviceNotice': {
      const userId = userIdOf(payload);
      return stripUndefined({
        family,
        ...header,
        userId,
        ...parse(deviceNoticeEventFields, { ...noticeAliases(payload), kind: route.means }),
      });
    }
    case 'notification': {
      const userId = requireUserId(payload);
      const fields = parse(notificationEventFields, notificationAliases(payload));
      return stripUndefined({
        family,
        ...header,
        userId,
        scope: 'USER' as const,
        audience: { scope: 'USER' as const, id: userId },
        ...fields,
      });
    }
    case 'system': {
      const userId = userIdOf(payload);
      return stripUndefined({ family, ...header, userId, ...parse(systemEventFields, systemAliases(routingKey, route, payload)) });
    }
  }
}

/**
 * An announcement (`broadcastAnnouncement` through the outbox): one draft per audience it names,
 * all with the announcement's eventId (a socket that matches several gets it once: the
 * notifications subscription de-duplicates by eventId). `all` is one draft, never one per user.
 */
function announcementDrafts(payload: Record<string, unknown>, header: Header): NotificationEventMessage[] {
  const fields = parse(notificationEventFields, notificationAliases(payload));
  const audience = announcementAudience.safeParse(payload.audience ?? {});
  if (!audience.success) throw new EventRejection('invalid audience');
  const { all, tenantId, role, userIds } = audience.data;
  const audiences: NotificationAudience[] = [
    ...(all ? [{ scope: 'ALL' as const }] : []),
    ...(tenantId !== undefined ? [{ scope: 'TENANT' as const, id: tenantId }] : []),
    ...(role !== undefined ? [{ scope: 'ROLE' as const, id: role }] : []),
    ...[...new Set(userIds ?? [])].map((id) => ({ scope: 'USER' as const, id })),
  ];
  if (audiences.length === 0) throw new EventRejection('missing audience');
  return audiences.map((target) =>
    stripUndefined({
      family: 'notification' as const,
      ...header,
      ...(target.scope === 'USER' ? { userId: target.id } : {}),
      scope: target.scope,
      audience: target,
      ...fields,
    }),
  );
}

/** A draft with its owner: the event as published. */
export function withOwner(draft: GatewayEventDraft, userId: string): GatewayEvent {
  return { ...draft, userId };
}

/** True when the draft is ready to publish: it names its user, or is for an audience. */
export function hasOwner(draft: GatewayEventDraft): draft is GatewayEvent {
  return typeof draft.userId === 'string' || draft.family === 'notification' || draft.family === 'system';
}

/** The device a draft names, when its family names one (owner resolution). */
export function deviceIdOf(draft: GatewayEventDraft): string | undefined {
  switch (draft.family) {
    case 'device':
    case 'app':
    case 'installation':
    case 'deviceNotice':
      return draft.deviceId;
    default:
      return undefined;
  }
}

function stripUndefined<T extends object>(value: T): T {
  for (const key of Object.keys(value) as (keyof T)[]) if (value[key] === undefined) delete value[key];
  return value;
}
