/**
 * App installations on Prisma. installApp and uninstallApp lock the device (or installation)
 * row, check the caller owns it and the transition exists, and write the row with its outbox
 * event in one transaction. `byDevices` answers `Device.installations` for a whole page of
 * devices in one query (see BatchLoader).
 */
import type { AuthUser } from '../../auth/auth-user';
import { BadUserInputError } from '../../contracts/errors';
import type { AppInstallation as InstallationRow, Prisma, PrismaClient } from '../../generated/prisma/client';
import { lockDevice } from '../device/device.service';
import { DeviceStatus } from '../device/device.type';
import { visibleTo } from '../shared/access';
import { eventStamp, newEventRef, writeOutbox, TRANSACTION_OPTIONS } from '../shared/outbox';
import type { InstallAppInput } from './app-installation.input';
import { InstallationStatus, type AppInstallation } from './app-installation.type';

declare module '../../contracts/context' {
  interface DomainServices {
    readonly apps: AppInstallationService;
  }
}

export interface AppInstallationService {
  /** The device's current installations (not UNINSTALLED), oldest first. */
  forDevice(actor: AuthUser, deviceId: string): Promise<AppInstallation[]>;
  /** Current installations of many devices in one query, keyed by device id. */
  byDevices(deviceIds: readonly string[]): Promise<Map<string, AppInstallation[]>>;
  install(actor: AuthUser, deviceId: string, input: InstallAppInput): Promise<AppInstallation>;
  uninstall(actor: AuthUser, installationId: string): Promise<AppInstallation>;
}

export function toInstallationView(row: InstallationRow): AppInstallation {
  return {
    id: row.id,
    deviceId: row.deviceId,
    userId: row.userId,
    appId: row.appId,
    packageName: row.packageName,
    versionName: row.versionName,
    status: row.status,
    installedAt: row.installedAt,
    uninstalledAt: row.uninstalledAt,
    error: row.error,
    version: row.version,
    updatedAt: row.updatedAt,
  };
}

/** The body the platform's app service publishes. */
function installationPayload(row: InstallationRow, extra: Record<string, unknown>): Record<string, unknown> {
  const payload: Record<string, unknown> = { installationId: row.id, deviceId: row.deviceId, userId: row.userId, ...extra };
  if (row.appId) payload.appId = row.appId;
  if (row.packageName) payload.packageName = row.packageName;
  if (row.versionName) payload.versionName = row.versionName;
  return payload;
}

/** Devices in these statuses cannot take an install. */
const NOT_INSTALLABLE: readonly string[] = [DeviceStatus.DELETED, DeviceStatus.CREATING, DeviceStatus.ERROR];
const CURRENT = { not: InstallationStatus.UNINSTALLED } as const;

export function createAppInstallationService(deps: { prisma: PrismaClient; onOutboxWrite: () => void }): AppInstallationService {
  const { prisma, onOutboxWrite } = deps;
  return {
    async forDevice(actor, deviceId) {
      const device = await prisma.device.findUnique({ where: { id: deviceId } });
      const where: Prisma.AppInstallationWhereInput = { deviceId, status: CURRENT };
      // Another user's device answers exactly as a device the read model does not hold: only the
      // caller's own installations on it (none), so the answer never tells whether it exists.
      const own = device !== null && device.userId === actor.id;
      if (!own && !actor.isAdmin) where.userId = actor.id;
      const rows = await prisma.appInstallation.findMany({ where, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });
      return rows.map(toInstallationView);
    },

    async byDevices(deviceIds) {
      const rows = await prisma.appInstallation.findMany({
        where: { deviceId: { in: [...deviceIds] }, status: CURRENT },
        orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
      });
      const byDevice = new Map<string, AppInstallation[]>();
      for (const row of rows) {
        const list = byDevice.get(row.deviceId) ?? [];
        list.push(toInstallationView(row));
        byDevice.set(row.deviceId, list);
      }
      return byDevice;
    },

    async install(actor, deviceId, input) {
      const row = await prisma.$transaction(async (tx) => {
        const device = visibleTo(actor, await lockDevice(tx, deviceId), 'device', deviceId);
        if (NOT_INSTALLABLE.includes(device.status)) {
          throw new BadUserInputError(`Cannot install an app on a device that is ${device.status}`, {
            field: 'deviceId',
            status: device.status,
          });
        }
        const existing = await tx.appInstallation.findFirst({
          where: { deviceId, packageName: input.packageName, status: CURRENT },
        });
        if (existing) {
          throw new BadUserInputError(`${input.packageName} is already ${existing.status} on this device`, {
            field: 'input.packageName',
            installationId: existing.id,
          });
        }
        const ref = newEventRef();
        const saved = await tx.appInstallation.create({
          data: {
            deviceId,
            userId: device.userId,
            appId: input.appId ?? null,
            packageName: input.packageName,
            versionName: input.versionName ?? null,
            status: InstallationStatus.INSTALLED,
            installedAt: ref.at,
            createdAt: ref.at,
            ...eventStamp(ref),
          },
        });
        await writeOutbox(tx, 'app.installed', ref, installationPayload(saved, { installedAt: ref.at.toISOString() }));
        return saved;
      }, TRANSACTION_OPTIONS);
      onOutboxWrite();
      return toInstallationView(row);
    },

    async uninstall(actor, installationId) {
      const row = await prisma.$transaction(async (tx) => {
        await tx.$queryRaw`SELECT id FROM app_installation WHERE id = ${installationId} FOR UPDATE`;
        const current = visibleTo(
          actor,
          await tx.appInstallation.findUnique({ where: { id: installationId } }),
          'app installation',
          installationId,
        );
        if (current.status === InstallationStatus.UNINSTALLED || current.status === InstallationStatus.INSTALLING) {
          throw new BadUserInputError(`Cannot uninstall an app that is ${current.status}`, {
            field: 'installationId',
            status: current.status,
          });
        }
        const ref = newEventRef();
        const saved = await tx.appInstallation.update({
          where: { id: installationId },
          data: { status: InstallationStatus.UNINSTALLED, uninstalledAt: ref.at, version: { increment: 1 }, ...eventStamp(ref) },
        });
        // Not in docs/events.md (no subscription takes it): other platform consumers may; the bridge ignores it.
        await writeOutbox(tx, 'app.uninstalled', ref, installationPayload(saved, { uninstalledAt: ref.at.toISOString() }));
        return saved;
      }, TRANSACTION_OPTIONS);
      onOutboxWrite();
      return toInstallationView(row);
    },
  };
}
