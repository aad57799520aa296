/**
 * The read model: platform events (docs/architecture.md#the-read-model) kept in the same tables the queries read, so a
 * query made after a subscriber saw an event returns the state that event announced. The bridge
 * calls `apply` before it publishes to the fan-out, and `ownerOfDevice` for events that name a
 * device but no user.
 *
 * Each event is applied at most once: its `eventId` goes into `processed_event` in the same
 * transaction (a redelivery or the echo of the gateway's own outbox event stops there). A row
 * changes only when the event is newer than the last one applied to it (later `occurredAt`; equal
 * times ordered by `eventId`), so replayed or out-of-order events never put older state over
 * newer. Rows are last-writer-wins as a whole: an ignored older event is not merged field by
 * field. Anything thrown is transient (database down): the bridge requeues.
 *
 * Group commit: one transaction at a time, for every user. The events that arrive while a
 * transaction is being written (at most `MAX_BATCH`) go together in the next one, whoever they
 * belong to, and resolve in arrival order when it commits, so a user's events are applied and
 * published in the order this instance received them. Inside a transaction the work is
 * set-based, in raw SQL through Prisma (its typed queries cost several times more CPU per row),
 * and takes two statements whatever the number of events and tables: one claims every `eventId`
 * and locks the quota, device and order rows the events name; one updates the rows that exist and
 * inserts the others, with each row's events (arrival order) folded in memory into one write.
 * App events, rare and matched to an installation by app when they carry no id, go one by one in
 * the same transaction; so do order status changes (a history row each) and the installation
 * lifecycle (orderStatusChanged, appInstallationChanged). A burst therefore costs a few statements, not a transaction per event.
 * The result is the same as applying the events one by one; a batch that fails is retried one
 * event at a time, so only the event that cannot be applied is requeued (unless the database
 * itself is unavailable: then the whole batch is, at once).
 */
import { randomUUID } from 'node:crypto';
import type {
  QUOTA_LIMIT_FIELDS,
  QUOTA_USAGE_FIELDS,
  AppInstallationEventMessage,
  AppInstalledEventMessage,
  DeviceStatusEventMessage,
  OrderStatusEventMessage,
  GatewayEvent,
  OrderCompletedEventMessage,
  QuotaEventMessage,
} from '../../contracts/events';
import type { AppInstallationEntity, DeviceEntity, OrderEntity, QuotaEntity } from '../../contracts/entities';
import type { ReadModel } from '../../contracts/ports';
import { Prisma, type Order as OrderRow, type PrismaClient } from '../../generated/prisma/client';
import { InstallationStatus } from '../app/app-installation.type';
import { toOrderView } from '../order/order.service';
import { OrderStatus } from '../order/order.type';
import { QuotaStatus } from '../quota/quota.type';
import { isNewerThan, type EventStamp } from '../shared/event-order';
import { TRANSACTION_OPTIONS } from '../shared/outbox';

type Tx = Prisma.TransactionClient;

/** Column values by database column name; Dates and numbers as JSON carries them. */
type Columns = Record<string, unknown>;

/** Decimal(14, 2) holds 12 digits before the point; a larger amount is kept out rather than failing forever. */
const STORABLE_AMOUNT = /^-?\d{1,12}(\.\d+)?$/;

function stampOf(event: GatewayEvent): { lastEventAt: Date; lastEventId: string } {
  return { lastEventAt: new Date(event.occurredAt), lastEventId: event.eventId };
}

/** Locks the row (when it exists) and tells whether `event` is newer than what it holds. */
async function lockedIfNewer<R extends { lastEventAt: Date | null; lastEventId: string | null }>(
  event: GatewayEvent,
  lock: () => Promise<unknown>,
  read: () => Promise<R | null>,
): Promise<R | null> {
  await lock();
  const row = await read();
  if (!row || !isNewerThan(row, new Date(event.occurredAt), event.eventId)) return null;
  return row;
}

/**
 * The columns to write for `events` (arrival order) over a row stamped `row`: each event newer
 * than the row and than the events taken before it merges its columns over theirs, exactly as
 * applying them one by one would. Undefined when none is newer.
 */
