/**
 * Orders on Prisma. The platform's billing service creates them; here a PENDING order is
 * completed (administrators: payment is confirmed elsewhere) or cancelled (its owner or an
 * administrator), each with its outbox event in the same transaction.
 */
import type { AuthUser } from '../../auth/auth-user';
import { BadUserInputError } from '../../contracts/errors';
import type { Order as OrderRow, Prisma, PrismaClient } from '../../generated/prisma/client';
import { visibleTo } from '../shared/access';
import { afterPosition, PAGE_ORDER, toConnection, type Connection, type PageRequest } from '../shared/connection';
import { eventStamp, newEventRef, writeOutbox, TRANSACTION_OPTIONS } from '../shared/outbox';
import type { OrderStatusChange } from './order-status-change.type';
import { OrderStatus, type Order } from './order.type';

export interface OrderFilter {
  readonly userId: string | null;
  readonly status?: OrderStatus | null;
}

declare module '../../contracts/context' {
  interface DomainServices {
    readonly orders: OrderService;
  }
}

export interface OrderService {
  list(filter: OrderFilter, page: PageRequest): Promise<Connection<Order>>;
  get(actor: AuthUser, id: string): Promise<Order>;
  complete(actor: AuthUser, id: string): Promise<Order>;
  cancel(actor: AuthUser, id: string): Promise<Order>;
  /** An order's status changes, oldest first (the caller already saw the order). */
  statusHistory(orderId: string): Promise<OrderStatusChange[]>;
}

export function toOrderView(row: OrderRow): Order {
  return {
    id: row.id,
    userId: row.userId,
    status: row.status,
    amount: row.amount === null ? null : row.amount.toFixed(2),
    deviceId: row.deviceId,
    planId: row.planId,
    completedAt: row.completedAt,
    cancelledAt: row.cancelledAt,
    statusReason: row.statusReason,
    version: row.version,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

function orderPayload(row: OrderRow, extra: Record<string, unknown>): Record<string, unknown> {
  const payload: Record<string, unknown> = { orderId: row.id, userId: row.userId, status: row.status.toLowerCase(), ...extra };
  if (row.amount !== null) payload.amount = row.amount.toFixed(2);
  if (row.deviceId) payload.deviceId = row.deviceId;
  if (row.planId) payload.planId = row.planId;
  return payload;
}

const TRANSITIONS = {
  complete: { to: OrderStatus.COMPLETED, routingKey: 'order.completed', timeField: 'completedAt' },
  // No subscription takes order.cancelled (docs/events.md): the bridge acknowledges it as ignored.
  cancel: { to: OrderStatus.CANCELLED, routingKey: 'order.cancelled', timeField: 'cancelledAt' },
} as const;

export function createOrderService(deps: { prisma: PrismaClient; onOutboxWrite: () => void }): OrderService {
  const { prisma, onOutboxWrite } = deps;

  async function transition(actor: AuthUser, id: string, name: keyof typeof TRANSITIONS): Promise<Order> {
    const rule = TRANSITIONS[name];
    const row = await prisma.$transaction(async (tx) => {
      await tx.$queryRaw`SELECT id FROM billing_order WHERE id = ${id} FOR UPDATE`;
      const current = visibleTo(actor, await tx.order.findUnique({ where: { id } }), 'order', id);
      if (current.status !== OrderStatus.PENDING) {
        throw new BadUserInputError(`Cannot ${name} an order that is ${current.status}`, { field: 'id', status: current.status });
      }
      const ref = newEventRef();
      const saved = await tx.order.update({
        where: { id },
        data: { status: rule.to, [rule.timeField]: ref.at, version: { increment: 1 }, ...eventStamp(ref) },
      });
      await writeOutbox(
        tx,
        rule.routingKey,
        ref,
        orderPayload(saved, { [rule.timeField]: ref.at.toISOString(), previousStatus: current.status.toLowerCase() }),
      );
      // The echo of the outbox event is not applied again (its id is processed): the history row is written here.
      await tx.orderStatusChange.create({
        data: {
          eventId: ref.eventId,
          orderId: id,
          userId: saved.userId,
          status: rule.to,
          previousStatus: current.status,
          occurredAt: ref.at,
        },
      });
      return saved;
    }, TRANSACTION_OPTIONS);
    onOutboxWrite();
    return toOrderView(row);
  }

  return {
    async list(filter, page) {
      const where: Prisma.OrderWhereInput = {
        ...(filter.userId !== null ? { userId: filter.userId } : {}),
        ...(filter.status ? { status: filter.status } : {}),
        ...afterPosition(page.after),
      };
      const rows = await prisma.order.findMany({ where, orderBy: PAGE_ORDER, take: page.take + 1 });
      return toConnection(rows, page.take, toOrderView);
    },
    async get(actor, id) {
      return toOrderView(visibleTo(actor, await prisma.order.findUnique({ where: { id } }), 'order', id));
    },
    async statusHistory(orderId) {
      const rows = await prisma.orderStatusChange.findMany({
        where: { orderId },
        orderBy: [{ occurredAt: 'asc' }, { eventId: 'asc' }],
        take: 1_000,
      });
      return rows.map((row) => ({
        eventId: row.eventId,
        status: row.status,
        previousStatus: row.previousStatus ?? null,
        reason: row.reason,
        occurredAt: row.occurredAt,
      }));
    },
    complete: (actor, id) => transition(actor, id, 'complete'),
    cancel: (actor, id) => transition(actor, id, 'cancel'),
  };
}
