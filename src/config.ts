/**
 * The only reader of `process.env`. Every option is declared once, in `OPTIONS` below: its name,
 * type and range, default, group, mode and one-sentence description. Parsing and validation
 * (`readOptions`), the typed `Config` the rest of the code uses (`loadConfig`) and the
 * configuration tables in README.md and docs/configuration.md (`npm run docs:config`, checked by
 * test/unit/config-docs.test.ts) all come from those declarations, so they cannot drift.
 *
 * Adding an option (e.g. the ingest partitions):
 *
 *   1. declare it in `OPTIONS`, in its group:
 *
 *        AMQP_PARTITIONS: int({
 *          group: 'RabbitMQ', mode: 'services', default: 1, min: 1, max: 256,
 *          doc: 'Per-user partitions of the ingest, one single-active-consumer queue each.',
 *        }),
 *
 *      (`default: derived('<what the docs say>', (o) => ...)` for a default computed from other
 *      options; `whenUnset: '<what happens>'` instead of a default for an optional one, whose
 *      value is then `T | undefined`);
 *   2. add the field to `Config` (or to `AmqpNames`, ... in contracts/options.ts) and map it in `loadConfig`
 *      (`partitions: o.AMQP_PARTITIONS`);
 *   3. run `npm run docs:config` and commit the regenerated tables.
 */
import { createPublicKey } from 'node:crypto';
import path from 'node:path';
import type { AmqpNames, DatabaseTarget, JwtOptions } from './contracts/options';
import { isRedisClusterUrl, parseRedisClusterUrl } from './lib/redis-url';

/** A bad or missing value; the message names the variable and what it must be. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

// ---------------------------------------------------------------- declaring options

/** Where an option appears in docs/configuration.md, in this order. */
export const CONFIG_GROUPS = [
  'Server',
  'Database',
  'Redis',
  'RabbitMQ',
  'Ingest',
  'Authentication',
  'GraphQL limits',
  'WebSocket',
  'Delivery',
  'Retained log',
  'Outbox',
] as const;

/** One of `CONFIG_GROUPS`. */
export type ConfigGroup = (typeof CONFIG_GROUPS)[number];

/**
 * Which way of running the option matters to: `embedded` (the defaults, no outside services),
 * `services` (with `DATABASE_URL`/`REDIS_URL`/`AMQP_URL` set), or `both`.
 */
export type ConfigMode = 'embedded' | 'services' | 'both';

/** The values a derived default may look at: every option that is not itself derived. */
export type BaseValues = Readonly<Record<string, string | number | boolean | undefined>>;

/** A default computed from other options; `describe` is what the docs show for it. */
export interface DerivedDefault<T> {
  readonly describe: string;
  readonly derive: (options: BaseValues) => T;
}

/** Declares a default that depends on other (non-derived) options, e.g. on `NODE_ENV`. */
export function derived<T>(describe: string, derive: (options: BaseValues) => T): DerivedDefault<T> {
  return { describe, derive };
}

/** What every declaration states besides its type. Exactly one of `default` and `whenUnset`. */
export interface OptionDeclaration<T> {
  readonly group: ConfigGroup;
  readonly mode: ConfigMode;
  /** One sentence, shown in both tables. */
  readonly doc: string;
  /** Named in docs/configuration.md: operators rely on the name, never rename it. */
  readonly contract?: true;
  /**
   * `NODE_ENV=production` refuses to start while this is unset; options sharing a label are
   * alternatives (any one of them will do) and the refusal names the label.
   */
  readonly requiredInProduction?: string;
  readonly default?: T | DerivedDefault<T>;
  /** For an option without a default: what happens when it is unset (its value is undefined). */
  readonly whenUnset?: string;
}

/** A declared option: its declaration plus a human type description and a parser. */
export interface ConfigOption<T = unknown, HasDefault extends boolean = boolean> extends Omit<OptionDeclaration<T>, 'default'> {
  readonly kind: 'int' | 'duration' | 'bool' | 'string' | 'enum' | 'url' | 'pem';
  /** Type and range as the full docs table shows it, e.g. "integer, 0–65535". */
  readonly type: string;
  readonly default: HasDefault extends true ? T | DerivedDefault<T> : undefined;
  /** Turns a non-empty, trimmed value into the option's value; throws `ConfigError`. */
  readonly parse: (raw: string, name: string) => T;
}

type HasDefault<S> = S extends { default: unknown } ? true : false;

function declare<T, S extends OptionDeclaration<T>>(
  spec: S,
  kind: ConfigOption['kind'],
  type: string,
  parse: (raw: string, name: string) => T,
): ConfigOption<T, HasDefault<S>> {
  if ((spec.default === undefined) === (spec.whenUnset === undefined)) {
    throw new Error(`config option "${spec.doc}": declare exactly one of default and whenUnset`);
  }
  return Object.freeze({ ...spec, kind, type, parse }) as unknown as ConfigOption<T, HasDefault<S>>;
}

