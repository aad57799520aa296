/**
 * The raw SQL executor (contracts/ports.ts `SqlExecutor`, docs/decisions/0600): statements
 * straight on the driver, for the read model's hot path, without Prisma's interactive
 * transaction (about 1.1 ms of gateway CPU and 1.3 ms of PostgreSQL CPU per transaction here).
 *
 * On PostgreSQL, a small `pg` pool of its own in pipeline mode: BEGIN goes out with the first
 * statement and COMMIT with a statement the caller marks as the last (`{ commit: true }`), so a
 * transaction of two statements costs two round trips, not four. Each query carries its own Sync,
 * so a failed statement fails alone; a COMMIT behind a failed statement finds the transaction
 * aborted and rolls it back (PostgreSQL answers ROLLBACK), so nothing of it is ever committed.
 * Statements are prepared once per connection (named by their text: the read model's SQL text
 * does not depend on the values), which spares PostgreSQL parsing and planning them per batch.
 *
 * On PGlite (embedded), its own `transaction` (which excludes every other query meanwhile).
 *
 * Rows come back as `pg`/PGlite parse them by default (timestamptz as Date, jsonb parsed, int4
 * as number), the values `$queryRaw` gives for those types (test/integration/sql-executor.test.ts
 * compares them). Errors that say the database cannot be used at all become `SqlUnavailableError`.
 */
import type { PGlite, Transaction } from '@electric-sql/pglite';
import pg from 'pg';
import { SqlUnavailableError, type SqlExecutor, type SqlSession, type SqlStatement } from '../../contracts/ports';

/** Connections of the executor's pool: the read model runs one transaction at a time, plus owner lookups. */
export const EXECUTOR_POOL_SIZE = 3;

/**
 * Bounds, as Prisma's interactive transaction had them (domains/shared/outbox.ts
 * TRANSACTION_OPTIONS): a pooled connection within 10 s, every statement within 20 s, and a
 * session idle inside a transaction for 20 s is ended by PostgreSQL (its locks released).
 */
const CONNECT_TIMEOUT_MS = 10_000;
const STATEMENT_TIMEOUT_MS = 20_000;

/** Prepared statement names by text; past this many distinct texts, statements run unnamed. */
const MAX_PREPARED = 200;

/**
 * The executor's own pool on `url` (closed by the caller with `pool.end()`). Its sessions plan
 * with `enable_seqscan` off: every statement sent here names its rows by a unique key, and the
 * planner, which cannot see how many keys a JSON parameter holds and often has no statistics yet
 * for rows written a moment ago, would otherwise scan a table to find 25 of its rows (measured:
 * PostgreSQL CPU per event 158-168 -> 96-99 µs at 50 events per batch, 273-299 -> 147-152 µs at 10).
 * It is a cost penalty, not a ban: a table without a usable index is still scanned.
 */
export function executorPool(url: string, onError: (error: Error) => void): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: EXECUTOR_POOL_SIZE,
    pipeline: true,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    idle_in_transaction_session_timeout: STATEMENT_TIMEOUT_MS,
    options: '-c enable_seqscan=off',
  });
  // An idle connection's error (server restart) is emitted on the pool: never unhandled.
  pool.on('error', onError);
  return pool;
}

/** Node's errors for a connection that cannot be made or was lost. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/** pg's, pg-pool's and PGlite's errors for the same (they carry no code). */
const UNAVAILABLE_MESSAGES = [
  /^timeout exceeded when trying to connect/,
  /^Connection terminated/,
  /is not queryable$/,
  /^Cannot use a pool after calling end on the pool/,
  /^PGlite is clos(ed|ing)/,
];

/**
 * Whether a driver error says the database cannot be used at all: PostgreSQL's connection
 * exception (08) and operator intervention / shutdown (57P) classes, a socket that cannot connect
 * or was lost, no pooled connection in time, a pool or database already closed.
 */
