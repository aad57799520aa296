/**
 * The set-based statements of the read model (docs/architecture.md#the-read-model): a batch of
 * quota, device and order events, any users, in two statements whatever their number. They run
 * on a `SqlSession`: the raw SQL executor's transaction on the hot path, or a Prisma interactive
 * transaction when the batch also holds rare events (read-model.service.ts).
 */
import type { GatewayEvent, DeviceStatusEventMessage, OrderCompletedEventMessage, QuotaEventMessage } from '../../contracts/events';
import type { SqlSession, SqlStatement } from '../../contracts/ports';
import { Prisma } from '../../generated/prisma/client';
import type { EventStamp } from '../shared/event-order';
import { DEVICES, foldNewer, ORDERS, QUOTA, stampOf, type Columns, type Folding } from './foldings';

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
export type CurrentRows = Map<string, Map<string, Columns>>;

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
 * the number of events and tables (each round trip costs the gateway and PostgreSQL a system call
 * and a wake-up each, more than the rows): one claims every `eventId` in `processed_event` and locks the rows
 * the events name (in key order, so two instances lock alike), one updates the rows that exist,
 * with each row's newer events folded into one write, and inserts the others. Claimed-before ids
 * (a redelivery, or the echo of the gateway's own outbox event) and repeats within the batch
 * change nothing; locking their rows too is harmless. An insert a conflict skips (another writer
 * created the row meanwhile, or a quota id taken by another user) is tried again from the lock,
 * as applying the events one by one would.
 */
export async function applyFoldedEvents(
  session: SqlSession,
  events: readonly GatewayEvent[],
  options: {
    readonly now: Date;
    /** Also append the newly claimed events to `event_log` (claimAndLock). */
    readonly retain: boolean;
    /**
     * Nothing follows these statements in the transaction: the last one may carry its COMMIT
     * (`SqlSession.query`'s `commit`). It is known to be the last before it is sent only when no
     * other can follow: the claim when no event names a row, a write made only of updates (the
     * rows are locked: every update applies, none is retried).
     */
    readonly commit: boolean;
  },
): Promise<{ fresh: GatewayEvent[]; current: CurrentRows }> {
  const { now, retain } = options;
  const named = tablesOf(events);
  const { claimed, locked } = await claimAndLock(session, events, named, retain, options.commit && named.length === 0);
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
      rows = (await claimAndLock(session, [], tables)).locked;
      remember(rows);
    }
    const plans = tables.map((table) => ({ table, ...table.plan(rows.get(table.folding.table) ?? new Map(), attempt, now) }));
    const last = options.commit && plans.every((plan) => plan.inserts.length === 0);
    const { inserted, written } = await write(session, plans, last);
    for (const [table, byKey] of written) for (const [key, row] of byKey) setRow(current, table, key, row);
    tables = tables.filter(
      (table) => table.settle(rows.get(table.folding.table) ?? new Map(), inserted.get(table.folding.table) ?? new Set()) > 0,
    );
    // Cannot happen (every key of an update-only write is locked, so settled); were it to, say so loudly.
    if (last && tables.length > 0) throw new Error('read model: committed with rows still to write');
  }
  return { fresh, current };
}

/** The folded tables' share of `events` (rare events are applied one by one: rare-events.ts). */
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

/** `$1`-style text and values, computed once (`Prisma.Sql.text` is a getter). */
const statement = (sql: Prisma.Sql): SqlStatement => ({ text: sql.text, values: sql.values });

/**
 * One statement: claims `events`' ids (none on a retry) and locks the tables' rows. Rows travel as
 * one JSON parameter and `jsonb_populate_record(set)` converts each value to its column's type,
 * so the SQL text does not depend on the values.
 */
async function claimAndLock(
  session: SqlSession,
  events: readonly GatewayEvent[],
  tables: readonly TableWork[],
  retain = false,
  commit = false,
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
  const result = await session.query<{ tbl: string | null; key: string } & LockedRow>(
    statement(Prisma.sql`WITH ${Prisma.join(ctes, ', ')} ${Prisma.join(selects, ' UNION ALL ')}`),
    { commit },
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
  session: SqlSession,
  plans: readonly { table: TableWork; updates: Columns[]; inserts: Columns[] }[],
  commit: boolean,
): Promise<{ inserted: Map<string, Set<string>>; written: CurrentRows }> {
  const ctes: Prisma.Sql[] = [];
  const selects: Prisma.Sql[] = [];
  plans.forEach(({ table, updates, inserts }, i) => {
    const { table: name, key, updatable, insertable, rowJson } = table.folding;
    if (updates.length > 0) {
      // The keys again, as the lock has them: the planner cannot see how many rows the JSON holds
      // (it assumes 100) and would otherwise join by scanning the whole table (38 ms at 20,000
      // devices, for one row); `= ANY` of them is an index scan of the rows named.
      const keys = JSON.stringify(updates.map((update) => update.key));
      ctes.push(Prisma.sql`${raw(`u${i}`)} AS (
        UPDATE ${raw(name)} AS t
        SET (${raw(updatable.join(', '))}) = (SELECT ${raw(updatable.map((c) => `r.${c}`).join(', '))} FROM jsonb_populate_record(t, p.patch) AS r)
        FROM jsonb_to_recordset(${JSON.stringify(updates)}::jsonb) AS p(key text, patch jsonb)
        WHERE t.${raw(key)} = p.key AND t.${raw(key)} = ANY(ARRAY(SELECT jsonb_array_elements_text(${keys}::jsonb)))
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
  for (const row of await session.query<{ tbl: string; key: string; ins: boolean; row: Columns }>(
    statement(Prisma.sql`WITH ${Prisma.join(ctes, ', ')} ${Prisma.join(selects, ' UNION ALL ')}`),
    { commit },
  )) {
    setRow(written, row.tbl, row.key, row.row);
    if (!row.ins) continue;
    let keys = inserted.get(row.tbl);
    if (!keys) inserted.set(row.tbl, (keys = new Set()));
    keys.add(row.key);
  }
  return { inserted, written };
}

/** The entity `event` carries: its row as the batch leaves it. */
export function entityOf<E extends GatewayEvent>(current: CurrentRows, folding: Folding<E>, event: E): object | null {
  const row = current.get(folding.table)?.get(folding.keyOf(event));
  return row ? folding.view(row) : null;
}