interface Range {
  readonly min: number;
  /** @default Number.MAX_SAFE_INTEGER */
  readonly max?: number;
}

function rangeText({ min, max }: Range): string {
  return max === undefined ? `≥ ${min}` : `${min}–${max}`;
}

function parseInteger(raw: string, name: string, { min, max = Number.MAX_SAFE_INTEGER }: Range): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got "${raw}"`);
  }
  return value;
}

/** An integer within `min`..`max`. */
export function int<const S extends OptionDeclaration<number> & Range>(spec: S) {
  return declare<number, S>(spec, 'int', `integer, ${rangeText(spec)}`, (raw, name) => parseInteger(raw, name, spec));
}

/** A duration, as an integer number of `unit`s (the unit is in the variable's name). */
export function duration<const S extends OptionDeclaration<number> & Range & { unit: 'ms' | 's' | 'days' }>(spec: S) {
  return declare<number, S>(spec, 'duration', `duration (${spec.unit}), ${rangeText(spec)}`, (raw, name) => parseInteger(raw, name, spec));
}

/** `true`/`false`, also `1`/`0`, `yes`/`no`, `on`/`off`, any case. */
export function bool<const S extends OptionDeclaration<boolean>>(spec: S) {
  return declare<boolean, S>(spec, 'bool', 'boolean', (raw, name) => {
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    throw new ConfigError(`${name} must be true or false, got "${raw}"`);
  });
}

/** Any non-empty string (surrounding blanks trimmed). */
export function string<const S extends OptionDeclaration<string>>(spec: S) {
  return declare<string, S>(spec, 'string', 'string', (raw) => raw);
}

/** One of `values`, exactly. */
export function oneOf<const V extends readonly [string, ...string[]], const S extends OptionDeclaration<V[number]>>(values: V, spec: S) {
  return declare<V[number], S>(spec, 'enum', `one of ${values.map((v) => `\`${v}\``).join(', ')}`, (raw, name) => {
    if (!(values as readonly string[]).includes(raw)) {
      throw new ConfigError(`${name} must be one of ${values.join(', ')}, got "${raw}"`);
    }
    return raw;
  });
}

/** An absolute URL whose scheme is one of `protocols` (each with its colon, e.g. `redis:`). */
export function url<const S extends OptionDeclaration<string> & { protocols: readonly string[] }>(spec: S) {
  return declare<string, S>(spec, 'url', `URL (${spec.protocols.map((p) => `\`${p}\``).join(', ')})`, (raw, name) => {
    let parsed: URL;
    try {
      parsed = new URL(raw);
    } catch {
      throw new ConfigError(`${name} is not a URL`);
    }
    if (!spec.protocols.includes(parsed.protocol)) {
      throw new ConfigError(`${name} must use ${spec.protocols.join(' or ')}, got "${parsed.protocol}"`);
    }
    return raw;
  });
}

/**
 * `url` for Redis, or a Redis Cluster's seed list `redis+cluster://host:port,host:port,...`
 * (`rediss+cluster://` for TLS), which no URL parser takes (several authorities): lib/redis-url.ts.
 */
export function redisUrl<const S extends OptionDeclaration<string>>(spec: S) {
  const single = url({ ...spec, protocols: ['redis:', 'rediss:'] });
  // `protocols` as `url` options carry them (the single-server ones first: tests sample `redis:`).
  const declared = { ...spec, protocols: ['redis:', 'rediss:', 'redis+cluster:', 'rediss+cluster:'] } as S;
  return declare<string, S>(
    declared,
    'url',
    'URL (`redis:`, `rediss:`) or cluster seed list (`redis+cluster://host:port,...`)',
    (raw, name) => {
      if (!isRedisClusterUrl(raw)) return single.parse(raw, name);
      try {
        parseRedisClusterUrl(raw);
      } catch (error) {
        throw new ConfigError(`${name}: ${(error as Error).message}`);
      }
      return raw;
    },
  );
}

/** A PEM public key; literal `\n` escapes become newlines (one-line environment files). */
export function pem<const S extends OptionDeclaration<string>>(spec: S) {
  return declare<string, S>(spec, 'pem', 'PEM public key (`\\n` escapes accepted)', (raw, name) => {
    const key = raw.replace(/\\n/g, '\n');
    try {
      createPublicKey(key);
    } catch {
      throw new ConfigError(`${name} is not a PEM public key`);
    }
    return key;
  });
}

// ---------------------------------------------------------------- the options

