/**
 * Security on the real services: authorization per operation (whatever the arguments), sockets
 * per user across two instances (Redis), operations per socket, HTTP rate limit shared through
 * Redis, depth/complexity limits on HTTP and WebSocket, token expiry with a refreshing client,
 * and RS256 tokens from a JWKS served on 127.0.0.1.
 */
import { createClient } from 'graphql-ws';
import Redis from 'ioredis';
import WebSocket from 'ws';
import { createSchema } from '../../src/schema';
import {
  AppInstallationsDocument,
  BroadcastAnnouncementDocument,
  CancelOrderDocument,
  CompleteOrderDocument,
  CreateDeviceDocument,
  DeductQuotaDocument,
  DeleteDeviceDocument,
  DeviceDocument,
  DevicesDocument,
  InstallAppDocument,
  MeDocument,
  NotificationsDocument,
  OrderDocument,
  OrdersDocument,
  QuotaChangedDocument,
  QuotaDocument,
  RenewQuotaDocument,
  RestoreQuotaDocument,
  StartDeviceDocument,
  StopDeviceDocument,
  SystemEventsDocument,
  UninstallAppDocument,
  UpdateQuotaDocument,
} from '../generated/graphql';
import { openPlatformPeer, type PlatformPeer } from '../helpers/amqp';
import { disposeClients, http, subscribe, token, wsClient, type HttpResult } from '../helpers/clients';
import { openSql, type TestSql } from '../helpers/db';
import { realServicesEnv, startGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { claims, keyPair, signWith, startJwksServer, type JwksServer } from '../helpers/jwt';
import { createTestDatabase, TEST_REDIS_URL, uniqueId, type TestDatabase } from '../helpers/services';
import { deferred, waitFor } from '../helpers/wait';

let database: TestDatabase;
let gateway: TestGateway;
let second: TestGateway;
let peer: PlatformPeer;
let redis: Redis;
let sql: TestSql;

beforeAll(async () => {
  database = await createTestDatabase();
  const env = realServicesEnv(database.url, {
    WS_MAX_SOCKETS_PER_USER: '2',
    WS_MAX_SUBSCRIPTIONS_PER_SOCKET: '2',
    // Many requests per user in the authorization cases; the rate limit has its own gateways.
    HTTP_RATE_LIMIT_BURST: '10000',
    GRAPHQL_MAX_DEPTH: '4',
    GRAPHQL_MAX_COMPLEXITY: '60',
  });
  gateway = await startGateway(env);
  // A second instance on the same queue, Redis prefix and limits.
  second = await startGateway({ ...env, DATABASE_URL: database.url });
  peer = await openPlatformPeer();
  redis = new Redis(TEST_REDIS_URL);
  sql = await openSql(database.url);
});

afterEach(async () => {
  await disposeClients();
});

afterAll(async () => {
  await disposeClients();
  await stopGateways();
  await peer?.close();
  redis?.disconnect();
  await sql?.close();
  await database?.drop();
});

const bearer = (jwt: string) => ({ authorization: `Bearer ${jwt}` });
/** Events bridged by the suite's two instances of one deployment (they share the queue). */
const bridgedByBoth = () => gateway.app.stats().bridge.bridged + second.app.stats().bridge.bridged;

describe('authorization per operation', () => {
  const ALICE = uniqueId('alice');
  const BOB = uniqueId('bob');
  const ADMIN = uniqueId('admin');
  const asAdmin = () => token(ADMIN, { roles: ['admin'] });

  /** Alice's things, which Bob must never read or change. */
  const alice = { device: '', spareDevice: '', order: '', otherOrder: '', installation: '' };
  beforeAll(async () => {
    const device = await http(gateway.httpUrl, CreateDeviceDocument, {
      token: token(ALICE),
      variables: { input: { name: 'alice-phone' } },
    });
    expect(device.body.errors).toBeUndefined();
    alice.device = device.body.data!.createDevice.id;
    const spare = await http(gateway.httpUrl, CreateDeviceDocument, { token: token(ALICE), variables: { input: { name: 'alice-spare' } } });
    alice.spareDevice = spare.body.data!.createDevice.id;
    alice.order = await sql.seedOrder({ userId: ALICE, amount: '9.90' });
    alice.otherOrder = await sql.seedOrder({ userId: ALICE, amount: '19.90' });
    const installed = await http(gateway.httpUrl, InstallAppDocument, {
      token: token(ALICE),
      variables: { deviceId: alice.device, input: { packageName: 'com.alice.app' } },
    });
    expect(installed.body.errors).toBeUndefined();
    alice.installation = installed.body.data!.installApp.id;
    const quota = await http(gateway.httpUrl, UpdateQuotaDocument, {
      token: asAdmin(),
      variables: { userId: ALICE, input: { limits: { maxDevices: 10, totalCpuCores: 64 } } },
    });
    expect(quota.body.errors).toBeUndefined();
  });

  /**
   * Proves nothing of Alice's leaked to Bob: once Alice's event is bridged (published to Redis, by
   * either instance: they share the queue), a marker for Bob is published after it; Redis keeps
   * order on each instance's one subscriber connection, so a leaked event would reach Bob before
   * the marker, which must come next.
   */
  async function noLeakAfter(bridgedAtLeast: number, publishMarker: () => Promise<void>, expectMarkerNext: () => Promise<void>) {
    await waitFor(() => bridgedByBoth() >= bridgedAtLeast, "Alice's event to be bridged (by either instance)");
    await publishMarker();
    await expectMarkerNext();
  }

  /**
   * Refused without a token, and refused for Bob with no data and the one code the README's
   * authorization table gives the operation: FORBIDDEN where naming another user (or an
   * administrator's operation) is refused as such, NOT_FOUND where an id of someone else's must
   * answer as a missing one does (ids cannot be probed).
   */
  async function refused(
    code: 'FORBIDDEN' | 'NOT_FOUND',
    send: (jwt?: string) => Promise<HttpResult<unknown>>,
    jwt = token(BOB),
  ): Promise<void> {
    const anonymous = await send(undefined);
    expect(anonymous.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const other = await send(jwt);
    expect(other.body.errors?.[0]?.extensions?.code).toBe(code);
    expect(other.body.data ?? null).toBeNull();
  }
  const deviceOf = async (id: string) =>
    (await http(gateway.httpUrl, DeviceDocument, { token: token(ALICE), variables: { id } })).body.data?.device;

  /**
   * Every root field of the schema, with what a user, another user and an administrator may do.
   * A new query, mutation or subscription fails the first test until it has its case here.
   */
  const cases: Record<string, { kind: 'query' | 'mutation' | 'subscription'; check: () => Promise<void> }> = {
    quota: {
      kind: 'query',
      async check() {
        const anonymous = await http(gateway.httpUrl, QuotaDocument, { variables: { userId: ALICE } });
        expect(anonymous.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
        // Alice has a quota; Bob has none.
        const set = await http(gateway.httpUrl, UpdateQuotaDocument, {
          token: token(ADMIN, { roles: ['admin'] }),
          variables: { userId: ALICE, input: { limits: { maxDevices: 2 } } },
        });
        expect(set.body.errors).toBeUndefined();
        const other = await http(gateway.httpUrl, QuotaDocument, { token: token(BOB), variables: { userId: ALICE } });
        expect(other.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
        expect(other.body.data?.quota ?? null).toBeNull();
        const bobsOwn = await http(gateway.httpUrl, QuotaDocument, { token: token(BOB), variables: {} });
        expect(bobsOwn.body).toEqual({ data: { quota: null } });
        const own = await http(gateway.httpUrl, QuotaDocument, { token: token(ALICE), variables: {} });
        expect(own.body.errors).toBeUndefined();
        expect(own.body.data?.quota?.userId).toBe(ALICE);
        const admin = await http(gateway.httpUrl, QuotaDocument, {
          token: token(ADMIN, { roles: ['admin'] }),
          variables: { userId: ALICE },
        });
        expect(admin.body.data?.quota?.userId).toBe(ALICE);
      },
    },
    renewSession: {
      kind: 'mutation',
      async check() {
        const renew = 'mutation R($token: String!) { renewSession(token: $token) { expiresAt } }';
        const anonymous = await http(gateway.httpUrl, renew, { variables: { token: token(ALICE) } });
        expect(anonymous.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
        // A socket of Alice's cannot take Bob's token: FORBIDDEN, and it stays Alice's.
        const socket = wsClient(gateway.wsUrl, bearer(token(ALICE)));
        const stolen = subscribe(socket.client, renew, { token: token(BOB) });
        expect((await stolen.next()).errors?.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);
        const me = subscribe(socket.client, '{ me { id } }');
        expect((await me.next()).data).toEqual({ me: { id: ALICE } });
        const own = subscribe(socket.client, renew, { token: token(ALICE) });
        expect((await own.next()).errors).toBeUndefined();
        await socket.dispose();
      },
    },
    revokeSessions: {
      kind: 'mutation',
      async check() {
        const revoke = 'mutation R($userId: ID!) { revokeSessions(userId: $userId) { userId } }';
        const victim = uniqueId('revoke-target');
        const anonymous = await http(gateway.httpUrl, revoke, { variables: { userId: victim } });
        expect(anonymous.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
        for (const target of [ALICE, victim]) {
          const asUser = await http(gateway.httpUrl, revoke, { token: token(ALICE), variables: { userId: target } });
          expect(asUser.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
        }
        const asAdmin = await http(gateway.httpUrl, revoke, { token: token(ADMIN, { roles: ['admin'] }), variables: { userId: victim } });
        expect(asAdmin.body.data).toEqual({ revokeSessions: { userId: victim } });
      },
    },
    updateQuota: {
      kind: 'mutation',
      async check() {
        const input = { limits: { maxDevices: 3 } };
        const anonymous = await http(gateway.httpUrl, UpdateQuotaDocument, { variables: { userId: ALICE, input } });
        expect(anonymous.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
        for (const target of [ALICE, BOB]) {
          const asUser = await http(gateway.httpUrl, UpdateQuotaDocument, { token: token(ALICE), variables: { userId: target, input } });
          expect(asUser.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
        }
        const asAdmin = await http(gateway.httpUrl, UpdateQuotaDocument, {
          token: token(ADMIN, { roles: ['super_admin'] }),
          variables: { userId: ALICE, input },
        });
        expect(asAdmin.body.data?.updateQuota).toMatchObject({ userId: ALICE, limits: { maxDevices: 3 } });
      },
    },
    quotaChanged: {
      kind: 'subscription',
      async check() {
        const client = wsClient(gateway.wsUrl, bearer(token(BOB)));
        const own = subscribe(client.client, QuotaChangedDocument, {});
        await waitForSubscriptions(gateway, 1);
        for (const userId of [ALICE, `${ALICE}*`, '*', 'quota:user:*']) {
          const denied = await subscribe(client.client, QuotaChangedDocument, { userId }).next();
          expect(denied.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
        }
        // Alice's event never reaches Bob, whatever he asked for; his own does, on the same socket.
        const bridged = bridgedByBoth();
        await peer.publish('quota.updated', { userId: ALICE }, { messageId: `a-${ALICE}` });
        await peer.publish('quota.updated', { userId: BOB }, { messageId: `b-${BOB}` });
        expect((await own.next()).data?.quotaChanged).toMatchObject({ eventId: `b-${BOB}`, userId: BOB });
        await noLeakAfter(
          bridged + 2,
          () => peer.publish('quota.deleted', { userId: BOB }, { messageId: `b2-${BOB}` }),
          async () => expect((await own.next()).data?.quotaChanged).toMatchObject({ eventId: `b2-${BOB}` }),
        );
        expect(own.pending()).toBe(0);
        own.unsubscribe();
        await waitForSubscriptions(gateway, 0);
      },
    },
    me: {
      kind: 'query',
      async check() {
        expect((await http(gateway.httpUrl, MeDocument, {})).body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
        const me = await http(gateway.httpUrl, MeDocument, { token: token(BOB) });
        expect(me.body.data?.me).toMatchObject({ id: BOB, isAdmin: false });
      },
    },
    devices: {
      kind: 'query',
      async check() {
        await refused('FORBIDDEN', (jwt) => http(gateway.httpUrl, DevicesDocument, { token: jwt, variables: { userId: ALICE } }));
        const bobs = await http(gateway.httpUrl, DevicesDocument, { token: token(BOB), variables: {} });
        expect(bobs.body.data?.devices.edges.map((e) => e.node.userId)).not.toContain(ALICE);
        const alices = await http(gateway.httpUrl, DevicesDocument, { token: token(ALICE), variables: {} });
        expect(alices.body.data?.devices.edges.map((e) => e.node.id)).toContain(alice.device);
        const admin = await http(gateway.httpUrl, DevicesDocument, { token: asAdmin(), variables: { userId: ALICE } });
        expect(admin.body.data?.devices.edges.map((e) => e.node.id)).toContain(alice.device);
      },
    },
    device: {
      kind: 'query',
      async check() {
        await refused('NOT_FOUND', (jwt) => http(gateway.httpUrl, DeviceDocument, { token: jwt, variables: { id: alice.device } }));
        expect((await deviceOf(alice.device))?.userId).toBe(ALICE);
      },
    },
    orders: {
      kind: 'query',
      async check() {
        await refused('FORBIDDEN', (jwt) => http(gateway.httpUrl, OrdersDocument, { token: jwt, variables: { userId: ALICE } }));
        const bobs = await http(gateway.httpUrl, OrdersDocument, { token: token(BOB), variables: {} });
        expect(bobs.body.data?.orders.edges).toEqual([]);
        const alices = await http(gateway.httpUrl, OrdersDocument, { token: token(ALICE), variables: {} });
        expect(alices.body.data?.orders.edges.map((e) => e.node.id)).toEqual(expect.arrayContaining([alice.order, alice.otherOrder]));
      },
    },
    order: {
      kind: 'query',
      async check() {
        await refused('NOT_FOUND', (jwt) => http(gateway.httpUrl, OrderDocument, { token: jwt, variables: { id: alice.order } }));
        expect(
          (await http(gateway.httpUrl, OrderDocument, { token: token(ALICE), variables: { id: alice.order } })).body.data?.order.userId,
        ).toBe(ALICE);
      },
    },
    appInstallations: {
      kind: 'query',
      async check() {
        const list = (jwt?: string) =>
          http(gateway.httpUrl, AppInstallationsDocument, { token: jwt, variables: { deviceId: alice.device } });
        expect((await list(undefined)).body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
        // Another user sees none of them, exactly as for a device that does not exist.
        expect((await list(token(BOB))).body).toEqual({ data: { appInstallations: [] } });
        const own = await http(gateway.httpUrl, AppInstallationsDocument, { token: token(ALICE), variables: { deviceId: alice.device } });
        expect(own.body.data?.appInstallations.map((i) => i.id)).toEqual([alice.installation]);
      },
    },
    createDevice: {
      kind: 'mutation',
      async check() {
        await refused('FORBIDDEN', (jwt) =>
          http(gateway.httpUrl, CreateDeviceDocument, { token: jwt, variables: { userId: ALICE, input: { name: 'planted' } } }),
        );
        const devices = await http(gateway.httpUrl, DevicesDocument, { token: token(ALICE), variables: {} });
        expect(devices.body.data?.devices.edges.map((e) => e.node.name)).not.toContain('planted');
        const forAlice = await http(gateway.httpUrl, CreateDeviceDocument, {
          token: asAdmin(),
          variables: { userId: ALICE, input: { name: 'by-admin' } },
        });
        expect(forAlice.body.data?.createDevice.userId).toBe(ALICE);
      },
    },
    startDevice: {
      kind: 'mutation',
      async check() {
        await refused('NOT_FOUND', (jwt) => http(gateway.httpUrl, StartDeviceDocument, { token: jwt, variables: { id: alice.device } }));
        expect((await deviceOf(alice.device))?.status).toBe('IDLE');
      },
    },
    stopDevice: {
      kind: 'mutation',
      async check() {
        const started = await http(gateway.httpUrl, StartDeviceDocument, { token: token(ALICE), variables: { id: alice.spareDevice } });
        expect(started.body.data?.startDevice.status).toBe('RUNNING');
        await refused('NOT_FOUND', (jwt) =>
          http(gateway.httpUrl, StopDeviceDocument, { token: jwt, variables: { id: alice.spareDevice } }),
        );
        expect((await deviceOf(alice.spareDevice))?.status).toBe('RUNNING');
      },
    },
    deleteDevice: {
      kind: 'mutation',
      async check() {
        await refused('NOT_FOUND', (jwt) =>
          http(gateway.httpUrl, DeleteDeviceDocument, { token: jwt, variables: { id: alice.spareDevice } }),
        );
        expect((await deviceOf(alice.spareDevice))?.status).toBe('RUNNING');
      },
    },
    completeOrder: {
      kind: 'mutation',
      async check() {
        await refused('FORBIDDEN', (jwt) => http(gateway.httpUrl, CompleteOrderDocument, { token: jwt, variables: { id: alice.order } }));
        // Administrators only: not even the owner.
        const byOwner = await http(gateway.httpUrl, CompleteOrderDocument, { token: token(ALICE), variables: { id: alice.order } });
        expect(byOwner.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
        const byAdmin = await http(gateway.httpUrl, CompleteOrderDocument, { token: asAdmin(), variables: { id: alice.order } });
        expect(byAdmin.body.data?.completeOrder).toMatchObject({ id: alice.order, status: 'COMPLETED' });
      },
    },
    cancelOrder: {
      kind: 'mutation',
      async check() {
        await refused('NOT_FOUND', (jwt) =>
          http(gateway.httpUrl, CancelOrderDocument, { token: jwt, variables: { id: alice.otherOrder } }),
        );
        const byOwner = await http(gateway.httpUrl, CancelOrderDocument, { token: token(ALICE), variables: { id: alice.otherOrder } });
        expect(byOwner.body.data?.cancelOrder).toMatchObject({ id: alice.otherOrder, status: 'CANCELLED' });
      },
    },
    installApp: {
      kind: 'mutation',
      async check() {
        await refused('NOT_FOUND', (jwt) =>
          http(gateway.httpUrl, InstallAppDocument, {
            token: jwt,
            variables: { deviceId: alice.device, input: { packageName: 'com.mallory.spy' } },
          }),
        );
        const apps = await http(gateway.httpUrl, AppInstallationsDocument, { token: token(ALICE), variables: { deviceId: alice.device } });
        expect(apps.body.data?.appInstallations.map((i) => i.packageName)).toEqual(['com.alice.app']);
      },
    },
    uninstallApp: {
      kind: 'mutation',
      async check() {
        await refused('NOT_FOUND', (jwt) =>
          http(gateway.httpUrl, UninstallAppDocument, { token: jwt, variables: { installationId: alice.installation } }),
        );
        const apps = await http(gateway.httpUrl, AppInstallationsDocument, { token: token(ALICE), variables: { deviceId: alice.device } });
        expect(apps.body.data?.appInstallations.map((i) => i.id)).toEqual([alice.installation]);
      },
    },
    deductQuota: {
      kind: 'mutation',
      async check() {
        for (const jwt of [token(BOB), token(ALICE)]) {
          await refused(
            'FORBIDDEN',
            (t) => http(gateway.httpUrl, DeductQuotaDocument, { token: t, variables: { userId: ALICE, input: { devices: 1 } } }),
            jwt,
          );
        }
        const byAdmin = await http(gateway.httpUrl, DeductQuotaDocument, {
          token: asAdmin(),
          variables: { userId: ALICE, input: { cpuCores: 2 } },
        });
        expect(byAdmin.body.errors).toBeUndefined();
      },
    },
    restoreQuota: {
      kind: 'mutation',
      async check() {
        for (const jwt of [token(BOB), token(ALICE)]) {
          await refused(
            'FORBIDDEN',
            (t) => http(gateway.httpUrl, RestoreQuotaDocument, { token: t, variables: { userId: ALICE, input: { cpuCores: 1 } } }),
            jwt,
          );
        }
        const byAdmin = await http(gateway.httpUrl, RestoreQuotaDocument, {
          token: asAdmin(),
          variables: { userId: ALICE, input: { cpuCores: 1 } },
        });
        expect(byAdmin.body.errors).toBeUndefined();
      },
    },
    renewQuota: {
      kind: 'mutation',
      async check() {
        for (const jwt of [token(BOB), token(ALICE)]) {
          await refused(
            'FORBIDDEN',
            (t) => http(gateway.httpUrl, RenewQuotaDocument, { token: t, variables: { userId: ALICE, input: { extendDays: 30 } } }),
            jwt,
          );
        }
        const byAdmin = await http(gateway.httpUrl, RenewQuotaDocument, {
          token: asAdmin(),
          variables: { userId: ALICE, input: { extendDays: 30 } },
        });
        expect(byAdmin.body.errors).toBeUndefined();
      },
    },
    deviceStatusChanged: {
      kind: 'subscription',
      check: () =>
        subscriptionIsolation(
          'deviceStatusChanged',
          'deviceId status',
          'device.started',
          (userId, n) => ({ userId, deviceId: `dev-${userId}-${n}` }),
          true,
        ),
    },
    orderCompleted: {
      kind: 'subscription',
      check: () =>
        subscriptionIsolation(
          'orderCompleted',
          'orderId amount',
          'order.completed',
          (userId, n) => ({ userId, orderId: `o-${userId}-${n}`, amount: '59.90' }),
          false,
        ),
    },
    appInstalled: {
      kind: 'subscription',
      check: () =>
        subscriptionIsolation(
          'appInstalled',
          'appId deviceId',
          'app.installed',
          (userId, n) => ({ userId, deviceId: `dev-${userId}-${n}`, appId: `app-${n}`, packageName: 'com.example' }),
          true,
        ),
    },
    // CONTRACT §7: the same isolation for the new user subscriptions.
    orderStatusChanged: {
      kind: 'subscription',
      check: () =>
        subscriptionIsolation(
          'orderStatusChanged',
          'orderId status',
          'order.paid',
          (userId, n) => ({ userId, orderId: `os-${userId}-${n}`, amount: '9.90' }),
          false,
        ),
    },
    billingChanged: {
      kind: 'subscription',
      check: () =>
        subscriptionIsolation(
          'billingChanged',
          'kind amount',
          'billing.payment_success',
          (userId, n) => ({ userId, paymentId: `p-${n}`, amount: '1.00' }),
          false,
        ),
    },
    appInstallationChanged: {
      kind: 'subscription',
      check: () =>
        subscriptionIsolation(
          'appInstallationChanged',
          'status deviceId',
          'app.install.requested',
          (userId, n) => ({ userId, deviceId: `dev-${userId}-${n}`, appId: `app-${n}` }),
          true,
        ),
    },
    deviceNotice: {
      kind: 'subscription',
      check: () =>
        subscriptionIsolation(
          'deviceNotice',
          'kind deviceId',
          'device.connection.connected',
          (userId, n) => ({ userId, deviceId: `dev-${userId}-${n}` }),
          true,
        ),
    },
    notifications: {
      kind: 'subscription',
      async check() {
        // No userId argument: what the token matches, and nothing of another user's.
        const client = wsClient(gateway.wsUrl, bearer(token(BOB)));
        const own = subscribe(client.client, NotificationsDocument, {});
        await waitForSubscriptions(gateway, 1, 'notifications');
        const bridged = bridgedByBoth();
        await peer.publish('notification.send', { userId: ALICE, title: 'for alice', message: 'm' }, { messageId: `n-a-${ALICE}` });
        await peer.publish('notification.send', { userId: BOB, title: 'for bob', message: 'm' }, { messageId: `n-b-${BOB}` });
        expect((await own.next()).data?.notifications).toMatchObject({ eventId: `n-b-${BOB}`, userId: BOB });
        await noLeakAfter(
          bridged + 2,
          () => peer.publish('notification.send', { userId: BOB, title: 'again', message: 'm' }, { messageId: `n-b2-${BOB}` }),
          async () => expect((await own.next()).data?.notifications).toMatchObject({ eventId: `n-b2-${BOB}` }),
        );
        expect(own.pending()).toBe(0);
        own.unsubscribe();
        await waitForSubscriptions(gateway, 0, 'notifications');
      },
    },
    systemEvents: {
      kind: 'subscription',
      async check() {
        for (const jwt of [token(BOB), token(ALICE)]) {
          const denied = await subscribe(wsClient(gateway.wsUrl, bearer(jwt)).client, SystemEventsDocument, {}).next();
          expect(denied.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
          expect(denied.data ?? null).toBeNull();
        }
        const admin = subscribe(wsClient(gateway.wsUrl, bearer(asAdmin())).client, SystemEventsDocument, {});
        await waitForSubscriptions(gateway, 1, 'systemEvents');
        await peer.publish('system.error.low', { serviceName: 's', message: 'm' }, { messageId: `sys-${ADMIN}` });
        expect((await admin.next()).data?.systemEvents).toMatchObject({ eventId: `sys-${ADMIN}`, kind: 'ERROR' });
        admin.unsubscribe();
        await waitForSubscriptions(gateway, 0, 'systemEvents');
      },
    },
    broadcastAnnouncement: {
      kind: 'mutation',
      async check() {
        const input = { title: 't', message: 'm', audience: { all: true } };
        for (const jwt of [token(BOB), token(ALICE)]) {
          await refused('FORBIDDEN', (t) => http(gateway.httpUrl, BroadcastAnnouncementDocument, { token: t, variables: { input } }), jwt);
        }
        const byAdmin = await http(gateway.httpUrl, BroadcastAnnouncementDocument, { token: asAdmin(), variables: { input } });
        expect(byAdmin.body.errors).toBeUndefined();
      },
    },
  };

  /**
   * Bob subscribes to his own events of `field`, and tries Alice's (and glob look-alikes): each is
   * FORBIDDEN on that operation and the socket stays open. With `deviceId`, he also names Alice's
   * device under his own id: nothing of Alice's ever arrives, his own event does.
   */
  async function subscriptionIsolation(
    field: string,
    selection: string,
    routingKey: string,
    body: (userId: string, n: number) => Record<string, unknown>,
    byDevice: boolean,
  ): Promise<void> {
    const client = wsClient(gateway.wsUrl, bearer(token(BOB)));
    const own = subscribe<Record<string, { eventId: string; userId: string }>, Record<string, unknown>>(
      client.client,
      `subscription($userId: ID${byDevice ? ', $deviceId: ID' : ''}) { ${field}(userId: $userId${byDevice ? ', deviceId: $deviceId' : ''}) { eventId userId ${selection} } }`,
      {},
    );
    const aliceDevice = byDevice
      ? subscribe<Record<string, { eventId: string }>, Record<string, unknown>>(
          client.client,
          `subscription($deviceId: ID) { ${field}(deviceId: $deviceId) { eventId } }`,
          { deviceId: body(ALICE, 1).deviceId },
        )
      : undefined;
    await waitForSubscriptions(gateway, byDevice ? 2 : 1, field);
    // On a second socket: this gateway allows two operations per socket and two sockets per user.
    const other = byDevice ? wsClient(gateway.wsUrl, bearer(token(BOB))) : client;
    for (const userId of [ALICE, `${ALICE}*`, '*']) {
      const denied = await subscribe(other.client, `subscription { ${field}(userId: ${JSON.stringify(userId)}) { eventId } }`).next();
      expect(denied.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    }
    const bridged = bridgedByBoth();
    await peer.publish(routingKey, body(ALICE, 1), { messageId: `${field}-a-${ALICE}` });
    await peer.publish(routingKey, body(BOB, 1), { messageId: `${field}-b-${BOB}` });
    expect((await own.next()).data?.[field]).toMatchObject({ eventId: `${field}-b-${BOB}`, userId: BOB });
    await noLeakAfter(
      bridged + 2,
      () => peer.publish(routingKey, body(BOB, 2), { messageId: `${field}-b2-${BOB}` }),
      async () => expect((await own.next()).data?.[field]).toMatchObject({ eventId: `${field}-b2-${BOB}` }),
    );
    expect(own.pending()).toBe(0);
    expect(aliceDevice?.pending() ?? 0).toBe(0);
    own.unsubscribe();
    aliceDevice?.unsubscribe();
    await waitForSubscriptions(gateway, 0, field);
  }

  it('has a case for every query, mutation and subscription of the schema', async () => {
    const schema = await createSchema();
    const fields = [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()].flatMap((type) =>
      type ? Object.keys(type.getFields()) : [],
    );
    expect(fields.sort()).toEqual(Object.keys(cases).sort());
  });

  it.each(Object.keys(cases))('%s decides from the token, not the arguments', async (field) => {
    await cases[field]!.check();
  });
});

describe('sockets per user across instances', () => {
  it('closes the third socket of a user with 1008 on either instance, and frees the slot on close', async () => {
    const carol = uniqueId('carol');
    const key = `${gateway.config.redis.topicPrefix}ws-sockets:${carol}`;
    const one = wsClient(gateway.wsUrl, bearer(token(carol)));
    const two = wsClient(second.wsUrl, bearer(token(carol)));
    await Promise.all([one.connected, two.connected]);
    expect(await redis.zcard(key)).toBe(2);

    const three = wsClient(gateway.wsUrl, bearer(token(carol)));
    await expect(three.closed).resolves.toBe(1008);
    const four = wsClient(second.wsUrl, bearer(token(carol)));
    await expect(four.closed).resolves.toBe(1008);
    // Another user is not affected.
    await wsClient(second.wsUrl, bearer(token(uniqueId('dan')))).connected;

    await one.dispose();
    await waitFor(async () => (await redis.zcard(key)) === 1, 'the closed socket to leave the count');
    await wsClient(second.wsUrl, bearer(token(carol))).connected;
    expect(gateway.app.stats().ws.socketLimitCloses + second.app.stats().ws.socketLimitCloses).toBeGreaterThanOrEqual(2);
  });

  it("stops counting a crashed instance's sockets when their lease expires", async () => {
    const erin = uniqueId('erin');
    const key = `${gateway.config.redis.topicPrefix}ws-sockets:${erin}`;
    const now = Number((await redis.time())[0]) * 1000;
    // Two sockets of an instance that died: one lease still running, one run out.
    await redis.zadd(key, now + 60_000, 'crashed:1', now - 1, 'crashed:2');
    await wsClient(gateway.wsUrl, bearer(token(erin))).connected;
    await expect(wsClient(gateway.wsUrl, bearer(token(erin))).closed).resolves.toBe(1008);
    expect(await redis.zrange(key, 0, -1)).toHaveLength(2);
    await redis.del(key);
  });
});

describe('operations per socket', () => {
  it('refuses the third operation with TOO_MANY_SUBSCRIPTIONS, keeps the socket and the others', async () => {
    const fay = uniqueId('fay');
    const refusedBefore = gateway.app.stats().ws.tooManySubscriptions;
    const client = wsClient(gateway.wsUrl, bearer(token(fay)));
    const first = subscribe(client.client, QuotaChangedDocument, {});
    const secondSub = subscribe(client.client, QuotaChangedDocument, {});
    await waitForSubscriptions(gateway, 2);
    const third = await subscribe(client.client, QuotaChangedDocument, {}).next();
    expect(third.errors?.[0]?.extensions?.code).toBe('TOO_MANY_SUBSCRIPTIONS');

    await peer.publish('quota.renewed', { userId: fay }, { messageId: `r-${fay}` });
    expect((await first.next()).data?.quotaChanged.eventId).toBe(`r-${fay}`);
    expect((await secondSub.next()).data?.quotaChanged.eventId).toBe(`r-${fay}`);

    secondSub.unsubscribe();
    await waitForSubscriptions(gateway, 1);
    const again = subscribe(client.client, QuotaChangedDocument, {});
    await waitForSubscriptions(gateway, 2);
    await peer.publish('quota.renewed', { userId: fay }, { messageId: `r2-${fay}` });
    expect((await again.next()).data?.quotaChanged.eventId).toBe(`r2-${fay}`);
    expect(gateway.app.stats().ws.tooManySubscriptions - refusedBefore).toBe(1);
  });
});

describe('HTTP rate limit', () => {
  it('answers 429 RATE_LIMITED with Retry-After once a user spent the burst on any instance, per user', async () => {
    // Two instances of one deployment (same Redis prefix): the bucket is shared.
    const env = realServicesEnv(database.url, { HTTP_RATE_LIMIT_PER_SEC: '1', HTTP_RATE_LIMIT_BURST: '5' });
    const one = await startGateway(env);
    const two = await startGateway({ ...env, DATABASE_URL: database.url });
    const gus = token(uniqueId('gus'));
    const statuses: number[] = [];
    for (const target of [one, two, one, two, one]) {
      statuses.push((await http(target.httpUrl, '{ __typename }', { token: gus })).status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    const limited = await http(two.httpUrl, '{ __typename }', { token: gus });
    expect(limited.status).toBe(429);
    // One token is missing at one per second: at most a second away, rounded up.
    expect(limited.headers.get('retry-after')).toBe('1');
    expect(limited.body.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    // Someone else still gets through.
    expect((await http(one.httpUrl, '{ __typename }', { token: token(uniqueId('hal')) })).status).toBe(200);
  });

  it('spends the same budget on queries and mutations sent over the socket (no way around it)', async () => {
    const env = realServicesEnv(database.url, { HTTP_RATE_LIMIT_PER_SEC: '1', HTTP_RATE_LIMIT_BURST: '3' });
    const limited = await startGateway(env);
    const ned = token(uniqueId('ned'));
    const client = wsClient(limited.wsUrl, bearer(ned));
    const codes: unknown[] = [];
    for (let i = 0; i < 3; i++)
      codes.push(((await subscribe(client.client, '{ __typename }').next()).data as { __typename?: string } | undefined)?.__typename);
    expect(codes).toEqual(['Query', 'Query', 'Query']);
    const refused = await subscribe(client.client, '{ __typename }').next();
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED' });
    // And over HTTP it is spent too; subscriptions are not charged (they are bounded per socket).
    expect((await http(limited.httpUrl, '{ __typename }', { token: ned })).status).toBe(429);
    subscribe(client.client, QuotaChangedDocument, {});
    await waitForSubscriptions(limited, 1);
  });
});

describe('the per-user socket count after Redis lost it', () => {
  it('puts live sockets back on the next lease refresh, so the limit still holds', async () => {
    const counted = await startGateway(realServicesEnv(database.url, { WS_SOCKET_LEASE_MS: '1000', WS_MAX_SOCKETS_PER_USER: '2' }));
    const pia = uniqueId('pia');
    const key = `${counted.config.redis.topicPrefix}ws-sockets:${pia}`;
    const first = wsClient(counted.wsUrl, bearer(token(pia)));
    const second = wsClient(counted.wsUrl, bearer(token(pia)));
    await Promise.all([first.connected, second.connected]);
    expect(await redis.zcard(key)).toBe(2);
    // As a Redis restart without persistence would: the count is gone.
    await redis.del(key);
    await waitFor(async () => (await redis.zcard(key)) === 2, 'the live sockets to be counted again');
    const third = wsClient(counted.wsUrl, bearer(token(pia)));
    expect(await third.closed).toBe(1008);
  });
});

describe('introspection switched off', () => {
  it('refuses __schema over HTTP and over the socket alike', async () => {
    const closed = await startGateway(realServicesEnv(database.url, { GRAPHQL_INTROSPECTION: 'false' }));
    const oli = token(uniqueId('oli'));
    const overHttp = await http(closed.httpUrl, '{ __schema { queryType { name } } }', { token: oli });
    expect(overHttp.body.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    const client = wsClient(closed.wsUrl, bearer(oli));
    const overSocket = await subscribe(client.client, '{ __schema { queryType { name } } }').next();
    expect(overSocket.data).toBeUndefined();
    expect(overSocket.errors?.[0]?.message).toMatch(/introspection/i);
    expect((await subscribe(client.client, '{ __typename }').next()).data).toEqual({ __typename: 'Query' });
  });
});

describe('depth and complexity limits', () => {
  const deep = '{ __schema { types { fields { type { fields { name } } } } } }';
  const wide = `{ ${Array.from({ length: 61 }, (_, i) => `a${i}: __typename`).join(' ')} }`;

  it.each([
    ['deep', deep, 'depth'],
    ['wide', wide, 'complexity'],
  ])('refuses a %s document on HTTP with GRAPHQL_VALIDATION_FAILED', async (_name, query, limit) => {
    const result = await http(gateway.httpUrl, query, { token: token(uniqueId('ivy')) });
    expect(result.status).toBe(400);
    expect(result.body.errors?.[0]?.extensions).toMatchObject({ code: 'GRAPHQL_VALIDATION_FAILED', limit });
    expect(result.body.data).toBeUndefined();
  });

  it('refuses them on the socket too, as errors on the operation, and the socket stays open', async () => {
    const client = wsClient(gateway.wsUrl, bearer(token(uniqueId('jay'))));
    for (const [query, limit] of [
      [deep, 'depth'],
      [wide, 'complexity'],
      [`subscription { quotaChanged { ${Array.from({ length: 60 }, (_, i) => `e${i}: eventId`).join(' ')} } }`, 'complexity'],
    ] as const) {
      const result = await subscribe(client.client, query).next();
      expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'GRAPHQL_VALIDATION_FAILED', limit });
    }
    expect((await subscribe(client.client, '{ __typename }').next()).data).toEqual({ __typename: 'Query' });
  });
});

describe('token expiry', () => {
  it('closes with 4403 at expiry; a client with a refreshing connectionParams reconnects and keeps receiving', async () => {
    const kay = uniqueId('kay');
    let connects = 0;
    let tokensIssued = 0;
    const closes: number[] = [];
    const reconnected = deferred<void>();
    const client = createClient({
      url: gateway.wsUrl,
      webSocketImpl: WebSocket,
      lazy: false,
      retryAttempts: 5,
      retryWait: async () => undefined,
      connectionParams: async () => {
        tokensIssued++;
        return bearer(token(kay, { expiresInSec: 2 }));
      },
      on: {
        connected: () => {
          if (++connects === 2) reconnected.resolve();
        },
        closed: (event) => void closes.push((event as { code: number }).code),
      },
    });
    try {
      const results: string[] = [];
      const received = deferred<void>();
      client.subscribe(
        { query: 'subscription { quotaChanged { eventId } }' },
        {
          next: ({ data }) => {
            results.push((data as { quotaChanged: { eventId: string } }).quotaChanged.eventId);
            received.resolve();
          },
          error: (error) => received.reject(error),
          complete: () => undefined,
        },
      );
      await reconnected.promise;
      expect(closes[0]).toBe(4403);
      expect(tokensIssued).toBeGreaterThanOrEqual(2);
      await waitForSubscriptions(gateway, 1);
      await peer.publish('quota.updated', { userId: kay }, { messageId: `after-refresh-${kay}` });
      await received.promise;
      expect(results).toEqual([`after-refresh-${kay}`]);
    } finally {
      await client.dispose();
    }
    await waitForSubscriptions(gateway, 0);
  });
});

describe('RS256 tokens from a JWKS endpoint', () => {
  let jwks: JwksServer;
  let jwksGateway: TestGateway;
  const pair = keyPair('RS256');

  beforeAll(async () => {
    jwks = await startJwksServer([pair]);
    jwksGateway = await startGateway(
      realServicesEnv(database.url, { JWT_SECRET: '', JWT_JWKS_URL: jwks.url, JWT_ISSUER: 'https://id.test' }),
    );
  });
  afterAll(async () => {
    await jwks?.close();
  });

  it("accepts the identity service's tokens on HTTP and WebSocket and refuses an HS256 one", async () => {
    const liz = uniqueId('liz');
    const good = signWith(pair, claims(liz, { iss: 'https://id.test' }));
    const read = await http(jwksGateway.httpUrl, QuotaDocument, { token: good, variables: {} });
    expect(read.status).toBe(200);
    expect(read.body.errors).toBeUndefined();
    await wsClient(jwksGateway.wsUrl, bearer(good)).connected;

    const hs = await http(jwksGateway.httpUrl, QuotaDocument, { token: token(liz), variables: {} });
    expect(hs.status).toBe(401);
    expect(hs.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    await expect(wsClient(jwksGateway.wsUrl, bearer(token(liz))).closed).resolves.toBe(4403);
    await expect(wsClient(jwksGateway.wsUrl, bearer(signWith(pair, claims(liz, { iss: 'https://other' })))).closed).resolves.toBe(4403);
    expect(jwks.requests()).toBe(1);
  });
});
