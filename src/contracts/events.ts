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
import {
  DEVICE_ROUTING_KEYS,
  familyOf,
  QUOTA_ROUTING_KEYS,
  type DeviceRoutingKey,
  type QuotaRoutingKey,
} from './routing';

/** A message as any event bus hands it to the bridge. */
export interface IncomingMessage {
  readonly routingKey: string;
  readonly body: Buffer;
  /** AMQP `messageId` property. */
  readonly messageId?: string;
  /** AMQP `timestamp` property (the platform sets milliseconds). */
  readonly timestamp?: number;
}

/** Why a message is rejected; becomes the `x-rejection-reason` header of the dead letter. */
export class EventRejection extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'EventRejection';
  }
}

// ---------------------------------------------------------------- field parsers (liberal in)

const finiteNumber = z.union([
  z.number(),
  z
    .string()
    .trim()
    .regex(/^-?\d+(\.\d+)?$/, 'expected a number')
    .transform(Number),
]).refine(Number.isFinite, 'expected a finite number');

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
  z.string().trim().regex(/^-?\d{1,18}(\.\d{1,18})?$/),
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
});

export type DeviceStatusEventMessage = EventHeader & { readonly family: 'device' } & Readonly<
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
  else status = p.newStatus ?? p.status;
  return {
    deviceId: p.deviceId,
    deviceName: p.deviceName,
    previousStatus: p.previousStatus ?? p.oldStatus,
    status,
    reason: p.reason ?? (typeof p.error === 'string' ? p.error : undefined) ?? p.errorMessage,
    providerType: p.providerType,
  };
}

// ---------------------------------------------------------------- order

/** The domain fields of an `orderCompleted` event. */
export const orderEventFields = z.object({
  orderId: requiredId('orderId'),
  amount: optional(decimalString),
  deviceId: optional(entityId),
  planId: optional(entityId),
});

export type OrderCompletedEventMessage = EventHeader & { readonly family: 'order' } & Readonly<
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

export type AppInstalledEventMessage = EventHeader & { readonly family: 'app' } & Readonly<
    z.output<typeof appEventFields>
  >;

function appAliases(p: Record<string, unknown>): Record<string, unknown> {
  return { ...p, appId: p.appId ?? p.applicationId };
}

// ---------------------------------------------------------------- the union

/** A normalized event of any family, as published to pub/sub. */
export type GatewayEvent = QuotaEventMessage | DeviceStatusEventMessage | OrderCompletedEventMessage | AppInstalledEventMessage;

export type GatewayEventDraft =
  | EventDraft<QuotaEventMessage>
  | EventDraft<DeviceStatusEventMessage>
  | EventDraft<OrderCompletedEventMessage>
  | EventDraft<AppInstalledEventMessage>;

/** The event type of each family. */
export interface EventOfFamily {
  quota: QuotaEventMessage;
  device: DeviceStatusEventMessage;
  order: OrderCompletedEventMessage;
  app: AppInstalledEventMessage;
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

/**
 * Normalizes a message by its routing key: undefined for a key no subscription takes (the bridge
 * acknowledges and counts it); a draft whose `userId` may be missing for device and app events
 * (the bridge resolves the owner). Throws `EventRejection` with the dead-letter reason.
 */
export function normalizeEvent(
  message: IncomingMessage,
  maxBytes: number,
  now: () => Date = () => new Date(),
): GatewayEventDraft | undefined {
  const family = familyOf(message.routingKey);
  if (!family) return undefined;
  const decoded = decodeMessage(message, maxBytes, now);
  const { payload } = decoded;
  const header = { eventId: decoded.eventId, type: message.routingKey, occurredAt: decoded.occurredAt };
  switch (family) {
    case 'quota': {
      const userId = requireUserId(payload);
      const fields = parse(quotaEventFields, quotaAliases(payload));
      return stripUndefined({
        family,
        ...header,
        userId,
        kind: QUOTA_ROUTING_KEYS[message.routingKey as QuotaRoutingKey],
        ...fields,
        limits: fields.limits && stripUndefined(fields.limits),
        usage: fields.usage && stripUndefined(fields.usage),
      });
    }
    case 'device': {
      const userId = userIdOf(payload);
      const fields = parse(deviceEventFields, deviceAliases(message.routingKey as DeviceRoutingKey, payload));
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
  }
}

/** A draft with its owner: the event as published. */
export function withOwner(draft: GatewayEventDraft, userId: string): GatewayEvent {
  return { ...draft, userId };
}

/** True when the draft already names its user. */
export function hasOwner(draft: GatewayEventDraft): draft is GatewayEvent {
  return typeof draft.userId === 'string';
}

/** The device a draft names, when its family names one (owner resolution). */
export function deviceIdOf(draft: GatewayEventDraft): string | undefined {
  return draft.family === 'device' || draft.family === 'app' ? draft.deviceId : undefined;
}

function stripUndefined<T extends object>(value: T): T {
  for (const key of Object.keys(value) as (keyof T)[]) if (value[key] === undefined) delete value[key];
  return value;
}
