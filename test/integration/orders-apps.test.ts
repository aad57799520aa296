/**
 * Orders and app installations end to end on the real services: completeOrder/cancelOrder and
 * installApp/uninstallApp write their row and outbox event in one transaction; the events travel
 * RabbitMQ -> bridge -> Redis -> orderCompleted / appInstalled. Impossible transitions and other
 * users' entities change nothing.
 */
import {
  AppInstallationsDocument,
  AppInstalledDocument,
  CancelOrderDocument,
  CompleteOrderDocument,
  CreateDeviceDocument,
  DeleteDeviceDocument,
  DeviceDocument,
  InstallAppDocument,
  OrderCompletedDocument,
  OrderDocument,
  OrdersDocument,
  UninstallAppDocument,
} from '../generated/graphql';
import type { PlatformPeer } from '../helpers/amqp';
import { disposeClients, http, subscribe, token, wsClient } from '../helpers/clients';
import type { TestSql } from '../helpers/db';
import { waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { uniqueId } from '../helpers/services';
import { gatewaySuite } from '../helpers/suite';

const suite = gatewaySuite();
let gateway: TestGateway;
let peer: PlatformPeer;
let sql: TestSql;
beforeAll(() => ({ gateway, peer, sql } = suite));

afterEach(async () => {
  await disposeClients();
  await waitForSubscriptions(gateway, 0, 'orderCompleted');
  await waitForSubscriptions(gateway, 0, 'appInstalled');
});

const admin = () => token(uniqueId('admin'), { roles: ['admin'] });

async function createDevice(owner: string) {
  const result = await http(gateway.httpUrl, CreateDeviceDocument, { token: token(owner), variables: { input: { name: 'phone' } } });
  expect(result.body.errors).toBeUndefined();
  return result.body.data!.createDevice;
}

describe('orders', () => {
  it("completeOrder (administrators) emits order.completed through RabbitMQ to the owner's orderCompleted", async () => {
    const alice = uniqueId('alice');
    const orderId = await sql.seedOrder({ userId: alice, amount: '59.90', deviceId: 'dev-1', planId: 'plan-pro' });
    const wiretap = await peer.tap('order.#');
    const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(alice)}` });
    const sub = subscribe(client.client, OrderCompletedDocument, {});
    await waitForSubscriptions(gateway, 1, 'orderCompleted');

    const asUser = await http(gateway.httpUrl, CompleteOrderDocument, { token: token(alice), variables: { id: orderId } });
    expect(asUser.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    const done = await http(gateway.httpUrl, CompleteOrderDocument, { token: admin(), variables: { id: orderId } });
    expect(done.body.errors).toBeUndefined();
    expect(done.body.data?.completeOrder).toMatchObject({ id: orderId, userId: alice, status: 'COMPLETED', amount: '59.90', version: 2 });
    expect(done.body.data?.completeOrder.completedAt).not.toBeNull();

    const pushed = (await sub.next()).data!.orderCompleted;
    expect(pushed).toMatchObject({
      type: 'order.completed',
      userId: alice,
      orderId,
      amount: '59.90',
      deviceId: 'dev-1',
      planId: 'plan-pro',
    });
    const onWire = await peer.take(wiretap, (m) => m.properties.messageId === pushed.eventId, 'order.completed on the exchange');
    expect(onWire.fields.routingKey).toBe('order.completed');
    const read = await http(gateway.httpUrl, OrderDocument, { token: token(alice), variables: { id: orderId } });
    expect(read.body.data?.order).toMatchObject({ status: 'COMPLETED', amount: '59.90' });
  });

  it('cancelOrder by its owner emits order.cancelled (on the exchange; no subscription takes it)', async () => {
    const bob = uniqueId('bob');
    const orderId = await sql.seedOrder({ userId: bob, amount: '10.00' });
    const wiretap = await peer.tap('order.#');
    const cancelled = await http(gateway.httpUrl, CancelOrderDocument, { token: token(bob), variables: { id: orderId } });
    expect(cancelled.body.data?.cancelOrder).toMatchObject({ status: 'CANCELLED', version: 2 });
    const [row] = await sql.outboxFor('orderId', orderId);
    expect(row?.routing_key).toBe('order.cancelled');
    const onWire = await peer.take(wiretap, (m) => m.properties.messageId === row?.id, 'order.cancelled on the exchange');
    expect(JSON.parse(onWire.content.toString())).toMatchObject({
      eventType: 'order.cancelled',
      payload: { orderId, userId: bob, status: 'cancelled', amount: '10.00' },
    });
    // The bridge acknowledges it as ignored: nothing else is written for it.
    expect(await sql.query('SELECT status, version FROM billing_order WHERE id = $1', [orderId])).toEqual([
      { status: 'CANCELLED', version: 2 },
    ]);
  });

  it('refuses to complete a cancelled order or cancel a completed one, writing nothing', async () => {
    const carol = uniqueId('carol');
    const cancelledId = await sql.seedOrder({ userId: carol });
    const completedId = await sql.seedOrder({ userId: carol });
    const setup = [
      await http(gateway.httpUrl, CancelOrderDocument, { token: token(carol), variables: { id: cancelledId } }),
      await http(gateway.httpUrl, CompleteOrderDocument, { token: admin(), variables: { id: completedId } }),
    ];
    expect(setup.map((r) => r.body.errors)).toEqual([undefined, undefined]);
    const before = await sql.query('SELECT id, status, version, updated_at FROM billing_order WHERE user_id = $1 ORDER BY id', [carol]);

    const complete = await http(gateway.httpUrl, CompleteOrderDocument, { token: admin(), variables: { id: cancelledId } });
    expect(complete.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(complete.body.errors?.[0]?.message).toBe('Cannot complete an order that is CANCELLED');
    for (const id of [completedId, cancelledId]) {
      const cancel = await http(gateway.httpUrl, CancelOrderDocument, { token: token(carol), variables: { id } });
      expect(cancel.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    }
    expect(await sql.query('SELECT id, status, version, updated_at FROM billing_order WHERE user_id = $1 ORDER BY id', [carol])).toEqual(
      before,
    );
    expect((await sql.outboxFor('orderId', cancelledId)).map((r) => r.routing_key)).toEqual(['order.cancelled']);
    expect((await sql.outboxFor('orderId', completedId)).map((r) => r.routing_key)).toEqual(['order.completed']);
  });

  it("lists a user's orders as a connection, and hides another user's", async () => {
    const dan = uniqueId('dan');
    const mallory = uniqueId('mallory');
    const base = Date.parse('2026-10-01T00:00:00Z');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await sql.seedOrder({ userId: dan, amount: `${i}.50`, createdAt: new Date(base + i * 1000) }));
    await http(gateway.httpUrl, CancelOrderDocument, { token: token(dan), variables: { id: ids[0]! } });

    const first = await http(gateway.httpUrl, OrdersDocument, { token: token(dan), variables: { first: 2 } });
    expect(first.body.data?.orders.edges.map((e) => e.node.id)).toEqual([ids[2], ids[1]]);
    expect(first.body.data?.orders.pageInfo.hasNextPage).toBe(true);
    const second = await http(gateway.httpUrl, OrdersDocument, {
      token: token(dan),
      variables: { first: 2, after: first.body.data!.orders.pageInfo.endCursor },
    });
    expect(second.body.data?.orders.edges.map((e) => [e.node.id, e.node.status, e.node.amount])).toEqual([[ids[0], 'CANCELLED', '0.50']]);
    expect(second.body.data?.orders.pageInfo).toEqual({ hasNextPage: false, endCursor: second.body.data?.orders.edges[0]?.cursor });
    const pending = await http(gateway.httpUrl, OrdersDocument, { token: token(dan), variables: { status: 'PENDING' } });
    expect(pending.body.data?.orders.edges).toHaveLength(2);
    const tooMany = await http(gateway.httpUrl, OrdersDocument, { token: token(dan), variables: { first: 1000 } });
    expect(tooMany.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    const foreign = await http(gateway.httpUrl, OrderDocument, { token: token(mallory), variables: { id: ids[1]! } });
    expect(foreign.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const cancel = await http(gateway.httpUrl, CancelOrderDocument, { token: token(mallory), variables: { id: ids[1]! } });
    expect(cancel.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const list = await http(gateway.httpUrl, OrdersDocument, { token: token(mallory), variables: { userId: dan } });
    expect(list.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(await sql.query('SELECT status FROM billing_order WHERE id = $1', [ids[1]])).toEqual([{ status: 'PENDING' }]);
    const asAdmin = await http(gateway.httpUrl, OrdersDocument, { token: admin(), variables: { userId: dan } });
    expect(asAdmin.body.data?.orders.edges).toHaveLength(3);
  });
});

describe('app installations', () => {
  it('installApp emits app.installed to appInstalled; uninstallApp emits app.uninstalled; both show in the queries', async () => {
    const erin = uniqueId('erin');
    const device = await createDevice(erin);
    const wiretap = await peer.tap('app.#');
    const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(erin)}` });
    const sub = subscribe(client.client, AppInstalledDocument, { deviceId: device.id });
    await waitForSubscriptions(gateway, 1, 'appInstalled');

    const installed = await http(gateway.httpUrl, InstallAppDocument, {
      token: token(erin),
      variables: { deviceId: device.id, input: { packageName: 'com.example.chat', appId: 'app-chat', versionName: '1.2.0' } },
    });
    expect(installed.body.errors).toBeUndefined();
    const installation = installed.body.data!.installApp;
    expect(installation).toMatchObject({ deviceId: device.id, userId: erin, status: 'INSTALLED', packageName: 'com.example.chat' });

    const pushed = (await sub.next()).data!.appInstalled;
    expect(pushed).toMatchObject({
      type: 'app.installed',
      userId: erin,
      installationId: installation.id,
      appId: 'app-chat',
      deviceId: device.id,
      packageName: 'com.example.chat',
      versionName: '1.2.0',
    });
    expect(
      (await peer.take(wiretap, (m) => m.properties.messageId === pushed.eventId, 'app.installed on the exchange')).fields.routingKey,
    ).toBe('app.installed');
    const listed = await http(gateway.httpUrl, AppInstallationsDocument, { token: token(erin), variables: { deviceId: device.id } });
    expect(listed.body.data?.appInstallations.map((i) => i.id)).toEqual([installation.id]);
    const nested = await http(gateway.httpUrl, DeviceDocument, { token: token(erin), variables: { id: device.id } });
    expect(nested.body.data?.device.installations.map((i) => i.id)).toEqual([installation.id]);

    const removed = await http(gateway.httpUrl, UninstallAppDocument, {
      token: token(erin),
      variables: { installationId: installation.id },
    });
    expect(removed.body.data?.uninstallApp).toMatchObject({ status: 'UNINSTALLED', version: 2 });
    const [, uninstallRow] = await sql.outboxFor('installationId', installation.id);
    expect(uninstallRow?.routing_key).toBe('app.uninstalled');
    const onWire = await peer.take(wiretap, (m) => m.properties.messageId === uninstallRow?.id, 'app.uninstalled on the exchange');
    expect(onWire.fields.routingKey).toBe('app.uninstalled');
    const after = await http(gateway.httpUrl, AppInstallationsDocument, { token: token(erin), variables: { deviceId: device.id } });
    expect(after.body.data?.appInstallations).toEqual([]);
    expect(sub.pending()).toBe(0);
  });

  it('refuses installing twice, on a deleted device, and uninstalling twice, writing nothing', async () => {
    const frank = uniqueId('frank');
    const device = await createDevice(frank);
    const input = { packageName: 'com.example.maps' };
    const first = await http(gateway.httpUrl, InstallAppDocument, { token: token(frank), variables: { deviceId: device.id, input } });
    const id = first.body.data!.installApp.id;
    const again = await http(gateway.httpUrl, InstallAppDocument, { token: token(frank), variables: { deviceId: device.id, input } });
    expect(again.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const badName = await http(gateway.httpUrl, InstallAppDocument, {
      token: token(frank),
      variables: { deviceId: device.id, input: { packageName: 'not a package' } },
    });
    expect(badName.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    await http(gateway.httpUrl, UninstallAppDocument, { token: token(frank), variables: { installationId: id } });
    const twice = await http(gateway.httpUrl, UninstallAppDocument, { token: token(frank), variables: { installationId: id } });
    expect(twice.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');

    await http(gateway.httpUrl, DeleteDeviceDocument, { token: token(frank), variables: { id: device.id } });
    const onDeleted = await http(gateway.httpUrl, InstallAppDocument, {
      token: token(frank),
      variables: { deviceId: device.id, input: { packageName: 'com.example.other' } },
    });
    expect(onDeleted.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(onDeleted.body.errors?.[0]?.message).toBe('Cannot install an app on a device that is DELETED');

    expect(await sql.query('SELECT id, status, version FROM app_installation WHERE device_id = $1', [device.id])).toEqual([
      { id, status: 'UNINSTALLED', version: 2 },
    ]);
    expect((await sql.outboxFor('installationId', id)).map((r) => r.routing_key)).toEqual(['app.installed', 'app.uninstalled']);
    expect(
      await sql.query(
        `SELECT count(*)::int AS n FROM outbox_event WHERE routing_key LIKE 'app.%' AND payload->'payload'->>'deviceId' = $1`,
        [device.id],
      ),
    ).toEqual([{ n: 2 }]);
  });

  it("keeps users off another user's device apps; administrators may act", async () => {
    const gina = uniqueId('gina');
    const mallory = uniqueId('mallory');
    const device = await createDevice(gina);
    const mine = await http(gateway.httpUrl, InstallAppDocument, {
      token: token(gina),
      variables: { deviceId: device.id, input: { packageName: 'com.example.notes' } },
    });
    const installationId = mine.body.data!.installApp.id;

    const install = await http(gateway.httpUrl, InstallAppDocument, {
      token: token(mallory),
      variables: { deviceId: device.id, input: { packageName: 'com.evil.spy' } },
    });
    expect(install.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const uninstall = await http(gateway.httpUrl, UninstallAppDocument, { token: token(mallory), variables: { installationId } });
    expect(uninstall.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    // Listing answers as for a device that does not exist: none of the caller's own.
    const list = await http(gateway.httpUrl, AppInstallationsDocument, { token: token(mallory), variables: { deviceId: device.id } });
    expect(list.body).toEqual({ data: { appInstallations: [] } });
    expect(await sql.query('SELECT package_name, status FROM app_installation WHERE device_id = $1', [device.id])).toEqual([
      { package_name: 'com.example.notes', status: 'INSTALLED' },
    ]);

    const byAdmin = await http(gateway.httpUrl, UninstallAppDocument, { token: admin(), variables: { installationId } });
    expect(byAdmin.body.data?.uninstallApp).toMatchObject({ status: 'UNINSTALLED', userId: gina });
  });
});
