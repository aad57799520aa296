/**
 * The read model's group commit: a user's events that arrive together are written in few
 * transactions, folded per entity, and leave exactly the rows that applying them one by one leaves
 * (partial quota snapshots merged in time order, older and repeated events ignored, deletions kept);
 * a burst spanning many users goes in few transactions too, and a bad event in it fails alone. On
 * PostgreSQL and on the embedded database (PGlite), whose SQL the read model's statements must suit.
 * Transactions are counted on both paths: the raw SQL executor's (quota, device, order events)
 * and Prisma's (batches with rare events).
 */
import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { GatewayEvent } from '../../src/contracts/events';
import { createReadModelService } from '../../src/domains/read-model/read-model.service';
import type { SqlExecutor } from '../../src/contracts/ports';
import { openDatabase, type Database } from '../../src/infra/db/database';
import { executorPool, pgSqlExecutor } from '../../src/infra/db/sql-executor';
import { Prisma, type PrismaClient } from '../../src/generated/prisma/client';
import { createTestDatabase, uniqueId, type TestDatabase } from '../helpers/services';

let testDb: TestDatabase | undefined;
let dataDir: string | undefined;
let db: Database;
let transactions = 0;

async function open(kind: 'postgres' | 'embedded'): Promise<void> {
  const logger = pino({ level: 'silent' });
  if (kind === 'postgres') {
    testDb = await createTestDatabase();
    db = await openDatabase({ kind, url: testDb.url }, logger);
  } else {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cpr-read-model-'));
    db = await openDatabase({ kind, dataDir: path.join(dataDir, 'db') }, logger);
  }
}

async function close(): Promise<void> {
  await db?.close();
  await testDb?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
  [testDb, dataDir] = [undefined, undefined];
}

/** The client, counting the transactions the read model opens through Prisma. */
function countingPrisma(): PrismaClient {
  const prisma = db.prisma;
  return new Proxy(prisma, {
    get(target, property) {
      if (property === '$transaction') {
        return (...args: Parameters<PrismaClient['$transaction']>) => {
          transactions++;
          return (target.$transaction as (...a: unknown[]) => unknown)(...args);
        };
      }
      return Reflect.get(target, property, target) as unknown;
    },
  });
}

/** The executor, counting the transactions the read model opens on it. */
function countingSql(sql: SqlExecutor = db.sql): SqlExecutor {
  return {
    query: (statement) => sql.query(statement),
    transaction: (work) => {
      transactions++;
      return sql.transaction(work);
    },
  };
}

/** Both, for `createReadModelService`. */
const counting = () => ({ prisma: countingPrisma, sql: () => countingSql() });

const at = (minute: number) => new Date(Date.UTC(2026, 10, 24, 12, minute)).toISOString();

/** The same story for any user: partial snapshots, out of order, a repeat, a deletion and a revival. */
function story(userId: string, tag: string): GatewayEvent[] {
  const quota = (n: number, minute: number, fields: object, kind = 'UPDATED'): GatewayEvent =>
    ({
      family: 'quota',
      eventId: `${tag}-q${String(n).padStart(3, '0')}`,
      type: 'quota.updated',
      userId,
      occurredAt: at(minute),
      kind,
      quotaId: `q-${userId}`,
      ...fields,
    }) as GatewayEvent;
  const device = (n: number, minute: number, deviceId: string, status: string, extra: object = {}): GatewayEvent =>
    ({
      family: 'device',
      eventId: `${tag}-d${String(n).padStart(3, '0')}`,
      type: 'device.status.changed',
      userId,
      occurredAt: at(minute),
      deviceId: `${tag}-${deviceId}`,
      status,
      ...extra,
    }) as GatewayEvent;
  const events: GatewayEvent[] = [
    quota(1, 1, { limits: { maxDevices: 5 }, status: 'ACTIVE' }),
    device(1, 1, 'a', 'CREATING', { deviceName: 'A' }),
    device(2, 1, 'b', 'CREATING', { deviceName: 'B', providerType: 'redroid' }),
  ];
  for (let i = 2; i < 40; i++) {
    events.push(quota(i, i, i % 2 ? { usage: { currentDevices: i } } : { limits: { maxDevices: i, totalMemoryGB: i / 2 } }));
    events.push(device(i + 10, i, i % 3 ? 'a' : 'b', i % 2 ? 'RUNNING' : 'STOPPED', i % 5 ? {} : { reason: `r${i}` }));
  }
  events.push(quota(40, 3, { limits: { maxDevices: 999 } })); // older than most: ignored
  events.push(quota(41, 45, {}, 'DELETED'));
  events.push(quota(42, 44, { usage: { currentDevices: 77 } })); // older than the deletion: ignored
  events.push(device(60, 2, 'a', 'ERROR')); // older: ignored
  events.push(events[10] as GatewayEvent); // a redelivery of an event already in the batch
  events.push(quota(43, 50, { usage: { usedCpuCores: 3 } })); // newer than the deletion: revives
  return events;
}

