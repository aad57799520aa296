/**
 * The only reader of `process.env`. `loadConfig()` validates every variable once, applies the
 * documented defaults and returns a frozen object; a bad value fails start-up naming the variable.
 * The README's configuration table mirrors the JSDoc here: keep them together.
 */
import { createPublicKey } from 'node:crypto';
import path from 'node:path';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface JwtConfig {
  /** `JWT_SECRET`: HS256 shared secret. @default a development secret outside production */
  readonly secret?: string;
  /** `JWT_PUBLIC_KEY`: PEM public key for RS256/ES256 tokens (takes precedence over the secret). */
  readonly publicKey?: string;
  /** `JWT_JWKS_URL`: JWKS endpoint for RS256/ES256 tokens (takes precedence over key and secret). */
  readonly jwksUrl?: string;
  /** `JWT_JWKS_CACHE_MS`: how long a fetched JWKS is used before it is fetched again. @default 600_000 */
  readonly jwksCacheMs: number;
  /**
   * `JWT_JWKS_COOLDOWN_MS`: a token with an unknown `kid` refetches the JWKS at most once per
   * this interval (so forged `kid`s cannot hammer the identity service). @default 30_000
   */
  readonly jwksCooldownMs: number;
  /** `JWT_ISSUER`: checked against `iss` when set. */
  readonly issuer?: string;
  /** `JWT_AUDIENCE`: checked against `aud` when set. */
  readonly audience?: string;
  /** `JWT_CLOCK_TOLERANCE_SEC`: leeway for `exp`/`nbf`. @default 5 */
  readonly clockToleranceSec: number;
  /** True when the secret is the built-in development one (never in production). */
  readonly usingDevelopmentSecret: boolean;
}

