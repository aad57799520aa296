/**
 * The raw SQL executor (src/infra/db/sql-executor.ts) on real PostgreSQL and on PGlite: rows with
 * exactly the values `$queryRaw` gives for the same statement (the read model's payloads must not
 * change by a byte), transactions that commit, roll back on a throw, commit with their last
 * statement (pipelined on PostgreSQL) and commit nothing when that statement fails; and a
 * database that cannot be used surfaces as `SqlUnavailableError`.
 */
import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { SqlUnavailableError, type SqlStatement } from '../../src/contracts/ports';
import { openDatabase, type Database } from '../../src/infra/db/database';
import { executorPool, pgSqlExecutor } from '../../src/infra/db/sql-executor';
import { createTestDatabase, uniqueId, type TestDatabase } from '../helpers/services';

const silent = pino({ level: 'silent' });

/** Every type the read model's statements return, NULLs among them, as one row. */
const TYPES: SqlStatement = {
  text: `SELECT $1::text AS tbl, NULL::text AS none, '2026-11-24T12:01:02.345Z'::timestamptz(3) AS at,
      NULL::timestamptz(3) AS no_at, 7::int AS version, NULL::int AS no_version, true AS ins, false AS not_ins,
      $2::jsonb AS row, NULL::jsonb AS no_row,
      jsonb_build_object('created_at', '2026-11-24T12:01:02.345Z'::timestamptz(3), 'memory_gb', 0.1::float8 + 0.2::float8,
        'amount', 59.90::numeric(14, 2)::text, 'big', 2147483647, 'name', 'é ✓ "quoted"', 'empty', '', 'n', NULL) AS built`,
  values: ['device', JSON.stringify({ id: 'd1', nested: { list: [1, 2.5, 'three', null, true] }, at: '2026-11-24T12:01:02.345+00:00' })],
};

describe.each(['postgres', 'embedded'] as const)('on %s', (kind) => {
  let testDb: TestDatabase | undefined;
  let dataDir: string | undefined;
  let db: Database;

  beforeAll(async () => {
    if (kind === 'postgres') {
      testDb = await createTestDatabase();
      db = await openDatabase({ kind, url: testDb.url }, silent);
    } else {
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'cpr-sql-executor-'));
      db = await openDatabase({ kind, dataDir: path.join(dataDir, 'db') }, silent);
    }
    await db.sql.query({ text: 'CREATE TABLE probe (id text PRIMARY KEY, n int NOT NULL)', values: [] });
  }, 120_000);

  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  const count = async (id: string) =>
    (await db.sql.query<{ n: number }>({ text: 'SELECT count(*)::int AS n FROM probe WHERE id LIKE $1', values: [`${id}%`] }))[0]!.n;

  it('returns the values $queryRaw returns, in autocommit and in a transaction', async () => {
    const prisma = await db.prisma.$queryRawUnsafe<unknown[]>(TYPES.text, ...TYPES.values);
    const autocommit = await db.sql.query(TYPES);
    const inTransaction = await db.sql.transaction((session) => session.query(TYPES, { commit: true }));
    expect(autocommit).toStrictEqual(prisma);
    expect(inTransaction).toStrictEqual(prisma);
    const [row] = autocommit;
    expect(row!.at).toEqual(new Date('2026-11-24T12:01:02.345Z'));
    expect(row!.version).toBe(7);
    expect(row!.built).toEqual({
      created_at: '2026-11-24T12:01:02.345+00:00',
      memory_gb: 0.30000000000000004,
      amount: '59.90',
      big: 2147483647,
      name: 'é ✓ "quoted"',
      empty: '',
      n: null,
    });
    // The same bytes once serialized, as the payloads pushed to clients are.
    expect(JSON.stringify(autocommit)).toBe(JSON.stringify(prisma));
  });

  it('commits a transaction, with its last statement or after it', async () => {
    const id = uniqueId('c');
    await db.sql.transaction(async (session) => {
      await session.query({ text: 'INSERT INTO probe (id, n) VALUES ($1, 1)', values: [`${id}-a`] });
      await session.query({ text: 'INSERT INTO probe (id, n) VALUES ($1, 2)', values: [`${id}-b`] }, { commit: true });
    });
    await db.sql.transaction(async (session) => {
      await session.query({ text: 'INSERT INTO probe (id, n) VALUES ($1, 3)', values: [`${id}-c`] });
    });
    expect(await count(id)).toBe(3);
  });

  it('rolls back what a transaction did when its work throws, and when its committing statement fails', async () => {
    const id = uniqueId('r');
    await expect(
      db.sql.transaction(async (session) => {
        await session.query({ text: 'INSERT INTO probe (id, n) VALUES ($1, 1)', values: [`${id}-a`] });
        throw new Error('work failed');
      }),
    ).rejects.toThrow('work failed');
    // The committing statement violates the primary key: COMMIT (sent with it) finds the transaction aborted.
    const failure = await db.sql
      .transaction(async (session) => {
        await session.query({ text: 'INSERT INTO probe (id, n) VALUES ($1, 1)', values: [`${id}-b`] });
        await session.query({ text: 'INSERT INTO probe (id, n) VALUES ($1, 2), ($1, 3)', values: [`${id}-c`] }, { commit: true });
      })
      .catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: '23505' });
    expect(failure).not.toBeInstanceOf(SqlUnavailableError);
    // A statement that fails before the last one: the rest is never committed either.
    await expect(
      db.sql.transaction(async (session) => {
        await session.query({ text: 'INSERT INTO probe (id, n) VALUES ($1, 1)', values: [`${id}-d`] });
        await session.query({ text: 'INSERT INTO probe (id, n) VALUES ($1, $2)', values: [`${id}-e`, 2 ** 40] });
      }),
    ).rejects.toMatchObject({ code: '22003' });
    expect(await count(id)).toBe(0);
    // The connections are usable afterwards (none left inside an aborted transaction).
    for (let i = 0; i < 4; i++) {
      await db.sql.transaction((session) => session.query({ text: 'INSERT INTO probe (id, n) VALUES ($1, 1)', values: [`${id}-ok${i}`] }));
    }
    expect(await count(`${id}-ok`)).toBe(4);
  });

  it('refuses a statement after the committing one', async () => {
    const id = uniqueId('a');
    await expect(
      db.sql.transaction(async (session) => {
        await session.query({ text: 'INSERT INTO probe (id, n) VALUES ($1, 1)', values: [`${id}-a`] }, { commit: true });
        await session.query({ text: 'INSERT INTO probe (id, n) VALUES ($1, 1)', values: [`${id}-b`] });
      }),
    ).rejects.toThrow(/after the one that committed/);
    // PostgreSQL committed with that statement; PGlite commits after the work, so it rolled back.
    expect(await count(id)).toBe(kind === 'postgres' ? 1 : 0);
  });
});

