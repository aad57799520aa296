/**
 * Quota reads and writes on Prisma. Every write stores its event in the outbox in the same
 * transaction (docs/events.md#events-out-the-outbox): the relay publishes it to RabbitMQ and it comes back through the
 * bridge like any platform event, so a query and a subscription never disagree.
 *
 * Usage rules (deductQuota / restoreQuota): devices, concurrent devices, CPU, memory and storage
 * are allocations with a hard limit: a deduction past the limit is refused. Traffic and usage
 * hours are metered after the fact, so they may pass their limit. When the highest usage
 * percentage crosses 100% (from below to 100% or more) the quota becomes EXCEEDED and
 * `quota.exceeded` is emitted after `quota.deducted`; a restore that brings it back under 100%
 * makes an EXCEEDED quota ACTIVE again.
 */
import { BadUserInputError, NotFoundError } from '../../contracts/errors';
import { QUOTA_LIMIT_FIELDS, QUOTA_USAGE_FIELDS } from '../../contracts/events';
import type { Prisma, PrismaClient, Quota as QuotaRow } from '../../generated/prisma/client';
import { eventStamp, newEventRef, writeOutbox, type OutboxEventRef, TRANSACTION_OPTIONS } from '../shared/outbox';
import type { QuotaUsageDeltaInput, RenewQuotaInput, UpdateQuotaInput } from './quota.input';
import { QuotaStatus, type Quota } from './quota.type';

declare module '../../contracts/context' {
  interface DomainServices {
    readonly quota: QuotaService;
  }
}

export interface QuotaService {
  findByUser(userId: string): Promise<Quota | null>;
  /** Administrators: sets limits/status/validity; emits `quota.updated`. */
  update(userId: string, input: UpdateQuotaInput): Promise<Quota>;
  /** Administrators: takes resources; emits `quota.deducted` (and `quota.exceeded` crossing 100%). */
  deduct(userId: string, input: QuotaUsageDeltaInput): Promise<Quota>;
  /** Administrators: gives resources back; emits `quota.restored`. */
  restore(userId: string, input: QuotaUsageDeltaInput): Promise<Quota>;
  /** Administrators: extends validity and resets monthly usage; emits `quota.renewed`. */
  renew(userId: string, input: RenewQuotaInput): Promise<Quota>;
}

type UsageField = keyof typeof QUOTA_USAGE_FIELDS;
type LimitField = keyof typeof QUOTA_LIMIT_FIELDS;

/** Each delta input field: the usage fields it moves, their limits, and whether the limit is hard. */
const RESOURCES: Record<keyof QuotaUsageDeltaInput, { usage: UsageField; limit: LimitField; hard: boolean }[]> = {
  devices: [{ usage: 'currentDevices', limit: 'maxDevices', hard: true }],
  concurrentDevices: [{ usage: 'currentConcurrentDevices', limit: 'maxConcurrentDevices', hard: true }],
  cpuCores: [{ usage: 'usedCpuCores', limit: 'totalCpuCores', hard: true }],
  memoryGB: [{ usage: 'usedMemoryGB', limit: 'totalMemoryGB', hard: true }],
  storageGB: [{ usage: 'usedStorageGB', limit: 'totalStorageGB', hard: true }],
  trafficGB: [{ usage: 'monthlyTrafficUsedGB', limit: 'monthlyTrafficGB', hard: false }],
  usageHours: [
    { usage: 'todayUsageHours', limit: 'maxUsageHoursPerDay', hard: false },
    { usage: 'monthlyUsageHours', limit: 'maxUsageHoursPerMonth', hard: false },
  ],
};
const PAIRS = Object.values(RESOURCES).flat();

function pick<K extends string>(row: QuotaRow, fields: Readonly<Record<K, unknown>>): Record<K, number | undefined> {
  const out = {} as Record<K, number | undefined>;
  for (const key of Object.keys(fields) as K[]) {
    const value = (row as unknown as Record<string, unknown>)[key];
    if (typeof value === 'number') out[key] = value;
  }
  return out;
}

/** The highest usage/limit percentage over the resources that have a positive limit. */
export function usagePercent(row: Pick<QuotaRow, UsageField | LimitField>): number | undefined {
  let highest: number | undefined;
  for (const { usage, limit } of PAIRS) {
    const used = row[usage];
    const max = row[limit];
    if (used === null || max === null || max <= 0) continue;
    const percent = Math.round((used / max) * 10_000) / 100;
    highest = highest === undefined ? percent : Math.max(highest, percent);
  }
  return highest;
}

export function toQuotaView(row: QuotaRow): Quota {
  return {
    id: row.id,
    userId: row.userId,
    planId: row.planId,
    status: row.status,
    limits: pick(row, QUOTA_LIMIT_FIELDS),
    usage: pick(row, QUOTA_USAGE_FIELDS),
    validFrom: row.validFrom,
    validUntil: row.validUntil,
    autoRenew: row.autoRenew,
    version: row.version,
    updatedAt: row.updatedAt,
  };
}

