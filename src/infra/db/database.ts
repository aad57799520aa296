/**
 * The Prisma client on PostgreSQL (`DATABASE_URL`, driver adapter `@prisma/adapter-pg`) or on
 * the embedded PostgreSQL (PGlite in `DATA_DIR`), and the raw SQL executor beside it (the read
 * model's hot path: `sql-executor.ts`). Migrations are applied before either is handed out, so
 * the start command and the tests always run on the committed schema.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import type { Logger } from 'pino';
import type { DatabaseTarget } from '../../contracts/options';
import type { DependencyStatus, SqlExecutor } from '../../contracts/ports';
import { PrismaClient } from '../../generated/prisma/client';
import { applyMigrations } from './migrate';
import { executorPool, pgliteSqlExecutor, pgSqlExecutor } from './sql-executor';

export interface Database {
  readonly prisma: PrismaClient;
  /** Raw SQL on the driver itself, without Prisma (its own small pool on PostgreSQL). */
  readonly sql: SqlExecutor;
  readonly kind: 'postgres' | 'embedded';
  status(): Promise<DependencyStatus>;
  close(): Promise<void>;
}

export async function openDatabase(config: DatabaseTarget, logger: Logger): Promise<Database> {
  if (config.kind === 'postgres') {
    const client = new pg.Client({ connectionString: config.url });
    client.on('error', (error) => logger.warn({ err: error }, 'migration connection error'));
    await client.connect();
    try {
      const applied = await applyMigrations({
        query: (sql, params) => client.query(sql, params) as never,
        exec: (sql) => client.query(sql),
      });
      if (applied.length > 0) logger.info({ applied }, 'database migrated');
    } finally {
      await client.end();
    }
    const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: config.url }) });
    const pool = executorPool(config.url, (error) => logger.warn({ err: error }, 'sql executor: idle connection error'));
    return {
      prisma,
      sql: pgSqlExecutor(pool),
      kind: 'postgres',
      status: () => ping(prisma),
      async close() {
        try {
          await prisma.$disconnect();
        } finally {
          await pool.end();
        }
      },
    };
  }

  await mkdir(path.dirname(config.dataDir), { recursive: true });
  const pglite = new PGlite(config.dataDir);
  await pglite.waitReady;
  const applied = await applyMigrations({
    query: (sql, params) => pglite.query(sql, params) as never,
    exec: (sql) => pglite.exec(sql),
  });
  if (applied.length > 0) logger.info({ applied, dataDir: config.dataDir }, 'embedded database migrated');
  const prisma = new PrismaClient({ adapter: new PrismaPGlite(pglite) });
  return {
    prisma,
    sql: pgliteSqlExecutor(pglite),
    kind: 'embedded',
    status: () => ping(prisma),
    async close() {
      await prisma.$disconnect();
      await pglite.close();
    },
  };
}

async function ping(prisma: PrismaClient): Promise<DependencyStatus> {
  try {
    await prisma.$queryRaw`SELECT 1`;
    return { up: true };
  } catch (error) {
    return { up: false, detail: error instanceof Error ? error.message.split('\n')[0] : String(error) };
  }
}
