/**
 * Errors that say the database cannot be used at all (unreachable, connection lost, shutting
 * down, no connection or transaction to be had in time), rather than that an event cannot be
 * applied: the group commit then fails a whole batch at once instead of retrying it event by event.
 */
import { SqlUnavailableError } from '../../contracts/ports';

const UNAVAILABLE_SQLSTATE = /^(08|57P)/;

/**
 * From the raw SQL executor: `SqlUnavailableError` (its driver's connection errors, pool
 * timeouts, PostgreSQL's connection (08) and shutdown (57P) classes), or a driver error with such
 * a SQLSTATE in `code`. From Prisma: P1xxx, P2024 (pool timeout), P2028 (transaction could not
 * start or expired), and the same SQLSTATE classes under its driver adapter's error.
 */
export function databaseUnavailable(error: unknown): boolean {
  if (error instanceof SqlUnavailableError) return true;
  const { code, meta } = (error ?? {}) as { code?: unknown; meta?: { driverAdapterError?: { cause?: { originalCode?: unknown } } } };
  if (typeof code === 'string' && (code.startsWith('P1') || code === 'P2024' || code === 'P2028' || UNAVAILABLE_SQLSTATE.test(code))) {
    return true;
  }
  const sqlState = meta?.driverAdapterError?.cause?.originalCode;
  return typeof sqlState === 'string' && UNAVAILABLE_SQLSTATE.test(sqlState);
}
