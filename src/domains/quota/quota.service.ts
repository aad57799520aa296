/**
 * Quota reads and writes on Prisma. Every write stores its event in the outbox in the same
 * transaction (CONTRACT §6): the relay publishes it to RabbitMQ and it comes back through the
 * bridge like any platform event, so a query and a subscription never disagree.
 */
import { randomUUID } from 'node:crypto';
import { BadUserInputError } from '../../contracts/errors';
import { QUOTA_LIMIT_FIELDS, QUOTA_USAGE_FIELDS } from '../../contracts/events';
import type { Prisma, PrismaClient, Quota as QuotaRow } from '../../infra/db/generated/client';
import type { UpdateQuotaInput } from './quota.input';
import { QuotaStatus, type Quota, type QuotaLimits, type QuotaUsage } from './quota.type';

export interface QuotaService {
  findByUser(userId: string): Promise<Quota | null>;
  /** Administrators: sets limits/status/validity; emits `quota.updated`. */
  update(userId: string, input: UpdateQuotaInput): Promise<Quota>;
}

function pick<K extends string>(row: QuotaRow, fields: Readonly<Record<K, unknown>>): Record<K, number | undefined> {
  const out = {} as Record<K, number | undefined>;
  for (const key of Object.keys(fields) as K[]) {
    const value = (row as unknown as Record<string, unknown>)[key];
    if (typeof value === 'number') out[key] = value;
  }
  return out;
}

export function toQuotaView(row: QuotaRow): Quota {
  return {
    id: row.id,
    userId: row.userId,
    planId: row.planId,
    status: row.status as QuotaStatus,
    limits: pick(row, QUOTA_LIMIT_FIELDS) as QuotaLimits,
    usage: pick(row, QUOTA_USAGE_FIELDS) as QuotaUsage,
    validFrom: row.validFrom,
    validUntil: row.validUntil,
    autoRenew: row.autoRenew,
    version: row.version,
    updatedAt: row.updatedAt,
  };
}

/** The event body as the platform's quota service publishes it, inside an envelope. */
export function quotaEventEnvelope(routingKey: string, row: QuotaRow, eventId: string, at: Date) {
  const view = toQuotaView(row);
  return {
    eventId,
    eventType: routingKey,
    timestamp: at.toISOString(),
    payload: {
      userId: row.userId,
      quotaId: row.id,
      type: routingKey.slice(routingKey.indexOf('.') + 1),
      limits: view.limits,
      usage: view.usage,
      status: row.status.toLowerCase(),
      validUntil: row.validUntil?.toISOString() ?? null,
      timestamp: at.toISOString(),
    },
  };
}

export function createQuotaService(deps: { prisma: PrismaClient; onOutboxWrite: () => void }): QuotaService {
  const { prisma, onOutboxWrite } = deps;
  return {
    async findByUser(userId) {
      const row = await prisma.quota.findUnique({ where: { userId } });
      return row ? toQuotaView(row) : null;
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

      const row = await prisma.$transaction(async (tx) => {
        const saved = await tx.quota.upsert({
          where: { userId },
          create: { userId, ...data },
          update: { ...data, version: { increment: 1 } },
        });
        const eventId = randomUUID();
        const at = new Date();
        await tx.outboxEvent.create({
          data: {
            id: eventId,
            routingKey: 'quota.updated',
            payload: quotaEventEnvelope('quota.updated', saved, eventId, at) as unknown as Prisma.InputJsonObject,
            createdAt: at,
          },
        });
        return saved;
      });
      onOutboxWrite();
      return toQuotaView(row);
    },
  };
}
