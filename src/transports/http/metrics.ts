/**
 * `GET /metrics`: Prometheus text format through prom-client. Each app instance owns a fresh
 * `Registry` (never prom-client's global one), so several instances in one process, as the tests
 * run them, each report their own figures.
 *
 * Most figures already live in the app as plain numbers (`app.stats()`, the bridge's counters, the
 * buses' reconnect counts); they are read at scrape time. Counters read that way advance by the
 * difference since the previous scrape, so they stay monotonic. Deliveries to clients are counted
 * as they happen, with the end-to-end latency from the event's `occurredAt` to the moment it is
 * handed to the client's socket.
 */
import express, { type Router } from 'express';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

const PREFIX = 'cloudphone_realtime_';
/** Longest a scrape waits for the outbox count before reporting the previous value. */
const BACKLOG_QUERY_TIMEOUT_MS = 1_000;

export interface MetricsSources {
  /** Open sockets, live subscriptions per field, and the bridge's counters (`consumed` + outcomes). */
  stats(): {
    readonly sockets: number;
    readonly subscriptions: Readonly<Record<string, number>>;
    readonly bridge: Readonly<Record<string, number>>;
    readonly outboxPublished: number;
    /** State-like events replaced by a newer one before delivery; overflowed subscription buffers. */
    readonly coalesced: number;
    readonly overflowed: number;
    /** Socket limits hit: 1013 slow-consumer closes, 1008 closes, refused operations. */
    readonly ws: Readonly<{ slowConsumerCloses: number; socketLimitCloses: number; tooManySubscriptions: number }>;
    /** Connections by transport (ws, multipart, sse), renewals and revocations. */
    readonly sessions?: Readonly<{
      revocations: number;
      renewals: number;
      renewalsRefused: number;
      transports: Readonly<
        Record<string, Readonly<{ open: number; opened: number; slowConsumer: number; expired: number; revoked: number }>>
      >;
    }>;
  };
  /** Unpublished outbox rows; undefined before the database is open. */
  outboxBacklog(): Promise<number> | undefined;
  redisReconnects(): number;
  amqpReconnects(): number;
}

export interface GatewayMetrics {
  readonly registry: Registry;
  readonly router: Router;
  /** One event handed to one subscriber's socket (`field` is the subscription field); callable detached. */
  eventDelivered(this: void, field: string, event: { readonly occurredAt: string }): void;
}

/** `deadLettered` -> `dead_lettered`. */
const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

