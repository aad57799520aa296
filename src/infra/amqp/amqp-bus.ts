/**
 * RabbitMQ through amqplib: topology, consumers, the confirm-channel publisher (outbox relay,
 * dead letters, the router's republishing), and reconnection.
 *
 * Partitioned (`AMQP_PARTITIONS` > 0, docs/cluster.md): the router queue (single active consumer)
 * feeds the router stage, which republishes each message with its partition key to the
 * consistent-hash exchange, acknowledging it only once the broker confirmed the republish; every
 * instance consumes every partition queue (single active consumer each), and hands the bridge a
 * partition's messages one user at a time: a user's next message is handled only once the
 * previous one is settled, while different users' messages go concurrently (up to the prefetch),
 * so the read model's group commit still batches across users. A message the fan-out could not
 * take is retried in place (held `requeueDelayMs`), never returned to the queue behind its
 * user's later messages. Unpartitioned (`AMQP_PARTITIONS=0`): competing consumers on one queue.
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
import type { IncomingMessage } from '../../contracts/events';
import { PARTITION_KEY_HEADER, type IngestRouter, type IngestRouterFactory, type RouteDecision } from '../../contracts/partition';
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
import { QUEUE_BINDINGS } from '../../contracts/routing';
import { PARTITION_WEIGHT, partitionTopology, type PartitionTopology } from './partition-topology';

const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 10_000;
/** Router messages in flight (decided, republished, not yet confirmed). */
const ROUTER_PREFETCH = 1_000;
/** Messages of one user handed over in one run at the most (the prefetch bounds it too). */
const MAX_RUN = 500;
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
  /**
   * The messages waiting per partition key (user) in the current consuming session; a key is
   * present while its run is being handled.
   */
  private runs = new Map<string, ConsumeMessage[]>();
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
      await this.declareTopology(publishChannel);
      if (this.topology) await this.retireLegacyBindings(connection);
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

  private async declareTopology(channel: ConfirmChannel): Promise<void> {
    const { exchange, queue, deadLetterExchange, deadLetterQueue } = this.names;
    await channel.assertExchange(exchange, 'topic', { durable: true });
    await channel.assertExchange(deadLetterExchange, 'direct', { durable: true });
    await channel.assertQueue(deadLetterQueue, { durable: true });
    await channel.bindQueue(deadLetterQueue, deadLetterExchange, deadLetterQueue);
    // Anything the broker itself dead-letters (e.g. a consumer nacking without requeue) lands
    // in the same DLQ as the gateway's own rejections.
    const deadLettering = { 'x-dead-letter-exchange': deadLetterExchange, 'x-dead-letter-routing-key': deadLetterQueue };
    const { topology } = this;
    if (!topology) {
      await channel.assertQueue(queue, { durable: true, arguments: deadLettering });
      for (const binding of QUEUE_BINDINGS) await channel.bindQueue(queue, exchange, binding);
      return;
    }
    const ordered = { ...deadLettering, 'x-single-active-consumer': true };
    await channel.assertExchange(topology.exchange, 'x-consistent-hash', {
      durable: true,
      arguments: { 'hash-header': PARTITION_KEY_HEADER },
    });
    for (const partition of topology.partitions) {
      await channel.assertQueue(partition, { durable: true, arguments: ordered });
      await channel.bindQueue(partition, topology.exchange, PARTITION_WEIGHT);
    }
    await channel.assertQueue(topology.router, { durable: true, arguments: ordered });
    for (const binding of QUEUE_BINDINGS) await channel.bindQueue(topology.router, exchange, binding);
  }

  /**
   * Migration from the shared queue: it stops receiving (its bindings go; the router queue has
   * them), and what it holds is drained through the router before the router queue is read
   * (`drainLegacy`). Checked on a throwaway channel: a missing queue closes the channel.
   */
  private async retireLegacyBindings(connection: ChannelModel): Promise<boolean> {
    const legacy = await this.inspectLegacy(connection);
    if (!legacy) return false;
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    try {
      for (const binding of QUEUE_BINDINGS) await channel.unbindQueue(this.names.queue, this.names.exchange, binding);
    } finally {
      await channel.close().catch(() => undefined);
    }
    return true;
  }

  /** The shared queue's counts, or undefined when it does not exist. */
  private async inspectLegacy(connection: ChannelModel): Promise<{ messageCount: number; consumerCount: number } | undefined> {
    const channel = await connection.createChannel();
    channel.on('error', () => undefined);
    try {
      return await channel.checkQueue(this.names.queue);
    } catch {
      return undefined;
    } finally {
      await channel.close().catch(() => undefined);
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
    this.runs = new Map();
    // One batcher per channel: the partitions' consumers share this one, the router has its own.
    const acks = new AckBatcher(channel);
    // Per consumer (not per channel): each partition has this many messages in flight at most.
    await channel.prefetch(this.names.prefetch, false);
    for (const queue of topology.partitions) {
      const { consumerTag } = await channel.consume(queue, (message) => {
        if (message === null) return this.onCancelled(queue);
        acks.delivered(message);
        this.deliverInOrder(channel, acks, message);
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
    if (await this.inspectLegacy(connection)) {
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
      const legacy = await this.inspectLegacy(connection);
      // Cancelled only with nothing of it unsettled here: once nobody consumes it, nobody holds
      // an unacknowledged message of it either, and deleting it cannot lose one.
      if (legacy && !cancelled && legacy.messageCount === 0 && this.legacyUnsettled.size === 0) {
        await channel.cancel(legacyTag);
        cancelled = true;
        this.consumers = this.consumers.filter((c) => c.tag !== legacyTag);
      }
      const after = cancelled ? await this.inspectLegacy(connection) : legacy;
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
    const { properties } = message;
    return new Promise<void>((resolve, reject) => {
      try {
        channel.publish(
          topology.exchange,
          message.fields.routingKey,
          message.content,
          {
            persistent: true,
            // amqplib types received properties as `any`: they are what the broker delivered, forwarded as is.
            contentType: properties.contentType as string | undefined,
            contentEncoding: properties.contentEncoding as string | undefined,
            messageId: properties.messageId as string | undefined,
            timestamp: properties.timestamp as number | undefined,
            headers: { ...(properties.headers ?? {}), [PARTITION_KEY_HEADER]: key },
          },
          (error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve()),
        );
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  /**
   * A partition's message joins its key's (its user's) run: the messages a user has waiting are
   * handed over together, the next run only once the previous one is settled, while different
   * users' runs go concurrently (up to the prefetch), so the read model's group commit and the
   * fan-out's publish batch them across users too. Messages without the header (a publisher
   * bypassing the router without setting it) share one run.
   */
  private deliverInOrder(channel: Channel, acks: AckBatcher, message: ConsumeMessage): void {
    const key = partitionKeyOf(message) ?? '';
    const waiting = this.runs.get(key);
    if (waiting) {
      waiting.push(message);
      return;
    }
    const queue = [message];
    this.runs.set(key, queue);
    this.track(this.drainRun(channel, acks, this.runs, key, queue));
  }

  /**
   * Hands `queue` over run after run until it is empty. A message that must be retried stays at
   * the head, with its user's later messages behind it, held `requeueDelayMs` between tries: it
   * is never returned to the queue behind them.
   */
  private async drainRun(
    channel: Channel,
    acks: AckBatcher,
    runs: Map<string, ConsumeMessage[]>,
    key: string,
    queue: ConsumeMessage[],
  ): Promise<void> {
    const handle = this.runHandler as MessageRunHandler;
    try {
      // From idle, the rest of this turn of the event loop: a user's messages of one socket read go together.
      await new Promise<void>((resolve) => setImmediate(resolve));
      for (let attempt = 1; queue.length > 0;) {
        // The channel is gone: these messages come again, in order, to whoever consumes the
        // partition now; handling them here could only put them out of order.
        if (this.closing || this.consumeChannel !== channel) return;
        const batch = queue.splice(0, MAX_RUN);
        let dispositions: Disposition[];
        try {
          dispositions = await handle(batch.map(incomingOf));
        } catch (error) {
          const requeue = { action: 'requeue', reason: error instanceof Error ? error.message : String(error) } as const;
          dispositions = batch.map(() => requeue);
        }
        const retry: ConsumeMessage[] = [];
        let firstRetry: { reason: string; routingKey: string } | undefined;
        const settling: Promise<void>[] = [];
        for (const [i, message] of batch.entries()) {
          const disposition = dispositions[i] ?? { action: 'requeue', reason: 'the handler gave no disposition' };
          if (disposition.action === 'requeue') {
            firstRetry ??= { reason: disposition.reason, routingKey: message.fields.routingKey };
            retry.push(message);
          } else settling.push(this.settleInRun(channel, acks, message, disposition));
        }
        await Promise.all(settling);
        if (!firstRetry) {
          attempt = 1;
          continue;
        }
        queue.unshift(...retry);
        if (attempt === 1 || attempt % 10 === 0) {
          this.logger.warn(
            { ...firstRetry, delayMs: this.names.requeueDelayMs, attempt, waiting: queue.length },
            "retrying event in place (its user's later events wait)",
          );
        }
        attempt++;
        await this.hold(Math.max(this.names.requeueDelayMs, 10));
      }
    } finally {
      if (runs.get(key) === queue) runs.delete(key);
    }
  }

  private async settleInRun(channel: Channel, acks: AckBatcher, message: ConsumeMessage, disposition: Disposition): Promise<void> {
    if (disposition.action === 'ack') {
      acks.ack(message);
      return;
    }
    if (disposition.action !== 'dead-letter') return;
    try {
      await this.deadLetter(message, disposition.reason);
      acks.ack(message);
    } catch (error) {
      // Our own dead letter failed: let the broker dead-letter it through the queue's
      // x-dead-letter-exchange (same DLQ, `x-death` instead of our reason header).
      this.logger.warn({ err: error, reason: disposition.reason }, 'dead-letter publish failed; rejecting to the DLX');
      try {
        channel.nack(message, false, false);
        acks.forget(message);
      } catch (nackError) {
        this.logger.warn({ err: nackError }, 'could not settle message; it will be redelivered');
      }
    }
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

function partitionKeyOf(message: ConsumeMessage): string | undefined {
  const value: unknown = message.properties.headers?.[PARTITION_KEY_HEADER];
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'number') return String(value);
  return undefined;
}

function incomingOf(message: ConsumeMessage): IncomingMessage {
  const timestamp = message.properties.timestamp as unknown;
  return {
    routingKey: message.fields.routingKey,
    body: message.content,
    messageId: typeof message.properties.messageId === 'string' ? message.properties.messageId : undefined,
    timestamp: typeof timestamp === 'number' ? timestamp : undefined,
    partitionKey: partitionKeyOf(message),
  };
}