/** The payload as the platform's quota service publishes it. */
export function quotaEventPayload(routingKey: string, row: QuotaRow, at: Date): Record<string, unknown> {
  const view = toQuotaView(row);
  const payload: Record<string, unknown> = {
    userId: row.userId,
    quotaId: row.id,
    type: routingKey.slice(routingKey.indexOf('.') + 1),
    limits: view.limits,
    usage: view.usage,
    status: row.status.toLowerCase(),
    validUntil: row.validUntil?.toISOString() ?? null,
    timestamp: at.toISOString(),
  };
  const percent = usagePercent(row);
  if (percent !== undefined) payload.usagePercent = percent;
  return payload;
}

async function emit(tx: Prisma.TransactionClient, routingKey: string, row: QuotaRow, ref: OutboxEventRef): Promise<void> {
  await writeOutbox(tx, routingKey, ref, quotaEventPayload(routingKey, row, ref.at));
}

/** Locks the user's (live) quota for the rest of the transaction and reads it. */
async function lockQuota(tx: Prisma.TransactionClient, userId: string): Promise<QuotaRow> {
  await tx.$queryRaw`SELECT id FROM quota WHERE user_id = ${userId} FOR UPDATE`;
  const row = await tx.quota.findUnique({ where: { userId } });
  if (!row || row.deletedAt) throw new NotFoundError(`User ${userId} has no quota`);
  return row;
}

function deltas(input: QuotaUsageDeltaInput): [keyof QuotaUsageDeltaInput, number][] {
  const entries = (Object.keys(RESOURCES) as (keyof QuotaUsageDeltaInput)[])
    .map((key) => [key, input[key] ?? 0] as [keyof QuotaUsageDeltaInput, number])
    .filter(([, value]) => value > 0);
  if (entries.length === 0) throw new BadUserInputError('Give at least one resource amount greater than zero', { field: 'input' });
  return entries;
}

/** Rounds float sums so that 0.1 + 0.2 stores as 0.3. */
const tidy = (n: number) => Math.round(n * 1e6) / 1e6;

