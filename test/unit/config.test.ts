import { ConfigError, loadConfig } from '../../src/config';

describe('loadConfig', () => {
  it('runs on embedded defaults with no environment', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      production: false,
      port: 4000,
      host: '0.0.0.0',
      logLevel: 'info',
      database: { kind: 'embedded' },
      redis: { kind: 'memory', topicPrefix: 'cloudphone-realtime:' },
      amqp: {
        kind: 'memory',
        exchange: 'cloudphone.events',
        queue: 'cloudphone-realtime.events',
        deadLetterQueue: 'cloudphone-realtime.dlq',
      },
      jwt: { usingDevelopmentSecret: true },
      graphql: { introspection: true },
    });
    expect(Object.isFrozen(config.amqp)).toBe(true);
  });

  it('switches each part to its real service when its variable is set', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgresql://u@db:5432/app',
      REDIS_URL: 'redis://cache:6379',
      AMQP_URL: 'amqp://mq',
      AMQP_QUEUE: 'q',
    });
    expect(config.database).toEqual({ kind: 'postgres', url: 'postgresql://u@db:5432/app' });
    expect(config.redis.kind).toBe('redis');
    expect(config.amqp).toMatchObject({ kind: 'amqp', url: 'amqp://mq', queue: 'q' });
  });

  it('refuses production on embedded defaults, naming every missing variable', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(
      new ConfigError(
        'NODE_ENV=production refuses the embedded defaults: set DATABASE_URL, REDIS_URL, AMQP_URL, JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL',
      ),
    );
    expect(() =>
      loadConfig({ NODE_ENV: 'production', DATABASE_URL: 'postgres://x/y', REDIS_URL: 'redis://r', AMQP_URL: 'amqp://a' }),
    ).toThrow(/set JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL$/);
    const config = loadConfig({
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://x/y',
      REDIS_URL: 'redis://r',
      AMQP_URL: 'amqp://a',
      JWT_SECRET: 's',
    });
    expect(config.graphql.introspection).toBe(false);
  });

  it.each([
    [{ PORT: 'eighty' }, /PORT must be an integer/],
    [{ PORT: '70000' }, /PORT must be an integer between 0 and 65535/],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL must use postgres: or postgresql:/],
    [{ REDIS_URL: 'not a url' }, /REDIS_URL is not a URL/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL must be one of/],
    [{ GRAPHQL_INTROSPECTION: 'maybe' }, /GRAPHQL_INTROSPECTION must be true or false/],
    [{ JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\\nnot a key\\n-----END PUBLIC KEY-----' }, /JWT_PUBLIC_KEY is not a PEM public key/],
  ])('names the bad variable: %p', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('documents the protection limits with their defaults', () => {
    const config = loadConfig({});
    expect(config.graphql).toMatchObject({ maxDepth: 10, maxComplexity: 1_000, maxTokens: 5_000, rateLimitPerSec: 20, rateLimitBurst: 40 });
    expect(config.ws).toMatchObject({
      maxSubscriptionsPerSocket: 25,
      maxSocketsPerUser: 10,
      socketLeaseMs: 60_000,
      maxBufferedBytes: 1_048_576,
      slowCloseGraceMs: 5_000,
    });
    expect(config.delivery).toEqual({ maxBuffered: 1_000, coalesceMs: 100 });
    expect(config.eventLog).toEqual({ maxEvents: 500, maxAllEvents: 10_000, maxAgeSec: 3_600 });
    expect(config.jwt).toMatchObject({ jwksCacheMs: 600_000, jwksCooldownMs: 30_000 });
  });

  it('takes a JWKS URL in place of a key or secret, also in production', () => {
    const config = loadConfig({
      NODE_ENV: 'production',
      DATABASE_URL: 'postgres://x/y',
      REDIS_URL: 'redis://r',
      AMQP_URL: 'amqp://a',
      JWT_JWKS_URL: 'https://id.example/.well-known/jwks.json',
      JWT_SECRET: 'ignored',
    });
    expect(config.jwt).toMatchObject({ jwksUrl: 'https://id.example/.well-known/jwks.json', secret: undefined, publicKey: undefined, usingDevelopmentSecret: false });
  });

  it.each([
    [{ JWT_JWKS_URL: 'ftp://id.example/jwks' }, /JWT_JWKS_URL must use https: or http:/],
    [{ WS_MAX_SOCKETS_PER_USER: '0' }, /WS_MAX_SOCKETS_PER_USER must be an integer between 1/],
    [{ EVENT_COALESCE_MS: '-1' }, /EVENT_COALESCE_MS must be an integer/],
    [{ HTTP_RATE_LIMIT_BURST: 'many' }, /HTTP_RATE_LIMIT_BURST must be an integer/],
    [{ GRAPHQL_MAX_DEPTH: '0' }, /GRAPHQL_MAX_DEPTH must be an integer between 1/],
    [{ EVENT_LOG_MAX_EVENTS: '-5' }, /EVENT_LOG_MAX_EVENTS must be an integer between 0/],
    [{ EVENT_LOG_MAX_ALL: 'lots' }, /EVENT_LOG_MAX_ALL must be an integer/],
    [{ EVENT_LOG_MAX_AGE_SEC: '0' }, /EVENT_LOG_MAX_AGE_SEC must be an integer between 1/],
  ])('names the bad limit: %p', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });
});
