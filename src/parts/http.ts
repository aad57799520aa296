/**
 * The HTTP part: one server on `PORT` for everything (docs/api.md#endpoints): GraphQL over HTTP
 * and over WebSocket on `/graphql`, both over the one operation layer; `/healthz`, `/readyz`,
 * `/metrics`, `/graphiql`, and the development routes on the embedded default.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import express from 'express';
import type { Logger } from 'pino';
import type { TokenVerifier } from '../auth/jwt';
import { revocationAwareVerifier } from '../auth/revocation';
import type { Config } from '../config';
import type { GraphQLContext, Services } from '../contracts/context';
import type { DependencyStatus, EventBus } from '../contracts/ports';
import { createErrorFormatter } from '../graphql/format-error';
import { noNulStringsRule } from '../graphql/nul-guard';
import { OperationLayer } from '../graphql/operation-layer';
import { costLimitRule } from '../graphql/validation-rules';
import { MemoryEventBus } from '../infra/memory/memory-bus';
import { createSchema } from '../schema';
import { devEventsRouter } from '../transports/http/dev-events';
import { devTokenRouter } from '../transports/http/dev-token';
import { graphiqlRouter } from '../transports/http/graphiql';
import { graphqlHttpRouter, jsonErrors } from '../transports/http/graphql-http';
import { healthRouter } from '../transports/http/health';
import { StreamRegistry } from '../transports/http/http-stream';
import { streamingHandler } from '../transports/http/streaming';
import type { GatewayMetrics } from '../transports/http/metrics';
import { startGraphQLWsServer, type GraphQLWsServer } from '../transports/ws/server';
import type { FanoutPart } from './fanout';
import type { Part } from './part';

export interface HttpPart extends Part {
  readonly port: number;
  /** The operation layer, once started (its counters feed the metrics). */
  readonly layer: OperationLayer | undefined;
  socketCount(): number;
  /** Open multipart and SSE streams. */
  streamCount(): number;
}

/** The heartbeat of multipart and SSE streams (Apollo's multipart protocol: every 5 s). */
const STREAM_HEARTBEAT_MS = 5_000;

export function httpPart(
  config: Config,
  deps: {
    /** Called once, when the part starts (the database is open by then). */
    services: () => Services;
    verifier: TokenVerifier;
    fanout: FanoutPart;
    bus: EventBus;
    metrics: GatewayMetrics;
    readiness: Record<string, { mode: string; check: () => DependencyStatus | Promise<DependencyStatus> }>;
    embedded: boolean;
  },
  logger: Logger,
): HttpPart {
  const formatError = createErrorFormatter({ production: config.production, logger });
  const validationRules = [
    costLimitRule({ maxDepth: config.graphql.maxDepth, maxComplexity: config.graphql.maxComplexity }),
    noNulStringsRule,
  ];
  let stopping = false;
  let port = 0;
  let layer: OperationLayer | undefined;
  let apollo: ApolloServer<GraphQLContext> | undefined;
  let server: http.Server | undefined;
  let wsServer: GraphQLWsServer | undefined;
  const streams = new StreamRegistry();
  // Revoked tokens are refused everywhere a token is verified: HTTP, connect, renewal.
  const verifier = revocationAwareVerifier(deps.verifier, deps.fanout.revocations);

  return {
    name: 'http',
    get port() {
      return port;
    },
    get layer() {
      return layer;
    },
    socketCount: () => wsServer?.socketCount() ?? 0,
    streamCount: () => streams.count(),
    async start() {
      const schema = await createSchema();
      layer = new OperationLayer(
        schema,
        deps.services(),
        {
          verifier,
          connections: deps.fanout.connections,
          revocations: deps.fanout.revocations,
          rateLimiter: deps.fanout.rateLimiter,
          formatError,
          logger,
          instanceId: randomUUID(),
        },
        {
          maxTokens: config.graphql.maxTokens,
          validationRules,
          introspection: config.graphql.introspection,
          maxOperationsPerSession: config.ws.maxSubscriptionsPerSocket,
        },
      );
      apollo = new ApolloServer<GraphQLContext>({
        schema,
        introspection: config.graphql.introspection,
        validationRules,
        parseOptions: { maxTokens: config.graphql.maxTokens },
        includeStacktraceInErrorResponses: false,
        formatError,
        // main.ts owns SIGTERM/SIGINT and stops every part in order. Apollo's own handlers would
        // stop it concurrently, and a second stop() during Apollo's first never resolves
        // (Apollo Server 5 resolves its stop barrier only on failure): the process hung on SIGTERM.
        stopOnTerminationSignals: false,
        // The default landing page loads Apollo Sandbox from a CDN; nothing may load from outside.
        plugins: [ApolloServerPluginLandingPageDisabled()],
      });
      await apollo.start();

      const app = express();
      app.disable('x-powered-by');
      app.use(healthRouter({ checks: deps.readiness, isStopping: () => stopping }));
      app.use(deps.metrics.router);
      // GraphiQL's development-only "act as" control and its POST /dev/token: on the embedded
      // default, outside production, with the public development secret; nowhere else.
      const devTokenSecret =
        deps.embedded && !config.production && config.jwt.usingDevelopmentSecret ? config.jwt.secret : undefined;
      app.use(
        graphiqlRouter({
          tokenHint: !config.production && config.jwt.secret !== undefined,
          embedded: deps.embedded,
          devTokens: devTokenSecret !== undefined,
        }),
      );
      if (devTokenSecret !== undefined) {
        const { issuer, audience } = config.jwt;
        app.use(devTokenRouter({ secret: devTokenSecret, issuer, audience, logger }));
      }
      if (deps.bus instanceof MemoryEventBus && !config.production) {
        app.use(devEventsRouter({ bus: deps.bus, verifier: deps.verifier, maxMessageBytes: config.amqp.maxMessageBytes, logger }));
      }
      app.use(
        graphqlHttpRouter({
          apollo,
          layer,
          verifier,
          rateLimiter: deps.fanout.rateLimiter,
          bodyLimitBytes: config.graphql.bodyLimitBytes,
          streaming: streamingHandler({
            layer,
            registry: streams,
            options: {
              heartbeatMs: STREAM_HEARTBEAT_MS,
              maxBufferedBytes: config.ws.maxBufferedBytes,
              slowCloseGraceMs: config.ws.slowCloseGraceMs,
            },
            isStopping: () => stopping,
          }),
        }),
      );
      app.use(jsonErrors(logger));

      const listening = http.createServer(app);
      server = listening;
      wsServer = startGraphQLWsServer({
        httpServer: listening,
        layer,
        options: { ...config.ws, production: config.production },
        logger,
      });
      await new Promise<void>((resolve, reject) => {
        listening.once('error', reject);
        listening.listen(config.port, config.host, () => {
          listening.off('error', reject);
          resolve();
        });
      });
      port = (listening.address() as AddressInfo).port;
    },
    async stop() {
      stopping = true;
      const timeout = config.shutdownTimeoutMs;
      const closing = server ? new Promise<void>((resolve) => server?.close(() => resolve())) : Promise.resolve();
      streams.shutdown();
      await wsServer?.close(timeout);
      server?.closeIdleConnections();
      const forceTimer = setTimeout(() => server?.closeAllConnections(), timeout);
      await closing;
      clearTimeout(forceTimer);
      await apollo?.stop();
    },
  };
}
