/**
 * How events fold into the rows of the tables they name (quota, device, billing_order): which
 * columns an event sets, the row it creates when there is none, and the entity the events carry
 * (contracts/entities.ts) from the row as SQL returns it. The statements that write them are in
 * folded-sql.ts; rare events that do not fold (apps, installations, order status) in rare-events.ts.
 */
import { randomUUID } from 'node:crypto';
import type {
  QUOTA_LIMIT_FIELDS,
  QUOTA_USAGE_FIELDS,
  DeviceStatusEventMessage,
  GatewayEvent,
  OrderCompletedEventMessage,
  QuotaEventMessage,
} from '../../contracts/events';
import type { DeviceEntity, OrderEntity, QuotaEntity } from '../../contracts/entities';
import { OrderStatus } from '../order/order.type';
import { QuotaStatus } from '../quota/quota.type';
import { isNewerThan, type EventStamp } from '../shared/event-order';

/** Column values by database column name; Dates and numbers as JSON carries them. */
export type Columns = Record<string, unknown>;

/** Decimal(14, 2) holds 12 digits before the point; a larger amount is kept out rather than failing forever. */
export const STORABLE_AMOUNT = /^-?\d{1,12}(\.\d+)?$/;

export function stampOf(event: GatewayEvent): { lastEventAt: Date; lastEventId: string } {
  return { lastEventAt: new Date(event.occurredAt), lastEventId: event.eventId };
}

/**
 * The columns to write for `events` (arrival order) over a row stamped `row`: each event newer
 * than the row and than the events taken before it merges its columns over theirs, exactly as
 * applying them one by one would. Undefined when none is newer.
 */
export function foldNewer<E extends GatewayEvent>(
  row: EventStamp,
  events: readonly E[],
  columns: (event: E) => Columns,
): { columns: Columns; applied: number; stamp: EventStamp } | undefined {
  let stamp = row;
  let data: Columns = {};
  let applied = 0;
  for (const event of events) {
    const at = new Date(event.occurredAt);
    if (!isNewerThan(stamp, at, event.eventId)) continue;
    data = { ...data, ...columns(event) };
    stamp = { lastEventAt: at, lastEventId: event.eventId };
    applied++;
  }
  return applied === 0 ? undefined : { columns: data, applied, stamp };
}

/**
 * A table whose rows events fold into. `update` gives the columns an event newer than the row
 * sets; `create` the row an event makes when there is none (every NOT NULL column among
 * `insertable`: a listed column the JSON row lacks is inserted as NULL, not as its default).
 * Column names are the database's: the statements are raw SQL.
 */
export interface Folding<E extends GatewayEvent> {
  readonly table: string;
  /** The column an event finds its row by (unique). */
  readonly key: string;
  readonly keyOf: (event: E) => string;
  readonly update: (event: E) => Columns;
  /** `attempt` counts the inserts of this row that a conflict skipped in this transaction. */
  readonly create: (event: E, attempt: number) => Columns;
  /** Every column `update` may set, plus the ones every write sets. */
  readonly updatable: readonly string[];
  /** Every column `create` may set, plus the ones every write sets. */
  readonly insertable: readonly string[];
  /** The row as JSON, over the table aliased `t` (returned by the lock and the write). */
  readonly rowJson: string;
  /** The entity the events carry, from `rowJson` (contracts/entities.ts); null when there is none to show. */
  readonly view: (row: Columns) => object | null;
}

const iso = (value: unknown): string | null => (value === null || value === undefined ? null : new Date(value as string).toISOString());
const str = (value: unknown): string | null => (typeof value === 'string' ? value : typeof value === 'number' ? String(value) : null);
const num = (value: unknown): number | null => (typeof value === 'number' ? value : null);

function deviceView(row: Columns): DeviceEntity {
  return {
    id: String(row.id),
    userId: String(row.user_id),
    name: String(row.name),
    status: String(row.status) as DeviceEntity['status'],
    providerType: str(row.provider_type),
    cpuCores: num(row.cpu_cores),
    memoryMB: num(row.memory_mb),
    storageGB: num(row.storage_gb),
    statusReason: str(row.status_reason),
    failureType: str(row.failure_type),
    recoveryStrategy: str(row.recovery_strategy),
    recoveryAttempts: num(row.recovery_attempts),
    version: Number(row.version),
    createdAt: iso(row.created_at)!,
    updatedAt: iso(row.updated_at)!,
  };
}

