import { generateKeyPairSync } from 'node:crypto';
import path from 'node:path';
import { ConfigError, OPTIONS, loadConfig, readOptions, type ConfigOption } from '../../src/config';

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
    expect(config.jwt).toMatchObject({
      jwksUrl: 'https://id.example/.well-known/jwks.json',
      secret: undefined,
      publicKey: undefined,
      usingDevelopmentSecret: false,
    });
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

  it('takes LOG_FORMAT as logFormat, auto by default', () => {
    expect(loadConfig({}).logFormat).toBe('auto');
    expect(loadConfig({ LOG_FORMAT: 'pretty' }).logFormat).toBe('pretty');
    expect(loadConfig({ LOG_FORMAT: ' json ' }).logFormat).toBe('json');
    expect(() => loadConfig({ LOG_FORMAT: 'fancy' })).toThrow(new ConfigError('LOG_FORMAT must be one of auto, json, pretty, got "fancy"'));
  });

  it('treats a blank variable as unset and trims the others', () => {
    const config = loadConfig({ PORT: '  ', HOST: '', AMQP_QUEUE: '  q  ', LOG_LEVEL: ' debug ' });
    expect(config).toMatchObject({ port: 4000, host: '0.0.0.0', logLevel: 'debug', amqp: { queue: 'q' } });
    expect(loadConfig({ DATA_DIR: 'somewhere' }).database).toEqual({
      kind: 'embedded',
      dataDir: path.resolve('somewhere'),
    });
  });

  it('lets a derived default be overridden in either direction', () => {
    const services = { DATABASE_URL: 'postgres://x/y', REDIS_URL: 'redis://r', AMQP_URL: 'amqp://a', JWT_SECRET: 's' };
    expect(loadConfig({ NODE_ENV: 'production', ...services, GRAPHQL_INTROSPECTION: 'yes' }).graphql.introspection).toBe(true);
    expect(loadConfig({ GRAPHQL_INTROSPECTION: 'OFF' }).graphql.introspection).toBe(false);
    expect(readOptions({}).GRAPHQL_INTROSPECTION).toBe(true);
    expect(readOptions({ NODE_ENV: 'production' }).GRAPHQL_INTROSPECTION).toBe(false);
  });

  it('names only the production variables still missing', () => {
    expect(() => loadConfig({ NODE_ENV: 'production', REDIS_URL: 'redis://r', JWT_JWKS_URL: 'https://id/jwks' })).toThrow(
      new ConfigError('NODE_ENV=production refuses the embedded defaults: set DATABASE_URL, AMQP_URL'),
    );
  });

  it('accepts a one-line PEM public key with \\n escapes', () => {
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const config = loadConfig({ JWT_PUBLIC_KEY: pem.trim().replace(/\n/g, '\\n'), JWT_SECRET: 'ignored' });
    expect(config.jwt).toMatchObject({ publicKey: pem.trim(), secret: undefined, usingDevelopmentSecret: false });
  });

  it.each([
    [{ AMQP_URL: 'http://mq' }, 'AMQP_URL must use amqp: or amqps:, got "http:"'],
    [{ WS_KEEPALIVE_MS: '1.5' }, 'WS_KEEPALIVE_MS must be an integer between 0 and 9007199254740991, got "1.5"'],
    [{ AMQP_REQUEUE_DELAY_MS: '60001' }, 'AMQP_REQUEUE_DELAY_MS must be an integer between 0 and 60000, got "60001"'],
    [{ JWT_CLOCK_TOLERANCE_SEC: '301' }, 'JWT_CLOCK_TOLERANCE_SEC must be an integer between 0 and 300, got "301"'],
    [{ OUTBOX_RETENTION_DAYS: '0' }, 'OUTBOX_RETENTION_DAYS must be an integer between 1 and 3650, got "0"'],
  ])('says exactly what is wrong: %p', (env, message) => {
    expect(() => loadConfig(env)).toThrow(new ConfigError(message));
  });

  // A declaration that loadConfig forgets to map, or maps into the wrong place, shows up here:
  // setting any option (but NODE_ENV, which only matters as `production`) changes the config.
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const sampleUrls: Record<string, string> = {
    'postgres:': 'postgres://u@db/app',
    'redis:': 'redis://cache:6379',
    'amqp:': 'amqp://mq',
    'https:': 'https://id.example/jwks',
  };
  function sample(
    name: string,
    option: ConfigOption<string | number | boolean> & { min?: number; max?: number; protocols?: readonly string[] },
  ): string {
    switch (option.kind) {
      case 'int':
      case 'duration': {
        const fallback = option.default as number;
        return String(fallback + 1 <= (option.max ?? Number.MAX_SAFE_INTEGER) ? fallback + 1 : fallback - 1);
      }
      case 'bool':
        return String(!readOptions({})[name as keyof typeof OPTIONS]);
      case 'enum':
        return option.type
          .match(/`([^`]+)`/g)!
          .map((v) => v.slice(1, -1))
          .find((v) => v !== option.default)!;
      case 'url':
        return sampleUrls[option.protocols![0]!]!;
      case 'pem':
        return key;
      case 'string':
        return `${typeof option.default === 'string' ? option.default : 'set'}-changed`;
    }
  }
  const settable = (Object.entries(OPTIONS) as [string, ConfigOption<string | number | boolean>][]).filter(([name]) => name !== 'NODE_ENV');
  it.each(settable)('%s reaches the typed config', (name, option) => {
    const value = sample(name, option);
    expect(option.parse(value, name)).toBeDefined();
    expect(loadConfig({ [name]: value })).not.toEqual(loadConfig({}));
  });

  it.each(
    (Object.entries(OPTIONS) as [string, ConfigOption][]).flatMap(([name, option]) => {
      const bad = { int: '1.5x', duration: 'soon', bool: 'maybe', enum: 'nonsense', url: 'not a url', pem: 'not a key', string: null }[
        option.kind
      ];
      return bad === null ? [] : [[name, bad] as const];
    }),
  )('%s rejects %p naming itself', (name, bad) => {
    expect(() => loadConfig({ [name]: bad })).toThrow(new RegExp(`^${name} `));
  });
});
