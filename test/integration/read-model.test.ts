/**
 * The read model on the real services: platform events update the tables the queries read before
 * they reach subscribers, idempotently by eventId and never putting older state over newer; events
 * that name only a device get its owner from the read model, or are dead-lettered.
 */
import {
  AppInstallationsDocument,
  AppInstalledDocument,
  DeviceDocument,
  DeviceStatusChangedDocument,
  OrderCompletedDocument,
  OrderDocument,
  QuotaChangedDocument,
  QuotaDocument,
} from '../generated/graphql';
import type { PlatformPeer } from '../helpers/amqp';
import { disposeClients, http, subscribe, token, wsClient } from '../helpers/clients';
import type { TestSql } from '../helpers/db';
import { waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { uniqueId } from '../helpers/services';
import { gatewaySuite } from '../helpers/suite';

// Counts every delivery of one device's events, replays included: no coalescing here.
const suite = gatewaySuite({ EVENT_COALESCE_MS: '0' });
let gateway: TestGateway;
let peer: PlatformPeer;
let sql: TestSql;
beforeAll(() => ({ gateway, peer, sql } = suite));

afterEach(async () => {
  await disposeClients();
  for (const field of ['deviceStatusChanged', 'quotaChanged', 'orderCompleted', 'appInstalled'])
    await waitForSubscriptions(gateway, 0, field);
});

let deadLetteredBefore = 0;
beforeEach(() => {
  deadLetteredBefore = gateway.app.stats().bridge.deadLettered;
});

const at = (minute: number) => new Date(Date.UTC(2026, 10, 24, 12, minute)).toISOString();

function deviceSubscriber(userId: string) {
  const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(userId)}` });
  return subscribe(client.client, DeviceStatusChangedDocument, {});
}

const readDevice = async (userId: string, id: string) =>
  (await http(gateway.httpUrl, DeviceDocument, { token: token(userId), variables: { id } })).body.data?.device;

describe('devices', () => {
  it('has the new status by the time a subscriber receives the event', async () => {
    const alice = uniqueId('alice');
    const deviceId = uniqueId('dev');
    const sub = deviceSubscriber(alice);
    await waitForSubscriptions(gateway, 1, 'deviceStatusChanged');

    await peer.publish('device.created', {
      deviceId,
      userId: alice,
      deviceName: 'cloud-1',
      status: 'idle',
      providerType: 'redroid',
      createdAt: at(0),
    });
    expect((await sub.next()).data?.deviceStatusChanged).toMatchObject({ deviceId, status: 'IDLE' });
    expect(await readDevice(alice, deviceId)).toMatchObject({
      id: deviceId,
      userId: alice,
      name: 'cloud-1',
      status: 'IDLE',
      providerType: 'redroid',
      version: 1,
    });

    await peer.publish('device.started', {
      eventId: uniqueId('evt'),
      eventType: 'device.started',
      timestamp: at(1),
      payload: { deviceId, userId: alice },
    });
    expect((await sub.next()).data?.deviceStatusChanged).toMatchObject({ deviceId, status: 'RUNNING' });
    expect(await readDevice(alice, deviceId)).toMatchObject({ status: 'RUNNING', version: 2 });
  });

  it('applies a replayed event once and ignores older ones, with equal times ordered by eventId', async () => {
    const bob = uniqueId('bob');
    const deviceId = uniqueId('dev');
    const sub = deviceSubscriber(bob);
    await waitForSubscriptions(gateway, 1, 'deviceStatusChanged');
    const received = async (n: number) => {
      const events = [];
      for (let i = 0; i < n; i++) events.push((await sub.next()).data!.deviceStatusChanged);
      return events;
    };

    // Newest first, then an older one, then the newest again (a redelivery).
    await peer.publish(
      'device.status.changed',
      { deviceId, userId: bob, oldStatus: 'running', newStatus: 'stopped', changedAt: at(10) },
      { messageId: `m3-${deviceId}` },
    );
    await peer.publish('device.started', { deviceId, userId: bob, startedAt: at(5) }, { messageId: `m2-${deviceId}` });
    await peer.publish(
      'device.status.changed',
      { deviceId, userId: bob, oldStatus: 'running', newStatus: 'stopped', changedAt: at(10) },
      { messageId: `m3-${deviceId}` },
    );
    // Several messages are in flight at once (prefetch): arrival order is not publish order.
    expect((await received(3)).map((e) => `${e.eventId} ${e.status}`).sort()).toEqual([
      `m2-${deviceId} RUNNING`,
      `m3-${deviceId} STOPPED`,
      `m3-${deviceId} STOPPED`,
    ]);
    expect(await readDevice(bob, deviceId)).toMatchObject({ status: 'STOPPED', version: 1 });

    // Two events at the same instant: the larger eventId wins, whatever the arrival order.
    await peer.publish('device.error', { deviceId, userId: bob, reason: 'host lost', failedAt: at(20) }, { messageId: `z-${deviceId}` });
    await peer.publish('device.recovered', { deviceId, userId: bob, recoveredAt: at(20) }, { messageId: `a-${deviceId}` });
    await received(2);
    expect(await readDevice(bob, deviceId)).toMatchObject({ status: 'ERROR', statusReason: 'host lost', version: 2 });
    const processed = await sql.query('SELECT event_id FROM processed_event WHERE event_id LIKE $1 ORDER BY event_id', [`%${deviceId}`]);
    expect(processed.map((r) => r.event_id)).toEqual([`a-${deviceId}`, `m2-${deviceId}`, `m3-${deviceId}`, `z-${deviceId}`]);
  });

  it("gives a device event without userId to the device's owner (failover events)", async () => {
    const carol = uniqueId('carol');
    const deviceId = uniqueId('dev');
    const sub = deviceSubscriber(carol);
    await waitForSubscriptions(gateway, 1, 'deviceStatusChanged');
    await peer.publish('device.created', { deviceId, userId: carol, createdAt: at(0) });
    await sub.next();
    await peer.publish('device.error', { deviceId, reason: 'node failover', failedAt: at(1) }, { messageId: `fail-${deviceId}` });
    expect((await sub.next()).data?.deviceStatusChanged).toMatchObject({
      eventId: `fail-${deviceId}`,
      userId: carol,
      status: 'ERROR',
      reason: 'node failover',
    });
    expect(await readDevice(carol, deviceId)).toMatchObject({ status: 'ERROR', userId: carol });
  });
});

describe('apps', () => {
  it("delivers app.install.completed without userId to the owner's appInstalled, and records the installation", async () => {
    const dan = uniqueId('dan');
    const deviceId = uniqueId('dev');
    const devices = deviceSubscriber(dan);
    await waitForSubscriptions(gateway, 1, 'deviceStatusChanged');
    await peer.publish('device.created', { deviceId, userId: dan, status: 'running', createdAt: at(0) }, { messageId: `new-${deviceId}` });
    await peer.publish('device.stopped', { deviceId, userId: dan, stoppedAt: at(1) }, { messageId: `sync-${deviceId}` });
    // Both seen by a subscriber: the device is in the read model by now (in either order).
    const seen = [(await devices.next()).data?.deviceStatusChanged.eventId, (await devices.next()).data?.deviceStatusChanged.eventId];
    expect(seen.sort()).toEqual([`new-${deviceId}`, `sync-${deviceId}`]);
    expect(await readDevice(dan, deviceId)).toMatchObject({ status: 'STOPPED' });

    const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(dan)}` });
    const sub = subscribe(client.client, AppInstalledDocument, {});
    await waitForSubscriptions(gateway, 1, 'appInstalled');
    await peer.publish('app.install.completed', {
      eventId: `inst-${deviceId}`,
      eventType: 'app.install.completed',
      payload: { deviceId, applicationId: 'app-42', packageName: 'com.example.game', versionName: '3.1', installedAt: at(2) },
    });
    expect((await sub.next()).data?.appInstalled).toMatchObject({
      eventId: `inst-${deviceId}`,
      type: 'app.install.completed',
      userId: dan,
      deviceId,
      appId: 'app-42',
      packageName: 'com.example.game',
      installationId: null,
    });
    const listed = await http(gateway.httpUrl, AppInstallationsDocument, { token: token(dan), variables: { deviceId } });
    expect(listed.body.data?.appInstallations).toEqual([
      expect.objectContaining({
        deviceId,
        userId: dan,
        appId: 'app-42',
        packageName: 'com.example.game',
        versionName: '3.1',
        status: 'INSTALLED',
        installedAt: at(2),
      }),
    ]);

    // The same app again without an installation id updates that installation, not a second one.
    await peer.publish(
      'app.install.completed',
      { deviceId, appId: 'app-42', versionName: '3.2', installedAt: at(3) },
      { messageId: `upd-${deviceId}` },
    );
    expect((await sub.next()).data?.appInstalled.eventId).toBe(`upd-${deviceId}`);
    const again = await http(gateway.httpUrl, AppInstallationsDocument, { token: token(dan), variables: { deviceId } });
    expect(again.body.data?.appInstallations.map((i) => [i.versionName, i.version])).toEqual([['3.2', 2]]);
  });

  it("gives its owner an app event published right behind the device's first event (not yet applied)", async () => {
    const eve = uniqueId('eve');
    const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(eve)}` });
    const apps = subscribe(client.client, AppInstalledDocument, {});
    await waitForSubscriptions(gateway, 1, 'appInstalled');
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const deviceId = uniqueId(`race${i}`);
      await peer.publish('device.created', { deviceId, userId: eve, createdAt: at(0) }, { messageId: `born-${deviceId}` });
      await peer.publish('app.install.completed', { deviceId, appId: 'a', installedAt: at(1) }, { messageId: `app-${deviceId}` });
      ids.push(`app-${deviceId}`);
    }
    const got: string[] = [];
    for (let i = 0; i < ids.length; i++) got.push((await apps.next(20_000)).data?.appInstalled.eventId as string);
    expect(got.sort()).toEqual([...ids].sort());
    expect(gateway.app.stats().bridge.deadLettered).toBe(deadLetteredBefore);
  }, 60_000);

  it('dead-letters an event naming a device nobody is known to own, with the reason "unknown owner"', async () => {
    const deviceId = uniqueId('ghost');
    await peer.publish('app.install.completed', { deviceId, packageName: 'com.example.x' }, { messageId: `ghost-${deviceId}` });
    const dead = await peer.take(
      gateway.config.amqp.deadLetterQueue,
      (m) => m.properties.messageId === `ghost-${deviceId}`,
      'the unknown-owner dead letter',
    );
    expect(dead.properties.headers?.['x-rejection-reason']).toBe('unknown owner');
    expect(await sql.query('SELECT id FROM app_installation WHERE device_id = $1', [deviceId])).toEqual([]);
    expect(await sql.query('SELECT event_id FROM processed_event WHERE event_id = $1', [`ghost-${deviceId}`])).toEqual([]);
  });
});

describe('quota and orders', () => {
  it('applies quota events by time: older ones are ignored, a deletion is not undone by an older update', async () => {
    const erin = uniqueId('erin');
    const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(erin)}` });
    const sub = subscribe(client.client, QuotaChangedDocument, {});
    await waitForSubscriptions(gateway, 1, 'quotaChanged');
    const quota = async () => (await http(gateway.httpUrl, QuotaDocument, { token: token(erin), variables: {} })).body.data?.quota;
    const send = async (key: string, body: Record<string, unknown>, id: string) => {
      await peer.publish(key, { userId: erin, quotaId: `q-${erin}`, ...body }, { messageId: `${id}-${erin}` });
      expect((await sub.next()).data?.quotaChanged.eventId).toBe(`${id}-${erin}`);
    };

    await send('quota.updated', { limits: { maxDevices: 5 }, usage: { currentDevices: 1 }, status: 'active', timestamp: at(10) }, 'u10');
    expect(await quota()).toMatchObject({ id: `q-${erin}`, status: 'ACTIVE', limits: { maxDevices: 5 }, usage: { currentDevices: 1 } });
    await send('quota.updated', { limits: { maxDevices: 1 }, timestamp: at(5) }, 'u5');
    await send('quota.exceeded', { usage: { currentDevices: 6 }, exceededAt: at(11) }, 'x11');
    expect(await quota()).toMatchObject({ status: 'EXCEEDED', limits: { maxDevices: 5 }, usage: { currentDevices: 6 }, version: 2 });

    await send('quota.deleted', { deletedAt: at(20) }, 'd20');
    expect(await quota()).toBeNull();
    await send('quota.updated', { limits: { maxDevices: 7 }, timestamp: at(15) }, 'u15');
    expect(await quota()).toBeNull();
    await send('quota.renewed', { status: 'active', validUntil: '2027-01-01T00:00:00Z', renewedAt: at(30) }, 'r30');
    expect(await quota()).toMatchObject({ status: 'ACTIVE', limits: { maxDevices: 5 }, validUntil: '2027-01-01T00:00:00.000Z' });
  });

  it('records an order.completed from billing, once however often it is delivered', async () => {
    const frank = uniqueId('frank');
    const orderId = uniqueId('order');
    const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(frank)}` });
    const sub = subscribe(client.client, OrderCompletedDocument, {});
    await waitForSubscriptions(gateway, 1, 'orderCompleted');
    const body = {
      eventId: `paid-${orderId}`,
      eventType: 'billing.order.completed',
      payload: { orderId, userId: frank, amount: '59.90', planId: 'pro', paidAt: at(1) },
    };
    await peer.publish('billing.order.completed', body);
    await peer.publish('billing.order.completed', body);
    for (let i = 0; i < 2; i++) expect((await sub.next()).data?.orderCompleted).toMatchObject({ orderId, amount: '59.90' });
    const read = await http(gateway.httpUrl, OrderDocument, { token: token(frank), variables: { id: orderId } });
    expect(read.body.data?.order).toMatchObject({
      id: orderId,
      userId: frank,
      status: 'COMPLETED',
      amount: '59.90',
      planId: 'pro',
      completedAt: at(1),
      version: 1,
    });
  });
});
