/**
 * `buildApp(config)` wires the parts; importing this file has no side effects.
 *
 *   RabbitMQ | in-process bus --> bridge --> Redis | in-process pub/sub --> graphql-ws sockets
 *   HTTP mutation --> Prisma (row + outbox, one transaction) --> relay --> the same bus
 *
 * `start()` opens the database (and migrates it), pub/sub, the bus, then listens and consumes;
 * `stop()` undoes it in reverse, draining sockets, the consumer and in-flight work.
 */
import 'reflect-metadata';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { expressMiddleware } from '@as-integrations/express5';
import express, { type ErrorRequestHandler, type Request, type RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { AuthUser } from './auth/auth-user';
import type { GraphQLContext, Services } from './contracts/context';
import { createTokenVerifier, stripBearer, TokenError } from './auth/jwt';
import { createEventBridge, type BridgeCounters } from './bridge/event-bridge';
import { PartitionRouter } from './bridge/partition-router';
import type { Config } from './config';
import { sharedCoalescingKey, combine, supersedes } from './contracts/coalescing';
import { ErrorCode, UnauthenticatedError } from './contracts/errors';
import type { GatewayEvent } from './contracts/events';
import type { EventBus, EventPubSub } from './contracts/ports';
import { createTopics } from './contracts/topics';
import { createAppInstallationService } from './domains/app/app-installation.service';
import { createDeviceService } from './domains/device/device.service';
import { createOrderService } from './domains/order/order.service';
import { createQuotaService } from './domains/quota/quota.service';
import { createReadModelService } from './domains/read-model/read-model.service';
import { costLimitRule } from './graphql/validation-rules';
import { AmqpEventBus } from './infra/amqp/amqp-bus';
import { openDatabase, type Database } from './infra/db/database';
import { OutboxRelay } from './infra/db/outbox-relay';
import { devEventsRouter } from './transports/http/dev-events';
import { createErrorFormatter } from './graphql/format-error';
import { graphiqlRouter } from './transports/http/graphiql';
import { healthRouter } from './transports/http/health';
import { createMetrics } from './transports/http/metrics';
import { MemoryRateLimiter, rateLimitMiddleware, RedisRateLimiter, type RateLimiter } from './infra/redis/rate-limit';
import { MemoryEventBus } from './infra/memory/memory-bus';
import { MemoryPubSub } from './infra/memory/memory-pubsub';
import { RedisEventPubSub } from './infra/redis/redis-pubsub';
import { startGraphQLWsServer, type GraphQLWsServer, type WsCounters } from './transports/ws/graphql-ws-server';
import { MemorySocketRegistry, RedisSocketRegistry, type SocketRegistry } from './infra/redis/socket-registry';
import type { QueueOptions } from './lib/event-queue';
import { createLogger } from './logger';
import { containsNul, noNulStringsRule, NUL_MESSAGE } from './graphql/nul-guard';
import { createSchema } from './schema';

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
    /** Subscriptions whose event buffer overflowed (their socket was closed with 1013). */
    overflowed: number;
    /** Socket-level limits that were hit. */
    ws: Readonly<WsCounters>;
    /** Reconnections of RabbitMQ and Redis since start (0 for the in-process stand-ins). */
    reconnects: { eventBus: number; pubsub: number };
  };
  /** The event bus in use (the in-process one accepts raw publishes: CLI and tests). */
  readonly bus: EventBus;
}

const notOpen = (): never => {
  throw new Error('the database is not open yet');
};

/** No DATABASE_URL, REDIS_URL or AMQP_URL: everything in this one process. */
const isEmbedded = (config: Config) =>
  config.database.kind === 'embedded' && config.redis.kind === 'memory' && config.amqp.kind === 'memory';