/** pino's levels, `silent` included. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** `LOG_LEVEL`'s values. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** `LOG_FORMAT`'s values: `auto` is pretty on a terminal outside production, JSON otherwise. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
/** `LOG_FORMAT`'s values. */
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Used when `JWT_SECRET` is unset outside production; printed nowhere but the README. */
export const DEVELOPMENT_JWT_SECRET = 'cloudphone-realtime-development-secret';

const PRODUCTION_JWT = 'JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL';

/**
 * Every option, keyed by its environment variable, in the order the README lists them: the
 * contract's variables first (docs/configuration.md, in its order; the names are fixed), then the rest
 * by group.
 */
export const OPTIONS = {
  // ------------------------------------------------ the contract's variables
  PORT: int({
    group: 'Server',
    mode: 'both',
    contract: true,
    default: 4000,
    min: 0,
    max: 65_535,
    doc: 'TCP port to listen on; 0 picks a free port (as the tests do).',
  }),
  HOST: string({
    group: 'Server',
    mode: 'both',
    contract: true,
    default: '0.0.0.0',
    doc: 'Address to listen on.',
  }),
  DATABASE_URL: url({
    group: 'Database',
    mode: 'services',
    contract: true,
    protocols: ['postgres:', 'postgresql:'],
    requiredInProduction: 'DATABASE_URL',
    whenUnset: 'embedded PostgreSQL (PGlite) in `DATA_DIR`',
    doc: 'PostgreSQL URL (Prisma, `@prisma/adapter-pg`).',
  }),
  REDIS_URL: redisUrl({
    group: 'Redis',
    mode: 'services',
    contract: true,
    requiredInProduction: 'REDIS_URL',
    whenUnset: 'in-process pub/sub (one instance)',
    doc: 'Redis for pub/sub fan-out, per-user socket counts and rate limits across instances; a Redis Cluster as `redis+cluster://host:port,host:port,...` (a few seed nodes; fan-out then uses sharded pub/sub, docs/decisions/0301-redis-cluster.md).',
  }),
  AMQP_URL: url({
    group: 'RabbitMQ',
    mode: 'services',
    contract: true,
    protocols: ['amqp:', 'amqps:'],
    requiredInProduction: 'AMQP_URL',
    whenUnset: 'in-process event bus (no broker)',
    doc: 'RabbitMQ the platform publishes its events to.',
  }),
  AMQP_EXCHANGE: string({
    group: 'RabbitMQ',
    mode: 'services',
    contract: true,
    default: 'cloudphone.events',
    doc: 'Topic exchange the platform publishes to.',
  }),
  AMQP_QUEUE: string({
    group: 'RabbitMQ',
    mode: 'services',
    contract: true,
    default: 'cloudphone-realtime.events',
    doc: 'Name (prefix) of the ingest queues: `<name>.router`, `<name>.p<i>` and their exchange `<name>.partitions`; with `AMQP_PARTITIONS=0`, the one queue all instances share.',
  }),
  AMQP_PARTITIONS: int({
    group: 'RabbitMQ',
    mode: 'services',
    default: 16,
    min: 0,
    max: 1_024,
    contract: true,
    doc: "Per-user partitions of the ingest (a router queue, a consistent-hash exchange, one single-active-consumer queue each), so a user's events keep their order across instances (docs/cluster.md); 0: one shared queue, in order only on one instance.",
  }),
  JWT_SECRET: string({
    group: 'Authentication',
    mode: 'both',
    contract: true,
    requiredInProduction: PRODUCTION_JWT,
    whenUnset: 'a development secret outside production',
    doc: 'HS256 shared secret.',
  }),
  JWT_PUBLIC_KEY: pem({
    group: 'Authentication',
    mode: 'both',
    contract: true,
    requiredInProduction: PRODUCTION_JWT,
    whenUnset: 'unset',
    doc: 'PEM public key for RS256/ES256 tokens; replaces the secret.',
  }),
  JWT_JWKS_URL: url({
    group: 'Authentication',
    mode: 'both',
    contract: true,
    protocols: ['https:', 'http:'],
    requiredInProduction: PRODUCTION_JWT,
    whenUnset: 'unset',
    doc: 'JWKS endpoint for RS256/ES256 tokens, keys picked by `kid`; replaces key and secret.',
  }),
  JWT_ISSUER: string({
    group: 'Authentication',
    mode: 'both',
    contract: true,
    whenUnset: 'unset (not checked)',
    doc: "Checked against the token's `iss` when set.",
  }),
  JWT_AUDIENCE: string({
    group: 'Authentication',
    mode: 'both',
    contract: true,
    whenUnset: 'unset (not checked)',
    doc: "Checked against the token's `aud` when set.",
  }),
  LOG_LEVEL: oneOf(LOG_LEVELS, {
    group: 'Server',
    mode: 'both',
    contract: true,
    default: 'info',
    doc: 'pino log level.',
  }),

  // ------------------------------------------------ Server
  NODE_ENV: string({
    group: 'Server',
    mode: 'both',
    whenUnset: 'unset (development)',
    doc: '`production` refuses embedded defaults and the development JWT secret, naming what is missing, disables introspection by default and masks unexpected error messages.',
  }),
  LOG_FORMAT: oneOf(LOG_FORMATS, {
    group: 'Server',
    mode: 'both',
    default: 'auto',
    doc: 'Log lines as JSON, or as coloured text for people; `auto` is pretty when stdout is a terminal outside production and JSON otherwise.',
  }),
  NO_COLOR: string({
    group: 'Server',
    mode: 'both',
    whenUnset: 'colours in readable log lines on a terminal',
    doc: 'Any non-empty value: readable log lines without ANSI colours (https://no-color.org).',
  }),
  SHUTDOWN_TIMEOUT_MS: duration({
    group: 'Server',
    mode: 'both',
    unit: 'ms',
    default: 10_000,
    min: 0,
    doc: 'Longest a graceful stop waits for sockets and in-flight work.',
  }),

  // ------------------------------------------------ Database
  DATA_DIR: string({
    group: 'Database',
    mode: 'embedded',
    default: './.data',
    doc: 'Where the embedded database lives (resolved against the working directory).',
  }),

  // ------------------------------------------------ Redis
  REDIS_TOPIC_PREFIX: string({
    group: 'Redis',
    mode: 'both',
    default: 'cloudphone-realtime:',
    doc: "Prefix of every pub/sub channel and Redis key the gateway uses; no `{` or `}` (on a Redis Cluster the user id is the keys' hash tag).",
  }),

  // ------------------------------------------------ RabbitMQ
  AMQP_DLX: string({
    group: 'RabbitMQ',
    mode: 'services',
    default: 'cloudphone-realtime.dlx',
    doc: 'Exchange dead letters are published to.',
  }),
  AMQP_DLQ: string({
    group: 'RabbitMQ',
    mode: 'services',
    default: 'cloudphone-realtime.dlq',
    doc: 'Durable queue holding dead letters, each with its `x-rejection-reason`.',
  }),
  AMQP_PREFETCH: int({
    group: 'RabbitMQ',
    mode: 'services',
    default: 100,
    min: 1,
    max: 65_535,
    doc: 'Unacknowledged messages in flight per instance (per partition queue when partitioned).',
  }),
  // Held rather than nacked at once so an outage does not spin the same messages through the broker.
  AMQP_REQUEUE_DELAY_MS: duration({
    group: 'RabbitMQ',
    mode: 'services',
    unit: 'ms',
    default: 1_000,
    min: 0,
    max: 60_000,
    doc: 'How long a message that could not reach the fan-out (Redis or the read model down) is held before it returns to the queue.',
  }),

  // ------------------------------------------------ Ingest
  EVENT_MAX_BYTES: int({
    group: 'Ingest',
    mode: 'both',
    default: 262_144,
    min: 256,
    doc: 'Larger event bodies are dead-lettered unread.',
  }),
  // The device's own first event may still be on its way when an event naming only the device arrives.
  EVENT_OWNER_ATTEMPTS: int({
    group: 'Ingest',
    mode: 'both',
    default: 5,
    min: 1,
    max: 100,
    doc: 'How many times an event naming only a device the read model does not know yet is tried (`AMQP_REQUEUE_DELAY_MS` apart) before it is dead-lettered as `unknown owner`.',
  }),

  // ------------------------------------------------ Authentication
  JWT_JWKS_CACHE_MS: duration({
    group: 'Authentication',
    mode: 'both',
    unit: 'ms',
    default: 600_000,
    min: 1_000,
    doc: 'How long a fetched JWKS is used before it is fetched again.',
  }),
  // So forged `kid`s cannot hammer the identity service.
  JWT_JWKS_COOLDOWN_MS: duration({
    group: 'Authentication',
    mode: 'both',
    unit: 'ms',
    default: 30_000,
    min: 0,
    doc: 'A token with an unknown `kid` refetches the JWKS at most once per this interval.',
  }),
  JWT_CLOCK_TOLERANCE_SEC: duration({
    group: 'Authentication',
    mode: 'both',
    unit: 's',
    default: 5,
    min: 0,
    max: 300,
    doc: 'Leeway on `exp` and `nbf`.',
  }),

  // ------------------------------------------------ GraphQL limits
  GRAPHQL_INTROSPECTION: bool({
    group: 'GraphQL limits',
    mode: 'both',
    default: derived('`true` outside production, `false` in production', (o) => o.NODE_ENV !== 'production'),
    doc: 'Allow introspection queries.',
  }),
  HTTP_BODY_LIMIT_BYTES: int({
    group: 'GraphQL limits',
    mode: 'both',
    default: 1_048_576,
    min: 1_024,
    doc: 'Largest HTTP request body (413 beyond).',
  }),
  HTTP_RATE_LIMIT_PER_SEC: int({
    group: 'GraphQL limits',
    mode: 'both',
    default: 20,
    min: 0,
    max: 1_000_000,
    doc: 'HTTP operations per second per user (token-bucket refill; per client address without a token); 0 disables.',
  }),
  HTTP_RATE_LIMIT_BURST: int({
    group: 'GraphQL limits',
    mode: 'both',
    default: 40,
    min: 1,
    max: 1_000_000,
    doc: 'HTTP operations a user may send at once (bucket size); beyond: 429 `RATE_LIMITED` with `Retry-After`.',
  }),
  GRAPHQL_MAX_DEPTH: int({
    group: 'GraphQL limits',
    mode: 'both',
    default: 10,
    min: 1,
    max: 1_000,
    doc: "Deepest field nesting of a document, HTTP and WebSocket (introspection's `ofType` chains do not count).",
  }),
  GRAPHQL_MAX_COMPLEXITY: int({
    group: 'GraphQL limits',
    mode: 'both',
    default: 1_000,
    min: 1,
    doc: 'Most fields a document selects, fragments expanded and aliases counted.',
  }),
  GRAPHQL_MAX_TOKENS: int({
    group: 'GraphQL limits',
    mode: 'both',
    default: 5_000,
    min: 100,
    doc: 'Most lexical tokens of a document (the parser stops there).',
  }),

  // ------------------------------------------------ WebSocket
  WS_CONNECTION_INIT_TIMEOUT_MS: duration({
    group: 'WebSocket',
    mode: 'both',
    unit: 'ms',
    default: 10_000,
    min: 100,
    doc: 'Time a socket has to send `connection_init`.',
  }),
  WS_MAX_PAYLOAD_BYTES: int({
    group: 'WebSocket',
    mode: 'both',
    default: 65_536,
    min: 1_024,
    doc: 'Largest WebSocket message accepted (closed with 1009 beyond).',
  }),
  WS_KEEPALIVE_MS: duration({
    group: 'WebSocket',
    mode: 'both',
    unit: 'ms',
    default: 12_000,
    min: 0,
    doc: 'Ping interval that detects dead peers; 0 disables.',
  }),
  WS_MAX_SUBSCRIPTIONS_PER_SOCKET: int({
    group: 'WebSocket',
    mode: 'both',
    default: 25,
    min: 1,
    max: 10_000,
    doc: 'Live operations per socket; one more is refused with `TOO_MANY_SUBSCRIPTIONS`.',
  }),
  WS_MAX_SOCKETS_PER_USER: int({
    group: 'WebSocket',
    mode: 'both',
    default: 10,
    min: 1,
    max: 100_000,
    doc: 'Open sockets per user across all instances; one more is closed with 1008.',
  }),
  // Live sockets refresh their entry every third of the lease, so only a crashed instance's expire.
  WS_SOCKET_LEASE_MS: duration({
    group: 'WebSocket',
    mode: 'services',
    unit: 'ms',
    default: 60_000,
    min: 1_000,
    doc: "How long a socket counts toward its user's total in Redis without being refreshed, so a crashed instance's sockets stop counting.",
  }),
  WS_MAX_BUFFERED_BYTES: int({
    group: 'WebSocket',
    mode: 'both',
    default: 1_048_576,
    min: 1_024,
    doc: 'Unsent bytes a socket may hold before it is closed with 1013.',
  }),
  WS_SLOW_CLOSE_GRACE_MS: duration({
    group: 'WebSocket',
    mode: 'both',
    unit: 'ms',
    default: 5_000,
    min: 0,
    doc: 'After a 1013 close, how long the peer has to complete the close handshake before the socket is destroyed.',
  }),

  // ------------------------------------------------ Delivery
  EVENT_BUFFER_MAX: int({
    group: 'Delivery',
    mode: 'both',
    default: 1_000,
    min: 1,
    doc: 'Events waiting per subscription; one more and the client is too slow (1013).',
  }),
  EVENT_COALESCE_MS: duration({
    group: 'Delivery',
    mode: 'both',
    unit: 'ms',
    default: 100,
    min: 0,
    max: 60_000,
    doc: 'State-like events of one entity within this window are coalesced to the latest; 0 disables.',
  }),

  // ------------------------------------------------ Retained log
  // Memory: about (event JSON + eventId + ~60) bytes, ~300 for a typical event, times the events
  // retained: at most EVENT_LOG_MAX_EVENTS per user who had events within EVENT_LOG_MAX_AGE_SEC
  // (idle users' logs expire), plus EVENT_LOG_MAX_ALL once. 500 covers a client away for a
  // reconnect or a deploy even during a burst (coalescing does not apply to the log), at ~150 KB
  // for a user that busy.
  EVENT_LOG_MAX_EVENTS: int({
    group: 'Retained log',
    mode: 'both',
    default: 500,
    min: 0,
    max: 100_000,
    doc: 'Events retained per user (all families together) for resuming with `after`; 0 turns the log off (every `after` is then `HISTORY_EXPIRED`).',
  }),
  // ~3 MB at the default.
  EVENT_LOG_MAX_ALL: int({
    group: 'Retained log',
    mode: 'both',
    default: 10_000,
    min: 0,
    max: 1_000_000,
    doc: "Events retained for administrators' every-user subscriptions (no `userId`); 0: those cannot resume.",
  }),
  // An hour: past it, refetching state is cheaper than replaying.
  EVENT_LOG_MAX_AGE_SEC: duration({
    group: 'Retained log',
    mode: 'both',
    unit: 's',
    default: 3_600,
    min: 1,
    max: 604_800,
    doc: "Oldest retained event, and how long a user's log outlives the user's last event.",
  }),

  // ------------------------------------------------ Outbox
  OUTBOX_POLL_MS: duration({
    group: 'Outbox',
    mode: 'both',
    unit: 'ms',
    default: 1_000,
    min: 10,
    doc: 'How often the outbox relay looks for unpublished rows (it also runs right after each mutation).',
  }),
  OUTBOX_BATCH_SIZE: int({
    group: 'Outbox',
    mode: 'both',
    default: 100,
    min: 1,
    max: 10_000,
    doc: 'Outbox rows published per relay pass.',
  }),
  // A redelivery older than this would be applied again, harmlessly: the read model orders by event time.
  OUTBOX_RETENTION_DAYS: duration({
    group: 'Outbox',
    mode: 'both',
    unit: 'days',
    default: 7,
    min: 1,
    max: 3_650,
    doc: 'How long published outbox rows and the ids of events the read model applied are kept (deleted hourly past it; unpublished rows never).',
  }),
} as const satisfies Record<string, ConfigOption>;

