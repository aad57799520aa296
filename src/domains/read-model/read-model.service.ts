/**
 * The read model: platform events (docs/architecture.md#the-read-model) kept in the same tables the queries read, so a
 * query made after a subscriber saw an event returns the state that event announced. The bridge
 * calls `apply` before it publishes to the fan-out, and the router `ownerOfDevice` for events
 * that name a device but no user.
 *
 * Each event is applied at most once: its `eventId` goes into `processed_event` in the same
 * transaction (a redelivery or the echo of the gateway's own outbox event stops there). A row
 * changes only when the event is newer than the last one applied to it (later `occurredAt`; equal
 * times ordered by `eventId`), so replayed or out-of-order events never put older state over
 * newer. Rows are last-writer-wins as a whole: an ignored older event is not merged field by
 * field. Anything thrown is transient (database down): the bridge requeues.
 *
 * Group commit (group-commit.ts): one transaction at a time, for every user. The events that
 * arrive while a transaction is being written (at most `MAX_BATCH`) go together in the next one,
 * whoever they belong to, and resolve in arrival order when it commits, so a user's events are
 * applied and published in the order this instance received them. The work is set-based and
 * takes two statements whatever the number of events and tables (folded-sql.ts): one claims
 * every `eventId` and locks the quota, device and order rows the events name; one updates the
 * rows that exist and inserts the others, with each row's events (arrival order) folded in
 * memory into one write (foldings.ts).
 *
 * A batch of those events only (and of the families that carry no entity) is the hot path: it
 * runs on the raw SQL executor (contracts/ports.ts `SqlExecutor`, docs/decisions/0600), BEGIN and
 * COMMIT riding with the two statements, without Prisma's interactive transaction (whose cost per
 * transaction was most of the read model's). A batch that also holds a rare event (app installs,
 * the installation lifecycle, order status changes: rare-events.ts, applied one by one through
 * Prisma) runs as before in one Prisma interactive transaction, the same two statements through
 * `$queryRawUnsafe`. The result is the same as applying the events one by one; a batch that
 * fails is retried one event at a time, so only the event that cannot be applied is requeued
 * (unless the database itself is unavailable: then the whole batch is, at once).
 */
import type { DeviceEntity, OrderEntity, QuotaEntity } from '../../contracts/entities';
import type { GatewayEvent } from '../../contracts/events';
import type { ReadModel, SqlExecutor, SqlSession } from '../../contracts/ports';
import type { Order as OrderRow, Prisma, PrismaClient } from '../../generated/prisma/client';
import { InstallationStatus } from '../app/app-installation.type';
import { toOrderView } from '../order/order.service';
import { TRANSACTION_OPTIONS } from '../shared/outbox';
import { applyFoldedEvents, entityOf, type CurrentRows } from './folded-sql';
import { DEVICES, ORDERS, QUOTA } from './foldings';
import { GroupCommit } from './group-commit';
import { applyApp, applyInstallation, applyOrderStatus, findInstallation, installationView, type InstallationRow } from './rare-events';
import { databaseUnavailable } from './unavailable';

/** The families applied one by one through Prisma (rare-events.ts): a batch with one of them takes Prisma's transaction. */
const RARE_FAMILIES: ReadonlySet<GatewayEvent['family']> = new Set(['app', 'orderStatus', 'installation']);

/** The getters: the bridge exists before the database is opened (at start). */
export function createReadModelService(deps: {
  prisma: () => PrismaClient;
  /** The raw SQL executor on the same database (infra/db/sql-executor.ts). */
  sql: () => SqlExecutor;
  /**
   * Also append every newly applied event to the durable event log (`event_log`), in the same
   * statement as its claim. @default false
   */
  retainEvents?: boolean;
}): ReadModel {
  const retain = deps.retainEvents === true;
  const commits = new GroupCommit<GatewayEvent, GatewayEvent>({
    runBatch: (events) => applyBatch(deps, events, retain),
    runOne: async (event) => (await applyBatch(deps, [event], retain))[0]!,
    unavailable: databaseUnavailable,
  });
  return {
    async ownerOfDevice(deviceId) {
      const [row] = await deps.sql().query<{ user_id: string }>({ text: 'SELECT user_id FROM device WHERE id = $1', values: [deviceId] });
      return row?.user_id;
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
 * statements per table; rare events go one by one. Rows of different entities are independent,
 * so the grouping keeps the result of applying the events one by one. Every event of the batch
 * carries its entity as the batch leaves it, so two events of one entity in a batch carry the
 * same (latest) state, and a later batch's never an older one.
 */
async function applyBatch(
  deps: { prisma: () => PrismaClient; sql: () => SqlExecutor },
  events: readonly GatewayEvent[],
  retain: boolean,
): Promise<GatewayEvent[]> {
  if (!events.some((event) => RARE_FAMILIES.has(event.family))) {
    return deps.sql().transaction(async (session) => {
      const { current } = await applyFoldedEvents(session, events, { now: new Date(), retain, commit: true });
      return events.map((event) => withFoldedEntity(event, current));
    });
  }
  return deps.prisma().$transaction(async (tx) => {
    const { fresh, current } = await applyFoldedEvents(prismaSession(tx), events, { now: new Date(), retain, commit: false });
    const installations = new Map<GatewayEvent, InstallationRow | null>();
    const orders = new Map<GatewayEvent, OrderRow | null>();
    for (const event of fresh) {
      if (event.family === 'app') installations.set(event, await applyApp(tx, event));
      else if (event.family === 'orderStatus') orders.set(event, await applyOrderStatus(tx, event));
      else if (event.family === 'installation') installations.set(event, await applyInstallation(tx, event));
    }
    const byOrder = new Map<string, OrderRow>();
    for (const row of orders.values()) if (row) byOrder.set(row.id, row);
    const byInstallation = new Map<string, InstallationRow | null>();
    for (const row of installations.values()) if (row) byInstallation.set(row.id, row);
    const out: GatewayEvent[] = [];
    for (const event of events) {
      switch (event.family) {
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
          out.push(withFoldedEntity(event, current));
      }
    }
    return out;
  }, TRANSACTION_OPTIONS);
}

/** A quota, device or order event with its row as the batch leaves it; the families that carry no entity (yet) as they came. */
function withFoldedEntity(event: GatewayEvent, current: CurrentRows): GatewayEvent {
  switch (event.family) {
    case 'quota':
      return { ...event, quota: entityOf(current, QUOTA, event) as QuotaEntity | null };
    case 'device':
      return { ...event, device: entityOf(current, DEVICES, event) as DeviceEntity | null };
    case 'order':
      return { ...event, order: entityOf(current, ORDERS, event) as OrderEntity | null };
    default:
      return event;
  }
}

/** The folded statements inside Prisma's transaction, for a batch with rare events (`commit` has no use there). */
function prismaSession(tx: Prisma.TransactionClient): SqlSession {
  return {
    query: <R>(statement: { text: string; values: readonly unknown[] }) => tx.$queryRawUnsafe<R[]>(statement.text, ...statement.values),
  };
}
