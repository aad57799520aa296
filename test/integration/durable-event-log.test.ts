/**
 * The durable copy of the retained log (PostgreSQL `event_log`), through the read model that
 * writes it and the reader that answers when Redis lost `after`: events logged in arrival order,
 * once (a redelivery is not logged again), only with `retainEvents`; the count and age bounds are
 * the Redis log's (HISTORY_EXPIRED means past them, or unknown, or another user's); the sweep
 * deletes what is past the age.
 */
import 'reflect-metadata';
import pino from 'pino';
import type { GatewayEvent } from '../../src/contracts/events';
import { createReadModelService } from '../../src/domains/read-model/read-model.service';
import { openDatabase, type Database } from '../../src/infra/db/database';
import { PostgresEventLog } from '../../src/infra/db/durable-event-log';
import { openSql, type TestSql } from '../helpers/db';
import { createTestDatabase, uniqueId, type TestDatabase } from '../helpers/services';

const silent = pino({ level: 'silent' });
let testDb: TestDatabase;
let database: Database;
let sql: TestSql;

beforeAll(async () => {
  testDb = await createTestDatabase();
  database = await openDatabase({ kind: 'postgres', url: testDb.url }, silent);
  sql = await openSql(testDb.url);
}, 60_000);

afterAll(async () => {
  await sql?.close();
  await database?.close();
  await testDb?.drop();
});

const order = (userId: string, id: string): GatewayEvent => ({
  family: 'order',
  eventId: id,
  type: 'order.completed',
  userId,
  occurredAt: new Date().toISOString(),
  orderId: `o-${id}`,
});

const ids = (events: readonly GatewayEvent[] | undefined) => events?.map((e) => e.eventId);

it('logs what the read model applies, in arrival order, once; reads after an id within the count bound', async () => {
  const readModel = createReadModelService({ prisma: () => database.prisma, sql: () => database.sql, retainEvents: true });
  const log = new PostgresEventLog(() => database.prisma, { maxEvents: 5, maxAllEvents: 7, maxAgeMs: 60_000 }, silent);
  const alice = uniqueId('alice');
  const bob = uniqueId('bob');
  // One batch (applied together), interleaving two users, with a repeat inside it.
  const first = [1, 2, 3].map((n) => order(alice, `${alice}-${n}`));
  await Promise.all([...first, order(bob, `${bob}-1`), first[1] as GatewayEvent].map((e) => readModel.apply(e)));
  for (let n = 4; n <= 8; n++) await readModel.apply(order(alice, `${alice}-${n}`));
  // A redelivery of an applied event: claimed before, not logged again.
  await readModel.apply(order(alice, `${alice}-5`));

  const rows = await sql.query<{ event_id: string }>('SELECT event_id FROM event_log WHERE user_id = $1 ORDER BY seq', [alice]);
  expect(rows.map((r) => r.event_id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((n) => `${alice}-${n}`));

  // Alice's last five are 4..8: after 4 gives 5..8, after 8 nothing, after 3 is past the bound.
  expect(ids(await log.readAfter(alice, `${alice}-4`))).toEqual([5, 6, 7, 8].map((n) => `${alice}-${n}`));
  expect(ids(await log.readAfter(alice, `${alice}-8`))).toEqual([]);
  expect(await log.readAfter(alice, `${alice}-3`)).toBeUndefined();
  // Unknown, and another user's id, alike.
  expect(await log.readAfter(alice, 'no-such-event')).toBeUndefined();
  expect(await log.readAfter(bob, `${alice}-6`)).toBeUndefined();
  // The replayed event is the event as published.
  expect((await log.readAfter(alice, `${alice}-7`))?.[0]).toMatchObject({
    family: 'order',
    eventId: `${alice}-8`,
    userId: alice,
    orderId: `o-${alice}-8`,
  });

  // Every user's log (administrators): the last seven of all (alice 3, bob 1, alice 4..8), across users.
  expect(ids(await log.readAfter(null, `${alice}-3`))).toEqual([`${bob}-1`, ...[4, 5, 6, 7, 8].map((n) => `${alice}-${n}`)]);
  // Across users the log's order can differ from the publish order (partitions run users
  // concurrently), so what was logged just before the anchor is replayed too, retained rows only:
  // after bob 1, alice 3 (logged before it) comes again; an administrator may get again what it
  // had, never miss one.
  expect(ids(await log.readAfter(null, `${bob}-1`))).toEqual([3, 4, 5, 6, 7, 8].map((n) => `${alice}-${n}`));
  expect(await log.readAfter(null, `${alice}-1`)).toBeUndefined();
});

it('applies the age bound when reading, and the sweep deletes what is past it', async () => {
  const readModel = createReadModelService({ prisma: () => database.prisma, sql: () => database.sql, retainEvents: true });
  const log = new PostgresEventLog(() => database.prisma, { maxEvents: 100, maxAllEvents: 100, maxAgeMs: 60_000 }, silent);
  const carol = uniqueId('carol');
  for (let n = 1; n <= 3; n++) await readModel.apply(order(carol, `${carol}-${n}`));
  // Age the first two past the bound, as an hour would.
  await sql.query(`UPDATE event_log SET logged_at = now() - interval '2 minutes' WHERE event_id = ANY($1)`, [[`${carol}-1`, `${carol}-2`]]);
  expect(await log.readAfter(carol, `${carol}-1`)).toBeUndefined();
  expect(ids(await log.readAfter(carol, `${carol}-3`))).toEqual([]);
  expect(await log.sweep()).toBeGreaterThanOrEqual(2);
  const left = await sql.query<{ event_id: string }>('SELECT event_id FROM event_log WHERE user_id = $1 ORDER BY seq', [carol]);
  expect(left.map((r) => r.event_id)).toEqual([`${carol}-3`]);
});

it('without retainEvents the read model logs nothing', async () => {
  const readModel = createReadModelService({ prisma: () => database.prisma, sql: () => database.sql });
  const dave = uniqueId('dave');
  await readModel.apply(order(dave, `${dave}-1`));
  expect(await sql.query('SELECT 1 FROM event_log WHERE user_id = $1', [dave])).toEqual([]);
  expect(await sql.query('SELECT 1 FROM processed_event WHERE event_id = $1', [`${dave}-1`])).toHaveLength(1);
});