export function createQuotaService(deps: { prisma: PrismaClient; onOutboxWrite: () => void }): QuotaService {
  const { prisma, onOutboxWrite } = deps;

  async function write(work: (tx: Prisma.TransactionClient) => Promise<QuotaRow>): Promise<Quota> {
    const row = await prisma.$transaction(work, TRANSACTION_OPTIONS);
    onOutboxWrite();
    return toQuotaView(row);
  }

  return {
    async findByUser(userId) {
      const row = await prisma.quota.findUnique({ where: { userId } });
      return row && !row.deletedAt ? toQuotaView(row) : null;
    },

    async update(userId, input) {
      const data: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(input.limits ?? {})) if (value !== undefined) data[key] = value;
      if (input.status !== undefined && input.status !== null) data.status = input.status;
      if (input.planId !== undefined) data.planId = input.planId;
      if (input.validFrom !== undefined) data.validFrom = input.validFrom;
      if (input.validUntil !== undefined) data.validUntil = input.validUntil;
      if (input.autoRenew !== undefined && input.autoRenew !== null) data.autoRenew = input.autoRenew;
      if (Object.keys(data).length === 0) {
        throw new BadUserInputError('updateQuota needs at least one field to change in input');
      }
      const validFrom = (data.validFrom ?? null) as Date | null;
      const validUntil = (data.validUntil ?? null) as Date | null;
      if (validFrom && validUntil && validUntil <= validFrom) {
        throw new BadUserInputError('validUntil must be after validFrom', { field: 'input.validUntil' });
      }

      return write(async (tx) => {
        const ref = newEventRef();
        const existing = await tx.quota.findUnique({ where: { userId }, select: { deletedAt: true } });
        // A deleted quota (tombstone) starts again from its defaults.
        const revived = existing?.deletedAt ? { ...RESET_ON_REVIVE } : {};
        let saved = await tx.quota.upsert({
          where: { userId },
          create: { userId, ...data, ...eventStamp(ref) },
          update: { ...revived, ...data, deletedAt: null, version: { increment: 1 }, ...eventStamp(ref) },
        });
        await emit(tx, 'quota.updated', saved, ref);
        // New limits below what is already used: the quota is exceeded now, and says so, unless
        // the administrator set a status explicitly.
        if (data.status === undefined && saved.status === QuotaStatus.ACTIVE && (usagePercent(saved) ?? 0) >= 100) {
          const exceededRef = { ...newEventRef(), at: new Date(ref.at.getTime() + 1) };
          saved = await tx.quota.update({
            where: { userId },
            data: { status: QuotaStatus.EXCEEDED, ...eventStamp(exceededRef) },
          });
          await emit(tx, 'quota.exceeded', saved, exceededRef);
        }
        return saved;
      });
    },

    async deduct(userId, input) {
      const moves = deltas(input);
      return write(async (tx) => {
        const current = await lockQuota(tx, userId);
        if (current.status === QuotaStatus.SUSPENDED || current.status === QuotaStatus.EXPIRED) {
          throw new BadUserInputError(`Cannot deduct from a ${current.status} quota`, { field: 'userId', status: current.status });
        }
        if (current.validUntil && current.validUntil.getTime() <= Date.now()) {
          throw new BadUserInputError('Cannot deduct from a quota whose validity has ended; renew it first', { field: 'userId' });
        }
        const data: Record<string, number> = {};
        for (const [key, amount] of moves) {
          for (const { usage, limit, hard } of RESOURCES[key]) {
            const next = tidy((current[usage] ?? 0) + amount);
            const max = current[limit];
            if (hard && max !== null && next > max) {
              throw new BadUserInputError(`Deducting ${amount} ${key} would pass the limit: ${usage} ${next} > ${limit} ${max}`, {
                field: `input.${key}`,
              });
            }
            data[usage] = next;
          }
        }
        // Exceeded when usage is at or past 100% and the quota is not marked so yet (usage may
        // already have been over before, e.g. after updateQuota lowered a limit).
        const after = usagePercent({ ...current, ...data }) ?? 0;
        const crossed = current.status === QuotaStatus.ACTIVE && after >= 100;
        const ref = newEventRef();
        // quota.exceeded follows quota.deducted: a later time keeps the relay's order.
        const exceededRef = crossed ? { ...newEventRef(), at: new Date(ref.at.getTime() + 1) } : undefined;
        const saved = await tx.quota.update({
          where: { userId },
          data: {
            ...data,
            ...(crossed ? { status: QuotaStatus.EXCEEDED } : {}),
            version: { increment: 1 },
            ...eventStamp(exceededRef ?? ref),
          },
        });
        await emit(tx, 'quota.deducted', saved, ref);
        if (exceededRef) await emit(tx, 'quota.exceeded', saved, exceededRef);
        return saved;
      });
    },

    async restore(userId, input) {
      const moves = deltas(input);
      return write(async (tx) => {
        const current = await lockQuota(tx, userId);
        const data: Record<string, number> = {};
        for (const [key, amount] of moves) {
          for (const { usage } of RESOURCES[key]) {
            const next = tidy((current[usage] ?? 0) - amount);
            if (next < 0) {
              throw new BadUserInputError(`Cannot restore ${amount} ${key}: only ${current[usage] ?? 0} in use`, {
                field: `input.${key}`,
              });
            }
            data[usage] = next;
          }
        }
        const back = current.status === QuotaStatus.EXCEEDED && (usagePercent({ ...current, ...data }) ?? 0) < 100;
        const ref = newEventRef();
        const saved = await tx.quota.update({
          where: { userId },
          data: { ...data, ...(back ? { status: QuotaStatus.ACTIVE } : {}), version: { increment: 1 }, ...eventStamp(ref) },
        });
        await emit(tx, 'quota.restored', saved, ref);
        return saved;
      });
    },

    async renew(userId, input) {
      return write(async (tx) => {
        const current = await lockQuota(tx, userId);
        if (current.status === QuotaStatus.SUSPENDED) {
          throw new BadUserInputError('Cannot renew a SUSPENDED quota; lift the suspension with updateQuota', {
            field: 'userId',
            status: current.status,
          });
        }
        const ref = newEventRef();
        const from = Math.max(ref.at.getTime(), current.validUntil?.getTime() ?? 0);
        const reset: Record<string, number> = {};
        if (current.monthlyTrafficUsedGB !== null) reset.monthlyTrafficUsedGB = 0;
        if (current.monthlyUsageHours !== null) reset.monthlyUsageHours = 0;
        const status = (usagePercent({ ...current, ...reset }) ?? 0) >= 100 ? QuotaStatus.EXCEEDED : QuotaStatus.ACTIVE;
        const saved = await tx.quota.update({
          where: { userId },
          data: {
            ...reset,
            status,
            validUntil: new Date(from + input.extendDays * 86_400_000),
            version: { increment: 1 },
            ...eventStamp(ref),
          },
        });
        await emit(tx, 'quota.renewed', saved, ref);
        return saved;
      });
    },
  };
}

/** What a quota re-created after quota.deleted forgets. */
const RESET_ON_REVIVE: Record<string, unknown> = {
  ...Object.fromEntries([...Object.keys(QUOTA_LIMIT_FIELDS), ...Object.keys(QUOTA_USAGE_FIELDS)].map((k) => [k, null])),
  status: QuotaStatus.ACTIVE,
  planId: null,
  validFrom: null,
  validUntil: null,
  autoRenew: false,
};
