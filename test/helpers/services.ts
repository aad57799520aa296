/**
 * The shared services on this machine, and per-run isolation on them: every test file gets its
 * own database, queue names and topic prefix, so suites run in parallel and twice in a row.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { track } from './teardown';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const TEST_AMQP_URL = process.env.TEST_AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
export const TEST_JWT_SECRET = 'cloudphone-realtime-test-secret';

/** A name unique to this process and call, safe in SQL identifiers, queue names and topics. */
export function uniqueId(prefix = 'cpr'): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/**
 * This test file's own topic exchange (jest evaluates helpers once per file): gateways bind to it
 * and the platform peer publishes to it, so no suite's events reach another suite's queues and
 * counts stay exact while suites run in parallel. The production name, `cloudphone.events`, is
 * the default of `AMQP_EXCHANGE` and is covered by the config tests.
 */
export const TEST_EXCHANGE = uniqueId('cpr-test-x');

export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

/** Creates an empty database for one test file; `drop()` removes it even with open connections. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = uniqueId('cpr_test');
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  admin.on('error', () => undefined);
  try {
    await admin.connect();
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end().catch(() => undefined);
  }
  const tracked = track(`test database ${name}`, async () => {
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    } finally {
      await client.end().catch(() => undefined);
    }
  });
  return { name, url: withDatabase(TEST_DATABASE_URL, name), drop: () => tracked.close() };
}
