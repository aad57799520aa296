/**
 * RabbitMQ through amqplib: topology, the competing consumer on the shared durable queue, the
 * confirm-channel publisher (outbox relay, dead letters), and reconnection.
 *
 * Delivery: a message is acknowledged only after the handler says so, i.e. after its event was
 * published to the fan-out (at-least-once). A rejected message is first published to the
 * dead-letter exchange with its reason in `x-rejection-reason` (confirmed), then acknowledged.
 * A message the fan-out could not take is held `requeueDelayMs`, then returned to the queue.
 *
 * Staying up: every connection and channel has `error`/`close` listeners; a lost connection, a
 * channel the broker closed, or a consumer the broker cancelled all lead to the same path:
 * reconnect with exponential backoff, redeclare the topology, consume again. The broker being
 * down at start-up is the same case: `connect()` does not fail, the bus reports itself down and
 * keeps trying.
 */
import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib';
import type { Logger } from 'pino';
import type { AmqpNames } from '../../contracts/options';
import type { DependencyStatus, Disposition, EventBus, MessageHandler, OutgoingMessage } from '../../contracts/ports';
import { QUEUE_BINDINGS } from '../../contracts/routing';

const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 10_000;

export class AmqpEventBus implements EventBus {
  private connection: ChannelModel | undefined;
  private publishChannel: ConfirmChannel | undefined;
  private consumeChannel: Channel | undefined;
  private consumerTag: string | undefined;
  private handler: MessageHandler | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private closing = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectAttempt = 0;
  private lastError: string | undefined;
  /** Why the broker blocks publishing (resource alarm), while it does. */
  private blocked: string | undefined;
  /** Held requeues; `close()` releases them at once. */
  private readonly holds = new Set<() => void>();
  /** Reconnections since start (for metrics). */
  reconnects = 0;

  constructor(
    private readonly url: string,
    private readonly names: AmqpNames,
    private readonly logger: Logger,
  ) {}

  /**
   * Connects and declares the topology. When the broker cannot be reached (or refuses the
   * topology), the bus stays up, reports why in `status()`, and reconnects with backoff.
   */
  async connect(): Promise<void> {
    try {
      await this.open();
    } catch (error) {
      this.lastError = error instanceof Error ? error.message : String(error);
      this.logger.warn({ err: error }, 'amqp unavailable at start-up; retrying in the background');
      this.scheduleReconnect();
    }
  }

  private async open(): Promise<void> {
    const connection = await amqp.connect(withHeartbeat(this.url), {
      // Operators find each instance's connection by its queue in the management UI.
      clientProperties: { connection_name: `cloudphone-realtime ${this.names.queue} pid ${process.pid}` },
    });
    // Listeners first: an 'error' without a listener crashes the process (amqplib #649).
    connection.on('error', (error: Error) => {
      this.lastError = error.message;
      this.logger.warn({ err: error }, 'amqp connection error');
    });
    connection.on('close', (error?: Error) => this.onConnectionLost(connection, error));
    // A broker under a memory or disk alarm blocks publishers: say so in /readyz's detail.
    connection.on('blocked', (reason: string) => {
      this.blocked = reason;
      this.logger.warn({ reason }, 'amqp connection blocked by the broker');
    });
    connection.on('unblocked', () => {
      this.blocked = undefined;
      this.logger.info('amqp connection unblocked');
    });
    try {
      const publishChannel = await connection.createConfirmChannel();
      const consumeChannel = await connection.createChannel();
      for (const channel of [publishChannel, consumeChannel]) {
        channel.on('error', (error: Error) => {
          this.lastError = error.message;
          this.logger.warn({ err: error }, 'amqp channel error');
        });
        // A channel closed by the broker (e.g. a precondition failure) takes the link down with it.
        channel.on('close', () => {
          if (!this.closing && this.connection === connection) void connection.close().catch(() => undefined);
        });
      }
      await this.declareTopology(publishChannel);
      this.connection = connection;
      this.publishChannel = publishChannel;
      this.consumeChannel = consumeChannel;
      this.lastError = undefined;
    } catch (error) {
      await connection.close().catch(() => undefined);
      throw error;
    }
  }

