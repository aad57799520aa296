/**
 * The read model's group commit: a user's events that arrive together are written in few
 * transactions, folded per entity, and leave exactly the rows that applying them one by one leaves
 * (partial quota snapshots merged in time order, older and repeated events ignored, deletions kept).
 */
import 'reflect-metadata';
import pino from 'pino';
import type { GatewayEvent } from '../../src/contracts/events';
import { createReadModelService } from '../../src/domains/read-model/read-model.service';
import { openDatabase, type Database } from '../../src/infra/db/database';
import type { PrismaClient } from '../../src/infra/db/generated/client';
import { createTestDatabase, uniqueId, type TestDatabase } from '../helpers/services';

let testDb: TestDatabase;
let db: Database;
let transactions = 0;

beforeAll(async () => {
  testDb = await createTestDatabase();
  db = await openDatabase({ kind: 'postgres', url: testDb.url }, pino({ level: 'silent' }));
});

afterAll(async () => {
  await db?.close();
  await testDb?.drop();
});

/** The client, counting the transactions the read model opens. */
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
      return Reflect.get(target, property, target);
    },
  });
}

const at = (minute: number) => new Date(Date.UTC(2026, 10, 24, 12, minute)).toISOString();

/** The same story for any user: partial snapshots, out of order, a repeat, a deletion and a revival. */
function story(userId: string, tag: string): GatewayEvent[] {
  const quota = (n: number, minute: number, fields: object, kind = 'UPDATED'): GatewayEvent =>
    ({ family: 'quota', eventId: `${tag}-q${String(n).padStart(3, '0')}`, type: 'quota.updated', userId, occurredAt: at(minute), kind, quotaId: `q-${userId}`, ...fields }) as GatewayEvent;
  const device = (n: number, minute: number, deviceId: string, status: string, extra: object = {}): GatewayEvent =>
    ({ family: 'device', eventId: `${tag}-d${String(n).padStart(3, '0')}`, type: 'device.status.changed', userId, occurredAt: at(minute), deviceId: `${tag}-${deviceId}`, status, ...extra }) as GatewayEvent;
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

it('writes a burst in few transactions and leaves exactly the rows one-by-one application leaves', async () => {
  const readModel = createReadModelService({ prisma: countingPrisma });
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
