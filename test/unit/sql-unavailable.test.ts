/**
 * Which errors say the database cannot be used at all (the group commit then requeues a whole
 * batch at once) rather than that an event cannot be applied: the executor's classification of
 * pg's, pg-pool's and PGlite's errors (src/infra/db/sql-executor.ts), and the read model's, which
 * also knows Prisma's (src/domains/read-model/unavailable.ts). Errors built as the drivers build them.
 */
import pg from 'pg';
import { SqlUnavailableError } from '../../src/contracts/ports';
import { databaseUnavailable } from '../../src/domains/read-model/unavailable';
import { isUnavailable } from '../../src/infra/db/sql-executor';

/** A server error as pg-protocol makes it (`code` is the SQLSTATE). */
function serverError(code: string, message = 'server says no'): pg.DatabaseError {
  const error = new pg.DatabaseError(message, message.length, 'error');
  error.code = code;
  error.severity = code.startsWith('57P') ? 'FATAL' : 'ERROR';
  return error;
}

/** A socket error as Node makes it. */
function socketError(code: string): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code, errno: -111, syscall: 'connect' });
}

const unavailable: [string, unknown][] = [
  ['admin shutdown (57P01)', serverError('57P01', 'terminating connection due to administrator command')],
  ['crash shutdown (57P02)', serverError('57P02')],
  ['cannot connect now (57P03)', serverError('57P03', 'the database system is starting up')],
  ['connection failure (08006)', serverError('08006')],
  ['connection does not exist (08003)', serverError('08003')],
  ['refused', socketError('ECONNREFUSED')],
  ['reset', socketError('ECONNRESET')],
  ['timed out', socketError('ETIMEDOUT')],
  ['host not found', socketError('ENOTFOUND')],
  ['every address refused', new AggregateError([socketError('ECONNREFUSED'), socketError('ECONNREFUSED')], 'connect failed')],
  ['pool timeout', new Error('timeout exceeded when trying to connect')],
  ['connect timeout', new Error('Connection terminated due to connection timeout')],
  ['connection lost', new Error('Connection terminated unexpectedly')],
  ['client broken', new Error('Client has encountered a connection error and is not queryable')],
  ['client closed', new Error('Client was closed and is not queryable')],
  ['pool ended', new Error('Cannot use a pool after calling end on the pool')],
  ['PGlite closed', new Error('PGlite is closed')],
  ['already classified', new SqlUnavailableError('database unavailable', { cause: new Error('x') })],
];

const applicable: [string, unknown][] = [
  ['unique violation (23505)', serverError('23505', 'duplicate key value violates unique constraint')],
  ['out of range (22003)', serverError('22003', 'value "1099511627776" is out of range for type integer')],
  ['statement timeout (57014)', serverError('57014', 'canceling statement due to statement timeout')],
  ['deadlock (40P01)', serverError('40P01')],
  ['a bug', new TypeError("Cannot read properties of undefined (reading 'id')")],
  ['some aggregate', new AggregateError([new Error('a'), socketError('ECONNREFUSED')], 'mixed')],
  ['an empty aggregate', new AggregateError([], 'none')],
  ['not an error', 'oops'],
  ['nothing', undefined],
];

describe('the executor (isUnavailable)', () => {
  it.each(unavailable)('%s: unavailable', (_, error) => expect(isUnavailable(error)).toBe(true));
  it.each(applicable)('%s: not unavailable', (_, error) => expect(isUnavailable(error)).toBe(false));
});

describe('the read model (databaseUnavailable)', () => {
  it('takes what the executor classified, and the SQLSTATE classes 08 and 57P as they come', () => {
    expect(databaseUnavailable(new SqlUnavailableError('down', { cause: socketError('ECONNREFUSED') }))).toBe(true);
    expect(databaseUnavailable(serverError('57P01'))).toBe(true);
    expect(databaseUnavailable(serverError('08006'))).toBe(true);
    expect(databaseUnavailable(serverError('23505'))).toBe(false);
    expect(databaseUnavailable(serverError('22003'))).toBe(false);
    expect(databaseUnavailable(new TypeError('a bug'))).toBe(false);
  });

  it("knows Prisma's: P1xxx, P2024, P2028, and the SQLSTATE under its driver adapter", () => {
    for (const code of ['P1001', 'P1017', 'P2024', 'P2028']) expect(databaseUnavailable({ code })).toBe(true);
    for (const code of ['P2002', 'P2025', 'P2010']) expect(databaseUnavailable({ code })).toBe(false);
    const adapter = (originalCode: string) => ({ code: 'P2010', meta: { driverAdapterError: { cause: { originalCode } } } });
    expect(databaseUnavailable(adapter('57P01'))).toBe(true);
    expect(databaseUnavailable(adapter('08001'))).toBe(true);
    expect(databaseUnavailable(adapter('23505'))).toBe(false);
  });
});
