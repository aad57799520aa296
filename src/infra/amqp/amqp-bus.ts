/**
 * RabbitMQ through amqplib: topology, consumers, the confirm-channel publisher (outbox relay,
 * dead letters, the router's republishing), and reconnection.
 *
 * Partitioned (`AMQP_PARTITIONS` > 0, docs/cluster.md): the router queue (single active consumer)
 * feeds the router stage, which republishes each message with its partition key to the
 * consistent-hash exchange, acknowledging it only once the broker confirmed the republish; every
 * instance consumes every partition queue (single active consumer each), and hands the bridge a
 * partition's messages in runs, one user at a time (partition-runs.ts): what a user has waiting
 * goes over together, the user's next run only once the previous one is settled, while different
 * users' runs go concurrently (up to the prefetch), so the read model's group commit and the
 * fan-out's publish batch across users. A message the fan-out could not take is retried in place
 * (held `requeueDelayMs`), never returned to the queue behind its user's later messages.
 * Acknowledgements are gathered per channel and turn of the event loop (ack-batcher.ts).
 * Unpartitioned (`AMQP_PARTITIONS=0`): competing consumers on one queue.
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
import type { IngestRouter, IngestRouterFactory, RouteDecision } from '../../contracts/partition';
import {
  oneByOne,
  type DependencyStatus,
  type Disposition,
  type EventBus,
  type MessageHandler,
  type MessageRunHandler,
  type OutgoingMessage,
} from '../../contracts/ports';
import { AckBatcher } from './ack-batcher';
import { deadLetterOptions, incomingOf, publishConfirmed, republishOptions, withHeartbeat } from './amqp-messages';
import { declareTopology, inspectLegacy, retireLegacyBindings } from './amqp-topology';
import { PartitionRuns } from './partition-runs';
import { partitionTopology, type PartitionTopology } from './partition-topology';

const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 10_000;
/** Router messages in flight (decided, republished, not yet confirmed). */
const ROUTER_PREFETCH = 1_000;
/** How often a draining instance looks whether the old shared queue is empty and unconsumed. */
const LEGACY_POLL_MS = 1_000;

export interface AmqpBusOptions {
  /** The router stage; required when `names.partitions` > 0. */
  readonly router?: IngestRouterFactory;
}