function quotaView(row: Columns): QuotaEntity | null {
  // A deleted quota is what `quota` answers for it: nothing.
  if (row.deleted_at !== null && row.deleted_at !== undefined) return null;
  const limits: Record<string, number> = {};
  for (const [field, column] of entries(QUOTA_LIMIT_COLUMNS)) if (typeof row[column] === 'number') limits[field] = row[column];
  const usage: Record<string, number> = {};
  for (const [field, column] of entries(QUOTA_USAGE_COLUMNS)) if (typeof row[column] === 'number') usage[field] = row[column];
  return {
    id: String(row.id),
    userId: String(row.user_id),
    planId: str(row.plan_id),
    status: String(row.status) as QuotaEntity['status'],
    limits,
    usage,
    validFrom: iso(row.valid_from),
    validUntil: iso(row.valid_until),
    autoRenew: row.auto_renew === true,
    version: Number(row.version),
    updatedAt: iso(row.updated_at)!,
  };
}

function orderView(row: Columns): OrderEntity {
  return {
    id: String(row.id),
    userId: String(row.user_id),
    status: String(row.status) as OrderEntity['status'],
    // As text from SQL (see ORDERS.rowJson): numeric(14, 2) prints two places, exactly.
    amount: str(row.amount),
    deviceId: str(row.device_id),
    planId: str(row.plan_id),
    completedAt: iso(row.completed_at),
    cancelledAt: iso(row.cancelled_at),
    statusReason: str(row.status_reason),
    version: Number(row.version),
    createdAt: iso(row.created_at)!,
    updatedAt: iso(row.updated_at)!,
  };
}

/** Set on every write besides the entity's own columns. */
const WRITE_COLUMNS = ['version', 'last_event_at', 'last_event_id', 'updated_at'] as const;

const QUOTA_LIMIT_COLUMNS: Readonly<Record<keyof typeof QUOTA_LIMIT_FIELDS, string>> = {
  maxDevices: 'max_devices',
  maxConcurrentDevices: 'max_concurrent_devices',
  maxCpuCoresPerDevice: 'max_cpu_cores_per_device',
  maxMemoryMBPerDevice: 'max_memory_mb_per_device',
  maxStorageGBPerDevice: 'max_storage_gb_per_device',
  totalCpuCores: 'total_cpu_cores',
  totalMemoryGB: 'total_memory_gb',
  totalStorageGB: 'total_storage_gb',
  maxBandwidthMbps: 'max_bandwidth_mbps',
  monthlyTrafficGB: 'monthly_traffic_gb',
  maxUsageHoursPerDay: 'max_usage_hours_per_day',
  maxUsageHoursPerMonth: 'max_usage_hours_per_month',
};

const QUOTA_USAGE_COLUMNS: Readonly<Record<keyof typeof QUOTA_USAGE_FIELDS, string>> = {
  currentDevices: 'current_devices',
  currentConcurrentDevices: 'current_concurrent_devices',
  usedCpuCores: 'used_cpu_cores',
  usedMemoryGB: 'used_memory_gb',
  usedStorageGB: 'used_storage_gb',
  currentBandwidthMbps: 'current_bandwidth_mbps',
  monthlyTrafficUsedGB: 'monthly_traffic_used_gb',
  todayUsageHours: 'today_usage_hours',
  monthlyUsageHours: 'monthly_usage_hours',
};

const entries = <K extends string>(record: Readonly<Record<K, string>>) => Object.entries(record) as [K, string][];

/** The quota columns an event sets. */
function quotaColumns(event: QuotaEventMessage): Columns {
  if (event.kind === 'DELETED') return { deleted_at: new Date(event.occurredAt) };
  const data: Columns = {};
  for (const [field, column] of entries(QUOTA_LIMIT_COLUMNS)) {
    if (event.limits?.[field] !== undefined) data[column] = event.limits[field];
  }
  for (const [field, column] of entries(QUOTA_USAGE_COLUMNS)) {
    if (event.usage?.[field] !== undefined) data[column] = event.usage[field];
  }
  const status = event.status ?? (event.kind === 'EXCEEDED' ? QuotaStatus.EXCEEDED : undefined);
  if (status) data.status = status;
  if (event.validUntil) data.valid_until = new Date(event.validUntil);
  data.deleted_at = null;
  return data;
}

