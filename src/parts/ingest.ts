/**
 * The ingest part: the platform's event bus (RabbitMQ, or in process), the bridge that validates
 * each message, applies it to the read model and publishes it to the fan-out, and the outbox
 * relay that puts the mutations' events on the same bus (so they take exactly the path external
 * events take).
 */
import type { Logger } from 'pino';
import { createEventBridge, type EventBridge } from '../bridge/event-bridge';
import { PartitionRouter } from '../bridge/partition-router';
import type { Config } from '../config';
import type { RouteDecision } from '../contracts/partition';
import type { EventBus, EventPubSub, RevocationStore } from '../contracts/ports';
import type { Topics } from '../contracts/topics';
import { createReadModelService } from '../domains/read-model/read-model.service';
import { AmqpEventBus } from '../infra/amqp/amqp-bus';
import { OutboxRelay } from '../infra/db/outbox-relay';
import { MemoryEventBus } from '../infra/memory/memory-bus';
import type { DatabasePart } from './database';
import type { Part } from './part';

export interface IngestPart extends Part {
  readonly bus: EventBus;
  readonly bridge: EventBridge;
  /** The relay, once started. */
  readonly relay: OutboxRelay | undefined;
  /** Reconnections of RabbitMQ since start (0 in process); callable detached (the metrics read it). */
  reconnects(this: void): number;
}

export function ingestPart(
  config: Config,
  deps: {
    database: DatabasePart;
    pubsub: EventPubSub;
    topics: Topics;
    /** Also append each applied event to the durable event log (docs/decisions/0300). */
    retainEvents?: boolean;
    /** Revoked sessions: the platform's `user.sessions.revoked` / `auth.sessions.revoked` go there. */
    revocations?: RevocationStore;
  },
  logger: Logger,
): IngestPart {
  const readModel = createReadModelService({ prisma: deps.database.prisma, sql: deps.database.sql, retainEvents: deps.retainEvents });
  // The router stage of the partitioned ingest (docs/cluster.md): one per consuming session.
  const router = <T>(forward: (tag: T, decision: RouteDecision) => void) =>
    new PartitionRouter<T>({
      forward,
      readModel,
      maxMessageBytes: config.amqp.maxMessageBytes,
      ownerAttempts: config.amqp.ownerAttempts,
      retryDelayMs: config.amqp.requeueDelayMs,
      onError: (error: unknown) => logger.warn({ err: error }, 'router: owner lookup failed'),
      onDecision: (decision) => bridge.countRouted(decision),
    });
  const bus: EventBus =
    config.amqp.kind === 'amqp' ? new AmqpEventBus(config.amqp.url, config.amqp, logger, { router }) : new MemoryEventBus(logger);
  const bridge = createEventBridge({
    pubsub: deps.pubsub,
    topics: deps.topics,
    maxMessageBytes: config.amqp.maxMessageBytes,
    ownerAttempts: config.amqp.ownerAttempts,
    logger,
    readModel,
    revokeSessions: deps.revocations && ((userId) => (deps.revocations as RevocationStore).revoke(userId)),
  });
  let relay: OutboxRelay | undefined;
  return {
    name: 'ingest',
    bus,
    bridge,
    get relay() {
      return relay;
    },
    reconnects: () => (bus instanceof AmqpEventBus ? bus.reconnects : 0),
    async start() {
      await bus.connect();
      relay = new OutboxRelay(deps.database.prisma(), bus, config.outbox, logger);
      await bus.consume(bridge.handle, bridge.handleRun);
      relay.start();
    },
    async stop() {
      // One deadline for the in-flight work; past it the connections are closed regardless, and
      // whatever was not acknowledged or marked published is redelivered or retried. The relay
      // first (it publishes to the bus), then the consumer: in-flight messages finish publishing
      // to the fan-out or return to the queue.
      const deadline = new Promise<void>((resolve) => setTimeout(resolve, config.shutdownTimeoutMs).unref());
      const bounded = (work: Promise<unknown> | undefined) => Promise.race([work, deadline]);
      await bounded(relay?.stop());
      await bounded(bus.close());
    },
  };
}