export class AmqpEventBus implements EventBus {
  private connection: ChannelModel | undefined;
  private publishChannel: ConfirmChannel | undefined;
  private consumeChannel: Channel | undefined;
  private consumerTag: string | undefined;
  /** Partitioned: the router's channel and stage, and the consumers of the session. */
  private routerChannel: Channel | undefined;
  private router: IngestRouter<ConsumeMessage> | undefined;
  private consumers: { channel: Channel; tag: string }[] = [];
  private legacyTimer: NodeJS.Timeout | undefined;
  /** Messages of the old shared queue taken by this session and not yet settled. */
  private readonly legacyUnsettled = new Set<ConsumeMessage>();
  private runHandler: MessageRunHandler | undefined;
  readonly topology: PartitionTopology | undefined;
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
    private readonly options: AmqpBusOptions = {},
  ) {
    if (names.partitions > 0) {
      if (!options.router) throw new Error('a partitioned AMQP bus needs the router stage (options.router)');
      this.topology = partitionTopology(names.queue, names.partitions);
    }
  }

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
      const routerChannel = this.topology ? await connection.createChannel() : undefined;
      for (const channel of [publishChannel, consumeChannel, ...(routerChannel ? [routerChannel] : [])]) {
        channel.on('error', (error: Error) => {
          this.lastError = error.message;
          this.logger.warn({ err: error }, 'amqp channel error');
        });
        // A channel closed by the broker (e.g. a precondition failure) takes the link down with it.
        channel.on('close', () => {
          if (!this.closing && this.connection === connection) void connection.close().catch(() => undefined);
        });
      }
      await declareTopology(publishChannel, this.names, this.topology);
      if (this.topology) await retireLegacyBindings(connection, this.names);
      this.connection = connection;
      this.publishChannel = publishChannel;
      this.consumeChannel = consumeChannel;
      this.routerChannel = routerChannel;
      this.lastError = undefined;
    } catch (error) {
      await connection.close().catch(() => undefined);
      throw error;
    }
  }

  async consume(handler: MessageHandler, run?: MessageRunHandler): Promise<void> {
    this.handler = handler;
    this.runHandler = run ?? oneByOne(handler);
    await this.startConsumer();
  }

  private async startConsumer(): Promise<void> {
    if (this.topology) return this.startPartitionedConsumers();
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

  private onCancelled(queue: string): void {
    // The broker cancelled a consumer (queue deleted, node failover: amqplib #176).
    this.logger.warn({ queue }, 'amqp consumer cancelled by the broker; reconnecting');
    if (this.connection) void this.connection.close().catch(() => undefined);
  }

  private async startPartitionedConsumers(): Promise<void> {
    const topology = this.topology as PartitionTopology;
    const { consumeChannel: channel, routerChannel, connection } = this;
    if (!channel || !routerChannel || !connection || !this.handler) return;
    // One batcher per channel: the partitions' consumers share this one, the router has its own.
    const runs = new PartitionRuns({
      channel,
      acks: new AckBatcher(channel),
      handle: this.runHandler as MessageRunHandler,
      live: () => !this.closing && this.consumeChannel === channel,
      hold: (ms) => this.hold(ms),
      requeueDelayMs: this.names.requeueDelayMs,
      deadLetter: (message, reason) => this.deadLetter(message, reason),
      track: (work) => this.track(work),
      logger: this.logger,
    });
    // Per consumer (not per channel): each partition has this many messages in flight at most.
    await channel.prefetch(this.names.prefetch, false);
    for (const queue of topology.partitions) {
      const { consumerTag } = await channel.consume(queue, (message) => {
        if (message === null) return this.onCancelled(queue);
        runs.deliver(message);
      });
      this.consumers.push({ channel, tag: consumerTag });
    }
    const routerAcks = new AckBatcher(routerChannel);
    const router = this.createRouter(routerChannel, routerAcks);
    this.router = router;
    await routerChannel.prefetch(ROUTER_PREFETCH, false);
    const take = (queue: string) => async () => {
      const { consumerTag } = await routerChannel.consume(queue, (message) => {
        if (message === null) return this.onCancelled(queue);
        routerAcks.delivered(message);
        if (queue === topology.legacy) this.legacyUnsettled.add(message);
        router.push(incomingOf(message), message);
      });
      this.consumers.push({ channel: routerChannel, tag: consumerTag });
      return consumerTag;
    };
    if (await inspectLegacy(connection, this.names.queue)) {
      const legacyTag = await take(topology.legacy)();
      this.logger.info({ queue: topology.legacy }, 'draining the unpartitioned queue through the router before reading the router queue');
      this.drainLegacy(connection, routerChannel, legacyTag, take(topology.router));
    } else {
      await take(topology.router)();
    }
    this.consumerTag = this.consumers[0]?.tag;
  }

  /**
   * Reads the router queue only once the shared queue is empty and nobody consumes it any more
   * (every new instance drains it; an instance of the unpartitioned version still running keeps
   * it consumed, so the router waits for the rollout to finish), then deletes it.
   */
  private drainLegacy(connection: ChannelModel, channel: Channel, legacyTag: string, readRouter: () => Promise<string>): void {
    let cancelled = false;
    const poll = async () => {
      this.legacyTimer = undefined;
      if (this.closing || this.connection !== connection) return;
      const legacy = await inspectLegacy(connection, this.names.queue);
      // Cancelled only with nothing of it unsettled here: once nobody consumes it, nobody holds
      // an unacknowledged message of it either, and deleting it cannot lose one.
      if (legacy && !cancelled && legacy.messageCount === 0 && this.legacyUnsettled.size === 0) {
        await channel.cancel(legacyTag);
        cancelled = true;
        this.consumers = this.consumers.filter((c) => c.tag !== legacyTag);
      }
      const after = cancelled ? await inspectLegacy(connection, this.names.queue) : legacy;
      if (!after || (cancelled && after.messageCount === 0 && after.consumerCount === 0)) {
        if (after) {
          const admin = await connection.createChannel();
          admin.on('error', () => undefined);
          await admin.deleteQueue(this.names.queue, { ifEmpty: true }).catch(() => undefined);
          await admin.close().catch(() => undefined);
        }
        if (!cancelled) await channel.cancel(legacyTag).catch(() => undefined);
        await readRouter();
        this.logger.info({ queue: this.names.queue }, 'unpartitioned queue drained; reading the router queue');
        return;
      }
      this.legacyTimer = setTimeout(() => void poll().catch(onError), LEGACY_POLL_MS);
    };
    const onError = (error: unknown) => {
      this.logger.warn({ err: error }, 'draining the unpartitioned queue failed; reconnecting');
      if (this.connection === connection) void connection.close().catch(() => undefined);
    };
    this.legacyTimer = setTimeout(() => void poll().catch(onError), LEGACY_POLL_MS);
  }

  /** The router of one consuming session: decisions come back in arrival order. */
  private createRouter(channel: Channel, acks: AckBatcher): IngestRouter<ConsumeMessage> {
    const factory = this.options.router as IngestRouterFactory;
    return factory<ConsumeMessage>((message, decision) => this.settleRouted(acks, message, decision));
  }

  private settleRouted(acks: AckBatcher, message: ConsumeMessage, decision: RouteDecision): void {
    const settle = (work: Promise<void>) =>
      this.track(
        work
          .then(
            () => {
              acks.ack(message);
              this.legacyUnsettled.delete(message);
            },
            (error: unknown) => {
              // Not confirmed: the message must come again, and nothing routed after it may be
              // acknowledged first, so the whole session goes; the broker redelivers in order.
              this.logger.warn({ err: error }, 'router republish not confirmed; reconnecting');
              if (this.connection) void this.connection.close().catch(() => undefined);
            },
          )
          .catch(() => undefined),
      );
    if (decision.action === 'ignore') {
      acks.ack(message);
      this.legacyUnsettled.delete(message);
      return;
    }
    if (decision.action === 'dead-letter') {
      this.logger.warn({ routingKey: message.fields.routingKey, reason: decision.reason }, 'event dead-lettered by the router');
      settle(this.deadLetter(message, decision.reason));
      return;
    }
    settle(this.republish(message, decision.key));
  }

  private republish(message: ConsumeMessage, key: string): Promise<void> {
    const channel = this.publishChannel;
    const topology = this.topology as PartitionTopology;
    if (!channel) return Promise.reject(new Error('amqp publish channel is down'));
    return publishConfirmed(channel, topology.exchange, message.fields.routingKey, message.content, republishOptions(message, key));
  }

  private async settle(channel: Channel, message: ConsumeMessage, disposition: Disposition): Promise<void> {
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
    }
  }

  private track(work: Promise<void>): void {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
  }

  private async deliver(channel: Channel, message: ConsumeMessage): Promise<void> {
    const handler = this.handler as MessageHandler;
    let disposition: Disposition;
    try {
      // Unpartitioned: a partition header on the shared queue was set by no router of ours.
      disposition = await handler({ ...incomingOf(message), partitionKey: undefined });
    } catch (error) {
      disposition = { action: 'requeue', reason: error instanceof Error ? error.message : String(error) };
    }
    try {
      if (disposition.action !== 'requeue') {
        await this.settle(channel, message, disposition);
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
    const { deadLetterExchange, deadLetterQueue } = this.names;
    await publishConfirmed(channel, deadLetterExchange, deadLetterQueue, message.content, deadLetterOptions(message, reason));
  }

  async publish(message: OutgoingMessage): Promise<void> {
    const channel = this.publishChannel;
    if (!channel) throw new Error(`RabbitMQ is unavailable${this.lastError ? `: ${this.lastError}` : ''}`);
    await publishConfirmed(channel, this.names.exchange, message.routingKey, Buffer.from(JSON.stringify(message.body)), {
      persistent: true,
      contentType: 'application/json',
      messageId: message.messageId,
      timestamp: message.timestamp,
    });
  }

  private onConnectionLost(connection: ChannelModel, error?: Error): void {
    if (this.connection !== connection) return;
    this.connection = undefined;
    this.publishChannel = undefined;
    this.consumeChannel = undefined;
    this.consumerTag = undefined;
    this.endSession();
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
            this.endSession();
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

  /** Forgets the consuming session of a lost connection (its unsettled messages come again). */
  private endSession(): void {
    this.router?.close();
    this.router = undefined;
    this.routerChannel = undefined;
    this.consumers = [];
    clearTimeout(this.legacyTimer);
    this.legacyTimer = undefined;
    // Unsettled messages of a lost session go back to the queue with it.
    this.legacyUnsettled.clear();
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
    if (this.topology) {
      clearTimeout(this.legacyTimer);
      for (const { channel, tag } of this.consumers) await channel.cancel(tag).catch(() => undefined);
      // What the router decided is republished and confirmed, or comes again.
      this.router?.close();
    } else if (consumeChannel && consumerTag) await consumeChannel.cancel(consumerTag).catch(() => undefined);
    await Promise.allSettled([...this.inFlight]);
    this.endSession();
    await connection?.close().catch(() => undefined);
    this.connection = undefined;
    this.publishChannel = undefined;
    this.consumeChannel = undefined;
  }
}
