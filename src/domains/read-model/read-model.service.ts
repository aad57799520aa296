/**
 * The read model: platform events (CONTRACT §5) kept in the same tables the queries read, so a
 * query made after a subscriber saw an event returns the state that event announced. The bridge
 * calls `apply` before it publishes to the fan-out, and `ownerOfDevice` for events that name a
 * device but no user.
 *
 * Each event is applied in one transaction, at most once: its `eventId` goes into
 * `processed_event` first (a redelivery or the echo of the gateway's own outbox event stops
 * there). A row changes only when the event is newer than the last one applied to it (later
 * `occurredAt`; equal times ordered by `eventId`), so replayed or out-of-order events never put
 * older state over newer. Rows are last-writer-wins as a whole: an ignored older event is not
 * merged field by field. Anything thrown is transient (database down): the bridge requeues.
 *
 * Group commit: a user's events are applied one batch after another, in arrival order. While a
 * batch is being written, the user's next events wait and then go together in one transaction,
 * where state-like events (quota, device status) are folded in memory into one row write per
 * entity. A burst for one user therefore costs a few statements per batch, not a transaction per
 * event, and does not hold the consumer's in-flight window (and so other users) for long. The
 * result is the same as applying the events one by one; a batch that fails is retried one event
 * at a time, so only the event that cannot be applied is requeued.
 */
import { randomUUID } from 'node:crypto';
import {
  QUOTA_LIMIT_FIELDS,
  QUOTA_USAGE_FIELDS,
  type AppInstalledEventMessage,
  type DeviceStatusEventMessage,
  type GatewayEvent,
  type OrderCompletedEventMessage,
  type QuotaEventMessage,
} from '../../contracts/events';
import type { ReadModel } from '../../contracts/ports';
import type { Prisma, PrismaClient } from '../../infra/db/generated/client';
import { InstallationStatus } from '../app/app-installation.type';
import { OrderStatus } from '../order/order.type';
import { QuotaStatus } from '../quota/quota.type';
import { isNewerThan, type EventStamp } from '../shared/event-order';
import { TRANSACTION_OPTIONS } from '../shared/outbox';

type Tx = Prisma.TransactionClient;

/** Decimal(14, 2) holds 12 digits before the point; a larger amount is kept out rather than failing forever. */
const STORABLE_AMOUNT = /^-?\d{1,12}(\.\d+)?$/;