export function createMetrics(sources: MetricsSources, logger: Logger): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  /**
   * A counter whose value is owned elsewhere (a plain number in the app): each scrape advances it
   * by what the number grew since the previous scrape. `read` returns label value -> total ('' when
   * the counter has no label).
   */
  const mirrored = (name: string, help: string, label: string | undefined, read: () => Readonly<Record<string, number>>) => {
    const last = new Map<string, number>();
    return new Counter({
      name: `${PREFIX}${name}`,
      help,
      labelNames: label ? [label] : [],
      registers: [registry],
      collect() {
        for (const [value, total] of Object.entries(read())) {
          const previous = last.get(value);
          const delta = total - (previous ?? 0);
          // A label seen for the first time is reported even at 0, so rates start from a sample.
          if (delta <= 0 && previous !== undefined) continue;
          last.set(value, Math.max(total, previous ?? 0));
          if (label) this.inc({ [label]: value }, Math.max(0, delta));
          else this.inc(Math.max(0, delta));
        }
      },
    });
  };

  new Gauge({
    name: `${PREFIX}websocket_connections`,
    help: 'Open GraphQL WebSocket connections.',
    registers: [registry],
    collect() {
      this.set(sources.stats().sockets);
    },
  });

  new Gauge({
    name: `${PREFIX}subscriptions`,
    help: 'Active GraphQL subscriptions, by subscription field.',
    labelNames: ['field'],
    registers: [registry],
    collect() {
      for (const [field, n] of Object.entries(sources.stats().subscriptions)) this.set({ field }, n);
    },
  });

  mirrored('events_consumed_total', 'Platform messages taken from the event bus by the bridge.', undefined, () => ({
    '': sources.stats().bridge.consumed ?? 0,
  }));
  // Every other bridge counter is an outcome; one the bridge adds later appears here by itself.
  mirrored(
    'events_processed_total',
    'Platform messages by what the bridge did with them: bridged (published to the fan-out), dead_lettered, ignored (no subscription takes the routing key), requeued (fan-out down, retried).',
    'outcome',
    () =>
      Object.fromEntries(
        Object.entries(sources.stats().bridge)
          .filter(([name]) => name !== 'consumed')
          .map(([name, value]) => [snake(name), value]),
      ),
  );

  // Deliveries are the hot path (one per event and subscriber): they are recorded as plain numbers
  // per field (`DeliveryRecorder`) and handed to prom-client only when scraped.
  const deliveries = new Map<string, DeliveryRecorder>();
  mirrored('events_delivered_total', 'Events sent to subscribers (one per subscriber), by subscription field.', 'field', () =>
    Object.fromEntries([...deliveries].map(([field, recorder]) => [field, recorder.count])),
  );
  registry.registerMetric(
    deliveryLatencyMetric(
      `${PREFIX}event_delivery_latency_seconds`,
      "End-to-end latency from the event's occurredAt to its delivery to a subscriber, by subscription field.",
      deliveries,
    ) as unknown as Parameters<Registry['registerMetric']>[0],
  );
  /** Each event's occurredAt in milliseconds, parsed once however many subscribers receive it. */
  const occurredAt = new WeakMap<object, number>();
  /** The last delivery's event and field, and what was looked up for them. */
  const last: { event: object | undefined; field: string | undefined; recorder: DeliveryRecorder | undefined; at: number } = {
    event: undefined,
    field: undefined,
    recorder: undefined,
    at: Number.NaN,
  };

  let backlog = 0;
  new Gauge({
    name: `${PREFIX}outbox_backlog`,
    help: 'Outbox rows written by mutations and not yet published to the event bus.',
    registers: [registry],
    async collect() {
      const counting = sources.outboxBacklog();
      if (counting) {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), BACKLOG_QUERY_TIMEOUT_MS);
        });
        try {
          // A slow or absent database must not stall the scrape: report the previous value.
          const n = await Promise.race([counting, timeout]);
          if (n !== undefined) backlog = n;
        } catch (error) {
          logger.debug({ err: error }, 'metrics: outbox backlog query failed');
        } finally {
          clearTimeout(timer);
        }
      }
      this.set(backlog);
    },
  });

  mirrored('outbox_published_total', 'Outbox rows this instance published to the event bus.', undefined, () => ({
    '': sources.stats().outboxPublished,
  }));
  mirrored(
    'redis_reconnects_total',
    'Times a Redis connection (publisher or subscriber) became ready again after it was lost.',
    undefined,
    () => ({ '': sources.redisReconnects() }),
  );
  mirrored(
    'amqp_reconnects_total',
    'Times the RabbitMQ connection was re-established (topology declared, consuming again).',
    undefined,
    () => ({ '': sources.amqpReconnects() }),
  );

  mirrored(
    'events_coalesced_total',
    'State-like events replaced by a newer one of the same entity before delivery (storm protection).',
    undefined,
    () => ({
      '': sources.stats().coalesced,
    }),
  );
  mirrored(
    'subscription_buffer_overflows_total',
    'Subscriptions whose event buffer overflowed (EVENT_BUFFER_MAX): the client was too slow.',
    undefined,
    () => ({
      '': sources.stats().overflowed,
    }),
  );
  mirrored(
    'ws_limit_hits_total',
    'WebSocket limits hit, by limit: slow_consumer (1013), sockets_per_user (1008), subscriptions_per_socket (TOO_MANY_SUBSCRIPTIONS).',
    'limit',
    () => {
      const ws = sources.stats().ws;
      return {
        slow_consumer: ws.slowConsumerCloses,
        sockets_per_user: ws.socketLimitCloses,
        subscriptions_per_socket: ws.tooManySubscriptions,
      };
    },
  );

  new Gauge({
    name: `${PREFIX}connections`,
    help: 'Open authenticated connections, by transport: ws (graphql-transport-ws), multipart (HTTP multipart subscriptions), sse (GraphQL over SSE).',
    labelNames: ['transport'],
    registers: [registry],
    collect() {
      for (const [transport, counts] of Object.entries(sources.stats().sessions?.transports ?? {})) this.set({ transport }, counts.open);
    },
  });
  mirrored('connections_opened_total', 'Authenticated connections opened, by transport.', 'transport', () =>
    Object.fromEntries(Object.entries(sources.stats().sessions?.transports ?? {}).map(([transport, counts]) => [transport, counts.opened])),
  );
  // One labelled counter per reason, so a dashboard can stack transports.
  for (const [reason, key] of [
    ['slow_consumer', 'slowConsumer'],
    ['expired', 'expired'],
    ['revoked', 'revoked'],
  ] as const) {
    mirrored(
      `connections_ended_${reason}_total`,
      `Connections the gateway ended (${reason.replace('_', ' ')}), by transport.`,
      'transport',
      () =>
        Object.fromEntries(
          Object.entries(sources.stats().sessions?.transports ?? {}).map(([transport, counts]) => [transport, counts[key]]),
        ),
    );
  }
  mirrored(
    'session_revocations_total',
    "Revocations of a user's sessions this instance heard (revokeSessions, user/auth.sessions.revoked, from any instance).",
    undefined,
    () => ({
      '': sources.stats().sessions?.revocations ?? 0,
    }),
  );
  mirrored('session_renewals_total', 'In-band token renewals (renewSession), by outcome: renewed, refused (FORBIDDEN).', 'outcome', () => ({
    renewed: sources.stats().sessions?.renewals ?? 0,
    refused: sources.stats().sessions?.renewalsRefused ?? 0,
  }));

  const router = express.Router();
  router.get('/metrics', async (_req, res) => {
    try {
      const body = await registry.metrics();
      res.set('content-type', registry.contentType).send(body);
    } catch (error) {
      logger.warn({ err: error }, 'metrics scrape failed');
      res.status(500).type('text/plain').send('metrics collection failed\n');
    }
  });

  return {
    registry,
    router,
    eventDelivered(field, event) {
      // One event reaches its subscribers one after another: the lookups are done once for them.
      if (event !== last.event || field !== last.field) {
        let recorder = deliveries.get(field);
        if (!recorder) {
          recorder = new DeliveryRecorder();
          deliveries.set(field, recorder);
        }
        let at = occurredAt.get(event);
        if (at === undefined) {
          at = Date.parse(event.occurredAt);
          occurredAt.set(event, at);
        }
        last.event = event;
        last.field = field;
        last.recorder = recorder;
        last.at = at;
      }
      const { at } = last;
      last.recorder!.record(Number.isFinite(at) ? Math.max(0, (Date.now() - at) / 1000) : undefined);
    },
  };
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] as const;