async function rows(userId: string, tag: string) {
  const quota = await db.prisma.quota.findUnique({ where: { userId } });
  const devices = await db.prisma.device.findMany({ where: { userId }, orderBy: { id: 'asc' } });
  const strip = <T extends Record<string, unknown>>(row: T | null) => {
    if (!row) return row;
    const { id: _id, userId: _u, createdAt: _c, updatedAt: _up, version: _v, lastEventId, ...rest } = row as Record<string, unknown>;
    return { ...rest, lastEventId: typeof lastEventId === 'string' ? lastEventId.replace(tag, '') : lastEventId };
  };
  return {
    quota: strip(quota as unknown as Record<string, unknown>),
    devices: devices.map((d) => ({ ...strip(d as unknown as Record<string, unknown>), id: d.id.replace(tag, '') })),
  };
}

/** Each user's share of a cross-user burst: a quota (the quota id shared by pairs), a device created then updated, an order. */
function manyUsers(users: readonly string[], tag: string): GatewayEvent[] {
  const events: GatewayEvent[] = [];
  users.forEach((userId, i) => {
    const id = (n: number) => `${tag}-${String(i).padStart(3, '0')}-${n}`;
    events.push(
      {
        family: 'quota',
        eventId: id(1),
        type: 'quota.updated',
        userId,
        occurredAt: at(1),
        kind: 'UPDATED',
        quotaId: `q-${tag}-${Math.floor(i / 2)}`,
        limits: { maxDevices: i },
        usage: { currentDevices: 1 },
      } as GatewayEvent,
      {
        family: 'device',
        eventId: id(2),
        type: 'device.created',
        userId,
        occurredAt: at(2),
        deviceId: `${tag}-dev-${i}`,
        status: 'CREATING',
        deviceName: `phone ${i}`,
      },
      i % 3
        ? {
            family: 'device',
            eventId: id(3),
            type: 'device.started',
            userId,
            occurredAt: at(3),
            deviceId: `${tag}-dev-${i}`,
            status: 'RUNNING',
            providerType: 'redroid',
          }
        : {
            family: 'order',
            eventId: id(3),
            type: 'order.completed',
            userId,
            occurredAt: at(3),
            orderId: `${tag}-order-${i}`,
            amount: '59.90',
            planId: 'pro',
          },
    );
  });
  return events;
}

async function allRows(users: readonly string[], tag: string) {
  const out = [];
  for (const userId of users) {
    const orders = await db.prisma.order.findMany({ where: { userId } });
    out.push({
      ...(await rows(userId, tag)),
      orders: orders.map(({ id, userId: _u, createdAt: _c, updatedAt: _up, lastEventId, amount, ...rest }) => ({
        ...rest,
        id: id.replace(tag, ''),
        amount: amount?.toString(),
        lastEventId: lastEventId?.replace(tag, ''),
      })),
    });
  }
  return out;
}