  private async declareTopology(channel: ConfirmChannel): Promise<void> {
    const { exchange, queue, deadLetterExchange, deadLetterQueue } = this.names;
    await channel.assertExchange(exchange, 'topic', { durable: true });
    await channel.assertExchange(deadLetterExchange, 'direct', { durable: true });
    await channel.assertQueue(deadLetterQueue, { durable: true });
    await channel.bindQueue(deadLetterQueue, deadLetterExchange, deadLetterQueue);
    await channel.assertQueue(queue, {
      durable: true,
      // Anything the broker itself dead-letters (e.g. a consumer nacking without requeue) lands
      // in the same DLQ as the gateway's own rejections.
      arguments: { 'x-dead-letter-exchange': deadLetterExchange, 'x-dead-letter-routing-key': deadLetterQueue },
    });
    for (const binding of QUEUE_BINDINGS) await channel.bindQueue(queue, exchange, binding);
  }

  async consume(handler: MessageHandler): Promise<void> {
    this.handler = handler;
    await this.startConsumer();
  }

  private async startConsumer(): Promise<void> {
    const channel = this.consumeChannel;
    if (!channel || !this.handler) return;
    await channel.prefetch(this.names.prefetch);
    const { consumerTag } = await channel.consume(this.names.queue, (message) => {
      if (message === null) {
        // The broker cancelled the consumer (queue deleted, node failover: amqplib #176).
        this.logger.warn({ queue: this.names.queue }, 'amqp consumer cancelled by the broker; reconnecting');
        if (this.connection) void this.connection.close().catch(() => undefined);
        return;
      }
      this.track(this.deliver(channel, message));
    });
    this.consumerTag = consumerTag;
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private async deliver(channel: Channel, message: ConsumeMessage): Promise<void> {
    const handler = this.handler as MessageHandler;
    const timestamp = message.properties.timestamp as unknown;
    let disposition: Disposition;
    try {
      disposition = await handler({
        routingKey: message.fields.routingKey,
        body: message.content,
        messageId: typeof message.properties.messageId === 'string' ? message.properties.messageId : undefined,
        timestamp: typeof timestamp === 'number' ? timestamp : undefined,
      });
    } catch (error) {
      disposition = { action: 'requeue', reason: error instanceof Error ? error.message : String(error) };
    }
    try {
      if (disposition.action === 'ack') {
        channel.ack(message);
      } else if (disposition.action === 'dead-letter') {
        try {
          await this.deadLetter(message, disposition.reason);
          channel.ack(message);
        } catch (error) {
          // Our own dead letter failed: let the broker dead-letter it through the queue's
          // x-dead-letter-exchange (same DLQ, `x-death` instead of our reason header).
          this.logger.warn({ err: error, reason: disposition.reason }, 'dead-letter publish failed; rejecting to the DLX');
          channel.nack(message, false, false);
        }
      } else {
        this.logger.warn(
          { reason: disposition.reason, routingKey: message.fields.routingKey, delayMs: this.names.requeueDelayMs },
          'requeueing event',
        );
        await this.hold(this.names.requeueDelayMs);
        channel.nack(message, false, true);
      }
    } catch (error) {
      // The channel died under us: the broker redelivers the message to whoever consumes next.
      this.logger.warn({ err: error }, 'could not settle message; it will be redelivered');
    }
  }

  private hold(ms: number): Promise<void> {
    if (this.closing || ms <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const release = () => {
        clearTimeout(timer);
        this.holds.delete(release);
        resolve();
      };
      const timer = setTimeout(release, ms);
      this.holds.add(release);
    });
  }