export interface Config {
  /** `NODE_ENV === 'production'`: refuses embedded defaults and the development secret. */
  readonly production: boolean;
  /** `PORT`. @default 4000 (0 picks a free port, as the tests do) */
  readonly port: number;
  /** `HOST`. @default '0.0.0.0' */
  readonly host: string;
  /** `LOG_LEVEL` (pino). @default 'info' */
  readonly logLevel: LogLevel;
  readonly database:
    | { readonly kind: 'postgres'; readonly url: string }
    /** No `DATABASE_URL`: embedded PostgreSQL (PGlite) in `DATA_DIR` (@default './.data'). */
    | { readonly kind: 'embedded'; readonly dataDir: string };
  readonly redis:
    | {
        readonly kind: 'redis';
        readonly url: string;
        /** `REDIS_TOPIC_PREFIX`: prefix of every pub/sub channel. @default 'cloudphone-realtime:' */
        readonly topicPrefix: string;
      }
    /** No `REDIS_URL`: in-process pub/sub (a single instance). */
    | { readonly kind: 'memory'; readonly topicPrefix: string };
  readonly amqp:
    | ({ readonly kind: 'amqp'; readonly url: string } & AmqpNames)
    /** No `AMQP_URL`: in-process event bus with the same routing, validation and dead-lettering. */
    | ({ readonly kind: 'memory' } & AmqpNames);
  readonly jwt: JwtConfig;
  readonly graphql: {
    /** `GRAPHQL_INTROSPECTION`. @default true outside production, false in production */
    readonly introspection: boolean;
    /** `HTTP_BODY_LIMIT_BYTES`: largest accepted HTTP request body. @default 1_048_576 */
    readonly bodyLimitBytes: number;
    /** `GRAPHQL_MAX_DEPTH`: deepest field nesting a document may have (HTTP and WebSocket; introspection's `ofType` chains do not count). @default 10 */
    readonly maxDepth: number;
    /** `GRAPHQL_MAX_COMPLEXITY`: most fields a document may select, fragments expanded. @default 1_000 */
    readonly maxComplexity: number;
    /** `GRAPHQL_MAX_TOKENS`: most lexical tokens a document may have (checked while parsing). @default 5_000 */
    readonly maxTokens: number;
    /** `HTTP_RATE_LIMIT_PER_SEC`: HTTP operations per second per user (token bucket refill); 0 disables. @default 20 */
    readonly rateLimitPerSec: number;
    /** `HTTP_RATE_LIMIT_BURST`: HTTP operations a user may send at once (bucket size). @default 40 */
    readonly rateLimitBurst: number;
  };
  readonly ws: {
    /** `WS_CONNECTION_INIT_TIMEOUT_MS`: time a socket has to send `connection_init`. @default 10_000 */
    readonly connectionInitTimeoutMs: number;
    /** `WS_MAX_PAYLOAD_BYTES`: largest accepted WebSocket message. @default 65_536 */
    readonly maxPayloadBytes: number;
    /** `WS_KEEPALIVE_MS`: ping interval that detects dead peers. @default 12_000 */
    readonly keepAliveMs: number;
    /** `WS_MAX_SUBSCRIPTIONS_PER_SOCKET`: live operations per socket. @default 25 */
    readonly maxSubscriptionsPerSocket: number;
    /** `WS_MAX_SOCKETS_PER_USER`: open sockets per user across all instances (close 1008 beyond). @default 10 */
    readonly maxSocketsPerUser: number;
    /**
     * `WS_SOCKET_LEASE_MS`: how long a socket's entry in the shared per-user count lives without
     * being refreshed (live sockets refresh it every third of it), so a crashed instance's
     * sockets stop counting. @default 60_000
     */
    readonly socketLeaseMs: number;
    /** `WS_MAX_BUFFERED_BYTES`: unsent bytes a socket may hold before it is closed with 1013. @default 1_048_576 */
    readonly maxBufferedBytes: number;
    /** `WS_SLOW_CLOSE_GRACE_MS`: after a 1013 close, how long the peer has to finish the handshake before the socket is destroyed. @default 5_000 */
    readonly slowCloseGraceMs: number;
  };
  readonly delivery: {
    /** `EVENT_BUFFER_MAX`: events waiting per subscription; beyond it the client is too slow (1013). @default 1_000 */
    readonly maxBuffered: number;
    /** `EVENT_COALESCE_MS`: state-like events of one entity within this window are coalesced to the latest; 0 disables. @default 100 */
    readonly coalesceMs: number;
  };
  /**
   * Retention of recent events for resuming subscriptions with `after` (a Redis stream per user,
   * or in memory without Redis). Memory: about (event JSON + eventId + ~60) bytes, ~300 for a
   * typical event, times the events retained: at most `maxEvents` per user who had events within
   * `maxAgeSec` (idle users' logs expire), plus `maxAllEvents` once.
   */
  readonly eventLog: {
    /**
     * `EVENT_LOG_MAX_EVENTS`: events kept per user, all four families together; 0 turns the log
     * off (every `after` is then `HISTORY_EXPIRED`). 500 covers a client away for a reconnect or
     * a deploy even during a burst (coalescing does not apply to the log), at ~150 KB for a user
     * that busy. @default 500
     */
    readonly maxEvents: number;
    /**
     * `EVENT_LOG_MAX_ALL`: events kept for administrators' every-user subscriptions (no
     * `userId`); 0: they cannot resume. ~3 MB at the default. @default 10_000
     */
    readonly maxAllEvents: number;
    /**
     * `EVENT_LOG_MAX_AGE_SEC`: oldest event kept, and how long after a user's last event the
     * user's log lives. An hour: past it, refetching state is cheaper than replaying. @default 3_600
     */
    readonly maxAgeSec: number;
  };
  readonly outbox: {
    /** `OUTBOX_POLL_MS`: how often the relay looks for unpublished rows. @default 1_000 */
    readonly pollMs: number;
    /** `OUTBOX_BATCH_SIZE`: rows published per relay pass. @default 100 */
    readonly batchSize: number;
    /**
     * `OUTBOX_RETENTION_DAYS`: how long published outbox rows, and the ids of events the read
     * model applied (its de-duplication), are kept; older ones are deleted hourly. A redelivery
     * older than this would be applied again, harmlessly: the read model orders by event time.
     * @default 7
     */
    readonly retentionDays: number;
  };
  /** `SHUTDOWN_TIMEOUT_MS`: longest a graceful stop waits for in-flight work. @default 10_000 */
  readonly shutdownTimeoutMs: number;
}

