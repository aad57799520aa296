/**
 * The event wire contract (CONTRACT §5): how a raw AMQP message becomes a normalized gateway
 * event. One validator per event kind; the TypeScript types are inferred from the validators and
 * never written twice. Validators keep only the fields they name, so unknown extras (`_trace`,
 * `email`, ...) never reach Redis or a client.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { QUOTA_ROUTING_KEYS, type QuotaRoutingKey } from './routing';

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

const entityId = z.union([
  z.string().trim().min(1, 'must not be empty').max(200, 'too long'),
  z.number().int().nonnegative().transform(String),
]);

/** Absent, null, or unparsable optional values all read as "not sent". */
const optional = <T extends z.ZodTypeAny>(schema: T) =>
  z.optional(
    z.unknown().transform((value) => {
      if (value === undefined || value === null) return undefined;
      const parsed = schema.safeParse(value);
      return parsed.success ? (parsed.data as z.output<T>) : undefined;
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

/** The body of a `quota.*` event, flat or the envelope's `payload`. */
export const quotaPayloadSchema = z.object({
  userId: z.unknown().transform((v, ctx) => {
    if (v === undefined || v === null) {
      ctx.addIssue({ code: 'custom', message: 'missing userId' });
      return z.NEVER;
    }
    const parsed = entityId.safeParse(v);
    if (!parsed.success) {
      ctx.addIssue({ code: 'custom', message: 'invalid userId' });
      return z.NEVER;
    }
    return parsed.data;
  }),
  quotaId: optional(entityId),
  limits: optional(numberFields(QUOTA_LIMIT_FIELDS)),
  usage: optional(numberFields(QUOTA_USAGE_FIELDS)),
  usagePercent: optional(finiteNumber),
  percentage: optional(z.record(z.string(), optional(finiteNumber))),
  severity: optional(z.string().trim().min(1).max(50)),
  status: upperEnum(QUOTA_STATUSES),
  validUntil: isoTime,
});

export type QuotaLimits = Partial<Record<keyof typeof QUOTA_LIMIT_FIELDS, number>>;
export type QuotaUsage = Partial<Record<keyof typeof QUOTA_USAGE_FIELDS, number>>;
export type QuotaStatus = (typeof QUOTA_STATUSES)[number];

/** What fields every normalized event carries (CONTRACT §4). */
export interface EventHeader {
  readonly eventId: string;
  /** The routing key the event came from. */
  readonly type: string;
  readonly userId: string;
  /** ISO-8601. */
  readonly occurredAt: string;
}

/** A normalized `quotaChanged` event: what is published to pub/sub and pushed to clients. */
export interface QuotaEventMessage extends EventHeader {
  readonly family: 'quota';
  readonly kind: QuotaEventKind;
  readonly quotaId?: string;
  readonly limits?: QuotaLimits;
  readonly usage?: QuotaUsage;
  readonly usagePercent?: number;
  readonly severity?: string;
  readonly status?: QuotaStatus;
  readonly validUntil?: string;
}

export type GatewayEvent = QuotaEventMessage;

// ---------------------------------------------------------------- envelope and decoding

const utf8 = new TextDecoder('utf-8', { fatal: true });

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Event time fields, most specific first; `timestamp` is the fallback after these. */
const OWN_TIME_FIELDS = [
  'occurredAt',
  'alertedAt',
  'exceededAt',
  'renewedAt',
  'deductedAt',
  'restoredAt',
  'deletedAt',
] as const;

interface Decoded {
  readonly payload: Record<string, unknown>;
  readonly eventId: string;
  readonly occurredAt: string;
}

/**
 * Decodes a raw message: UTF-8, JSON, object; unwraps the envelope; derives `eventId` and
 * `occurredAt` by CONTRACT §5's fallbacks. Throws `EventRejection` with the dead-letter reason.
 */
export function decodeMessage(message: IncomingMessage, maxBytes: number, now: () => Date = () => new Date()): Decoded {
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

  let occurredAt: string | undefined;
  for (const field of OWN_TIME_FIELDS) {
    occurredAt = toIsoTime(payload[field]);
    if (occurredAt) break;
  }
  occurredAt ??=
    toIsoTime(payload.timestamp) ??
    (isEnvelope ? toIsoTime(body.timestamp) : undefined) ??
    (message.timestamp !== undefined ? toIsoTime(Number(message.timestamp)) : undefined) ??
    now().toISOString();

  return { payload, eventId, occurredAt };
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid event';
  if (issue.message.startsWith('missing ') || issue.message.startsWith('invalid ')) return issue.message;
  const at = issue.path.length > 0 ? issue.path.join('.') : 'body';
  return `invalid ${at}: ${issue.message}`;
}

/** Normalizes a decoded `quota.*` message. Throws `EventRejection` when it cannot. */
export function normalizeQuotaEvent(routingKey: QuotaRoutingKey, decoded: Decoded): QuotaEventMessage {
  const parsed = quotaPayloadSchema.safeParse(decoded.payload);
  if (!parsed.success) throw new EventRejection(firstIssue(parsed.error));
  const p = parsed.data;
  const percentages = p.percentage
    ? Object.values(p.percentage).filter((v): v is number => typeof v === 'number')
    : [];
  const usagePercent = p.usagePercent ?? (percentages.length > 0 ? Math.max(...percentages) : undefined);
  return stripUndefined({
    family: 'quota' as const,
    eventId: decoded.eventId,
    type: routingKey,
    userId: p.userId,
    occurredAt: decoded.occurredAt,
    kind: QUOTA_ROUTING_KEYS[routingKey],
    quotaId: p.quotaId,
    limits: p.limits && stripUndefined(p.limits),
    usage: p.usage && stripUndefined(p.usage),
    usagePercent,
    severity: p.severity,
    status: p.status,
    validUntil: p.validUntil,
  });
}

function stripUndefined<T extends object>(value: T): T {
  for (const key of Object.keys(value) as (keyof T)[]) if (value[key] === undefined) delete value[key];
  return value;
}
