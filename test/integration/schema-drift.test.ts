/**
 * prisma/migrations must produce exactly the database prisma/schema.prisma describes.
 *
 * Uses Prisma's schema engine (Wasm build) against a real PostgreSQL server: every migration is
 * applied to a fresh shadow database and the result is diffed against the datamodel, like
 * `prisma migrate diff --from-migrations prisma/migrations --to-schema prisma/schema.prisma`.
 * The helper creates and drops its own scratch databases on the server named by TEST_DATABASE_URL.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

import { Client } from 'pg';

import { createMigrationSql, repoRoot, schemaDrift } from '../helpers/schema-drift';

const databaseUrl = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const root = repoRoot();
const schemaPath = path.join(root, 'prisma', 'schema.prisma');
const migrationsDir = path.join(root, 'prisma', 'migrations');

jest.setTimeout(60_000);

let tmp: string;
const scratchDatabases: string[] = [];
const onScratchDatabase = (name: string): void => {
  scratchDatabases.push(name);
};

beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'schema-drift-test-'));
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('schema drift between prisma/migrations and prisma/schema.prisma', () => {
  it('reports no drift: the migrations build exactly the schema', async () => {
    const drift = await schemaDrift({ databaseUrl, onScratchDatabase });
    expect(drift).toBe('');
  });

  it('needs no new migration', async () => {
    expect(await createMigrationSql({ databaseUrl, onScratchDatabase })).toBe('');
  });

  it('reports drift when the schema has a column no migration creates', async () => {
    const modified = readFileSync(schemaPath, 'utf8').replace(/(model OutboxEvent \{\n)/, '$1  note        String?\n');
    expect(modified).toContain('note        String?');
    const modifiedSchemaPath = path.join(tmp, 'schema.prisma');
    writeFileSync(modifiedSchemaPath, modified);

    const drift = await schemaDrift({
      databaseUrl,
      schemaPath: modifiedSchemaPath,
      migrationsDir,
      onScratchDatabase,
    });
    expect(drift).not.toBe('');
    expect(drift).toContain('ALTER TABLE "outbox_event" ADD COLUMN     "note" TEXT;');

    const summary = await schemaDrift({
      databaseUrl,
      schemaPath: modifiedSchemaPath,
      migrationsDir,
      format: 'summary',
      onScratchDatabase,
    });
    expect(summary).toMatch(/Changed the `outbox_event` table/);
    expect(summary).toMatch(/Added column `note`/);
  });

  it('reports drift when a migration lacks an index the schema declares', async () => {
    const copy = path.join(tmp, 'migrations-without-index');
    cpSync(migrationsDir, copy, { recursive: true });
    const initSql = path.join(copy, '20261124000000_init', 'migration.sql');
    const original = readFileSync(initSql, 'utf8');
    const withoutIndex = original.replace(/^CREATE INDEX "outbox_event_unpublished_idx".*\n/m, '');
    expect(withoutIndex).not.toBe(original);
    writeFileSync(initSql, withoutIndex);

    const drift = await schemaDrift({
      databaseUrl,
      schemaPath,
      migrationsDir: copy,
      onScratchDatabase,
    });
    expect(drift).toContain('CREATE INDEX "outbox_event_unpublished_idx" ON "outbox_event"("published_at", "created_at");');
  });
});

// Checked last (jest runs a file's tests in order), over every scratch database the tests above made.
it('drops every scratch database it created', async () => {
  // Each schemaDrift call makes a shadow database; createMigrationSql one; five calls above.
  expect(scratchDatabases).toHaveLength(new Set(scratchDatabases).size);
  expect(scratchDatabases.length).toBeGreaterThanOrEqual(5);
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname = ANY($1::text[])', [
      scratchDatabases,
    ]);
    expect(rows.map((r) => r.datname)).toEqual([]);
  } finally {
    await client.end();
  }
});