export interface AmqpNames {
  /** `AMQP_EXCHANGE`: topic exchange the platform publishes to. @default 'cloudphone.events' */
  readonly exchange: string;
  /** `AMQP_QUEUE`: durable queue shared by all instances. @default 'cloudphone-realtime.events' */
  readonly queue: string;
  /** `AMQP_DLX`: exchange dead letters are published to. @default 'cloudphone-realtime.dlx' */
  readonly deadLetterExchange: string;
  /** `AMQP_DLQ`: durable queue holding dead letters. @default 'cloudphone-realtime.dlq' */
  readonly deadLetterQueue: string;
  /** `AMQP_PREFETCH`: unacknowledged messages in flight per instance (per partition when partitioned). @default 100 */
  readonly prefetch: number;
  /**
   * `AMQP_PARTITIONS`: per-user partitions of the ingest. A router (one single-active-consumer
   * queue) republishes each event, keyed by its user, to a consistent-hash exchange feeding this
   * many single-active-consumer queues, so a user's events keep their order across instances
   * (docs/cluster.md). 0: the single shared queue of before, in order on one instance only. @default 16
   */
  readonly partitions: number;
  /** `EVENT_MAX_BYTES`: larger event bodies are dead-lettered unread. @default 262_144 */
  readonly maxMessageBytes: number;
  /**
   * `AMQP_REQUEUE_DELAY_MS`: how long a message that could not be published to the fan-out (Redis
   * or the read model down) is held before it goes back to the queue, so an outage does not spin
   * the same messages through the broker. @default 1_000
   */
  readonly requeueDelayMs: number;
  /**
   * `EVENT_OWNER_ATTEMPTS`: how many times an event that names only a device the read model does
   * not know yet is tried (`AMQP_REQUEUE_DELAY_MS` apart) before it is dead-lettered as
   * `unknown owner`: the device's own first event may still be on its way. @default 5
   */
  readonly ownerAttempts: number;
}

/** Used when `JWT_SECRET` is unset outside production; printed nowhere but the README. */
export const DEVELOPMENT_JWT_SECRET = 'cloudphone-realtime-development-secret';

