/**
 * Devices on Prisma. Each mutation is a validated state transition: it locks the row, checks the
 * caller may touch it and that the transition exists, then writes the row and its outbox event
 * in one transaction (docs/events.md#events-out-the-outbox). An impossible transition is BAD_USER_INPUT and writes nothing.
 */
import type { AuthUser } from '../../auth/auth-user';
import { BadUserInputError } from '../../contracts/errors';
import type { Device as DeviceRow, Prisma, PrismaClient } from '../../generated/prisma/client';
import { visibleTo } from '../shared/access';
import { afterPosition, PAGE_ORDER, toConnection, type Connection, type PageRequest } from '../shared/connection';
import { eventStamp, newEventRef, writeOutbox, type OutboxEventRef, TRANSACTION_OPTIONS } from '../shared/outbox';
import type { CreateDeviceInput } from './device.input';
import { DeviceStatus, type Device } from './device.type';

export interface DeviceFilter {
  /** null: every user's (administrators). */
  readonly userId: string | null;
  readonly status?: DeviceStatus | null;
}

declare module '../../contracts/context' {
  interface DomainServices {
    readonly devices: DeviceService;
  }
}

export interface DeviceService {
  list(filter: DeviceFilter, page: PageRequest): Promise<Connection<Device>>;
  get(actor: AuthUser, id: string): Promise<Device>;
  create(actor: AuthUser, userId: string, input: CreateDeviceInput): Promise<Device>;
  start(actor: AuthUser, id: string): Promise<Device>;
  stop(actor: AuthUser, id: string): Promise<Device>;
  remove(actor: AuthUser, id: string): Promise<Device>;
}

export function toDeviceView(row: DeviceRow): Device {
  return {
    id: row.id,
    userId: row.userId,
    name: row.name,
    status: row.status,
    providerType: row.providerType,
    cpuCores: row.cpuCores,
    memoryMB: row.memoryMB,
    storageGB: row.storageGB,
    statusReason: row.statusReason,
    failureType: row.failureType,
    recoveryStrategy: row.recoveryStrategy,
    recoveryAttempts: row.recoveryAttempts,
    version: row.version,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** The transitions a caller can ask for, the statuses each starts from, and what it emits. */
const TRANSITIONS = {
  start: {
    from: [DeviceStatus.IDLE, DeviceStatus.ALLOCATED, DeviceStatus.STOPPED, DeviceStatus.PAUSED, DeviceStatus.ERROR],
    to: DeviceStatus.RUNNING,
    routingKey: 'device.started',
    timeField: 'startedAt',
  },
  stop: {
    from: [DeviceStatus.RUNNING, DeviceStatus.PAUSED, DeviceStatus.ALLOCATED],
    to: DeviceStatus.STOPPED,
    routingKey: 'device.stopped',
    timeField: 'stoppedAt',
  },
  remove: {
    from: Object.values(DeviceStatus).filter((s) => s !== DeviceStatus.DELETED),
    to: DeviceStatus.DELETED,
    routingKey: 'device.deleted',
    timeField: 'deletedAt',
  },
} as const;

/** The body the platform's device service publishes (statuses in lower case, as it sends them). */
export function deviceEventPayload(row: DeviceRow, extra: Record<string, unknown>): Record<string, unknown> {
  const payload: Record<string, unknown> = {
    deviceId: row.id,
    userId: row.userId,
    deviceName: row.name,
    status: row.status.toLowerCase(),
    ...extra,
  };
  if (row.providerType) payload.providerType = row.providerType;
  return payload;
}

/** Locks a device row for the rest of the transaction and reads it. */
export async function lockDevice(tx: Prisma.TransactionClient, id: string): Promise<DeviceRow | null> {
  await tx.$queryRaw`SELECT id FROM device WHERE id = ${id} FOR UPDATE`;
  return tx.device.findUnique({ where: { id } });
}

export function createDeviceService(deps: { prisma: PrismaClient; onOutboxWrite: () => void }): DeviceService {
  const { prisma, onOutboxWrite } = deps;

  async function transition(actor: AuthUser, id: string, name: keyof typeof TRANSITIONS): Promise<Device> {
    const rule = TRANSITIONS[name];
    const row = await prisma.$transaction(async (tx) => {
      const current = visibleTo(actor, await lockDevice(tx, id), 'device', id);
      if (!(rule.from as readonly string[]).includes(current.status)) {
        throw new BadUserInputError(`Cannot ${name === 'remove' ? 'delete' : name} a device that is ${current.status}`, {
          field: 'id',
          status: current.status,
        });
      }
      const ref = newEventRef();
      const saved = await tx.device.update({
        where: { id },
        data: { status: rule.to, statusReason: null, version: { increment: 1 }, ...eventStamp(ref) },
      });
      await writeOutbox(
        tx,
        rule.routingKey,
        ref,
        deviceEventPayload(saved, { previousStatus: current.status.toLowerCase(), [rule.timeField]: ref.at.toISOString() }),
      );
      return saved;
    }, TRANSACTION_OPTIONS);
    onOutboxWrite();
    return toDeviceView(row);
  }

  return {
    async list(filter, page) {
      const where: Prisma.DeviceWhereInput = {
        ...(filter.userId !== null ? { userId: filter.userId } : {}),
        status: filter.status ?? { not: DeviceStatus.DELETED },
        ...afterPosition(page.after),
      };
      const rows = await prisma.device.findMany({ where, orderBy: PAGE_ORDER, take: page.take + 1 });
      return toConnection(rows, page.take, toDeviceView);
    },

    async get(actor, id) {
      return toDeviceView(visibleTo(actor, await prisma.device.findUnique({ where: { id } }), 'device', id));
    },

    async create(_actor, userId, input) {
      const row = await prisma.$transaction(async (tx) => {
        const ref: OutboxEventRef = newEventRef();
        // The gateway has no provisioning step of its own: a device it creates is ready (IDLE).
        const saved = await tx.device.create({
          data: {
            userId,
            name: input.name.trim(),
            status: DeviceStatus.IDLE,
            providerType: input.providerType ?? null,
            cpuCores: input.cpuCores ?? null,
            memoryMB: input.memoryMB ?? null,
            storageGB: input.storageGB ?? null,
            createdAt: ref.at,
            ...eventStamp(ref),
          },
        });
        const specs: Record<string, unknown> = {};
        for (const key of ['cpuCores', 'memoryMB', 'storageGB'] as const) if (saved[key] !== null) specs[key] = saved[key];
        await writeOutbox(tx, 'device.created', ref, deviceEventPayload(saved, { ...specs, createdAt: ref.at.toISOString() }));
        return saved;
      }, TRANSACTION_OPTIONS);
      onOutboxWrite();
      return toDeviceView(row);
    },

    start: (actor, id) => transition(actor, id, 'start'),
    stop: (actor, id) => transition(actor, id, 'stop'),
    remove: (actor, id) => transition(actor, id, 'remove'),
  };
}