export const QUOTA: Folding<QuotaEventMessage> = {
  table: 'quota',
  key: 'user_id',
  keyOf: (event) => event.userId,
  update: quotaColumns,
  create: (event, attempt) => ({
    // The platform's quota id, unless it belongs to another user's row: keep this user's quota anyway.
    id: attempt === 0 ? (event.quotaId ?? randomUUID()) : randomUUID(),
    user_id: event.userId,
    status: QuotaStatus.ACTIVE,
    // A tombstone too, so an older event cannot bring a deleted quota back.
    ...quotaColumns(event),
  }),
  updatable: [
    ...Object.values(QUOTA_LIMIT_COLUMNS),
    ...Object.values(QUOTA_USAGE_COLUMNS),
    'status',
    'valid_until',
    'deleted_at',
    ...WRITE_COLUMNS,
  ],
  insertable: [
    'id',
    'user_id',
    ...Object.values(QUOTA_LIMIT_COLUMNS),
    ...Object.values(QUOTA_USAGE_COLUMNS),
    'status',
    'valid_until',
    'deleted_at',
    ...WRITE_COLUMNS,
  ],
  rowJson: 'to_jsonb(t)',
  view: quotaView,
};

/** The device columns a status event sets; the owner never changes (an event cannot move a device to another user). */
function deviceColumns(event: DeviceStatusEventMessage): Columns {
  return {
    status: event.status,
    status_reason: event.reason ?? null,
    ...(event.deviceName ? { name: event.deviceName } : {}),
    ...(event.providerType ? { provider_type: event.providerType } : {}),
    // Failover details belong to the status they came with: a later status clears them.
    failure_type: event.failureType ?? null,
    recovery_strategy: event.recoveryStrategy ?? null,
    recovery_attempts: event.attempts ?? null,
  };
}

export const DEVICES: Folding<DeviceStatusEventMessage> = {
  table: 'device',
  key: 'id',
  keyOf: (event) => event.deviceId,
  update: deviceColumns,
  create: (event) => ({
    id: event.deviceId,
    user_id: event.userId,
    name: event.deviceName ?? event.deviceId,
    status: event.status,
    provider_type: event.providerType ?? null,
    status_reason: event.reason ?? null,
    failure_type: event.failureType ?? null,
    recovery_strategy: event.recoveryStrategy ?? null,
    recovery_attempts: event.attempts ?? null,
    created_at: new Date(event.occurredAt),
  }),
  updatable: [
    'status',
    'status_reason',
    'name',
    'provider_type',
    'failure_type',
    'recovery_strategy',
    'recovery_attempts',
    ...WRITE_COLUMNS,
  ],
  insertable: [
    'id',
    'user_id',
    'name',
    'status',
    'provider_type',
    'status_reason',
    'failure_type',
    'recovery_strategy',
    'recovery_attempts',
    'created_at',
    ...WRITE_COLUMNS,
  ],
  rowJson: 'to_jsonb(t)',
  view: deviceView,
};

function orderColumns(event: OrderCompletedEventMessage): Columns {
  const amount = event.amount !== undefined && STORABLE_AMOUNT.test(event.amount) ? event.amount : undefined;
  return {
    status: OrderStatus.COMPLETED,
    completed_at: new Date(event.occurredAt),
    // The decimal string as sent: PostgreSQL parses it exactly.
    ...(amount !== undefined ? { amount } : {}),
    ...(event.deviceId ? { device_id: event.deviceId } : {}),
    ...(event.planId ? { plan_id: event.planId } : {}),
  };
}

export const ORDERS: Folding<OrderCompletedEventMessage> = {
  table: 'billing_order',
  key: 'id',
  keyOf: (event) => event.orderId,
  update: orderColumns,
  create: (event) => ({ id: event.orderId, user_id: event.userId, created_at: new Date(event.occurredAt), ...orderColumns(event) }),
  updatable: ['status', 'completed_at', 'amount', 'device_id', 'plan_id', ...WRITE_COLUMNS],
  insertable: ['id', 'user_id', 'status', 'completed_at', 'amount', 'device_id', 'plan_id', 'created_at', ...WRITE_COLUMNS],
  // to_jsonb would turn the decimal into a JSON number ("59.90" -> 59.9).
  rowJson: "to_jsonb(t) || jsonb_build_object('amount', t.amount::text)",
  view: orderView,
};
