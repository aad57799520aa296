/**
 * Which of two events is newer: later `occurredAt` wins; equal times are ordered by `eventId`
 * (plain string comparison), so every instance decides the same way whatever the arrival order.
 */
export interface EventStamp {
  readonly lastEventAt: Date | null;
  readonly lastEventId: string | null;
}

export function isNewerThan(row: EventStamp, occurredAt: Date, eventId: string): boolean {
  if (!row.lastEventAt) return true;
  const diff = occurredAt.getTime() - row.lastEventAt.getTime();
  if (diff !== 0) return diff > 0;
  return eventId > (row.lastEventId ?? '');
}
