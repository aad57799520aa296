/**
 * The read model's hot path on the raw SQL executor (docs/decisions/0600), on PostgreSQL and on
 * PGlite: a redelivered batch changes nothing (rows, versions, times, claims) and its events carry
 * the same entities; an older event after a newer one changes nothing and carries the newer row;
 * and the entities a batch carries are byte for byte those the Prisma path (a batch that also
 * holds a rare event) gives for the same events. And the statements reach the rows they name
 * through the primary key, not by scanning the table, whatever its size.
 */
import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { GatewayEvent } from '../../src/contracts/events';
import type { SqlExecutor, SqlStatement } from '../../src/contracts/ports';
import { createReadModelService } from '../../src/domains/read-model/read-model.service';
import { openDatabase, type Database } from '../../src/infra/db/database';
import { createTestDatabase, uniqueId, type TestDatabase } from '../helpers/services';

const at = (minute: number) => new Date(Date.UTC(2026, 10, 24, 12, minute)).toISOString();

/** A user's quota, device and order events: created, updated (partial quota snapshots), one older than the rest. */
function userEvents(userId: string, tag: string): GatewayEvent[] {
  const id = (n: number) => `${tag}-${String(n).padStart(2, '0')}`;
  return [
    {
      family: 'quota',
      eventId: id(1),
      type: 'quota.updated',
      userId,
      occurredAt: at(1),
      kind: 'UPDATED',
      quotaId: `q-${tag}`,
      limits: { maxDevices: 3, totalMemoryGB: 7.5 },
      usage: { currentDevices: 1, usedMemoryGB: 0.1 },
    } as GatewayEvent,
    {
      family: 'device',
      eventId: id(2),
      type: 'device.created',
      userId,
      occurredAt: at(1),
      deviceId: `dev-${tag}`,
      status: 'CREATING',
      deviceName: 'phone "é"',
    },
    {
      family: 'device',
      eventId: id(3),
      type: 'device.started',
      userId,
      occurredAt: at(3),
      deviceId: `dev-${tag}`,
      status: 'RUNNING',
      providerType: 'redroid',
    },
    {
      family: 'quota',
      eventId: id(4),
      type: 'quota.updated',
      userId,
      occurredAt: at(4),
      kind: 'UPDATED',
      usage: { currentDevices: 2 },
    } as GatewayEvent,
    {
      family: 'order',
      eventId: id(5),
      type: 'order.completed',
      userId,
      occurredAt: at(2),
      orderId: `o-${tag}`,
      amount: '59.90',
      planId: 'pro',
    },
    { family: 'device', eventId: id(6), type: 'device.stopped', userId, occurredAt: at(2), deviceId: `dev-${tag}`, status: 'STOPPED' },
  ];
}