describe('a PostgreSQL that cannot be used', () => {
  it('is SqlUnavailableError: refused connections, a pool already ended', async () => {
    const pool = executorPool('postgresql://postgres@127.0.0.1:1/none', () => undefined);
    const refused = pgSqlExecutor(pool);
    await expect(refused.query({ text: 'SELECT 1', values: [] })).rejects.toBeInstanceOf(SqlUnavailableError);
    await expect(refused.transaction(async () => undefined)).rejects.toBeInstanceOf(SqlUnavailableError);
    await pool.end();
    await expect(refused.query({ text: 'SELECT 1', values: [] })).rejects.toBeInstanceOf(SqlUnavailableError);
  });

  it('is SqlUnavailableError when the server ends the connection inside a transaction (57P01), and the next transaction works', async () => {
    const testDb = await createTestDatabase();
    const pool = executorPool(testDb.url, () => undefined);
    const admin = new pg.Client({ connectionString: testDb.url });
    admin.on('error', () => undefined);
    await admin.connect();
    try {
      const sql = pgSqlExecutor(pool);
      const failure = await sql
        .transaction(async (session) => {
          const [{ pid }] = (await session.query<{ pid: number }>({ text: 'SELECT pg_backend_pid() AS pid', values: [] })) as [
            { pid: number },
          ];
          await admin.query('SELECT pg_terminate_backend($1)', [pid]);
          await session.query({ text: 'SELECT 1', values: [] });
        })
        .catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(SqlUnavailableError);
      expect(await sql.transaction((session) => session.query({ text: 'SELECT 2 AS two', values: [] }, { commit: true }))).toEqual([
        { two: 2 },
      ]);
    } finally {
      await admin.end();
      await pool.end();
      await testDb.drop();
    }
  });
});

describe('a PGlite that cannot be used', () => {
  it('is SqlUnavailableError once closed', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cpr-sql-closed-'));
    const db = await openDatabase({ kind: 'embedded', dataDir: path.join(dataDir, 'db') }, silent);
    try {
      await db.close();
      await expect(db.sql.query({ text: 'SELECT 1', values: [] })).rejects.toBeInstanceOf(SqlUnavailableError);
      await expect(db.sql.transaction(async () => undefined)).rejects.toBeInstanceOf(SqlUnavailableError);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);
});
