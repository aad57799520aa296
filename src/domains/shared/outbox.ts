/**
 * Writing an event to the transactional outbox (docs/events.md#events-out-the-outbox), inside the caller's transaction.
 * The body is an envelope as the platform's services publish it; the relay sends it to the
 * exchange and it comes back through the bridge like any platform event. Its id is recorded as
 * processed in the same transaction, so the read model does not apply the echo a second time.
 */
import { randomUUID } from 'node:crypto';
import type { Prisma } from '../../generated/prisma/client';

export interface OutboxEventRef {
  readonly eventId: string;
  readonly at: Date;
}

/** A fresh event id and time for a mutation (also the row's `lastEventId`/`lastEventAt`). */
export function newEventRef(): OutboxEventRef {
  return { eventId: randomUUID(), at: new Date() };
}

/** The envelope: `{ eventId, eventType, timestamp, payload }`. */
export function envelope(routingKey: string, ref: OutboxEventRef, payload: Record<string, unknown>) {
  return { eventId: ref.eventId, eventType: routingKey, timestamp: ref.at.toISOString(), payload };
}

export async function writeOutbox(
  tx: Prisma.TransactionClient,
  routingKey: string,
  ref: OutboxEventRef,
  payload: Record<string, unknown>,
): Promise<void> {
  await tx.outboxEvent.create({
    data: {
      id: ref.eventId,
      routingKey,
      payload: envelope(routingKey, ref, payload) as unknown as Prisma.InputJsonObject,
      createdAt: ref.at,
    },
  });
  await tx.processedEvent.create({ data: { eventId: ref.eventId, routingKey } });
}

/** Columns every read-model row carries: the newest event applied to it. */
export function eventStamp(ref: OutboxEventRef) {
  return { lastEventAt: ref.at, lastEventId: ref.eventId };
}

/**
 * Interactive-transaction limits for mutations and the read model. Prisma's defaults (2 s to get a
 * connection, 5 s to finish) fail healthy work on a busy database; these still bound it.
 */
export const TRANSACTION_OPTIONS = { maxWait: 10_000, timeout: 20_000 } as const;
