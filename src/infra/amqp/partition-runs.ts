/**
 * The partition queues' messages of one consuming session, handed to the bridge in runs.
 *
 * Each message joins its key's (its user's) run: what a user has waiting goes over together (one
 * read-model batch, one fan-out publish), the next run only once the previous one is settled,
 * while different users' runs go concurrently (up to the prefetch), so the read model's group
 * commit and the fan-out's publish batch them across users too. A message that must be retried
 * stays at the head of its user's queue, with the user's later messages behind it, held
 * `requeueDelayMs` between tries: it is never returned to the broker behind them. Messages
 * without the partition header (a publisher bypassing the router without setting it) share one
 * run. Acknowledgements go through the channel's `AckBatcher`.
 */
import type { Channel, ConsumeMessage } from 'amqplib';
import type { Logger } from 'pino';
import type { Disposition, MessageRunHandler } from '../../contracts/ports';
import type { AckBatcher } from './ack-batcher';
import { incomingOf, partitionKeyOf, tryNack } from './amqp-messages';

/** Messages of one user handed over in one run at the most (the prefetch bounds it too). */
export const MAX_RUN = 500;

export interface PartitionRunsOptions {
  readonly channel: Channel;
  readonly acks: AckBatcher;
  readonly handle: MessageRunHandler;
  /** False once the session is over (closing, or the channel replaced): its messages come again. */
  readonly live: () => boolean;
  /** Waits between two tries of a retried message; released at once on close. */
  readonly hold: (ms: number) => Promise<void>;
  readonly requeueDelayMs: number;
  /** Publishes the message to the dead-letter exchange with its reason (confirmed). */
  readonly deadLetter: (message: ConsumeMessage, reason: string) => Promise<void>;
  /** Keeps the promise until the bus closes (in-flight work). */
  readonly track: (work: Promise<void>) => void;
  readonly logger: Logger;
}

export class PartitionRuns {
  /** The messages waiting per key; a key is present while its run is being handled. */
  private readonly runs = new Map<string, ConsumeMessage[]>();

  constructor(private readonly options: PartitionRunsOptions) {}

  /** Call for every message of the partition queues, in delivery order. */
  deliver(message: ConsumeMessage): void {
    this.options.acks.delivered(message);
    const key = partitionKeyOf(message) ?? '';
    const waiting = this.runs.get(key);
    if (waiting) {
      waiting.push(message);
      return;
    }
    const queue = [message];
    this.runs.set(key, queue);
    this.options.track(this.drain(key, queue));
  }

  /** Hands `queue` over run after run until it is empty. */
  private async drain(key: string, queue: ConsumeMessage[]): Promise<void> {
    const { handle, live, hold, requeueDelayMs, logger } = this.options;
    try {
      // From idle, the rest of this turn of the event loop: a user's messages of one socket read go together.
      await new Promise<void>((resolve) => setImmediate(resolve));
      for (let attempt = 1; queue.length > 0;) {
        // The session is over: these messages come again, in order, to whoever consumes the
        // partition now; handling them here could only put them out of order.
        if (!live()) return;
        const batch = queue.splice(0, MAX_RUN);
        let dispositions: Disposition[];
        try {
          dispositions = await handle(batch.map(incomingOf));
        } catch (error) {
          const requeue = { action: 'requeue', reason: error instanceof Error ? error.message : String(error) } as const;
          dispositions = batch.map(() => requeue);
        }
        // Settled at once: what was published, and what publishes nothing (dead letters, ignored
        // keys); retried, in their order: the rest (from the first the bridge could not publish).
        const retry: ConsumeMessage[] = [];
        let first: { reason: string; routingKey: string } | undefined;
        const settling: Promise<void>[] = [];
        for (const [i, message] of batch.entries()) {
          const disposition = dispositions[i] ?? { action: 'requeue', reason: 'the handler gave no disposition' };
          if (disposition.action === 'requeue') {
            first ??= { reason: disposition.reason, routingKey: message.fields.routingKey };
            retry.push(message);
          } else settling.push(this.settle(message, disposition));
        }
        await Promise.all(settling);
        if (!first) {
          attempt = 1;
          continue;
        }
        queue.unshift(...retry);
        if (attempt === 1 || attempt % 10 === 0) {
          logger.warn(
            { ...first, delayMs: requeueDelayMs, attempt, waiting: queue.length },
            "retrying event in place (its user's later events wait)",
          );
        }
        attempt++;
        await hold(Math.max(requeueDelayMs, 10));
      }
    } finally {
      if (this.runs.get(key) === queue) this.runs.delete(key);
    }
  }

  private async settle(message: ConsumeMessage, disposition: Exclude<Disposition, { action: 'requeue' }>): Promise<void> {
    const { acks, channel, deadLetter, logger } = this.options;
    if (disposition.action === 'ack') {
      acks.ack(message);
      return;
    }
    try {
      await deadLetter(message, disposition.reason);
      acks.ack(message);
    } catch (error) {
      // Our own dead letter failed: let the broker dead-letter it through the queue's
      // x-dead-letter-exchange (same DLQ, `x-death` instead of our reason header).
      logger.warn({ err: error, reason: disposition.reason }, 'dead-letter publish failed; rejecting to the DLX');
      if (tryNack(channel, message, false)) acks.forget(message);
      else logger.warn('could not settle message; it will be redelivered');
    }
  }
}
