/**
 * Creates the next Prisma Migrate migration from the difference between prisma/migrations and
 * prisma/schema.prisma — what `prisma migrate dev --create-only --name <name>` does — using the
 * Wasm schema engine (see ./schema-drift.ts), since the native engine cannot be downloaded here.
 *
 * Writes `<migrationsDir>/<YYYYMMDDHHMMSS>_<name>/migration.sql` and (re)writes
 * `migration_lock.toml`. It does not apply the migration to any database.
 *
 * Run after compiling with tsc:  node <outDir>/test/helpers/new-migration.js <name>
 * (server from TEST_DATABASE_URL, else DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/postgres;
 * only scratch databases are created and dropped on it).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

import { createMigrationSql, migrationLockfileContent, repoRoot, type CreateMigrationSqlOptions } from './schema-drift';

export interface NewMigrationOptions extends CreateMigrationSqlOptions {
  /** Human name; slugified like the Prisma CLI does (`Add note` -> `add_note`). */
  name: string;
  /** Timestamp for the directory name (UTC). Default: now. */
  now?: Date;
  /** Compute only; write nothing. */
  dryRun?: boolean;
}

export interface NewMigrationResult {
  /** False when the migrations already match the schema (nothing written). */
  created: boolean;
  /** e.g. `20261201093000_add_note`; undefined when nothing was needed. */
  migrationName?: string;
  /** Absolute path of the written migration.sql (or the one that would be written on dryRun). */
  migrationFile?: string;
  /** The migration script ('' when nothing was needed). */
  sql: string;
}

/** Prisma CLI style: camelCase split, lower-cased, non-alphanumerics to `_`, at most 200 chars. */
export function slugifyMigrationName(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .substring(0, 200);
}

/** `YYYYMMDDHHMMSS` in UTC, as Prisma Migrate names migration directories. */
export function migrationTimestamp(now: Date = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return (
    `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}` +
    `${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`
  );
}

export async function newMigration(opts: NewMigrationOptions): Promise<NewMigrationResult> {
  const migrationsDir = path.resolve(opts.migrationsDir ?? path.join(repoRoot(), 'prisma', 'migrations'));
  const { name, now, dryRun, ...diffOpts } = opts;
  const sql = await createMigrationSql({ ...diffOpts, migrationsDir });
  if (sql === '') return { created: false, sql };

  const slug = slugifyMigrationName(name);
  const migrationName = slug ? `${migrationTimestamp(now)}_${slug}` : migrationTimestamp(now);
  const dir = path.join(migrationsDir, migrationName);
  const migrationFile = path.join(dir, 'migration.sql');
  if (dryRun) return { created: false, migrationName, migrationFile, sql };

  if (existsSync(dir)) throw new Error(`The migration directory already exists at ${dir}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(migrationFile, sql, 'utf8');
  writeFileSync(path.join(migrationsDir, 'migration_lock.toml'), migrationLockfileContent(), 'utf8');
  return { created: true, migrationName, migrationFile, sql };
}

async function main(argv: string[]): Promise<number> {
  const name = argv.filter((a) => !a.startsWith('-')).join(' ');
  const dryRun = argv.includes('--dry-run');
  if (!name) {
    process.stderr.write('usage: new-migration <name> [--dry-run]\n');
    return 64;
  }
  const databaseUrl = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
  const result = await newMigration({ name, databaseUrl, dryRun });
  if (result.sql === '') {
    process.stdout.write('Already in sync: prisma/migrations matches prisma/schema.prisma.\n');
  } else if (dryRun) {
    process.stdout.write(`Would create ${result.migrationFile}:\n\n${result.sql}`);
  } else {
    process.stdout.write(`Created ${result.migrationFile}:\n\n${result.sql}`);
  }
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
