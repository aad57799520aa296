/** The database part: PostgreSQL or the embedded PGlite, migrated on start. */
import type { Logger } from 'pino';
import type { Config } from '../config';
import type { SqlExecutor } from '../contracts/ports';
import type { PrismaClient } from '../generated/prisma/client';
import { openDatabase, type Database } from '../infra/db/database';
import type { Part } from './part';

export interface DatabasePart extends Part {
  /** The open database; throws before `start`. */
  readonly db: Database;
  /** The Prisma client, for parts that are built before the database opens (read lazily; callable detached). */
  prisma(this: void): PrismaClient;
  /** The raw SQL executor, likewise (read lazily; callable detached). */
  sql(this: void): SqlExecutor;
}

export function databasePart(config: Config['database'], logger: Logger): DatabasePart {
  let database: Database | undefined;
  const open = (): Database => {
    if (!database) throw new Error('the database is not open yet');
    return database;
  };
  return {
    name: 'database',
    get db() {
      return open();
    },
    prisma: () => open().prisma,
    sql: () => open().sql,
    async start() {
      database = await openDatabase(config, logger);
    },
    async stop() {
      await database?.close();
    },
  };
}
