/**
 * The read model's rare events, applied one by one through Prisma inside the batch's interactive
 * transaction: app installs (matched to an installation by app when they carry no id), the
 * installation lifecycle, and order status changes (a history row each). Each returns the row as
 * it stands after it: the entity its event carries.
 */
import { randomUUID } from 'node:crypto';
import type { AppInstallationEventMessage, AppInstalledEventMessage, GatewayEvent, OrderStatusEventMessage } from '../../contracts/events';
import type { AppInstallationEntity } from '../../contracts/entities';
import type { Order as OrderRow, Prisma } from '../../generated/prisma/client';
import { InstallationStatus } from '../app/app-installation.type';
import { isNewerThan } from '../shared/event-order';
import { STORABLE_AMOUNT, stampOf } from './foldings';

type Tx = Prisma.TransactionClient;

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

/** The entity from a Prisma row (app events are applied through Prisma, one by one). */
export function installationView(row: {
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

export type InstallationRow = Parameters<typeof installationView>[0];

/** The installation an app event names (by id, else the current one of the same app on the device). */
export async function findInstallation(
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
export async function applyApp(tx: Tx, event: AppInstalledEventMessage): Promise<InstallationRow | null> {
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
 * Returns the order as it stands after it (the entity the event carries).
 */
export async function applyOrderStatus(tx: Tx, event: OrderStatusEventMessage): Promise<OrderRow | null> {
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
export async function applyInstallation(tx: Tx, event: AppInstallationEventMessage): Promise<InstallationRow | null> {
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