describe.each(['postgres', 'embedded'] as const)('on %s', (kind) => {
  let testDb: TestDatabase | undefined;
  let dataDir: string | undefined;
  let db: Database;
  const counts = { sql: 0, prisma: 0 };

  /** The read model, counting the transactions of each path. */
  function readModel() {
    const sql: SqlExecutor = {
      query: (statement) => db.sql.query(statement),
      transaction: (work) => {
        counts.sql++;
        return db.sql.transaction(work);
      },
    };
    const prisma = new Proxy(db.prisma, {
      get(target, property) {
        if (property === '$transaction') {
          return (...args: unknown[]) => {
            counts.prisma++;
            return (target.$transaction as (...a: unknown[]) => unknown)(...args);
          };
        }
        return Reflect.get(target, property, target) as unknown;
      },
    });
    return createReadModelService({ prisma: () => prisma, sql: () => sql });
  }

  async function rowsOf(userId: string) {
    return {
      quota: await db.prisma.quota.findUnique({ where: { userId } }),
      devices: await db.prisma.device.findMany({ where: { userId }, orderBy: { id: 'asc' } }),
      orders: await db.prisma.order.findMany({ where: { userId }, orderBy: { id: 'asc' } }),
    };
  }

  const claims = (tag: string) => db.prisma.processedEvent.count({ where: { eventId: { startsWith: `${tag}-` } } });

  beforeAll(async () => {
    const logger = pino({ level: 'silent' });
    if (kind === 'postgres') {
      testDb = await createTestDatabase();
      db = await openDatabase({ kind, url: testDb.url }, logger);
    } else {
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'cpr-rm-sql-'));
      db = await openDatabase({ kind, dataDir: path.join(dataDir, 'db') }, logger);
    }
  }, 120_000);

  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('changes nothing when a batch is redelivered, and its events carry the same entities', async () => {
    const model = readModel();
    const users = [uniqueId('r0'), uniqueId('r1')];
    const batch = users.flatMap((userId, i) => userEvents(userId, `red${i}`));
    counts.sql = 0;
    const first = await Promise.all(batch.map((event) => model.apply(event)));
    expect(counts.sql).toBe(1);
    const before = await Promise.all(users.map(rowsOf));
    const claimed = (await claims('red0')) + (await claims('red1'));
    expect(claimed).toBe(batch.length);

    const again = await Promise.all(batch.map((event) => model.apply(event)));
    expect(again).toStrictEqual(first);
    expect(await Promise.all(users.map(rowsOf))).toStrictEqual(before);
    expect((await claims('red0')) + (await claims('red1'))).toBe(claimed);
    // The state the batch left: the newest event of each entity, versions counting the events applied.
    expect(before[0]?.devices).toMatchObject([{ status: 'RUNNING', name: 'phone "é"', providerType: 'redroid', version: 2 }]);
    expect(before[0]?.quota).toMatchObject({ maxDevices: 3, totalMemoryGB: 7.5, currentDevices: 2, usedMemoryGB: 0.1, version: 2 });
    expect(first[5]).toMatchObject({ device: { status: 'RUNNING', version: 2 } });
  });

  it('changes nothing for an older event after a newer one, which carries the newer row', async () => {
    const model = readModel();
    const userId = uniqueId('old');
    const device = (eventId: string, minute: number, status: 'RUNNING' | 'ERROR'): GatewayEvent => ({
      family: 'device',
      eventId,
      type: 'device.status.changed',
      userId,
      occurredAt: at(minute),
      deviceId: `dev-${userId}`,
      status,
    });
    const quota = (eventId: string, minute: number, usage: object): GatewayEvent =>
      ({ family: 'quota', eventId, type: 'quota.updated', userId, occurredAt: at(minute), kind: 'UPDATED', usage }) as GatewayEvent;
    const newer = [
      await model.apply(device(`${userId}-d2`, 5, 'RUNNING')),
      await model.apply(quota(`${userId}-q2`, 5, { currentDevices: 5 })),
    ];
    const before = await rowsOf(userId);
    const older = [await model.apply(device(`${userId}-d1`, 3, 'ERROR')), await model.apply(quota(`${userId}-q1`, 3, { usedCpuCores: 9 }))];
    expect(await rowsOf(userId)).toStrictEqual(before);
    expect(older[0]).toMatchObject({ device: (newer[0] as { device: object }).device });
    expect(older[1]).toMatchObject({ quota: (newer[1] as { quota: object }).quota });
    expect(before.quota).toMatchObject({ currentDevices: 5, usedCpuCores: null, version: 1 });
  });

  it('gives the events the same entities, byte for byte, as the Prisma path does', async () => {
    const model = readModel();
    const [a, b] = [uniqueId('pa'), uniqueId('pb')];
    // Same-length tags and ids, so the folds break ties alike.
    const viaSql = userEvents(a, 'tagaa');
    const viaPrisma = userEvents(b, 'tagbb');
    const installation = {
      family: 'installation',
      eventId: 'tagbb-99',
      type: 'app.install.requested',
      userId: b,
      occurredAt: at(1),
      deviceId: 'dev-tagbb',
      appId: 'app-1',
      packageName: 'com.example',
      status: 'REQUESTED',
    } as GatewayEvent;
    counts.sql = counts.prisma = 0;
    const sqlOut = await Promise.all(viaSql.map((event) => model.apply(event)));
    expect(counts).toEqual({ sql: 1, prisma: 0 });
    const prismaOut = await Promise.all([...viaPrisma, installation].map((event) => model.apply(event)));
    expect(counts).toEqual({ sql: 1, prisma: 1 });
    // Each batch stamps its own write time; everything else must be identical.
    const wire = (events: readonly GatewayEvent[], userId: string, tag: string) =>
      JSON.stringify(events.slice(0, viaSql.length))
        .replaceAll(userId, '<user>')
        .replaceAll(tag, '<tag>')
        .replace(/"updatedAt":"[^"]+"/g, '"updatedAt":"<t>"');
    expect(wire(prismaOut, b, 'tagbb')).toBe(wire(sqlOut, a, 'tagaa'));
    expect(sqlOut[4]).toMatchObject({ order: { status: 'COMPLETED', amount: '59.90', planId: 'pro', version: 1 } });
  });

  it('updates and locks the rows of a large table through its primary key, never by scanning it', async () => {
    const tag = uniqueId('big');
    const device = (i: number, minute: number): GatewayEvent => ({
      family: 'device',
      eventId: `${tag}-${minute}-${i}`,
      type: 'device.status.changed',
      userId: `${tag}-u${i}`,
      occurredAt: at(minute),
      deviceId: `${tag}-d${i}`,
      status: minute % 2 ? 'RUNNING' : 'STOPPED',
    });
    const model = readModel();
    await Promise.all(Array.from({ length: 3000 }, (_, i) => model.apply(device(i, 1))));
    await db.sql.query({ text: 'ANALYZE device', values: [] });
    // One event's statements, as the read model sends them.
    const sent: SqlStatement[] = [];
    const capturing = createReadModelService({
      prisma: () => db.prisma,
      sql: () => ({
        query: (statement) => db.sql.query(statement),
        transaction: (work) =>
          db.sql.transaction((session) =>
            work({ query: (statement, options) => (sent.push(statement), session.query(statement, options)) }),
          ),
      }),
    });
    expect(await capturing.apply(device(7, 2))).toMatchObject({ device: { status: 'STOPPED', version: 2 } });
    expect(sent).toHaveLength(2);
    for (const statement of sent) {
      const rows = await db.sql.query<{ 'QUERY PLAN': string }>({ text: `EXPLAIN ${statement.text}`, values: statement.values });
      const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
      expect(plan).toMatch(/Index Scan (using|on) device_pkey/);
      expect(plan).not.toMatch(/Seq Scan on device/);
    }
  }, 120_000);
});
