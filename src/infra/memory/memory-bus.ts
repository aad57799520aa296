/**
 * In-process event bus for the embedded default: what RabbitMQ does for the gateway, in memory.
 * It routes by the same bindings, hands the bridge the same `IncomingMessage`, delivers one message
 * run at a time in publish order (what is waiting, as one batch), and keeps dead letters (with their reason) instead of a DLQ.
 * Nothing survives a restart: that is what `AMQP_URL` is for.
 */
import type { Logger } from 'pino';
import type { IncomingMessage } from '../../contracts/events';
import {
  oneByOne,
  type DependencyStatus,
  type EventBus,
  type MessageHandler,
  type MessageRunHandler,
  type OutgoingMessage,
  type RawMessageInjector,
} from '../../contracts/ports';
import { QUEUE_BINDINGS, topicMatches } from '../../contracts/routing';

export interface DeadLetter {
  readonly message: IncomingMessage;
  readonly reason: string;
}

/** Dead letters kept in memory; the oldest are dropped past this. */
const MAX_DEAD_LETTERS = 1_000;
const REQUEUE_DELAY_MS = 200;
/** Messages handed over in one run at the most. */
const MAX_RUN = 500;

export class MemoryEventBus implements EventBus, RawMessageInjector {
  readonly deadLetters: DeadLetter[] = [];
  private handler: MessageRunHandler | undefined;
  private readonly pending: IncomingMessage[] = [];
  private draining: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly logger: Logger) {}

  async connect(): Promise<void> {}

  async consume(handler: MessageHandler, run?: MessageRunHandler): Promise<void> {
    this.handler = run ?? oneByOne(handler);
    this.drain();
  }

  async publish(message: OutgoingMessage): Promise<void> {
    this.publishRaw(message.routingKey, Buffer.from(JSON.stringify(message.body)), {
      messageId: message.messageId,
      timestamp: message.timestamp,
    });
  }

  /** Publishes raw bytes, as an external service could (the CLI and tests use it). */
  publishRaw(routingKey: string, body: Buffer, properties: { messageId?: string; timestamp?: number } = {}): void {
    if (this.closed) throw new Error('event bus is closed');
    if (!QUEUE_BINDINGS.some((binding) => topicMatches(binding, routingKey))) return; // unroutable
    this.pending.push({ routingKey, body, ...properties });
    this.drain();
  }

  private drain(): void {
    if (this.draining || !this.handler) return;
    const handler = this.handler;
    this.draining = (async () => {
      while (!this.closed && this.pending.length > 0) {
        // What is waiting goes as one run (one read-model batch, one publish), in order.
        const batch = this.pending.splice(0, MAX_RUN);
        const dispositions = await handler(batch).catch((error: unknown) =>
          batch.map(() => ({ action: 'requeue', reason: String(error) }) as const),
        );
        const retry: IncomingMessage[] = [];
        for (const [i, message] of batch.entries()) {
          const disposition = dispositions[i] ?? ({ action: 'requeue', reason: 'the handler gave no disposition' } as const);
          if (disposition.action === 'requeue') {
            if (retry.length === 0) this.logger.warn({ reason: disposition.reason }, 'requeueing event');
            retry.push(message);
          } else if (disposition.action === 'dead-letter') {
            this.deadLetters.push({ message, reason: disposition.reason });
            if (this.deadLetters.length > MAX_DEAD_LETTERS) this.deadLetters.shift();
          }
        }
        if (retry.length > 0) {
          this.pending.unshift(...retry);
          await new Promise((resolve) => setTimeout(resolve, REQUEUE_DELAY_MS));
        }
      }
    })().finally(() => {
      this.draining = undefined;
      if (!this.closed && this.pending.length > 0) this.drain();
    });
  }

  status(): DependencyStatus {
    return { up: !this.closed, detail: 'in-process' };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.draining;
  }
}
