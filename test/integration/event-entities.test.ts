/**
 * Events carry their entity as the read model's batch leaves it (RETURNING, no query per event):
 * the same object the queries return, never older than one an earlier event carried, null where
 * the read model has nothing to show. On PostgreSQL and on the embedded database (PGlite).
 */
import 'reflect-metadata';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { GatewayEvent } from '../../src/contracts/events';
import type { ReadModel } from '../../src/contracts/ports';
import { toInstallationView } from '../../src/domains/app/app-installation.service';
import { toDeviceView } from '../../src/domains/device/device.service';
import { toOrderView } from '../../src/domains/order/order.service';
import { toQuotaView } from '../../src/domains/quota/quota.service';
import { createReadModelService } from '../../src/domains/read-model/read-model.service';
import { openDatabase, type Database } from '../../src/infra/db/database';
import { createTestDatabase, uniqueId, type TestDatabase } from '../helpers/services';

const at = (minute: number) => new Date(Date.UTC(2026, 10, 24, 12, minute)).toISOString();
/** What a query's answer looks like on the wire (Dates as ISO strings). */
const wire = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

describe.each(['postgres', 'embedded'] as const)('events carry their entity (%s)', (kind) => {
  let testDb: TestDatabase | undefined;
  let dataDir: string | undefined;
  let db: Database;
  let readModel: ReadModel;

  beforeAll(async () => {
    const logger = pino({ level: 'silent' });
    if (kind === 'postgres') {
      testDb = await createTestDatabase();
      db = await openDatabase({ kind, url: testDb.url }, logger);
    } else {
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'cpr-entities-'));
      db = await openDatabase({ kind, dataDir: path.join(dataDir, 'db') }, logger);
    }
    readModel = createReadModelService({ prisma: () => db.prisma, sql: () => db.sql });
  }, 60_000);

  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('gives a device event the device as the query returns it; a burst carries the latest state, an older or repeated event the newer row', async () => {
    const userId = uniqueId('u');
    const deviceId = uniqueId('d');
    const device = (n: number, minute: number, status: string): GatewayEvent =>
      ({
        family: 'device',
        eventId: `${deviceId}-${n}`,
        type: 'device.status.changed',
        userId,
        occurredAt: at(minute),
        deviceId,
        deviceName: 'phone',
        status,
      }) as GatewayEvent;

    const created = await readModel.apply(device(1, 1, 'CREATING'));
    const row = await db.prisma.device.findUniqueOrThrow({ where: { id: deviceId } });
    expect(created).toMatchObject({ eventId: `${deviceId}-1`, device: wire(toDeviceView(row)) });
    expect(created.family === 'device' && created.device).toMatchObject({ id: deviceId, status: 'CREATING', version: 1 });

    // Arriving together, they share a batch: each carries the state the batch leaves.
    const burst = await Promise.all(
      [device(2, 2, 'IDLE'), device(3, 3, 'RUNNING'), device(4, 4, 'STOPPED')].map((e) => readModel.apply(e)),
    );
    const after = wire(toDeviceView(await db.prisma.device.findUniqueOrThrow({ where: { id: deviceId } })));
    expect(after).toMatchObject({ status: 'STOPPED', version: 4 });
    for (const event of burst) expect(event).toMatchObject({ device: after });

    // Older than the row (ignored by the read model) and a redelivery: both carry the newer row.
    const older = await readModel.apply(device(5, 0, 'ERROR'));
    const again = await readModel.apply(device(3, 3, 'RUNNING'));
    expect(older).toMatchObject({ status: 'ERROR', device: after });
    expect(again).toMatchObject({ status: 'RUNNING', device: after });
  });

  it('gives a quota event the quota with its limits and usage, and null once deleted', async () => {
    const userId = uniqueId('u');
    const quota = (n: number, minute: number, kind: string, fields: object = {}): GatewayEvent =>
      ({
        family: 'quota',
        eventId: `${userId}-q${n}`,
        type: `quota.${kind.toLowerCase()}`,
        userId,
        occurredAt: at(minute),
        kind,
        quotaId: `q-${userId}`,
        ...fields,
      }) as GatewayEvent;
    const first = await readModel.apply(
      quota(1, 1, 'UPDATED', { limits: { maxDevices: 5, totalMemoryGB: 7.5 }, usage: { currentDevices: 2 } }),
    );
    const row = await db.prisma.quota.findUniqueOrThrow({ where: { userId } });
    expect(first).toMatchObject({ quota: wire(toQuotaView(row)) });
    expect(first.family === 'quota' && first.quota).toMatchObject({
      limits: { maxDevices: 5, totalMemoryGB: 7.5 },
      usage: { currentDevices: 2 },
      version: 1,
    });
    await expect(readModel.apply(quota(2, 2, 'DELETED'))).resolves.toMatchObject({ kind: 'DELETED', quota: null });
  });

  it('gives an order event the order with its amount as a two-place decimal string', async () => {
    const userId = uniqueId('u');
    const orderId = uniqueId('o');
    const event = await readModel.apply({
      family: 'order',
      eventId: `${orderId}-1`,
      type: 'order.completed',
      userId,
      occurredAt: at(1),
      orderId,
      amount: '59.9',
    });
    const row = await db.prisma.order.findUniqueOrThrow({ where: { id: orderId } });
    expect(event).toMatchObject({ order: wire(toOrderView(row)) });
    expect(event.family === 'order' && event.order).toMatchObject({ amount: '59.90', status: 'COMPLETED' });
  });

  it('gives an app event the installation, also on redelivery and when the event names no installation id', async () => {
    const userId = uniqueId('u');
    const deviceId = uniqueId('d');
    const app = (n: number, minute: number, extra: object): GatewayEvent => ({
      family: 'app',
      eventId: `${deviceId}-a${n}`,
      type: 'app.installed',
      userId,
      occurredAt: at(minute),
      deviceId,
      appId: 'app-1',
      packageName: 'com.example',
      ...extra,
    });
    const first = await readModel.apply(app(1, 1, {}));
    const row = await db.prisma.appInstallation.findFirstOrThrow({ where: { deviceId } });
    expect(first).toMatchObject({ installation: wire(toInstallationView(row)) });
    const later = await readModel.apply(app(2, 2, { installationId: row.id, versionName: '2.0' }));
    expect(later.family === 'app' && later.installation).toMatchObject({ id: row.id, versionName: '2.0', version: 2 });
    const redelivered = await readModel.apply(app(1, 1, {}));
    expect(redelivered.family === 'app' && redelivered.installation).toMatchObject({ id: row.id, versionName: '2.0', version: 2 });
  });
  it('gives an order status event (order.completed feeds orderCompleted and orderStatusChanged with it) the order', async () => {
    const userId = uniqueId('u');
    const orderId = uniqueId('o');
    const status = (n: number, minute: number, value: string, extra: object = {}): GatewayEvent =>
      ({
        family: 'orderStatus',
        eventId: `${orderId}-s${n}`,
        type: `order.${value.toLowerCase()}`,
        userId,
        occurredAt: at(minute),
        orderId,
        status: value,
        ...extra,
      }) as GatewayEvent;
    const paid = await readModel.apply(status(1, 1, 'PAID', { amount: '12.5' }));
    expect(paid.family === 'orderStatus' && paid.order).toMatchObject({ id: orderId, status: 'PAID', amount: '12.50', version: 1 });
    const completed = await readModel.apply(status(2, 2, 'COMPLETED'));
    const row = await db.prisma.order.findUniqueOrThrow({ where: { id: orderId } });
    expect(completed).toMatchObject({ order: wire(toOrderView(row)) });
    expect(completed.family === 'orderStatus' && completed.order).toMatchObject({ status: 'COMPLETED', version: 2 });
    // Older than the row, and a redelivery: the newer row.
    const late = await readModel.apply(status(3, 0, 'CANCELLED'));
    const again = await readModel.apply(status(1, 1, 'PAID', { amount: '12.5' }));
    for (const event of [late, again])
      expect(event.family === 'orderStatus' && event.order).toMatchObject({ status: 'COMPLETED', version: 2 });
  });

  it('gives an installation lifecycle event (app.installed feeds appInstalled and appInstallationChanged with it) the installation', async () => {
    const userId = uniqueId('u');
    const deviceId = uniqueId('d');
    const step = (n: number, minute: number, value: string): GatewayEvent =>
      ({
        family: 'installation',
        eventId: `${deviceId}-i${n}`,
        type: 'app.install.x',
        userId,
        occurredAt: at(minute),
        deviceId,
        appId: 'app-9',
        packageName: 'com.nine',
        status: value,
      }) as GatewayEvent;
    const requested = await readModel.apply(step(1, 1, 'REQUESTED'));
    expect(requested.family === 'installation' && requested.installation).toMatchObject({ deviceId, status: 'INSTALLING', version: 1 });
    const installed = await readModel.apply(step(2, 2, 'INSTALLED'));
    const row = await db.prisma.appInstallation.findFirstOrThrow({ where: { deviceId } });
    expect(installed).toMatchObject({ installation: wire(toInstallationView(row)) });
    expect(installed.family === 'installation' && installed.installation).toMatchObject({ status: 'INSTALLED', version: 2 });
    const redelivered = await readModel.apply(step(1, 1, 'REQUESTED'));
    expect(redelivered.family === 'installation' && redelivered.installation).toMatchObject({ status: 'INSTALLED', version: 2 });
  });
});