/** An option's environment variable. */
export type OptionName = keyof typeof OPTIONS;

type ValueOf<O> = O extends ConfigOption<infer T, infer D> ? (D extends true ? T : T | undefined) : never;

/** Every option's parsed value (or default), keyed by its variable. */
export type ConfigValues = { readonly [K in OptionName]: ValueOf<(typeof OPTIONS)[K]> };

// ---------------------------------------------------------------- reading

type Env = Record<string, string | undefined>;

/** Whether a declared default is computed from other options (see `derived`). */
export function isDerivedDefault(value: unknown): value is DerivedDefault<unknown> {
  return typeof value === 'object' && value !== null && 'derive' in value;
}

/**
 * Parses every declared option from `env`: blank counts as unset; an unset option takes its
 * default, derived defaults after all the others. Throws `ConfigError` on the first bad value.
 */
export function readOptions(env: Env = process.env): ConfigValues {
  const values: Record<string, string | number | boolean | undefined> = {};
  const later: [string, DerivedDefault<unknown>][] = [];
  for (const [name, option] of Object.entries(OPTIONS) as [string, ConfigOption<string | number | boolean>][]) {
    const raw = env[name]?.trim();
    if (raw) values[name] = option.parse(raw, name);
    else if (isDerivedDefault(option.default)) later.push([name, option.default]);
    else values[name] = option.default;
  }
  const base: BaseValues = { ...values };
  for (const [name, fallback] of later) values[name] = fallback.derive(base) as string | number | boolean;
  return values as ConfigValues;
}