function foldNewer<E extends GatewayEvent>(
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
interface Folding<E extends GatewayEvent> {
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

/** From a Prisma row (app events are applied through Prisma, one by one). */
function installationView(row: {
  id: string;
  deviceId: string;
  userId: string;
  appId: string | null;
  packageName: string | null;
  versionName: string | null;
  status: string;
  installedAt: Date | null;
  uninstalledAt: Date | null;
  error: string | null;
  version: number;
  updatedAt: Date;
}): AppInstallationEntity {
  return {
    id: row.id,
    deviceId: row.deviceId,
    userId: row.userId,
    appId: row.appId,
    packageName: row.packageName,
    versionName: row.versionName,
    status: row.status as AppInstallationEntity['status'],
    installedAt: row.installedAt?.toISOString() ?? null,
    uninstalledAt: row.uninstalledAt?.toISOString() ?? null,
    error: row.error,
    version: row.version,
    updatedAt: row.updatedAt.toISOString(),
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

const QUOTA: Folding<QuotaEventMessage> = {
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

const DEVICES: Folding<DeviceStatusEventMessage> = {
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

const ORDERS: Folding<OrderCompletedEventMessage> = {
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

/** Inserts skipped by a conflict are tried again this many times in all (another writer got there first). */
const MAX_ATTEMPTS = 3;

interface LockedRow {
  readonly last_event_at: Date | null;
  readonly last_event_id: string | null;
  readonly version: number;
  /** The whole row (`Folding.rowJson`), for the entity the events carry. */
  readonly row: Columns;
}

/** The rows as they stand, by table, then key: locked, then overwritten by what was written. */
type CurrentRows = Map<string, Map<string, Columns>>;

function setRow(rows: CurrentRows, table: string, key: string, row: Columns): void {
  let byKey = rows.get(table);
  if (!byKey) rows.set(table, (byKey = new Map<string, Columns>()));
  byKey.set(key, row);
}

/** The rows a lock statement returned, by table, then key. */
type Locked = Map<string, Map<string, LockedRow>>;

/** One table's share of a transaction: its rows' events, and what is left to write. */
interface TableWork {
  readonly folding: Folding<never>;
  readonly keys: () => string[];
  /** Updates of the locked rows (newer events folded), inserts of the rows not there. */
  readonly plan: (rows: ReadonlyMap<string, LockedRow>, attempt: number, now: Date) => { updates: Columns[]; inserts: Columns[] };
  /** Keeps only the keys still to write: neither locked nor inserted. */
  readonly settle: (rows: ReadonlyMap<string, LockedRow>, inserted: ReadonlySet<string>) => number;
}

function tableWork<E extends GatewayEvent>(folding: Folding<E>, events: readonly E[]): TableWork {
  const pending = new Map<string, E[]>();
  for (const event of events) {
    const key = folding.keyOf(event);
    const group = pending.get(key);
    if (group) group.push(event);
    else pending.set(key, [event]);
  }
  return {
    folding,
    keys: () => [...pending.keys()],
    plan(rows, attempt, now) {
      const updates: Columns[] = [];
      const inserts: Columns[] = [];
      for (const [key, group] of pending) {
        const row = rows.get(key);
        if (row) {
          const folded = foldNewer({ lastEventAt: row.last_event_at, lastEventId: row.last_event_id }, group, folding.update);
          if (folded) updates.push({ key, patch: { ...folded.columns, ...writeColumns(folded.stamp, row.version + folded.applied, now) } });
          continue;
        }
        const [first, ...rest] = group as [E, ...E[]];
        const folded = foldNewer(stampOf(first), rest, folding.update);
        inserts.push({
          ...folding.create(first, attempt),
          ...folded?.columns,
          ...writeColumns(folded?.stamp ?? stampOf(first), 1 + (folded?.applied ?? 0), now),
        });
      }
      return { updates, inserts };
    },
    settle(rows, inserted) {
      for (const key of [...pending.keys()]) if (rows.has(key) || inserted.has(key)) pending.delete(key);
      return pending.size;
    },
  };
}

function writeColumns(stamp: EventStamp, version: number, now: Date): Columns {
  return { version, last_event_at: stamp.lastEventAt, last_event_id: stamp.lastEventId, updated_at: now };
}

/**
 * Applies events (arrival order, any users) in two statements besides BEGIN and COMMIT, whatever
 * the number of events and tables (each round trip costs the gateway a system call and a Prisma
 * request, more than the rows): one claims every `eventId` in `processed_event` and locks the rows
 * the events name (in key order, so two instances lock alike), one updates the rows that exist,
 * with each row's newer events folded into one write, and inserts the others. Claimed-before ids
 * (a redelivery, or the echo of the gateway's own outbox event) and repeats within the batch
 * change nothing; locking their rows too is harmless. An insert a conflict skips (another writer
 * created the row meanwhile, or a quota id taken by another user) is tried again from the lock,
 * as applying the events one by one would.
 */
async function applyFoldedEvents(
  tx: Tx,
  events: readonly GatewayEvent[],
  now: Date,
  retain: boolean,
): Promise<{ fresh: GatewayEvent[]; current: CurrentRows }> {
  const { claimed, locked } = await claimAndLock(tx, events, tablesOf(events), retain);
  // Every event named row as it stands: locked (also for redeliveries and older events, which
  // carry the newer state the row holds), then as written. Rows are locked until commit and
  // batches run one at a time, so no later batch can have published an older state.
  const current: CurrentRows = new Map();
  const remember = (rows: Locked) => {
    for (const [table, byKey] of rows) for (const [key, row] of byKey) setRow(current, table, key, row.row);
  };
  remember(locked);
  const fresh = events.filter((event) => claimed.delete(event.eventId));
  let tables = tablesOf(fresh);
  let rows = locked;
  for (let attempt = 0; tables.length > 0; attempt++) {
    if (attempt === MAX_ATTEMPTS) throw new Error('read model: rows kept changing while being written');
    if (attempt > 0) {
      rows = (await claimAndLock(tx, [], tables)).locked;
      remember(rows);
    }
    const plans = tables.map((table) => ({ table, ...table.plan(rows.get(table.folding.table) ?? new Map(), attempt, now) }));
    const { inserted, written } = await write(tx, plans);
    for (const [table, byKey] of written) for (const [key, row] of byKey) setRow(current, table, key, row);
    tables = tables.filter(
      (table) => table.settle(rows.get(table.folding.table) ?? new Map(), inserted.get(table.folding.table) ?? new Set()) > 0,
    );
  }
  return { fresh, current };
}

/** The folded tables' share of `events` (app events are applied one by one, see `applyBatch`). */
function tablesOf(events: readonly GatewayEvent[]): TableWork[] {
  const quota: QuotaEventMessage[] = [];
  const devices: DeviceStatusEventMessage[] = [];
  const orders: OrderCompletedEventMessage[] = [];
  for (const event of events) {
    if (event.family === 'quota') quota.push(event);
    else if (event.family === 'device') devices.push(event);
    else if (event.family === 'order') orders.push(event);
  }
  return [
    ...(quota.length > 0 ? [tableWork(QUOTA, quota)] : []),
    ...(devices.length > 0 ? [tableWork(DEVICES, devices)] : []),
    ...(orders.length > 0 ? [tableWork(ORDERS, orders)] : []),
  ];
}

const raw = (text: string) => Prisma.raw(text);

/**
 * One statement: claims `events`' ids (none on a retry) and locks the tables' rows. Rows travel as
 * one JSON parameter and `jsonb_populate_record(set)` converts each value to its column's type,
 * so the SQL text does not depend on the values.
 */
async function claimAndLock(
  tx: Tx,
  events: readonly GatewayEvent[],
  tables: readonly TableWork[],
  retain = false,
): Promise<{ claimed: Set<string>; locked: Locked }> {
  const claims =
    retain && events.length > 0 ? retainedClaims(events) : JSON.stringify(events.map((event) => ({ id: event.eventId, key: event.type })));
  const ctes: Prisma.Sql[] = [
    Prisma.sql`claimed AS (
      INSERT INTO processed_event (event_id, routing_key)
      SELECT e.id, e.key FROM jsonb_to_recordset(${claims}::jsonb) AS e(id text, key text) ORDER BY e.id
      ON CONFLICT DO NOTHING RETURNING event_id)`,
    ...(retain && events.length > 0 ? [durableLogCte(claims)] : []),
  ];
  const selects: Prisma.Sql[] = [
    Prisma.sql`SELECT NULL::text AS tbl, event_id AS key, NULL::timestamptz(3) AS last_event_at, NULL::text AS last_event_id, NULL::int AS version, NULL::jsonb AS row FROM claimed`,
  ];
  tables.forEach((table, i) => {
    const { table: name, key, rowJson } = table.folding;
    const keys = JSON.stringify(table.keys());
    ctes.push(Prisma.sql`${raw(`l${i}`)} AS MATERIALIZED (
      SELECT t.${raw(key)} AS key, t.last_event_at, t.last_event_id, t.version, ${raw(rowJson)} AS row FROM ${raw(name)} AS t
      WHERE t.${raw(key)} = ANY(ARRAY(SELECT jsonb_array_elements_text(${keys}::jsonb)))
      ORDER BY t.${raw(key)} FOR UPDATE)`);
    selects.push(Prisma.sql`SELECT ${name}, key, last_event_at, last_event_id, version, row FROM ${raw(`l${i}`)}`);
  });
  const result = await tx.$queryRaw<({ tbl: string | null; key: string } & LockedRow)[]>(
    Prisma.sql`WITH ${Prisma.join(ctes, ', ')} ${Prisma.join(selects, ' UNION ALL ')}`,
  );
  const claimed = new Set<string>();
  const locked: Locked = new Map();
  for (const row of result) {
    if (row.tbl === null) {
      claimed.add(row.key);
      continue;
    }
    let rows = locked.get(row.tbl);
    if (!rows) locked.set(row.tbl, (rows = new Map<string, LockedRow>()));
    rows.set(row.key, row);
  }
  return { claimed, locked };
}

// --- The durable event log (resuming with `after` across a Redis restart; infra/db/durable-event-log.ts
// reads it). Kept apart from the folding above: it only rides along in the claim statement.

/** The claims parameter carrying each event's user and JSON too, for `durableLogCte`. */
function retainedClaims(events: readonly GatewayEvent[]): string {
  return JSON.stringify(events.map((event) => ({ id: event.eventId, key: event.type, uid: event.userId, event })));
}

/**
 * Appends the events this statement claims for the first time to `event_log`, in arrival order
 * (the order they are published in), in the same statement as the claim: no round trip of its
 * own, and in the read model's transaction, so an event is logged before anyone can see it live.
 * A redelivered event (already claimed) is not logged again; a repeat within the batch once.
 */
function durableLogCte(claims: string): Prisma.Sql {
  return Prisma.sql`logged AS (
      INSERT INTO event_log (user_id, event_id, event)
      SELECT f.user_id, f.id, f.event FROM (
        SELECT DISTINCT ON (e.elem->>'id') e.elem->>'id' AS id, e.elem->>'uid' AS user_id, e.elem->'event' AS event, e.ord
        FROM jsonb_array_elements(${claims}::jsonb) WITH ORDINALITY AS e(elem, ord)
        WHERE e.elem->>'id' IN (SELECT event_id FROM claimed)
        ORDER BY e.elem->>'id', e.ord) AS f
      ORDER BY f.ord)`;
}

/**
 * One statement: every table's updates and inserts; returns the inserted keys by table, and
 * every written row as it now stands (`RETURNING`: the entity the events carry, no query of its own).
 */
async function write(
  tx: Tx,
  plans: readonly { table: TableWork; updates: Columns[]; inserts: Columns[] }[],
): Promise<{ inserted: Map<string, Set<string>>; written: CurrentRows }> {
  const ctes: Prisma.Sql[] = [];
  const selects: Prisma.Sql[] = [];
  plans.forEach(({ table, updates, inserts }, i) => {
    const { table: name, key, updatable, insertable, rowJson } = table.folding;
    if (updates.length > 0) {
      ctes.push(Prisma.sql`${raw(`u${i}`)} AS (
        UPDATE ${raw(name)} AS t
        SET (${raw(updatable.join(', '))}) = (SELECT ${raw(updatable.map((c) => `r.${c}`).join(', '))} FROM jsonb_populate_record(t, p.patch) AS r)
        FROM jsonb_to_recordset(${JSON.stringify(updates)}::jsonb) AS p(key text, patch jsonb)
        WHERE t.${raw(key)} = p.key
        RETURNING t.${raw(key)} AS key, ${raw(rowJson)} AS row)`);
      selects.push(Prisma.sql`SELECT ${name} AS tbl, key, false AS ins, row FROM ${raw(`u${i}`)}`);
    }
    if (inserts.length > 0) {
      const columns = raw(insertable.join(', '));
      ctes.push(Prisma.sql`${raw(`i${i}`)} AS (
        INSERT INTO ${raw(name)} AS t (${columns})
        SELECT ${columns} FROM jsonb_populate_recordset(NULL::${raw(name)}, ${JSON.stringify(inserts)}::jsonb) ORDER BY ${raw(key)}
        ON CONFLICT DO NOTHING RETURNING t.${raw(key)} AS key, ${raw(rowJson)} AS row)`);
      selects.push(Prisma.sql`SELECT ${name} AS tbl, key, true AS ins, row FROM ${raw(`i${i}`)}`);
    }
  });
  const inserted = new Map<string, Set<string>>();
  const written: CurrentRows = new Map();
  if (ctes.length === 0) return { inserted, written };
  for (const row of await tx.$queryRaw<{ tbl: string; key: string; ins: boolean; row: Columns }[]>(
    Prisma.sql`WITH ${Prisma.join(ctes, ', ')} ${Prisma.join(selects, ' UNION ALL ')}`,
  )) {
    setRow(written, row.tbl, row.key, row.row);
    if (!row.ins) continue;
    let keys = inserted.get(row.tbl);
    if (!keys) inserted.set(row.tbl, (keys = new Set()));
    keys.add(row.key);
  }
  return { inserted, written };
}

type InstallationRow = Parameters<typeof installationView>[0];

/** The installation an app event names (by id, else the current one of the same app on the device). */
async function findInstallation(
  tx: Tx,
  event: { readonly installationId?: string; readonly deviceId?: string; readonly appId?: string; readonly packageName?: string },
): Promise<InstallationRow | null> {
  if (event.installationId !== undefined) return tx.appInstallation.findUnique({ where: { id: event.installationId } });
  // A catalogue event (app.updated) names no device: no one installation to show.
  if (event.deviceId === undefined || (event.appId === undefined && event.packageName === undefined)) return null;
  return tx.appInstallation.findFirst({
    where: {
      deviceId: event.deviceId,
      status: { not: InstallationStatus.UNINSTALLED },
      OR: [...(event.appId ? [{ appId: event.appId }] : []), ...(event.packageName ? [{ packageName: event.packageName }] : [])],
    },
    orderBy: { createdAt: 'desc' },
  });
}

/** Applies an app event; returns the installation as it stands after it (the entity the event carries). */
async function applyApp(tx: Tx, event: AppInstalledEventMessage): Promise<InstallationRow | null> {
  const stamp = stampOf(event);
  const at = new Date(event.occurredAt);
  const details = {
    ...(event.appId ? { appId: event.appId } : {}),
    ...(event.packageName ? { packageName: event.packageName } : {}),
    ...(event.versionName ? { versionName: event.versionName } : {}),
  };
  let id = event.installationId;
  if (id === undefined) {
    // No installation id: the current installation of the same app on the device, if any.
    // Serialize per device so two such events cannot both create one.
    // $executeRaw: the function returns `void`, a column type the query result cannot carry.
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${event.deviceId}))`;
    const existing = await tx.appInstallation.findFirst({
      where: {
        deviceId: event.deviceId,
        status: { not: InstallationStatus.UNINSTALLED },
        OR: [...(event.appId ? [{ appId: event.appId }] : []), ...(event.packageName ? [{ packageName: event.packageName }] : [])],
      },
      orderBy: { createdAt: 'desc' },
    });
    id = existing?.id ?? randomUUID();
  }
  const created = await tx.appInstallation.createManyAndReturn({
    data: [
      {
        id,
        deviceId: event.deviceId,
        userId: event.userId,
        status: InstallationStatus.INSTALLED,
        installedAt: at,
        createdAt: at,
        ...details,
        ...stamp,
      },
    ],
    skipDuplicates: true,
  });
  if (created.length === 1) return created[0]!;
  const installationId = id;
  let current: InstallationRow | null = null;
  const row = await lockedIfNewer(
    event,
    () => tx.$queryRaw`SELECT id FROM app_installation WHERE id = ${installationId} FOR UPDATE`,
    async () => (current = await tx.appInstallation.findUnique({ where: { id: installationId } })),
  );
  // Older than the row: the event carries the newer state the row holds.
  if (!row) return current;
  return tx.appInstallation.update({
    where: { id: installationId },
    data: {
      status: InstallationStatus.INSTALLED,
      installedAt: at,
      uninstalledAt: null,
      ...details,
      version: { increment: 1 },
      ...stamp,
    },
  });
}

/** The order columns a status change sets (completed_at / cancelled_at with their status). */
function orderStatusData(event: OrderStatusEventMessage) {
  const at = new Date(event.occurredAt);
  const amount = event.amount !== undefined && STORABLE_AMOUNT.test(event.amount) ? event.amount : undefined;
  return {
    status: event.status,
    statusReason: event.reason ?? null,
    ...(event.status === 'COMPLETED' ? { completedAt: at } : {}),
    ...(event.status === 'CANCELLED' ? { cancelledAt: at } : {}),
    ...(amount !== undefined ? { amount } : {}),
    ...(event.deviceId ? { deviceId: event.deviceId } : {}),
    ...(event.planId ? { planId: event.planId } : {}),
  };
}

/**
 * An order status change: its history row (every change, whatever the order's current state:
 * the history is what happened), then the order itself when the change is newer than its state.
 */
/** Applies an order status event; returns the order as it stands after it (the entity the event carries). */
async function applyOrderStatus(tx: Tx, event: OrderStatusEventMessage): Promise<OrderRow | null> {
  const at = new Date(event.occurredAt);
  await tx.orderStatusChange.createMany({
    data: [
      {
        eventId: event.eventId,
        orderId: event.orderId,
        userId: event.userId,
        status: event.status,
        previousStatus: event.previousStatus ?? null,
        reason: event.reason ?? null,
        occurredAt: at,
      },
    ],
    skipDuplicates: true,
  });
  const created = await tx.order.createManyAndReturn({
    data: [{ id: event.orderId, userId: event.userId, createdAt: at, ...orderStatusData(event), ...stampOf(event) }],
    skipDuplicates: true,
  });
  if (created.length === 1) return created[0]!;
  let current: OrderRow | null = null;
  const row = await lockedIfNewer(
    event,
    () => tx.$queryRaw`SELECT id FROM billing_order WHERE id = ${event.orderId} FOR UPDATE`,
    async () => (current = await tx.order.findUnique({ where: { id: event.orderId } })),
  );
  // Older than the row: the event carries the newer state the row holds.
  if (!row) return current;
  return tx.order.update({
    where: { id: event.orderId },
    data: { ...orderStatusData(event), version: { increment: 1 }, ...stampOf(event) },
  });
}

/** What an installation lifecycle event makes of the row's status; undefined: not an installation change. */
const INSTALLATION_STATUS_OF: Readonly<Record<string, InstallationStatus | undefined>> = {
  REQUESTED: InstallationStatus.INSTALLING,
  INSTALLED: InstallationStatus.INSTALLED,
  FAILED: InstallationStatus.FAILED,
  UNINSTALLING: InstallationStatus.UNINSTALLING,
  UNINSTALLED: InstallationStatus.UNINSTALLED,
};

/**
 * The installation lifecycle on the read model, the way `applyApp` applies an install: found by
 * installation id, else the device's current installation of the same app, else created.
 */
async function applyInstallation(tx: Tx, event: AppInstallationEventMessage): Promise<InstallationRow | null> {
  const status = INSTALLATION_STATUS_OF[event.status];
  const deviceId = event.deviceId;
  if (status === undefined || deviceId === undefined) return null;
  const stamp = stampOf(event);
  const at = new Date(event.occurredAt);
  const details = {
    ...(event.appId ? { appId: event.appId } : {}),
    ...(event.packageName ? { packageName: event.packageName } : {}),
    ...(event.versionName ? { versionName: event.versionName } : {}),
  };
  const lifecycle = {
    status,
    error: status === InstallationStatus.FAILED ? (event.error ?? null) : null,
    ...(status === InstallationStatus.INSTALLED ? { installedAt: at, uninstalledAt: null } : {}),
    ...(status === InstallationStatus.UNINSTALLED ? { uninstalledAt: at } : {}),
  };
  let id = event.installationId;
  if (id === undefined) {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${deviceId}))`;
    const match = [...(event.appId ? [{ appId: event.appId }] : []), ...(event.packageName ? [{ packageName: event.packageName }] : [])];
    const existing = match.length
      ? await tx.appInstallation.findFirst({
          where: { deviceId, status: { not: InstallationStatus.UNINSTALLED }, OR: match },
          orderBy: { createdAt: 'desc' },
        })
      : null;
    // Nothing to uninstall or fail that the read model never saw installed: no row to make up.
    if (!existing && status !== InstallationStatus.INSTALLED && status !== InstallationStatus.INSTALLING) return null;
    id = existing?.id ?? randomUUID();
  }
  const created = await tx.appInstallation.createManyAndReturn({
    data: [{ id, deviceId, userId: event.userId, createdAt: at, ...details, ...lifecycle, ...stamp }],
    skipDuplicates: true,
  });
  if (created.length === 1) return created[0]!;
  const installationId = id;
  let current: InstallationRow | null = null;
  const row = await lockedIfNewer(
    event,
    () => tx.$queryRaw`SELECT id FROM app_installation WHERE id = ${installationId} FOR UPDATE`,
    async () => (current = await tx.appInstallation.findUnique({ where: { id: installationId } })),
  );
  if (!row) return current;
  return tx.appInstallation.update({
    where: { id: installationId },
    data: { ...details, ...lifecycle, version: { increment: 1 }, ...stamp },
  });
}

/** Events applied in one transaction at the most. */
const MAX_BATCH = 500;

interface Pending<T, R> {
  readonly item: T;
  readonly resolve: (result: R) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Errors that say the database cannot be used at all (unreachable, connection lost, no connection
 * or transaction to be had in time), rather than that an event cannot be applied: Prisma's P1xxx
 * codes, P2024 (pool timeout), P2028 (transaction could not start or expired), and PostgreSQL's
 * connection (08) and shutdown (57P) classes.
 */
function databaseUnavailable(error: unknown): boolean {
  const { code, meta } = (error ?? {}) as { code?: unknown; meta?: { driverAdapterError?: { cause?: { originalCode?: unknown } } } };
  if (typeof code === 'string' && (code.startsWith('P1') || code === 'P2024' || code === 'P2028')) return true;
  const sqlState = meta?.driverAdapterError?.cause?.originalCode;
  return typeof sqlState === 'string' && (sqlState.startsWith('08') || sqlState.startsWith('57P'));
}

/**
 * Runs the items one batch after another, in arrival order: the items that arrive while a batch
 * runs form the next one, and each batch's items resolve in arrival order when it is done. A
 * failed batch is retried item by item, so one bad item fails alone; while the database is
 * unavailable the rest of the batch fails at once instead (trying 500 items one by one against a
 * database that times out would hold every user for 500 timeouts).
 */
class GroupCommit<T, R> {
  private readonly waiting: Pending<T, R>[] = [];
  private running = false;

  constructor(
    /** One result per item, in order. */
    private readonly runBatch: (items: T[]) => Promise<R[]>,
    private readonly runOne: (item: T) => Promise<R>,
  ) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (this.running) return;
      this.running = true;
      // From idle, wait for the rest of this turn of the event loop: the messages of one socket
      // read arrive together and should share a transaction.
      setImmediate(() => void this.drain());
    });
  }

  private async drain(): Promise<void> {
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, MAX_BATCH);
      try {
        const results = await this.runBatch(batch.map((p) => p.item));
        for (const [i, p] of batch.entries()) p.resolve(results[i]!);
      } catch (error) {
        if (batch.length === 1 || databaseUnavailable(error)) {
          for (const p of batch) p.reject(error);
          continue;
        }
        await this.oneByOne(batch);
      }
    }
    this.running = false;
  }

  private async oneByOne(batch: readonly Pending<T, R>[]): Promise<void> {
    for (const [i, p] of batch.entries()) {
      try {
        p.resolve(await this.runOne(p.item));
      } catch (error) {
        if (!databaseUnavailable(error)) {
          p.reject(error);
          continue;
        }
        for (const rest of batch.slice(i)) rest.reject(error);
        return;
      }
    }
  }
}

/** `prisma` is a getter: the bridge exists before the database is opened (at start). */
export function createReadModelService(deps: {
  prisma: () => PrismaClient;
  /**
   * Also append every newly applied event to the durable event log (`event_log`), in the same
   * statement as its claim. @default false
   */
  retainEvents?: boolean;
}): ReadModel {
  const retain = deps.retainEvents === true;
  const commits = new GroupCommit<GatewayEvent, GatewayEvent>(
    (events) => applyBatch(deps.prisma(), events, retain),
    async (event) => (await applyBatch(deps.prisma(), [event], retain))[0]!,
  );
  return {
    async ownerOfDevice(deviceId) {
      const row = await deps.prisma().device.findUnique({ where: { id: deviceId }, select: { userId: true } });
      return row?.userId;
    },

    apply(event) {
      return commits.add(event);
    },

    async usersWithApp(app, limit, afterUserId) {
      const match = [...(app.appId ? [{ appId: app.appId }] : []), ...(app.packageName ? [{ packageName: app.packageName }] : [])];
      if (match.length === 0) return [];
      const rows = await deps.prisma().appInstallation.findMany({
        where: { status: InstallationStatus.INSTALLED, OR: match, ...(afterUserId !== undefined ? { userId: { gt: afterUserId } } : {}) },
        distinct: ['userId'],
        select: { userId: true },
        orderBy: { userId: 'asc' },
        take: limit,
      });
      return rows.map((row) => row.userId);
    },
  };
}

/**
 * Applies events (arrival order, any users) in one transaction: claims their ids, then folds the
 * quota events per user, the device events per device and the order events per order, one set of
 * statements per table; app events, rare and looked up by app when they carry no installation id,
 * go one by one. Rows of different entities are independent, so the grouping keeps the result of
 * applying the events one by one.
 */
async function applyBatch(prisma: PrismaClient, events: readonly GatewayEvent[], retain: boolean): Promise<GatewayEvent[]> {
  return prisma.$transaction(async (tx) => {
    const { fresh, current } = await applyFoldedEvents(tx, events, new Date(), retain);
    const installations = new Map<GatewayEvent, InstallationRow | null>();
    const orders = new Map<GatewayEvent, OrderRow | null>();
    for (const event of fresh) {
      if (event.family === 'app') installations.set(event, await applyApp(tx, event));
      else if (event.family === 'orderStatus') orders.set(event, await applyOrderStatus(tx, event));
      else if (event.family === 'installation') installations.set(event, await applyInstallation(tx, event));
    }
    const byOrder = new Map<string, OrderRow>();
    for (const row of orders.values()) if (row) byOrder.set(row.id, row);
    // Every event of the batch carries its entity as the batch leaves it, so two events of one
    // entity in a batch carry the same (latest) state, and a later batch's never an older one.
    const byInstallation = new Map<string, InstallationRow | null>();
    for (const row of installations.values()) if (row) byInstallation.set(row.id, row);
    const out: GatewayEvent[] = [];
    for (const event of events) {
      switch (event.family) {
        case 'quota':
          out.push({ ...event, quota: entityOf(current, QUOTA, event) as QuotaEntity | null });
          break;
        case 'device':
          out.push({ ...event, device: entityOf(current, DEVICES, event) as DeviceEntity | null });
          break;
        case 'order':
          out.push({ ...event, order: entityOf(current, ORDERS, event) as OrderEntity | null });
          break;
        case 'app':
        case 'installation': {
          // A redelivery (not applied again) reads its installation: app events are rare and one by one anyway.
          let row = installations.has(event) ? installations.get(event)! : await findInstallation(tx, event);
          if (row) row = byInstallation.get(row.id) ?? row;
          out.push({ ...event, installation: row ? installationView(row) : null });
          break;
        }
        case 'orderStatus': {
          const row =
            byOrder.get(event.orderId) ??
            (orders.has(event) ? orders.get(event)! : await tx.order.findUnique({ where: { id: event.orderId } }));
          // The order travels as JSON (Redis); the same shape in-process.
          out.push({ ...event, order: row ? (JSON.parse(JSON.stringify(toOrderView(row))) as OrderEntity) : null });
          break;
        }
        default:
          // The other families carry no entity (yet): as they came.
          out.push(event);
      }
    }
    return out;
  }, TRANSACTION_OPTIONS);
}

function entityOf<E extends GatewayEvent>(current: CurrentRows, folding: Folding<E>, event: E): object | null {
  const row = current.get(folding.table)?.get(folding.keyOf(event));
  return row ? folding.view(row) : null;
}