function stampOf(event: GatewayEvent) {
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

/** The quota columns an event sets. */
function quotaData(event: QuotaEventMessage): Record<string, unknown> {
  const at = new Date(event.occurredAt);
  const data: Record<string, unknown> = {};
  if (event.kind === 'DELETED') {
    data.deletedAt = at;
  } else {
    for (const key of Object.keys(QUOTA_LIMIT_FIELDS) as (keyof typeof QUOTA_LIMIT_FIELDS)[]) {
      if (event.limits?.[key] !== undefined) data[key] = event.limits[key];
    }
    for (const key of Object.keys(QUOTA_USAGE_FIELDS) as (keyof typeof QUOTA_USAGE_FIELDS)[]) {
      if (event.usage?.[key] !== undefined) data[key] = event.usage[key];
    }
    const status = event.status ?? (event.kind === 'EXCEEDED' ? QuotaStatus.EXCEEDED : undefined);
    if (status) data.status = status;
    if (event.validUntil) data.validUntil = new Date(event.validUntil);
    data.deletedAt = null;
  }
  return data;
}

async function applyQuota(tx: Tx, event: QuotaEventMessage): Promise<void> {
  const stamp = stampOf(event);
  const data = quotaData(event);
  // A new row (tombstone included, so an older event cannot bring a deleted quota back).
  const created = await tx.quota.createMany({
    data: [{ id: event.quotaId ?? randomUUID(), userId: event.userId, ...data, ...stamp }],
    skipDuplicates: true,
  });
  if (created.count === 1) return;
  const row = await lockedIfNewer(
    event,
    () => tx.$queryRaw`SELECT id FROM quota WHERE user_id = ${event.userId} FOR UPDATE`,
    () => tx.quota.findUnique({ where: { userId: event.userId } }),
  );
  if (row) {
    await tx.quota.update({ where: { userId: event.userId }, data: { ...data, version: { increment: 1 }, ...stamp } });
    return;
  }
  // The platform's quota id belongs to another user's row here: keep this user's quota anyway.
  if (!(await tx.quota.findUnique({ where: { userId: event.userId }, select: { id: true } }))) {
    await tx.quota.create({ data: { id: randomUUID(), userId: event.userId, ...data, ...stamp } });
  }
}

/**
 * A user's quota events folded into one write: each event newer than the row's last one (and
 * than the events folded before it) merges its columns over the previous ones, exactly as applying
 * them one by one would. Without a row yet, or when creating it collides, falls back to one by one.
 */
async function applyQuotaFolded(tx: Tx, events: readonly QuotaEventMessage[]): Promise<void> {
  const first = events[0];
  if (!first) return;
  const { userId } = first;
  await tx.$queryRaw`SELECT id FROM quota WHERE user_id = ${userId} FOR UPDATE`;
  const row = await tx.quota.findUnique({ where: { userId }, select: { lastEventAt: true, lastEventId: true } });
  if (!row || events.length === 1) {
    for (const event of events) await applyQuota(tx, event);
    return;
  }
  const folded = foldNewer(row, events, quotaData);
  if (folded) await tx.quota.update({ where: { userId }, data: folded });
}

/**
 * The columns to write for `events` (arrival order) over a row stamped `row`: each event newer
 * than the row and than the events taken before it merges its columns over theirs, exactly as
 * applying them one by one would. Undefined when none is newer.
 */
function foldNewer<E extends GatewayEvent>(
  row: EventStamp,
  events: readonly E[],
  columns: (event: E) => Record<string, unknown>,
): Record<string, unknown> | undefined {
  let stamp = row;
  let data: Record<string, unknown> = {};
  let applied = 0;
  for (const event of events) {
    const at = new Date(event.occurredAt);
    if (!isNewerThan(stamp, at, event.eventId)) continue;
    data = { ...data, ...columns(event) };
    stamp = { lastEventAt: at, lastEventId: event.eventId };
    applied++;
  }
  return applied === 0 ? undefined : { ...data, version: { increment: applied }, ...stamp };
}

/** One device's status events folded into one write (see `applyQuotaFolded`). */
async function applyDeviceFolded(tx: Tx, events: readonly DeviceStatusEventMessage[]): Promise<void> {
  const first = events[0];
  if (!first) return;
  const { deviceId } = first;
  await tx.$queryRaw`SELECT id FROM device WHERE id = ${deviceId} FOR UPDATE`;
  const row = await tx.device.findUnique({ where: { id: deviceId }, select: { lastEventAt: true, lastEventId: true } });
  if (!row || events.length === 1) {
    for (const event of events) await applyDevice(tx, event);
    return;
  }
  const folded = foldNewer(row, events, deviceData);
  if (folded) await tx.device.update({ where: { id: deviceId }, data: folded });
}

/** The device columns a status event sets; the owner never changes. */
function deviceData(event: DeviceStatusEventMessage): Record<string, unknown> {
  return {
    status: event.status,
    statusReason: event.reason ?? null,
    ...(event.deviceName ? { name: event.deviceName } : {}),
    ...(event.providerType ? { providerType: event.providerType } : {}),
  };
}

async function applyDevice(tx: Tx, event: DeviceStatusEventMessage): Promise<void> {
  const stamp = stampOf(event);
  const created = await tx.device.createMany({
    data: [
      {
        id: event.deviceId,
        userId: event.userId,
        name: event.deviceName ?? event.deviceId,
        status: event.status,
        providerType: event.providerType ?? null,
        statusReason: event.reason ?? null,
        createdAt: new Date(event.occurredAt),
        ...stamp,
      },
    ],
    skipDuplicates: true,
  });
  if (created.count === 1) return;
  const row = await lockedIfNewer(
    event,
    () => tx.$queryRaw`SELECT id FROM device WHERE id = ${event.deviceId} FOR UPDATE`,
    () => tx.device.findUnique({ where: { id: event.deviceId } }),
  );
  if (!row) return;
  // The owner stays the one the read model knows: an event cannot move a device to another user.
  await tx.device.update({ where: { id: event.deviceId }, data: { ...deviceData(event), version: { increment: 1 }, ...stamp } });
}

async function applyOrder(tx: Tx, event: OrderCompletedEventMessage): Promise<void> {
  const stamp = stampOf(event);
  const at = new Date(event.occurredAt);
  const amount = event.amount !== undefined && STORABLE_AMOUNT.test(event.amount) ? event.amount : undefined;
  const details = {
    ...(amount !== undefined ? { amount } : {}),
    ...(event.deviceId ? { deviceId: event.deviceId } : {}),
    ...(event.planId ? { planId: event.planId } : {}),
  };
  const created = await tx.order.createMany({
    data: [{ id: event.orderId, userId: event.userId, status: OrderStatus.COMPLETED, completedAt: at, createdAt: at, ...details, ...stamp }],
    skipDuplicates: true,
  });
  if (created.count === 1) return;
  const row = await lockedIfNewer(
    event,
    () => tx.$queryRaw`SELECT id FROM billing_order WHERE id = ${event.orderId} FOR UPDATE`,
    () => tx.order.findUnique({ where: { id: event.orderId } }),
  );
  if (!row) return;
  await tx.order.update({
    where: { id: event.orderId },
    data: { status: OrderStatus.COMPLETED, completedAt: at, ...details, version: { increment: 1 }, ...stamp },
  });
}

async function applyApp(tx: Tx, event: AppInstalledEventMessage): Promise<void> {
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
  const created = await tx.appInstallation.createMany({
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
  if (created.count === 1) return;
  const installationId = id;
  const row = await lockedIfNewer(
    event,
    () => tx.$queryRaw`SELECT id FROM app_installation WHERE id = ${installationId} FOR UPDATE`,
    () => tx.appInstallation.findUnique({ where: { id: installationId } }),
  );
  if (!row) return;
  await tx.appInstallation.update({
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

/** Events of one user applied in one transaction at the most. */
const MAX_BATCH = 500;

interface Pending<T> {
  readonly item: T;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Per key, runs the items one batch after another in arrival order: a user's events are applied
 * (and so published, which the bridge does right after each resolves) in the order this instance
 * received them. Items that arrive while a batch runs form the next batch. A failed batch is
 * retried item by item, so one bad item fails alone. Idle keys are forgotten.
 */
function perKeyBatcher<T>(runBatch: (items: T[]) => Promise<void>, runOne: (item: T) => Promise<void>) {
  const queues = new Map<string, Pending<T>[]>();
  async function drain(key: string, queue: Pending<T>[]): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.splice(0, MAX_BATCH);
      try {
        await runBatch(batch.map((p) => p.item));
        for (const p of batch) p.resolve();
      } catch (error) {
        if (batch.length === 1) {
          batch[0]?.reject(error);
          continue;
        }
        for (const p of batch) {
          try {
            await runOne(p.item);
            p.resolve();
          } catch (oneError) {
            p.reject(oneError);
          }
        }
      }
    }
    queues.delete(key);
  }
  return (key: string, item: T): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const pending = { item, resolve, reject };
      const queue = queues.get(key);
      if (queue) {
        queue.push(pending);
        return;
      }
      const fresh = [pending];
      queues.set(key, fresh);
      void drain(key, fresh);
    });
}

/** `prisma` is a getter: the bridge exists before the database is opened (at start). */
export function createReadModelService(deps: { prisma: () => PrismaClient }): ReadModel {
  const inOrder = perKeyBatcher<GatewayEvent>(
    (events) => applyBatch(deps.prisma(), events),
    (event) => applyBatch(deps.prisma(), [event]),
  );
  return {
    async ownerOfDevice(deviceId) {
      const row = await deps.prisma().device.findUnique({ where: { id: deviceId }, select: { userId: true } });
      return row?.userId;
    },

    apply(event) {
      return inOrder(event.userId, event);
    },
  };
}

/**
 * Applies one user's events (arrival order) in one transaction: each `eventId` is claimed in
 * `processed_event` (the ones claimed before, and repeats within the batch, change nothing), then
 * quota events are folded into one write, device events into one write per device, and the rest
 * applied one by one. Rows of different entities are independent, so the grouping keeps the result
 * of applying the events one by one.
 */
async function applyBatch(prisma: PrismaClient, events: readonly GatewayEvent[]): Promise<void> {
  await prisma.$transaction(async (tx) => {
    const claimed = await tx.processedEvent.createManyAndReturn({
      data: events.map((event) => ({ eventId: event.eventId, routingKey: event.type })),
      skipDuplicates: true,
      select: { eventId: true },
    });
    const unclaimed = new Set(claimed.map((row) => row.eventId));
    // Applied before: a redelivery, or the echo of the gateway's own outbox event.
    const fresh = events.filter((event) => unclaimed.delete(event.eventId));
    const quota: QuotaEventMessage[] = [];
    const devices = new Map<string, DeviceStatusEventMessage[]>();
    for (const event of fresh) {
      if (event.family === 'quota') quota.push(event);
      else if (event.family === 'device') devices.set(event.deviceId, [...(devices.get(event.deviceId) ?? []), event]);
    }
    await applyQuotaFolded(tx, quota);
    for (const group of devices.values()) await applyDeviceFolded(tx, group);
    for (const event of fresh) {
      if (event.family === 'order') await applyOrder(tx, event);
      else if (event.family === 'app') await applyApp(tx, event);
    }
  }, TRANSACTION_OPTIONS);
}