export function buildApp(config: Config, logger: Logger = createLogger(config.logLevel)): App {
  const topics = createTopics(config.redis.topicPrefix);
  const verifier = createTokenVerifier(config.jwt);
  const formatError = createErrorFormatter({ production: config.production, logger });
  const delivery = { coalesced: 0, overflowed: 0 };
  const queueOptions: QueueOptions<GatewayEvent> = {
    maxBuffered: config.delivery.maxBuffered,
    coalesceMs: config.delivery.coalesceMs,
    classify: sharedCoalescingKey,
    supersedes,
    combine,
    onCoalesced: () => void delivery.coalesced++,
    onOverflow: () => void delivery.overflowed++,
  };
  const eventLog = {
    maxEvents: config.eventLog.maxEvents,
    maxAllEvents: config.eventLog.maxAllEvents,
    maxAgeMs: config.eventLog.maxAgeSec * 1_000,
  };
  const pubsub: EventPubSub =
    config.redis.kind === 'redis'
      ? new RedisEventPubSub(config.redis.url, config.redis.topicPrefix, logger, queueOptions, eventLog)
      : new MemoryPubSub(queueOptions, eventLog);
  const socketRegistry: SocketRegistry =
    config.redis.kind === 'redis'
      ? new RedisSocketRegistry(
          config.redis.url,
          { prefix: config.redis.topicPrefix, max: config.ws.maxSocketsPerUser, leaseMs: config.ws.socketLeaseMs },
          logger,
        )
      : new MemorySocketRegistry(config.ws.maxSocketsPerUser);
  const rateOptions = { perSec: config.graphql.rateLimitPerSec, burst: config.graphql.rateLimitBurst };
  const rateLimiter: RateLimiter =
    config.redis.kind === 'redis'
      ? new RedisRateLimiter(config.redis.url, { ...rateOptions, prefix: config.redis.topicPrefix }, logger)
      : new MemoryRateLimiter(rateOptions);
  const validationRules = [
    costLimitRule({ maxDepth: config.graphql.maxDepth, maxComplexity: config.graphql.maxComplexity }),
    noNulStringsRule,
  ];
  let database: Database | undefined;
  const readModel = createReadModelService({ prisma: () => (database ?? notOpen()).prisma });
  const routerOptions = {
    readModel,
    maxMessageBytes: config.amqp.maxMessageBytes,
    ownerAttempts: config.amqp.ownerAttempts,
    retryDelayMs: config.amqp.requeueDelayMs,
    onError: (error: unknown) => logger.warn({ err: error }, 'router: owner lookup failed'),
  };
  const bus: EventBus =
    config.amqp.kind === 'amqp'
      ? new AmqpEventBus(config.amqp.url, config.amqp, logger, {
          router: (forward) => new PartitionRouter({ ...routerOptions, forward }),
        })
      : new MemoryEventBus(logger);
  const bridge = createEventBridge({
    pubsub,
    topics,
    maxMessageBytes: config.amqp.maxMessageBytes,
    ownerAttempts: config.amqp.ownerAttempts,
    logger,
    readModel,
  });
  const subscriptions: Record<string, number> = {};

  let relay: OutboxRelay | undefined;
  let apollo: ApolloServer<GraphQLContext> | undefined;
  let httpServer: http.Server | undefined;
  let wsServer: GraphQLWsServer | undefined;
  let stopping = false;
  let port = 0;
  const stats = () => ({
    sockets: wsServer?.socketCount() ?? 0,
    subscriptions: { ...subscriptions },
    bridge: { ...bridge.counters },
    outboxPublished: relay?.published ?? 0,
    outboxPasses: relay?.passes ?? 0,
    coalesced: delivery.coalesced,
    overflowed: delivery.overflowed,
    ws: { ...(wsServer?.counters ?? { slowConsumerCloses: 0, socketLimitCloses: 0, tooManySubscriptions: 0, payloadExecutions: 0 }) },
    reconnects: {
      eventBus: bus instanceof AmqpEventBus ? bus.reconnects : 0,
      pubsub: pubsub instanceof RedisEventPubSub ? pubsub.reconnects : 0,
    },
  });
  const metrics = createMetrics(
    {
      stats,
      outboxBacklog: () => relay?.backlog(),
      redisReconnects: () => stats().reconnects.pubsub,
      amqpReconnects: () => stats().reconnects.eventBus,
    },
    logger,
  );

  async function start(): Promise<void> {
    if (config.jwt.usingDevelopmentSecret) {
      logger.warn('JWT_SECRET is not set: using the development secret (never in production)');
    }
    database = await openDatabase(config.database, logger);
    const db = database;
    if (pubsub instanceof RedisEventPubSub) {
      // Redis down at start-up is an outage like any other: serve, report it in /readyz, and
      // let ioredis reconnect (the bridge requeues what it cannot publish meanwhile).
      await pubsub.ready().catch((error: unknown) => logger.warn({ err: error }, 'redis unavailable at start-up; retrying'));
    }
    await bus.connect();
    relay = new OutboxRelay(db.prisma, bus, config.outbox, logger);
    const outboxRelay = relay;

    const writes = { prisma: db.prisma, onOutboxWrite: () => outboxRelay.nudge() };
    const services: Services = {
      quota: createQuotaService(writes),
      devices: createDeviceService(writes),
      orders: createOrderService(writes),
      apps: createAppInstallationService(writes),
      pubsub,
      topics,
      onSubscriptionChange(field, delta) {
        subscriptions[field] = (subscriptions[field] ?? 0) + delta;
      },
      onEventDelivered: metrics.eventDelivered,
    };
    const schema = await createSchema();

    apollo = new ApolloServer<GraphQLContext>({
      schema,
      introspection: config.graphql.introspection,
      validationRules,
      parseOptions: { maxTokens: config.graphql.maxTokens },
      includeStacktraceInErrorResponses: false,
      formatError,
      // The default landing page loads Apollo Sandbox from a CDN; nothing may load from outside.
      plugins: [ApolloServerPluginLandingPageDisabled()],
    });
    await apollo.start();

    const app = express();
    app.disable('x-powered-by');
    app.use(
      healthRouter({
        checks: {
          database: { mode: db.kind, check: () => db.status() },
          pubsub: { mode: config.redis.kind, check: () => pubsub.status() },
          eventBus: { mode: config.amqp.kind, check: () => bus.status() },
        },
        isStopping: () => stopping,
      }),
    );
    app.use(metrics.router);
    app.use(graphiqlRouter({ tokenHint: !config.production && config.jwt.secret !== undefined, embedded: isEmbedded(config) }));
    if (bus instanceof MemoryEventBus && !config.production) {
      app.use(devEventsRouter({ bus, verifier, maxMessageBytes: config.amqp.maxMessageBytes, logger }));
    }
    app.use(
      '/graphql',
      express.json({ limit: config.graphql.bodyLimitBytes }),
      refuseNul,
      authenticateRequest,
      rateLimitMiddleware(rateLimiter, (req, res) => {
        const auth = res.locals.auth as Authentication;
        return auth.user ? `user:${auth.user.id}` : `addr:${req.socket.remoteAddress ?? 'unknown'}`;
      }),
      expressMiddleware(apollo, {
        context: async ({ res }): Promise<GraphQLContext> => {
          const auth = res.locals.auth as Authentication;
          if (auth.error) throw auth.error;
          return { user: auth.user, services };
        },
      }),
    );
    app.use(jsonErrors);

    httpServer = http.createServer(app);
    wsServer = startGraphQLWsServer({
      httpServer,
      schema,
      services,
      verifier,
      formatError,
      sockets: socketRegistry,
      options: {
        ...config.ws,
        maxTokens: config.graphql.maxTokens,
        validationRules,
        introspection: config.graphql.introspection,
        rateLimiter,
        production: config.production,
      },
      logger,
    });
    const server = httpServer;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    port = (server.address() as AddressInfo).port;

    await bus.consume(bridge.handle);
    outboxRelay.start();
    logger.info(
      { port, database: db.kind, pubsub: config.redis.kind, eventBus: config.amqp.kind },
      `cloudphone-realtime listening on http://${config.host}:${port}/graphql`,
    );
  }

  type Authentication = { user: AuthUser | null; error?: UnauthenticatedError };

  /** Verifies the bearer token once per request (the rate limit is per user); Apollo's context reports a failure. */
  async function authenticate(req: Request): Promise<Authentication> {
    const header = req.headers.authorization;
    if (!header) return { user: null };
    try {
      return { user: await verifier.verify(stripBearer(header)) };
    } catch (error) {
      const message = error instanceof TokenError ? `Unauthenticated: ${error.message}` : 'Unauthenticated';
      return { user: null, error: new UnauthenticatedError(message) };
    }
  }
  const refuseNul: RequestHandler = (req, res, next) => {
    if (!containsNul(req.body) && !containsNul(req.query)) return next();
    res.status(400).json({ errors: [{ message: NUL_MESSAGE, extensions: { code: ErrorCode.BAD_USER_INPUT } }] });
  };

  const authenticateRequest: RequestHandler = (req, res, next) => {
    authenticate(req).then((auth) => {
      res.locals.auth = auth;
      next();
    }, next);
  };

  // Body-parser failures (too large, not JSON) as GraphQL-shaped JSON, never an HTML stack page.
  const jsonErrors: ErrorRequestHandler = (error, _req, res, next) => {
    if (res.headersSent) return next(error);
    const status = typeof error?.status === 'number' && error.status >= 400 && error.status < 500 ? error.status : 500;
    if (status === 500) logger.error({ err: error }, 'http request failed');
    const message =
      status === 413 ? 'Request body too large' : status === 500 ? 'Internal server error' : 'Malformed request body';
    res.status(status).json({
      errors: [{ message, extensions: { code: status === 500 ? ErrorCode.INTERNAL_SERVER_ERROR : 'BAD_REQUEST' } }],
    });
  };

  async function stop(): Promise<void> {
    if (stopping) return;
    stopping = true;
    const timeout = config.shutdownTimeoutMs;
    const step = async (name: string, work: () => Promise<unknown> | undefined) => {
      const began = Date.now();
      await work();
      logger.debug({ step: name, ms: Date.now() - began }, 'stopped');
    };
    const server = httpServer;
    const closingHttp = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    await step('websockets', () => wsServer?.close(timeout));
    await step('http', async () => {
      server?.closeIdleConnections();
      const forceTimer = setTimeout(() => server?.closeAllConnections(), timeout);
      await closingHttp;
      clearTimeout(forceTimer);
    });
    await step('apollo', () => apollo?.stop());
    // One deadline for the in-flight work; past it the connections are closed regardless, and
    // whatever was not acknowledged or marked published is redelivered or retried.
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, timeout).unref());
    const bounded = (work: Promise<unknown> | undefined) => Promise.race([work, deadline]);
    // The relay first (it publishes to the bus), then the consumer: in-flight messages finish
    // publishing to the fan-out or return to the queue.
    await step('outbox relay', () => bounded(relay?.stop()));
    await step('event bus', () => bounded(bus.close()));
    await step('pubsub', () => pubsub.close());
    await step('limits', () => Promise.all([socketRegistry.close(), rateLimiter.close()]));
    await step('database', () => database?.close());
    logger.info('cloudphone-realtime stopped');
  }

  return {
    start,
    stop,
    get port() {
      return port;
    },
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    stats,
    bus,
  };
}