type Env = Record<string, string | undefined>;

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function str(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function int(env: Env, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = str(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got "${raw}"`);
  }
  return value;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = str(env, name);
  if (raw === undefined) return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

function url(env: Env, name: string, protocols: readonly string[]): string | undefined {
  const raw = str(env, name);
  if (raw === undefined) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(`${name} is not a URL`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(`${name} must use ${protocols.join(' or ')}, got "${parsed.protocol}"`);
  }
  return raw;
}

/** Reads and validates the configuration once. Throws `ConfigError` naming the bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const production = env.NODE_ENV === 'production';

  const logLevel = (str(env, 'LOG_LEVEL') ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }

  const databaseUrl = url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']);
  const redisUrl = url(env, 'REDIS_URL', ['redis:', 'rediss:']);
  const amqpUrl = url(env, 'AMQP_URL', ['amqp:', 'amqps:']);

  const secret = str(env, 'JWT_SECRET');
  const publicKey = str(env, 'JWT_PUBLIC_KEY')?.replace(/\\n/g, '\n');
  if (publicKey) {
    try {
      createPublicKey(publicKey);
    } catch {
      throw new ConfigError('JWT_PUBLIC_KEY is not a PEM public key');
    }
  }
  const jwksUrl = url(env, 'JWT_JWKS_URL', ['https:', 'http:']);

  if (production) {
    const missing = [
      databaseUrl ? null : 'DATABASE_URL',
      redisUrl ? null : 'REDIS_URL',
      amqpUrl ? null : 'AMQP_URL',
      secret || publicKey || jwksUrl ? null : 'JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL',
    ].filter((name): name is string => name !== null);
    if (missing.length > 0) {
      throw new ConfigError(
        `NODE_ENV=production refuses the embedded defaults: set ${missing.join(', ')}`,
      );
    }
  }

  const names: AmqpNames = {
    exchange: str(env, 'AMQP_EXCHANGE') ?? 'cloudphone.events',
    queue: str(env, 'AMQP_QUEUE') ?? 'cloudphone-realtime.events',
    deadLetterExchange: str(env, 'AMQP_DLX') ?? 'cloudphone-realtime.dlx',
    deadLetterQueue: str(env, 'AMQP_DLQ') ?? 'cloudphone-realtime.dlq',
    prefetch: int(env, 'AMQP_PREFETCH', 100, 1, 65_535),
    partitions: int(env, 'AMQP_PARTITIONS', 16, 0, 1_024),
    requeueDelayMs: int(env, 'AMQP_REQUEUE_DELAY_MS', 1_000, 0, 60_000),
    ownerAttempts: int(env, 'EVENT_OWNER_ATTEMPTS', 5, 1, 100),
    maxMessageBytes: int(env, 'EVENT_MAX_BYTES', 262_144, 256),
  };
  const topicPrefix = str(env, 'REDIS_TOPIC_PREFIX') ?? 'cloudphone-realtime:';

  const config: Config = {
    production,
    port: int(env, 'PORT', 4000, 0, 65_535),
    host: str(env, 'HOST') ?? '0.0.0.0',
    logLevel,
    database: databaseUrl
      ? { kind: 'postgres', url: databaseUrl }
      : { kind: 'embedded', dataDir: path.resolve(str(env, 'DATA_DIR') ?? '.data') },
    redis: redisUrl ? { kind: 'redis', url: redisUrl, topicPrefix } : { kind: 'memory', topicPrefix },
    amqp: amqpUrl ? { kind: 'amqp', url: amqpUrl, ...names } : { kind: 'memory', ...names },
    jwt: {
      secret: publicKey || jwksUrl ? undefined : (secret ?? DEVELOPMENT_JWT_SECRET),
      publicKey: jwksUrl ? undefined : publicKey,
      jwksUrl,
      jwksCacheMs: int(env, 'JWT_JWKS_CACHE_MS', 600_000, 1_000),
      jwksCooldownMs: int(env, 'JWT_JWKS_COOLDOWN_MS', 30_000, 0),
      issuer: str(env, 'JWT_ISSUER'),
      audience: str(env, 'JWT_AUDIENCE'),
      clockToleranceSec: int(env, 'JWT_CLOCK_TOLERANCE_SEC', 5, 0, 300),
      usingDevelopmentSecret: !publicKey && !secret && !jwksUrl,
    },
    graphql: {
      introspection: bool(env, 'GRAPHQL_INTROSPECTION', !production),
      bodyLimitBytes: int(env, 'HTTP_BODY_LIMIT_BYTES', 1_048_576, 1_024),
      maxDepth: int(env, 'GRAPHQL_MAX_DEPTH', 10, 1, 1_000),
      maxComplexity: int(env, 'GRAPHQL_MAX_COMPLEXITY', 1_000, 1),
      maxTokens: int(env, 'GRAPHQL_MAX_TOKENS', 5_000, 100),
      rateLimitPerSec: int(env, 'HTTP_RATE_LIMIT_PER_SEC', 20, 0, 1_000_000),
      rateLimitBurst: int(env, 'HTTP_RATE_LIMIT_BURST', 40, 1, 1_000_000),
    },
    ws: {
      connectionInitTimeoutMs: int(env, 'WS_CONNECTION_INIT_TIMEOUT_MS', 10_000, 100),
      maxPayloadBytes: int(env, 'WS_MAX_PAYLOAD_BYTES', 65_536, 1_024),
      keepAliveMs: int(env, 'WS_KEEPALIVE_MS', 12_000, 0),
      maxSubscriptionsPerSocket: int(env, 'WS_MAX_SUBSCRIPTIONS_PER_SOCKET', 25, 1, 10_000),
      maxSocketsPerUser: int(env, 'WS_MAX_SOCKETS_PER_USER', 10, 1, 100_000),
      socketLeaseMs: int(env, 'WS_SOCKET_LEASE_MS', 60_000, 1_000),
      maxBufferedBytes: int(env, 'WS_MAX_BUFFERED_BYTES', 1_048_576, 1_024),
      slowCloseGraceMs: int(env, 'WS_SLOW_CLOSE_GRACE_MS', 5_000, 0),
    },
    delivery: {
      maxBuffered: int(env, 'EVENT_BUFFER_MAX', 1_000, 1),
      coalesceMs: int(env, 'EVENT_COALESCE_MS', 100, 0, 60_000),
    },
    eventLog: {
      maxEvents: int(env, 'EVENT_LOG_MAX_EVENTS', 500, 0, 100_000),
      maxAllEvents: int(env, 'EVENT_LOG_MAX_ALL', 10_000, 0, 1_000_000),
      maxAgeSec: int(env, 'EVENT_LOG_MAX_AGE_SEC', 3_600, 1, 604_800),
    },
    outbox: {
      pollMs: int(env, 'OUTBOX_POLL_MS', 1_000, 10),
      batchSize: int(env, 'OUTBOX_BATCH_SIZE', 100, 1, 10_000),
      retentionDays: int(env, 'OUTBOX_RETENTION_DAYS', 7, 1, 3_650),
    },
    shutdownTimeoutMs: int(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0),
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