  private async deadLetter(message: ConsumeMessage, reason: string): Promise<void> {
    const channel = this.publishChannel;
    if (!channel) throw new Error('amqp publish channel is down');
    const { properties, fields } = message;
    await new Promise<void>((resolve, reject) => {
      channel.publish(
        this.names.deadLetterExchange,
        this.names.deadLetterQueue,
        message.content,
        {
          persistent: true,
          // amqplib types received properties as `any`: they are what the broker delivered, forwarded as is.
          contentType: properties.contentType as string | undefined,
          messageId: properties.messageId as string | undefined,
          timestamp: properties.timestamp as number | undefined,
          headers: {
            ...(properties.headers ?? {}),
            'x-rejection-reason': reason,
            'x-original-exchange': fields.exchange,
            'x-original-routing-key': fields.routingKey,
          },
        },
        (error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve()),
      );
    });
  }

  async publish(message: OutgoingMessage): Promise<void> {
    const channel = this.publishChannel;
    if (!channel) throw new Error(`RabbitMQ is unavailable${this.lastError ? `: ${this.lastError}` : ''}`);
    await new Promise<void>((resolve, reject) => {
      channel.publish(
        this.names.exchange,
        message.routingKey,
        Buffer.from(JSON.stringify(message.body)),
        {
          persistent: true,
          contentType: 'application/json',
          messageId: message.messageId,
          timestamp: message.timestamp,
        },
        (error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve()),
      );
    });
  }

  private onConnectionLost(connection: ChannelModel, error?: Error): void {
    if (this.connection !== connection) return;
    this.connection = undefined;
    this.publishChannel = undefined;
    this.consumeChannel = undefined;
    this.consumerTag = undefined;
    this.blocked = undefined;
    if (this.closing) return;
    this.lastError = error?.message ?? 'connection closed';
    this.logger.warn({ err: error }, 'amqp connection lost; reconnecting');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closing || this.reconnectTimer) return;
    const delay = Math.min(RECONNECT_MIN_MS * 2 ** this.reconnectAttempt, RECONNECT_MAX_MS);
    this.reconnectAttempt++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.open()
        .then(async () => {
          // close() may have begun while we were connecting.
          if (this.closing) {
            await this.connection?.close().catch(() => undefined);
            return;
          }
          try {
            await this.startConsumer();
          } catch (error) {
            const connection = this.connection;
            this.connection = undefined;
            this.publishChannel = undefined;
            this.consumeChannel = undefined;
            await connection?.close().catch(() => undefined);
            throw error;
          }
        })
        .then(() => {
          if (this.closing) return;
          this.reconnectAttempt = 0;
          this.reconnects++;
          this.logger.info('amqp reconnected');
        })
        .catch((err: unknown) => {
          this.lastError = err instanceof Error ? err.message : String(err);
          this.logger.warn({ err }, 'amqp reconnect failed');
          this.scheduleReconnect();
        });
    }, delay);
  }

  status(): DependencyStatus {
    const consuming = this.handler === undefined || this.consumerTag !== undefined;
    const up = this.connection !== undefined && this.publishChannel !== undefined && consuming;
    if (!up) return { up, detail: this.lastError ?? 'not connected' };
    return this.blocked ? { up, detail: `publishing blocked by the broker: ${this.blocked}` } : { up };
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    for (const release of [...this.holds]) release();
    const { connection, consumeChannel, consumerTag } = this;
    if (consumeChannel && consumerTag) await consumeChannel.cancel(consumerTag).catch(() => undefined);
    await Promise.allSettled([...this.inFlight]);
    await connection?.close().catch(() => undefined);
    this.connection = undefined;
    this.publishChannel = undefined;
    this.consumeChannel = undefined;
  }
}

/**
 * Heartbeats every 15 s unless the URL sets `heartbeat`: a half-open TCP link (a broker host lost
 * without a FIN) is then noticed in about 30 s rather than at the next publish.
 */
function withHeartbeat(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.searchParams.has('heartbeat')) parsed.searchParams.set('heartbeat', '15');
    return parsed.toString();
  } catch {
    return url;
  }
}
