/**
 * Publishes outbox rows to the event bus (docs/events.md#events-out-the-outbox). Each pass locks a batch of unpublished
 * rows with `FOR UPDATE SKIP LOCKED`, so several instances never publish the same row at once,
 * publishes each with a broker confirm, and marks it published in the same transaction. A row
 * whose publish fails stays unpublished (its attempt counted) and is retried with backoff
 * (`pollMs` doubling per consecutive failure, at most 30 s). While the bus reports itself down
 * (RabbitMQ unreachable, reconnecting) the relay does not touch the database and looks again
 * every `pollMs`, so an event written during an outage goes out within `pollMs` of the bus
 * being back. A publish whose confirm does not come within PUBLISH_TIMEOUT_MS counts as failed:
 * the row may then be published twice (at-least-once; clients de-duplicate by eventId).
 */
import type { Logger } from 'pino';
import type { EventBus } from '../../contracts/ports';
import type { PrismaClient } from '../../generated/prisma/client';

/** The advisory lock that makes relay passes take turns (any constant the migrations' lock is not). */
const RELAY_LOCK_KEY = 72_707_370;

interface OutboxRow {
  id: string;
  routing_key: string;
  payload: unknown;
  created_at: Date;
}

const MAX_BACKOFF_MS = 30_000;
/** How often published rows and applied-event ids past their retention are deleted. */
const PRUNE_EVERY_MS = 60 * 60_000;
/** Longest wait for one broker confirm. */
export const PUBLISH_TIMEOUT_MS = 15_000;

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export class OutboxRelay {
  private timer: NodeJS.Timeout | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;
  private failures = 0;
  /** Rows published since start (for metrics). */
  published = 0;
  /** Passes completed since start, publishing or not (tests wait on these instead of on time). */
  passes = 0;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly bus: EventBus,
    private readonly options: { pollMs: number; batchSize: number; retentionDays?: number },
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.stopped = false;
    this.nudge();
    this.pruneTimer = setInterval(() => {
      this.prune().catch((error: unknown) => this.logger.warn({ err: error }, 'outbox prune failed'));
    }, PRUNE_EVERY_MS);
    this.pruneTimer.unref();
  }

  /**
   * Deletes published outbox rows and applied-event ids older than the retention (7 days unless
   * configured): both tables would otherwise grow with every event the platform ever sent.
   * Unpublished rows are never deleted. Returns what it deleted.
   */
  async prune(): Promise<{ outbox: number; processed: number }> {
    const days = this.options.retentionDays ?? 7;
    const outbox = await this.prisma.$executeRaw`
      DELETE FROM outbox_event WHERE published_at IS NOT NULL AND published_at < now() - make_interval(days => ${days}::int)`;
    const processed = await this.prisma.$executeRaw`
      DELETE FROM processed_event WHERE processed_at < now() - make_interval(days => ${days}::int)`;
    if (outbox + processed > 0) this.logger.info({ outbox, processed, days }, 'pruned past retention');
    return { outbox, processed };
  }

  /** Runs a pass now (after a mutation committed) instead of at the next poll. */
  nudge(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.running = this.pass()
      .then((more) => {
        this.failures = 0;
        return more;
      })
      .catch((error: unknown) => {
        this.failures++;
        this.logger.warn({ err: error, failures: this.failures }, 'outbox relay pass failed');
        return false;
      })
      .then((more) => {
        this.running = undefined;
        this.passes++;
        if (this.stopped) return;
        if (more || this.again) {
          this.again = false;
          if (this.failures === 0) return this.nudge();
        }
        const delay = this.failures === 0 ? this.options.pollMs : Math.min(this.options.pollMs * 2 ** this.failures, MAX_BACKOFF_MS);
        this.timer = setTimeout(() => this.nudge(), delay);
        this.timer.unref();
      });
  }

  /** One batch. Resolves true when the batch was full (more may be waiting). */
  private async pass(): Promise<boolean> {
    // The bus knows it is down: nothing would go out, so leave the rows (and their attempts) alone.
    if (!this.bus.status().up) return false;
    let failed: Error | undefined;
    const count = await this.prisma.$transaction(
      async (tx) => {
        // One relay pass at a time across every instance, so events go out in the order they were
        // written (SKIP LOCKED alone would let a second instance publish later rows while the
        // first still waits on earlier ones). The others skip this pass and try again.
        const [lock] = await tx.$queryRaw<{ locked: boolean }[]>`SELECT pg_try_advisory_xact_lock(${RELAY_LOCK_KEY}) AS locked`;
        if (!lock?.locked) return 0;
        const rows = await tx.$queryRaw<OutboxRow[]>`
          SELECT id, routing_key, payload, created_at FROM outbox_event
          WHERE published_at IS NULL
          ORDER BY created_at, id
          LIMIT ${this.options.batchSize}
          FOR UPDATE SKIP LOCKED`;
        const done: string[] = [];
        for (const row of rows) {
          try {
            await withTimeout(
              this.bus.publish({
                routingKey: row.routing_key,
                body: row.payload,
                messageId: row.id,
                timestamp: new Date(row.created_at).getTime(),
              }),
              PUBLISH_TIMEOUT_MS,
              'broker confirm',
            );
            done.push(row.id);
          } catch (error) {
            // Keep order: stop at the first failure; later rows wait for the retry.
            failed = error instanceof Error ? error : new Error(String(error));
            await tx.$executeRaw`
              UPDATE outbox_event SET attempts = attempts + 1,
                last_error = ${error instanceof Error ? error.message : String(error)}
              WHERE id = ${row.id}::uuid`;
            break;
          }
        }
        if (done.length > 0) {
          await tx.$executeRaw`UPDATE outbox_event SET published_at = now() WHERE id = ANY(${done}::uuid[])`;
        }
        this.published += done.length;
        return rows.length;
      },
      { timeout: 60_000, maxWait: 10_000 },
    );
    if (failed) throw failed;
    return count === this.options.batchSize;
  }

  /** Unpublished rows (for metrics and readiness). */
  async backlog(): Promise<number> {
    const [row] = await this.prisma.$queryRaw<{ n: bigint }[]>`
      SELECT count(*) AS n FROM outbox_event WHERE published_at IS NULL`;
    return Number(row?.n ?? 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pruneTimer);
    await this.running;
  }
}
