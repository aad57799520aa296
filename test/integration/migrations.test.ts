/** The offline migration runner: applies prisma/migrations once, records them as Prisma does. */
import { cp, mkdtemp, readdir, rm, appendFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { applyMigrations, MIGRATIONS_DIR, readMigrations, type MigrationConnection } from '../../src/infra/db/migrate';
import { createTestDatabase, type TestDatabase } from '../helpers/services';

let database: TestDatabase;
let client: pg.Client;
let connection: MigrationConnection;

beforeAll(async () => {
  database = await createTestDatabase();
  client = new pg.Client({ connectionString: database.url });
  await client.connect();
  connection = { query: (sql, params) => client.query(sql, params) as never, exec: (sql) => client.query(sql) };
});

afterAll(async () => {
  await client?.end();
  await database?.drop();
});

it('applies every committed migration once, recording name and checksum like prisma migrate', async () => {
  const migrations = await readMigrations();
  expect(migrations.length).toBeGreaterThan(0);
  expect(await applyMigrations(connection)).toEqual(migrations.map((m) => m.name));
  expect(await applyMigrations(connection)).toEqual([]);

  const { rows } = await client.query<{ migration_name: string; checksum: string; finished_at: Date | null; applied_steps_count: number }>(
    'SELECT migration_name, checksum, finished_at, applied_steps_count FROM "_prisma_migrations" ORDER BY migration_name',
  );
  expect(rows.map((r) => [r.migration_name, r.checksum, r.applied_steps_count])).toEqual(migrations.map((m) => [m.name, m.checksum, 1]));
  expect(rows.every((r) => r.finished_at instanceof Date)).toBe(true);
  const tables = await client.query<{ table_name: string }>(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
  );
  expect(tables.rows.map((r) => r.table_name)).toEqual([
    '_prisma_migrations',
    'app_installation',
    'billing_order',
    'device',
    'event_log',
    'order_status_change',
    'outbox_event',
    'processed_event',
    'quota',
  ]);
});

it('refuses to run when an applied migration was edited afterwards', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cpr-migrations-'));
  try {
    await cp(MIGRATIONS_DIR, dir, { recursive: true });
    const [first] = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory());
    await appendFile(path.join(dir, first!.name, 'migration.sql'), '\n-- edited\n');
    await expect(applyMigrations(connection, dir)).rejects.toThrow(/was modified after it was applied/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
