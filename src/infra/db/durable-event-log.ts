/**
 * The durable copy of the retained event log, in PostgreSQL (`event_log`, written by the read
 * model in the same statement that claims each event: domains/read-model). Redis' streams are the
 * fast path for resuming with `after`; this is what answers when Redis no longer holds the
 * client's `after` (a restart without persistence, a failover, a cluster), so a resume within
 * retention never depends on Redis' memory. Decision record: docs/decisions/0300-durable-event-log.md.
 *
 * The bounds are the Redis log's, from the same configuration: `after` must be among the user's
 * last `EVENT_LOG_MAX_EVENTS` events (every user's last `EVENT_LOG_MAX_ALL` for administrators)
 * and younger than `EVENT_LOG_MAX_AGE_SEC` (database time). Rows past the age are deleted by a
 * sweep; the count bound is applied when reading, so the answer is exactly the documented one.
 */
import type { Logger } from 'pino';
import type { GatewayEvent } from '../../contracts/events';
import type { DurableEventLog } from '../../contracts/ports';
import { Prisma, type PrismaClient } from '../../generated/prisma/client';

/** Sweeps run this often at most (and at least every tenth of the age bound). */
const MAX_SWEEP_INTERVAL_MS = 300_000;

/**
 * Rows before an every-user anchor that are replayed too, at least: the events one instance has
 * in flight at once are `AMQP_PREFETCH` per partition consumer (`reorderWindow` in the bounds),
 * so a cross-user difference between log order and publish order cannot hide an event.
 */
const MIN_REORDER_WINDOW = 1_000;

export class PostgresEventLog implements DurableEventLog {
  private timer: NodeJS.Timeout | undefined;
  /** Rows deleted by sweeps since start (tests, operators). */
  swept = 0;

  constructor(
    /** A getter: the log exists before the database is opened (at start). */
    private readonly prisma: () => PrismaClient,
    private readonly bounds: {
      readonly maxEvents: number;
      readonly maxAllEvents: number;
      readonly maxAgeMs: number;
      /** Events one instance may have in flight at once (partitions x prefetch). */
      readonly reorderWindow?: number;
    },
    private readonly logger: Logger,
  ) {}

  /**
   * What followed `after`, oldest first. For one user the log's order is that user's publish order
   * (a user's events are handled one at a time). Across users it is not: partitions apply
   * different users' events concurrently, so the order rows were logged in can differ from the
   * order they were published in, by up to the events in flight at once. An every-user resume
   * therefore also replays the rows logged just before the anchor, as many as can be in flight: an
   * event published after `after` but logged before it is not lost; the price is that an
   * administrator may receive again events it already had (at-least-once, de-duplicated by
   * `eventId`; docs/resuming.md).
   */
  async readAfter(userId: string | null, after: string): Promise<GatewayEvent[] | undefined> {
    const max = userId === null ? this.bounds.maxAllEvents : this.bounds.maxEvents;
    if (max <= 0) return undefined;
    const ageMs = this.bounds.maxAgeMs;
    const window = Math.max(MIN_REORDER_WINDOW, this.bounds.reorderWindow ?? 0);
    // One round trip: the anchor (`after`, within both bounds), then what followed it in order.
    // No anchor: no rows. An anchor and nothing after it: one row whose seq is NULL.
    const rows =
      userId === null
        ? await this.prisma().$queryRaw<{ seq: bigint | null; event: unknown }[]>(Prisma.sql`
            WITH retained AS (
              SELECT COALESCE((SELECT h.seq FROM event_log h ORDER BY h.seq DESC OFFSET ${max - 1}::int LIMIT 1), 0) AS floor),
            anchor AS (
              SELECT a.seq, retained.floor FROM event_log a, retained
              WHERE a.event_id = ${after} AND a.logged_at >= now() - make_interval(secs => ${ageMs / 1000}::float8)
                AND a.seq >= retained.floor
              ORDER BY a.seq LIMIT 1)
            SELECT l.seq, l.event FROM anchor LEFT JOIN LATERAL (
              SELECT seq, event FROM event_log
              WHERE seq > anchor.seq - ${window}::int AND seq >= anchor.floor AND seq <> anchor.seq
              ORDER BY seq LIMIT ${max + window}::int) l ON true
            ORDER BY l.seq`)
        : await this.prisma().$queryRaw<{ seq: bigint | null; event: unknown }[]>(Prisma.sql`
            WITH anchor AS (
              SELECT a.seq FROM event_log a
              WHERE a.user_id = ${userId} AND a.event_id = ${after}
                AND a.logged_at >= now() - make_interval(secs => ${ageMs / 1000}::float8)
                AND a.seq >= COALESCE((SELECT h.seq FROM event_log h WHERE h.user_id = ${userId} ORDER BY h.seq DESC OFFSET ${max - 1}::int LIMIT 1), 0)
              ORDER BY a.seq LIMIT 1)
            SELECT l.seq, l.event FROM anchor LEFT JOIN LATERAL (
              SELECT seq, event FROM event_log WHERE user_id = ${userId} AND seq > anchor.seq ORDER BY seq LIMIT ${max}::int) l ON true
            ORDER BY l.seq`);
    if (rows.length === 0) return undefined;
    const events: GatewayEvent[] = [];
    for (const row of rows) {
      if (row.seq === null) continue;
      // jsonb comes back parsed; a string would be an older writer's text column.
      const event = typeof row.event === 'string' ? (JSON.parse(row.event) as unknown) : row.event;
      events.push(event as GatewayEvent);
    }
    return events;
  }

  /** Deletes rows past the age bound; returns how many. */
  async sweep(): Promise<number> {
    const deleted = await this.prisma().$executeRaw(
      Prisma.sql`DELETE FROM event_log WHERE logged_at < now() - make_interval(secs => ${this.bounds.maxAgeMs / 1000}::float8)`,
    );
    this.swept += deleted;
    if (deleted > 0) this.logger.debug({ deleted }, 'durable event log swept');
    return deleted;
  }

  /** Starts the periodic sweep (after the database is open). */
  start(): void {
    if (this.timer) return;
    const every = Math.max(1_000, Math.min(MAX_SWEEP_INTERVAL_MS, Math.floor(this.bounds.maxAgeMs / 10)));
    this.timer = setInterval(() => {
      this.sweep().catch((error: unknown) => this.logger.warn({ err: error }, 'durable event log sweep failed'));
    }, every);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
