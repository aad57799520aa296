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
import { graphiqlRouter } from '../transports/http/graphiql';
import { graphqlHttpRouter, jsonErrors } from '../transports/http/graphql-http';
import { healthRouter } from '../transports/http/health';
import type { GatewayMetrics } from '../transports/http/metrics';
import { startGraphQLWsServer, type GraphQLWsServer } from '../transports/ws/server';
import type { FanoutPart } from './fanout';
import type { Part } from './part';

export interface HttpPart extends Part {
  readonly port: number;
  /** The operation layer, once started (its counters feed the metrics). */
  readonly layer: OperationLayer | undefined;
  socketCount(): number;
}

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

  return {
    name: 'http',
    get port() {
      return port;
    },
    get layer() {
      return layer;
    },
    socketCount: () => wsServer?.socketCount() ?? 0,
    async start() {
      const schema = await createSchema();
      layer = new OperationLayer(
        schema,
        deps.services(),
        {
          verifier: deps.verifier,
          connections: deps.fanout.connections,
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
        // The default landing page loads Apollo Sandbox from a CDN; nothing may load from outside.
        plugins: [ApolloServerPluginLandingPageDisabled()],
      });
      await apollo.start();

      const app = express();
      app.disable('x-powered-by');
      app.use(healthRouter({ checks: deps.readiness, isStopping: () => stopping }));
      app.use(deps.metrics.router);
      app.use(graphiqlRouter({ tokenHint: !config.production && config.jwt.secret !== undefined, embedded: deps.embedded }));
      if (deps.bus instanceof MemoryEventBus && !config.production) {
        app.use(devEventsRouter({ bus: deps.bus, verifier: deps.verifier, maxMessageBytes: config.amqp.maxMessageBytes, logger }));
      }
      app.use(
        graphqlHttpRouter({
          apollo,
          layer,
          verifier: deps.verifier,
          rateLimiter: deps.fanout.rateLimiter,
          bodyLimitBytes: config.graphql.bodyLimitBytes,
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
      await wsServer?.close(timeout);
      server?.closeIdleConnections();
      const forceTimer = setTimeout(() => server?.closeAllConnections(), timeout);
      await closing;
      clearTimeout(forceTimer);
      await apollo?.stop();
    },
  };
}