describe.each(['postgres', 'embedded'] as const)('on %s', (kind) => {
  beforeAll(() => open(kind));
  afterAll(close);

  it('writes a burst in few transactions and leaves exactly the rows one-by-one application leaves', async () => {
    const readModel = createReadModelService(counting());
    const [one, burst] = [uniqueId('one'), uniqueId('burst')];
    // Same-length tags, so ties in time are broken by eventId alike for both users.
    const [tagOne, tagBurst] = ['t1', 't2'];

    transactions = 0;
    for (const event of story(one, tagOne)) await readModel.apply(event);
    const sequentialTransactions = transactions;

    transactions = 0;
    await Promise.all(story(burst, tagBurst).map((event) => readModel.apply(event)));
    const burstTransactions = transactions;

    expect(sequentialTransactions).toBe(story(one, tagOne).length);
    // The first event goes alone; everything that arrived meanwhile goes in the next batch.
    expect(burstTransactions).toBeLessThanOrEqual(3);

    const [a, b] = [await rows(one, tagOne), await rows(burst, tagBurst)];
    expect(b).toEqual(a);
    expect(a.quota).toMatchObject({ maxDevices: 38, totalMemoryGB: 19, currentDevices: 39, usedCpuCores: 3, deletedAt: null });
    expect(a.devices.map((d) => (d as { status?: string }).status)).toEqual(['STOPPED', 'RUNNING']);
  });

  it("applies a burst spanning many users in few transactions, each user's events resolving in arrival order", async () => {
    const readModel = createReadModelService(counting());
    const sequentialUsers = Array.from({ length: 200 }, (_, i) => uniqueId(`seq${i}`));
    const burstUsers = Array.from({ length: 200 }, (_, i) => uniqueId(`par${i}`));
    const [tagOne, tagBurst] = ['s1', 's2'];

    for (const event of manyUsers(sequentialUsers, tagOne)) await readModel.apply(event);

    transactions = 0;
    const resolved = new Map<string, string[]>();
    const burst = manyUsers(burstUsers, tagBurst);
    await Promise.all(
      burst.map((event) =>
        readModel
          .apply(event)
          .then(() => resolved.set(event.userId as string, [...(resolved.get(event.userId as string) ?? []), event.eventId])),
      ),
    );
    // 600 events, 500 at the most per transaction.
    expect(transactions).toBeLessThanOrEqual(3);
    for (const userId of burstUsers) {
      expect(resolved.get(userId)).toEqual(burst.filter((e) => e.userId === userId).map((e) => e.eventId));
    }

    const [one, many] = [await allRows(sequentialUsers, tagOne), await allRows(burstUsers, tagBurst)];
    expect(many).toEqual(one);
    expect(many[1]).toMatchObject({
      quota: { maxDevices: 1, currentDevices: 1 },
      devices: [{ status: 'RUNNING', name: 'phone 1', providerType: 'redroid' }],
    });
    expect(many[3]).toMatchObject({
      devices: [{ status: 'CREATING' }],
      orders: [{ status: 'COMPLETED', amount: '59.9', planId: 'pro', version: 1 }],
    });
    // Pairs of users named the same platform quota id: the second of each pair still has its quota.
    expect(many.every((row) => row.quota !== null)).toBe(true);
    const processed = await db.prisma.processedEvent.count({ where: { eventId: { startsWith: `${tagBurst}-` } } });
    expect(processed).toBe(burst.length);
  });

  it('fails only the event that cannot be applied in a batch spanning many users', async () => {
    const readModel = createReadModelService(counting());
    const users = Array.from({ length: 50 }, (_, i) => uniqueId(`p${i}`));
    const events = manyUsers(users, 'p1');
    // A value no column can hold (the validators never let one through): the whole batch fails.
    const poison = {
      family: 'quota',
      eventId: 'p1-poison',
      type: 'quota.updated',
      userId: users[7],
      occurredAt: at(9),
      kind: 'UPDATED',
      limits: { maxDevices: 2 ** 40 },
    } as GatewayEvent;
    events.splice(40, 0, poison);

    const outcomes = await Promise.allSettled(events.map((event) => readModel.apply(event)));
    const failed = events.filter((_, i) => outcomes[i]?.status === 'rejected').map((e) => e.eventId);
    expect(failed).toEqual(['p1-poison']);
    const rowsNow = await allRows(users, 'p1');
    expect(rowsNow.every((row) => row.quota !== null && row.devices.length === 1)).toBe(true);
    expect(rowsNow[7]?.quota).toMatchObject({ maxDevices: 7 });
    expect(await db.prisma.processedEvent.findUnique({ where: { eventId: 'p1-poison' } })).toBeNull();
    expect(await db.prisma.processedEvent.count({ where: { eventId: { startsWith: 'p1-' } } })).toBe(events.length - 1);
  });
});

describe('while the database is unavailable, a whole batch is requeued at once, rather than event by event', () => {
  const down = () =>
    manyUsers(
      Array.from({ length: 20 }, (_, i) => `down-${i}`),
      'down',
    );

  it('on the raw SQL executor (PostgreSQL refusing connections)', async () => {
    const pool = executorPool('postgresql://postgres@127.0.0.1:1/none', () => undefined);
    try {
      const refused = pgSqlExecutor(pool);
      transactions = 0;
      const readModel = createReadModelService({
        prisma: () => {
          throw new Error('no Prisma on this path');
        },
        sql: () => countingSql(refused),
      });
      const events = down();
      const outcomes = await Promise.allSettled(events.map((event) => readModel.apply(event)));
      expect(outcomes.map((o) => (o.status === 'rejected' ? (o.reason as Error).name : o.status))).toEqual(
        events.map(() => 'SqlUnavailableError'),
      );
      expect(transactions).toBe(1);
    } finally {
      await pool.end();
    }
  });

  it('through Prisma (a batch holding a rare event)', async () => {
    let calls = 0;
    const unreachable = {
      $transaction: () => {
        calls++;
        return Promise.reject(
          new Prisma.PrismaClientKnownRequestError("Can't reach database server", { code: 'P1001', clientVersion: 'test' }),
        );
      },
    } as unknown as PrismaClient;
    const readModel = createReadModelService({
      prisma: () => unreachable,
      sql: () => {
        throw new Error('not this path');
      },
    });
    const app: GatewayEvent = {
      family: 'app',
      eventId: 'down-app',
      type: 'app.installed',
      userId: 'down-0',
      occurredAt: at(1),
      deviceId: 'down-dev-0',
      appId: 'app-1',
    };
    const events = [...down(), app];
    const outcomes = await Promise.allSettled(events.map((event) => readModel.apply(event)));
    expect(outcomes.map((o) => o.status)).toEqual(events.map(() => 'rejected'));
    expect(calls).toBe(1);
  });
});