/** The labels of production-required options none of whose alternatives is set, in order. */
function missingInProduction(values: ConfigValues): string[] {
  const satisfied = new Map<string, boolean>();
  for (const [name, option] of Object.entries(OPTIONS) as [OptionName, ConfigOption][]) {
    const label = option.requiredInProduction;
    if (label) satisfied.set(label, (satisfied.get(label) ?? false) || values[name] !== undefined);
  }
  return [...satisfied].filter(([, ok]) => !ok).map(([label]) => label);
}

// ---------------------------------------------------------------- the typed configuration

/** How tokens are verified: `JWT_*` (the type lives in contracts/, where auth/ can see it). */
export type JwtConfig = JwtOptions;

export type { AmqpNames, DatabaseTarget, JwtOptions };

/**
 * The validated, frozen configuration. Each field names its variable; its type, range, default
 * and meaning are in that variable's declaration in `OPTIONS`.
 */
export interface Config {
  /** `NODE_ENV === 'production'`: refuses embedded defaults and the development secret. */
  readonly production: boolean;
  /** `PORT`. */
  readonly port: number;
  /** `HOST`. */
  readonly host: string;
  /** `LOG_LEVEL`. */
  readonly logLevel: LogLevel;
  /** `LOG_FORMAT`: `auto` is resolved by the logger, which knows whether stdout is a terminal. */
  readonly logFormat: LogFormat;
  /** `NO_COLOR` set: readable log lines without colours. */
  readonly noColor: boolean;
  /** `DATABASE_URL`, or the embedded PostgreSQL in `DATA_DIR`. */
  readonly database: DatabaseTarget;
  readonly redis:
    /** `REDIS_URL` set; `topicPrefix` is `REDIS_TOPIC_PREFIX`. */
    | { readonly kind: 'redis'; readonly url: string; readonly topicPrefix: string }
    /** No `REDIS_URL`: in-process pub/sub (a single instance). */
    | { readonly kind: 'memory'; readonly topicPrefix: string };
  readonly amqp:
    /** `AMQP_URL` set. */
    | ({ readonly kind: 'amqp'; readonly url: string } & AmqpNames)
    /** No `AMQP_URL`: in-process event bus with the same routing, validation and dead-lettering. */
    | ({ readonly kind: 'memory' } & AmqpNames);
  readonly jwt: JwtOptions;
  readonly graphql: {
    /** `GRAPHQL_INTROSPECTION`. */
    readonly introspection: boolean;
    /** `HTTP_BODY_LIMIT_BYTES`. */
    readonly bodyLimitBytes: number;
    /** `GRAPHQL_MAX_DEPTH`. */
    readonly maxDepth: number;
    /** `GRAPHQL_MAX_COMPLEXITY`. */
    readonly maxComplexity: number;
    /** `GRAPHQL_MAX_TOKENS`. */
    readonly maxTokens: number;
    /** `HTTP_RATE_LIMIT_PER_SEC`. */
    readonly rateLimitPerSec: number;
    /** `HTTP_RATE_LIMIT_BURST`. */
    readonly rateLimitBurst: number;
  };
  readonly ws: {
    /** `WS_CONNECTION_INIT_TIMEOUT_MS`. */
    readonly connectionInitTimeoutMs: number;
    /** `WS_MAX_PAYLOAD_BYTES`. */
    readonly maxPayloadBytes: number;
    /** `WS_KEEPALIVE_MS`. */
    readonly keepAliveMs: number;
    /** `WS_MAX_SUBSCRIPTIONS_PER_SOCKET`. */
    readonly maxSubscriptionsPerSocket: number;
    /** `WS_MAX_SOCKETS_PER_USER`. */
    readonly maxSocketsPerUser: number;
    /** `WS_SOCKET_LEASE_MS`. */
    readonly socketLeaseMs: number;
    /** `WS_MAX_BUFFERED_BYTES`. */
    readonly maxBufferedBytes: number;
    /** `WS_SLOW_CLOSE_GRACE_MS`. */
    readonly slowCloseGraceMs: number;
  };
  readonly delivery: {
    /** `EVENT_BUFFER_MAX`. */
    readonly maxBuffered: number;
    /** `EVENT_COALESCE_MS`. */
    readonly coalesceMs: number;
  };
  /** Retention of recent events for resuming with `after` (a Redis stream per user, or in memory). */
  readonly eventLog: {
    /** `EVENT_LOG_MAX_EVENTS`. */
    readonly maxEvents: number;
    /** `EVENT_LOG_MAX_ALL`. */
    readonly maxAllEvents: number;
    /** `EVENT_LOG_MAX_AGE_SEC`. */
    readonly maxAgeSec: number;
  };
  readonly outbox: {
    /** `OUTBOX_POLL_MS`. */
    readonly pollMs: number;
    /** `OUTBOX_BATCH_SIZE`. */
    readonly batchSize: number;
    /** `OUTBOX_RETENTION_DAYS`. */
    readonly retentionDays: number;
  };
  /** `SHUTDOWN_TIMEOUT_MS`. */
  readonly shutdownTimeoutMs: number;
}