export function isUnavailable(error: unknown): boolean {
  if (error instanceof SqlUnavailableError) return true;
  if (typeof error !== 'object' || error === null) return false;
  const { code, message, errors } = error as { code?: unknown; message?: unknown; errors?: unknown };
  if (typeof code === 'string' && (code.startsWith('08') || code.startsWith('57P') || SOCKET_CODES.has(code))) return true;
  if (typeof message === 'string' && UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(message))) return true;
  // Node's connect tries every address of a host name: an AggregateError of the attempts.
  return Array.isArray(errors) && errors.length > 0 && errors.every(isUnavailable);
}

function translated(error: unknown): unknown {
  if (error instanceof SqlUnavailableError || !isUnavailable(error)) return error;
  return new SqlUnavailableError(`database unavailable: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}

export function pgSqlExecutor(pool: pg.Pool): SqlExecutor {
  const names = new Map<string, string>();
  /** The query config for `statement`: named (prepared once per connection) while there are few texts. */
  const config = (statement: SqlStatement): pg.QueryConfig => {
    let name = names.get(statement.text);
    if (name === undefined && names.size < MAX_PREPARED) names.set(statement.text, (name = `cpr_${names.size}`));
    return { name, text: statement.text, values: statement.values as unknown[] };
  };
  return {
    async query<R>(statement: SqlStatement): Promise<R[]> {
      try {
        return (await pool.query(config(statement))).rows as R[];
      } catch (error) {
        throw translated(error);
      }
    },

    async transaction<T>(work: (session: SqlSession) => Promise<T>): Promise<T> {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (error) {
        throw translated(error);
      }
      let broken = false;
      // pg-pool listens to a client's errors only while it is idle: a connection lost while this
      // transaction holds it is emitted here (its queries reject too), and must not go unheard.
      const lost = () => (broken = true);
      client.on('error', lost);
      // Pipelined: on the wire now, answered before the first statement.
      const begun = client.query('BEGIN');
      // Observed at once: when `work` sends nothing, a failed BEGIN would otherwise go unhandled (COMMIT fails after it anyway).
      void begun.catch(() => undefined);
      let committed: Promise<pg.QueryResult> | undefined;
      const session: SqlSession = {
        async query<R>(statement: SqlStatement, options?: { commit?: boolean }): Promise<R[]> {
          if (committed) throw new Error('sql executor: a statement after the one that committed');
          const result = client.query(config(statement));
          if (options?.commit) committed = client.query('COMMIT');
          // Every promise settles observed, whichever rejects first.
          const [, rows] = await Promise.all([begun, result, committed]);
          return rows.rows as R[];
        },
      };
      try {
        const value = await work(session);
        const commit = await (committed ?? client.query('COMMIT'));
        // COMMIT of a transaction a failed statement aborted rolls it back instead (and says so).
        if (commit.command !== 'COMMIT') throw new Error(`sql executor: the transaction was rolled back (${commit.command})`);
        return value;
      } catch (error) {
        broken ||= isUnavailable(error);
        // Whatever was sent behind the failure settles first (pipelined results come in order).
        await Promise.allSettled([begun, committed]);
        if (!committed && !broken) await client.query('ROLLBACK').catch(() => (broken = true));
        throw translated(error);
      } finally {
        client.removeListener('error', lost);
        // A connection in doubt is destroyed rather than handed to the next transaction.
        client.release(broken);
      }
    },
  };
}

export function pgliteSqlExecutor(pglite: PGlite): SqlExecutor {
  const run = async <R>(on: PGlite | Transaction, statement: SqlStatement): Promise<R[]> =>
    (await on.query<R>(statement.text, statement.values as unknown[])).rows;
  return {
    async query<R>(statement: SqlStatement): Promise<R[]> {
      try {
        return await run<R>(pglite, statement);
      } catch (error) {
        throw translated(error);
      }
    },
    async transaction<T>(work: (session: SqlSession) => Promise<T>): Promise<T> {
      try {
        return await pglite.transaction((tx) => {
          // PGlite commits after `work`; `{ commit: true }` only ends the statements, as on PostgreSQL.
          let ended = false;
          return work({
            query(statement, options) {
              if (ended) throw new Error('sql executor: a statement after the one that committed');
              ended = options?.commit === true;
              return run(tx, statement);
            },
          });
        });
      } catch (error) {
        throw translated(error);
      }
    },
  };
}