/** One field's deliveries: a count and a latency histogram, in plain numbers. */
class DeliveryRecorder {
  count = 0;
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  readonly buckets: number[] = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  sum = 0;
  observed = 0;

  record(latencySeconds: number | undefined): void {
    this.count++;
    if (latencySeconds === undefined) return;
    let i = 0;
    while (i < LATENCY_BUCKETS.length && latencySeconds > LATENCY_BUCKETS[i]!) i++;
    this.buckets[i]!++;
    this.sum += latencySeconds;
    this.observed++;
  }
}

/**
 * The latency histogram as a prom-client metric read from the recorders at scrape time (the
 * exposition prom-client's own Histogram produces: cumulative `_bucket{le}`, `_sum`, `_count`).
 */
function deliveryLatencyMetric(name: string, help: string, recorders: ReadonlyMap<string, DeliveryRecorder>) {
  return {
    name,
    help,
    type: 'histogram',
    get() {
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
      for (const [field, recorder] of recorders) {
        let cumulative = 0;
        LATENCY_BUCKETS.forEach((le, i) => {
          cumulative += recorder.buckets[i]!;
          values.push({ labels: { le, field }, value: cumulative, metricName: `${name}_bucket` });
        });
        values.push({ labels: { le: '+Inf', field }, value: recorder.observed, metricName: `${name}_bucket` });
        values.push({ labels: { field }, value: recorder.sum, metricName: `${name}_sum` });
        values.push({ labels: { field }, value: recorder.observed, metricName: `${name}_count` });
      }
      return { name, help, type: 'histogram', values, aggregator: 'sum' };
    },
    reset() {
      // Cumulative since start, like every counter here.
    },
  };
}