/** Reads and validates the configuration once. Throws `ConfigError` naming the bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const o = readOptions(env);
  const production = o.NODE_ENV === 'production';

  if (production) {
    const missing = missingInProduction(o);
    if (missing.length > 0) {
      throw new ConfigError(`NODE_ENV=production refuses the embedded defaults: set ${missing.join(', ')}`);
    }
  }

  const names: AmqpNames = {
    exchange: o.AMQP_EXCHANGE,
    queue: o.AMQP_QUEUE,
    deadLetterExchange: o.AMQP_DLX,
    deadLetterQueue: o.AMQP_DLQ,
    prefetch: o.AMQP_PREFETCH,
    partitions: o.AMQP_PARTITIONS,
    requeueDelayMs: o.AMQP_REQUEUE_DELAY_MS,
    ownerAttempts: o.EVENT_OWNER_ATTEMPTS,
    maxMessageBytes: o.EVENT_MAX_BYTES,
  };
  const topicPrefix = o.REDIS_TOPIC_PREFIX;
  // Keys carry the user id as their Redis Cluster hash tag; a brace in the prefix would replace it.
  if (/[{}]/.test(topicPrefix)) throw new ConfigError('REDIS_TOPIC_PREFIX must not contain "{" or "}"');
  // A JWKS URL replaces a key, a key replaces the secret; only with none of them does the
  // development secret apply (production refused that above).
  const { JWT_SECRET: secret, JWT_PUBLIC_KEY: publicKey, JWT_JWKS_URL: jwksUrl } = o;

  const config: Config = {
    production,
    port: o.PORT,
    host: o.HOST,
    logLevel: o.LOG_LEVEL,
    logFormat: o.LOG_FORMAT,
    noColor: o.NO_COLOR !== undefined,
    database: o.DATABASE_URL ? { kind: 'postgres', url: o.DATABASE_URL } : { kind: 'embedded', dataDir: path.resolve(o.DATA_DIR) },
    redis: o.REDIS_URL ? { kind: 'redis', url: o.REDIS_URL, topicPrefix } : { kind: 'memory', topicPrefix },
    amqp: o.AMQP_URL ? { kind: 'amqp', url: o.AMQP_URL, ...names } : { kind: 'memory', ...names },
    jwt: {
      secret: publicKey || jwksUrl ? undefined : (secret ?? DEVELOPMENT_JWT_SECRET),
      publicKey: jwksUrl ? undefined : publicKey,
      jwksUrl,
      jwksCacheMs: o.JWT_JWKS_CACHE_MS,
      jwksCooldownMs: o.JWT_JWKS_COOLDOWN_MS,
      issuer: o.JWT_ISSUER,
      audience: o.JWT_AUDIENCE,
      clockToleranceSec: o.JWT_CLOCK_TOLERANCE_SEC,
      usingDevelopmentSecret: !publicKey && !secret && !jwksUrl,
    },
    graphql: {
      introspection: o.GRAPHQL_INTROSPECTION,
      bodyLimitBytes: o.HTTP_BODY_LIMIT_BYTES,
      maxDepth: o.GRAPHQL_MAX_DEPTH,
      maxComplexity: o.GRAPHQL_MAX_COMPLEXITY,
      maxTokens: o.GRAPHQL_MAX_TOKENS,
      rateLimitPerSec: o.HTTP_RATE_LIMIT_PER_SEC,
      rateLimitBurst: o.HTTP_RATE_LIMIT_BURST,
    },
    ws: {
      connectionInitTimeoutMs: o.WS_CONNECTION_INIT_TIMEOUT_MS,
      maxPayloadBytes: o.WS_MAX_PAYLOAD_BYTES,
      keepAliveMs: o.WS_KEEPALIVE_MS,
      maxSubscriptionsPerSocket: o.WS_MAX_SUBSCRIPTIONS_PER_SOCKET,
      maxSocketsPerUser: o.WS_MAX_SOCKETS_PER_USER,
      socketLeaseMs: o.WS_SOCKET_LEASE_MS,
      maxBufferedBytes: o.WS_MAX_BUFFERED_BYTES,
      slowCloseGraceMs: o.WS_SLOW_CLOSE_GRACE_MS,
    },
    delivery: {
      maxBuffered: o.EVENT_BUFFER_MAX,
      coalesceMs: o.EVENT_COALESCE_MS,
    },
    eventLog: {
      maxEvents: o.EVENT_LOG_MAX_EVENTS,
      maxAllEvents: o.EVENT_LOG_MAX_ALL,
      maxAgeSec: o.EVENT_LOG_MAX_AGE_SEC,
    },
    outbox: {
      pollMs: o.OUTBOX_POLL_MS,
      batchSize: o.OUTBOX_BATCH_SIZE,
      retentionDays: o.OUTBOX_RETENTION_DAYS,
    },
    shutdownTimeoutMs: o.SHUTDOWN_TIMEOUT_MS,
  };
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
