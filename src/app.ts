/**
 * `buildApp(config)` assembles the gateway from its parts (src/parts/); importing this file has no
 * side effects. The parts start in this order and stop in reverse:
 *
 *   database   PostgreSQL or embedded PGlite, migrated
 *   fan-out    Redis or in-process pub/sub, and the limits shared through it
 *   ingest     RabbitMQ or in-process bus -> bridge (validate, read model, publish) ; outbox relay
 *   http       one server: GraphQL over HTTP and WebSocket over one operation layer, health,
 *              metrics, GraphiQL
 *
 * So a stop first closes sockets (1001) and the HTTP server, then lets in-flight events finish
 * publishing or return to the queue, then closes pub/sub and the database.
 */
import 'reflect-metadata';
import type { Logger } from 'pino';
import { createTokenVerifier } from './auth/jwt';
import type { BridgeCounters } from './bridge/event-bridge';
import type { Config } from './config';
import type { Services } from './contracts/context';
import type { EventBus } from './contracts/ports';
import { createTopics } from './contracts/topics';
import { createAppInstallationService } from './domains/app/app-installation.service';
import { createDeviceService } from './domains/device/device.service';
import { createOrderService } from './domains/order/order.service';
import { createAnnouncementService } from './domains/notification/announcement.service';
import { createQuotaService } from './domains/quota/quota.service';
import { createSessionService } from './domains/session/session.service';
import type { OperationCounters, SessionCounters } from './graphql/operation-layer';
import { isRedisClusterUrl } from './lib/redis-url';
import { createLogger } from './logger';
import { databasePart } from './parts/database';
import { fanoutPart } from './parts/fanout';
import { httpPart } from './parts/http';
import { ingestPart } from './parts/ingest';
import { startParts, stopParts } from './parts/part';
import { createMetrics } from './transports/http/metrics';

export interface App {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Where it listens, once started (`http://127.0.0.1:<port>`). */
  readonly url: string;
  readonly port: number;
  /** Live figures for tests and metrics. */
  stats(): {
    sockets: number;
    subscriptions: Readonly<Record<string, number>>;
    bridge: Readonly<BridgeCounters>;
    outboxPublished: number;
    /** Outbox relay passes completed (publishing or not). */
    outboxPasses: number;
    /** State-like events replaced by a newer one before delivery (storm protection). */
    coalesced: number;
    /** Subscriptions whose event buffer overflowed (their connection was ended with 1013). */
    overflowed: number;
    /** Connection-level limits that were hit, and payload executions. */
    ws: Readonly<OperationCounters>;
    /** Reconnections of RabbitMQ and Redis since start (0 for the in-process stand-ins). */
    reconnects: { eventBus: number; pubsub: number };
    /** Connections by transport, renewals and revocations (docs/transports.md). */
    sessions: SessionCounters;
  };
  /** The event bus in use (the in-process one accepts raw publishes: CLI and tests). */
  readonly bus: EventBus;
}

const NO_COUNTS: OperationCounters = {
  slowConsumerCloses: 0,
  socketLimitCloses: 0,
  tooManySubscriptions: 0,
  payloadExecutions: 0,
  payloadsCompiled: 0,
};
const noTransport = () => ({ open: 0, opened: 0, slowConsumer: 0, expired: 0, revoked: 0 });
const NO_SESSIONS: SessionCounters = {
  revocations: 0,
  renewals: 0,
  renewalsRefused: 0,
  transports: { ws: noTransport(), multipart: noTransport(), sse: noTransport() },
};

/** No DATABASE_URL, REDIS_URL or AMQP_URL: everything in this one process. */
const isEmbedded = (config: Config) =>
  config.database.kind === 'embedded' && config.redis.kind === 'memory' && config.amqp.kind === 'memory';

export function buildApp(config: Config, logger: Logger = createLogger(config.logLevel)): App {
  // On a Redis Cluster a user's channels carry the user's hash tag (contracts/topics.ts).
  const topics = createTopics(config.redis.topicPrefix, { hashTags: config.redis.kind === 'redis' && isRedisClusterUrl(config.redis.url) });
  const verifier = createTokenVerifier(config.jwt);
  const database = databasePart(config.database, logger);
  const fanout = fanoutPart(config, logger, database);
  const ingest = ingestPart(
    config,
    { database, pubsub: fanout.pubsub, topics, retainEvents: fanout.durableLog !== undefined, revocations: fanout.revocations },
    logger,
  );

  const subscriptions: Record<string, number> = {};
  const stats = () => ({
    sockets: http.socketCount(),
    subscriptions: { ...subscriptions },
    bridge: { ...ingest.bridge.counters },
    outboxPublished: ingest.relay?.published ?? 0,
    outboxPasses: ingest.relay?.passes ?? 0,
    coalesced: fanout.delivery.coalesced,
    overflowed: fanout.delivery.overflowed,
    ws: { ...(http.layer?.counters ?? NO_COUNTS) },
    reconnects: { eventBus: ingest.reconnects(), pubsub: fanout.reconnects() },
    sessions: snapshotSessions(http.layer?.sessionCounters ?? NO_SESSIONS),
  });
  const metrics = createMetrics(
    {
      stats,
      outboxBacklog: () => ingest.relay?.backlog(),
      redisReconnects: fanout.reconnects,
      amqpReconnects: ingest.reconnects,
    },
    logger,
  );
  // Built once the database is open (the http part starts after it); mutations nudge the relay.
  const services = (): Services => {
    const writes = { prisma: database.prisma(), onOutboxWrite: () => ingest.relay?.nudge() };
    return {
      quota: createQuotaService(writes),
      devices: createDeviceService(writes),
      orders: createOrderService(writes),
      apps: createAppInstallationService(writes),
      announcements: createAnnouncementService(writes),
      sessions: createSessionService(fanout.revocations),
      pubsub: fanout.pubsub,
      topics,
      onSubscriptionChange(field, delta) {
        subscriptions[field] = (subscriptions[field] ?? 0) + delta;
      },
      onEventDelivered: metrics.eventDelivered,
    };
  };
  const http = httpPart(
    config,
    {
      services,
      verifier,
      fanout,
      bus: ingest.bus,
      metrics,
      readiness: {
        database: { mode: config.database.kind, check: () => database.db.status() },
        pubsub: { mode: config.redis.kind, check: () => fanout.pubsub.status() },
        eventBus: { mode: config.amqp.kind, check: () => ingest.bus.status() },
      },
      embedded: isEmbedded(config),
    },
    logger,
  );
  const parts = [database, fanout, ingest, http];

  let started: Promise<void> | undefined;
  let stopped: Promise<void> | undefined;
  return {
    async start() {
      if (config.jwt.usingDevelopmentSecret) logger.warn('JWT_SECRET is not set: using the development secret (never in production)');
      started ??= startParts(parts, logger);
      await started;
      logger.info(
        { port: http.port, database: config.database.kind, pubsub: config.redis.kind, eventBus: config.amqp.kind },
        `cloudphone-realtime listening on http://${config.host}:${http.port}/graphql`,
      );
    },
    async stop() {
      stopped ??= stopParts(parts, logger).then(() => logger.info('cloudphone-realtime stopped'));
      await stopped;
    },
    get port() {
      return http.port;
    },
    get url() {
      return `http://127.0.0.1:${http.port}`;
    },
    stats,
    bus: ingest.bus,
  };
}

function snapshotSessions(counters: SessionCounters): SessionCounters {
  const { ws, multipart, sse } = counters.transports;
  return { ...counters, transports: { ws: { ...ws }, multipart: { ...multipart }, sse: { ...sse } } };
}
