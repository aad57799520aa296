/**
 * Devices end to end on the real services: each mutation writes its row and its outbox event in
 * one transaction; the relay publishes the event to RabbitMQ and it reaches deviceStatusChanged
 * through the bridge and Redis. Impossible transitions change nothing; users only see their own.
 */
// Typed matchers: @types/jest's expect.stringMatching()/objectContaining() return `any`.
import { expect } from '@jest/globals';
import {
  AppInstallationsDocument,
  CreateDeviceDocument,
  DeleteDeviceDocument,
  DeviceDocument,
  DevicesDocument,
  type DevicesQuery,
  DevicesWithInstallationsDocument,
  DeviceStatusChangedDocument,
  MeDocument,
  StartDeviceDocument,
  StopDeviceDocument,
} from '../generated/graphql';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import type { PlatformPeer } from '../helpers/amqp';
import { disposeClients, http, type HttpResult, subscribe, token, wsClient } from '../helpers/clients';
import type { TestSql } from '../helpers/db';
import { realServicesEnv, startGateway, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { uniqueId } from '../helpers/services';
import { waitFor } from '../helpers/wait';
import { gatewaySuite } from '../helpers/suite';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy';

const suite = gatewaySuite();
let gateway: TestGateway;
let peer: PlatformPeer;
let sql: TestSql;
beforeAll(() => ({ gateway, peer, sql } = suite));

afterEach(async () => {
  await disposeClients();
  await waitForSubscriptions(gateway, 0, 'deviceStatusChanged');
});

const admin = () => token(uniqueId('admin'), { roles: ['admin'] });

async function createDevice(owner: string, name = 'Pixel', asToken = token(owner)) {
  const result = await http(gateway.httpUrl, CreateDeviceDocument, {
    token: asToken,
    variables: { input: { name, providerType: 'redroid', cpuCores: 2, memoryMB: 4096 }, userId: owner },
  });
  expect(result.body.errors).toBeUndefined();
  return result.body.data!.createDevice;
}

describe('me', () => {
  it("answers the caller's id, roles and whether they are an administrator", async () => {
    const user = uniqueId('meg');
    const plain = await http(gateway.httpUrl, MeDocument, { token: token(user, { roles: ['user'] }) });
    expect(plain.body.data?.me).toEqual({ id: user, roles: ['user'], isAdmin: false, tenantId: null, username: null });
    const boss = await http(gateway.httpUrl, MeDocument, { token: token(user, { roles: ['super_admin'] }) });
    expect(boss.body.data?.me).toMatchObject({ id: user, isAdmin: true });
    const anonymous = await http(gateway.httpUrl, MeDocument, {});
    expect(anonymous.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});

describe('device mutations', () => {
  it('create, start, stop, delete: each writes the row, emits its routing key through RabbitMQ, reaches the subscriber', async () => {
    const alice = uniqueId('alice');
    const wiretap = await peer.tap('device.#');
    const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(alice)}` });
    const sub = subscribe(client.client, DeviceStatusChangedDocument, {});
    await waitForSubscriptions(gateway, 1, 'deviceStatusChanged');

    const created = await createDevice(alice, 'Alice phone');
    expect(created).toMatchObject({ userId: alice, name: 'Alice phone', status: 'IDLE', providerType: 'redroid', cpuCores: 2, version: 1 });

    const steps: [string, () => Promise<{ status: string; version: number }>, string, string, string][] = [
      ['device.created', async () => created, 'IDLE', '', 'IDLE'],
      [
        'device.started',
        async () =>
          (await http(gateway.httpUrl, StartDeviceDocument, { token: token(alice), variables: { id: created.id } })).body.data!.startDevice,
        'RUNNING',
        'IDLE',
        'RUNNING',
      ],
      [
        'device.stopped',
        async () =>
          (await http(gateway.httpUrl, StopDeviceDocument, { token: token(alice), variables: { id: created.id } })).body.data!.stopDevice,
        'STOPPED',
        'RUNNING',
        'STOPPED',
      ],
      [
        'device.deleted',
        async () =>
          (await http(gateway.httpUrl, DeleteDeviceDocument, { token: token(alice), variables: { id: created.id } })).body.data!
            .deleteDevice,
        'DELETED',
        'STOPPED',
        'DELETED',
      ],
    ];
    let version = 0;
    for (const [routingKey, mutate, status, previous, rowStatus] of steps) {
      const saved = await mutate();
      expect(saved.status).toBe(rowStatus);
      expect(saved.version).toBe(++version);
      const pushed = (await sub.next()).data!.deviceStatusChanged;
      expect(pushed).toMatchObject({
        type: routingKey,
        userId: alice,
        deviceId: created.id,
        deviceName: 'Alice phone',
        status,
        previousStatus: previous === '' ? null : previous,
        providerType: 'redroid',
      });
      const onWire = await peer.take(wiretap, (m) => m.properties.messageId === pushed.eventId, `${routingKey} on the exchange`);
      expect(onWire.fields.routingKey).toBe(routingKey);
      expect(onWire.properties.contentType).toBe('application/json');
      // The query agrees with the push.
      const read = await http(gateway.httpUrl, DeviceDocument, { token: token(alice), variables: { id: created.id } });
      expect(read.body.data?.device).toMatchObject({ status: rowStatus, version });
    }
    const outbox = await sql.outboxFor('deviceId', created.id);
    expect(outbox.map((r) => r.routing_key)).toEqual(['device.created', 'device.started', 'device.stopped', 'device.deleted']);
    expect(outbox.every((r) => r.published_at !== null)).toBe(true);
    expect(sub.pending()).toBe(0);
  });

  it('refuses impossible transitions with BAD_USER_INPUT, changing no row and writing no event', async () => {
    const bob = uniqueId('bob');
    const device = await createDevice(bob);
    const stopIdle = await http(gateway.httpUrl, StopDeviceDocument, { token: token(bob), variables: { id: device.id } });
    expect(stopIdle.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(stopIdle.body.errors?.[0]?.message).toBe('Cannot stop a device that is IDLE');

    await http(gateway.httpUrl, DeleteDeviceDocument, { token: token(bob), variables: { id: device.id } });
    const before = await sql.query('SELECT status, version, updated_at FROM device WHERE id = $1', [device.id]);
    for (const document of [StartDeviceDocument, StopDeviceDocument, DeleteDeviceDocument] as TypedDocumentNode<
      unknown,
      { id: string }
    >[]) {
      const result = await http(gateway.httpUrl, document, { token: token(bob), variables: { id: device.id } });
      expect(result.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(result.body.data ?? null).toBeNull();
    }
    expect(await sql.query('SELECT status, version, updated_at FROM device WHERE id = $1', [device.id])).toEqual(before);
    expect((await sql.outboxFor('deviceId', device.id)).map((r) => r.routing_key)).toEqual(['device.created', 'device.deleted']);

    const invalid = await http(gateway.httpUrl, CreateDeviceDocument, {
      token: token(bob),
      variables: { input: { name: '', cpuCores: 999 } },
    });
    expect(invalid.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(await sql.query('SELECT id FROM device WHERE user_id = $1', [bob])).toHaveLength(1);
  });
});

describe('authorization', () => {
  it("hides another user's devices (NOT_FOUND, as for a missing id), forbids another userId, lets administrators act", async () => {
    const carol = uniqueId('carol');
    const mallory = uniqueId('mallory');
    const device = await createDevice(carol);
    const missing = await http(gateway.httpUrl, DeviceDocument, { token: token(mallory), variables: { id: 'no-such-device' } });
    const foreign = await http(gateway.httpUrl, DeviceDocument, { token: token(mallory), variables: { id: device.id } });
    expect(foreign.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(missing.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(foreign.body.errors?.[0]?.message).toBe(`No device with id ${device.id}`);

    for (const document of [StartDeviceDocument, StopDeviceDocument, DeleteDeviceDocument] as TypedDocumentNode<
      unknown,
      { id: string }
    >[]) {
      const result = await http(gateway.httpUrl, document, { token: token(mallory), variables: { id: device.id } });
      expect(result.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    }
    const list = await http(gateway.httpUrl, DevicesDocument, { token: token(mallory), variables: { userId: carol } });
    expect(list.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const own = await http(gateway.httpUrl, DevicesDocument, { token: token(mallory), variables: {} });
    expect(own.body.data?.devices.edges).toEqual([]);
    const forOther = await http(gateway.httpUrl, CreateDeviceDocument, {
      token: token(mallory),
      variables: { input: { name: 'sneaky' }, userId: carol },
    });
    expect(forOther.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(await sql.query('SELECT status, version FROM device WHERE id = $1', [device.id])).toEqual([{ status: 'IDLE', version: 1 }]);
    expect(await sql.query('SELECT id FROM device WHERE user_id = $1', [carol])).toHaveLength(1);

    const asAdmin = admin();
    const started = await http(gateway.httpUrl, StartDeviceDocument, { token: asAdmin, variables: { id: device.id } });
    expect(started.body.data?.startDevice).toMatchObject({ status: 'RUNNING', userId: carol });
    const made = await createDevice(carol, 'made by ops', asAdmin);
    expect(made.userId).toBe(carol);
    const listed = await http(gateway.httpUrl, DevicesDocument, { token: asAdmin, variables: { userId: carol } });
    expect(listed.body.data?.devices.edges.map((e) => e.node.id).sort()).toEqual([device.id, made.id].sort());
  });
});

describe('devices connection', () => {
  it('pages newest first with opaque cursors, filters by status, hides DELETED by default, bounds first', async () => {
    const dan = uniqueId('dan');
    const base = Date.parse('2026-11-01T00:00:00Z');
    // Seven devices, two with the same createdAt (the id breaks the tie), one deleted.
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const id = `dev-${dan}-${i}`;
      ids.push(id);
      await sql.query(`INSERT INTO device (id, user_id, name, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, now())`, [
        id,
        dan,
        `d${i}`,
        i === 6 ? 'DELETED' : i % 2 === 0 ? 'RUNNING' : 'STOPPED',
        new Date(base + Math.min(i, 5) * 1000),
      ]);
    }
    const seen: string[] = [];
    let after: string | null = null;
    const pages: boolean[] = [];
    for (let page = 0; page < 5; page++) {
      const result: HttpResult<DevicesQuery> = await http(gateway.httpUrl, DevicesDocument, {
        token: token(dan),
        variables: { first: 2, after },
      });
      expect(result.body.errors).toBeUndefined();
      const connection = result.body.data!.devices;
      seen.push(...connection.edges.map((e) => e.node.id));
      pages.push(connection.pageInfo.hasNextPage);
      after = connection.pageInfo.endCursor;
      expect(after).toBe(connection.edges.at(-1)?.cursor ?? null);
      if (!connection.pageInfo.hasNextPage) break;
    }
    // Newest first; createdAt ties ordered by id descending; the DELETED one not listed.
    expect(seen).toEqual([ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]]);
    expect(pages).toEqual([true, true, false]);
    expect(after).not.toContain(dan); // opaque: not the id in clear

    const running = await http(gateway.httpUrl, DevicesDocument, { token: token(dan), variables: { status: 'RUNNING' } });
    expect(running.body.data?.devices.edges.map((e) => e.node.id)).toEqual([ids[4], ids[2], ids[0]]);
    const deleted = await http(gateway.httpUrl, DevicesDocument, { token: token(dan), variables: { status: 'DELETED' } });
    expect(deleted.body.data?.devices.edges.map((e) => e.node.id)).toEqual([ids[6]]);

    for (const variables of [{ first: 101 }, { first: 0 }, { first: -1 }, { after: 'not-a-cursor' }]) {
      const bad = await http(gateway.httpUrl, DevicesDocument, { token: token(dan), variables });
      expect(bad.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    }
    const max = await http(gateway.httpUrl, DevicesDocument, { token: token(dan), variables: { first: 100 } });
    expect(max.body.data?.devices.edges).toHaveLength(6);
  });
});

describe('nested installations', () => {
  let proxy: TcpProxy;
  // Its own exchange: events other suites publish meanwhile must not reach this gateway's read model.
  const exchange = uniqueId('cpr-test-x');
  afterAll(async () => {
    await proxy?.close();
    await peer.channel.deleteExchange(exchange).catch(() => undefined);
  });

  it('loads Device.installations for a page of 100 devices in one batched query (no N+1)', async () => {
    proxy = await startTcpProxy(suite.database.url, { countPgStatements: true });
    // A gateway whose every SQL statement goes through the counting proxy; its relay polls rarely.
    const counted = await startGateway(realServicesEnv(proxy.url, { OUTBOX_POLL_MS: '600000', AMQP_EXCHANGE: exchange }));
    // The relay's first pass runs at start; counted while a request runs, it would look like N+1.
    await waitFor(() => counted.app.stats().outboxPasses >= 1, 'the outbox relay to finish its first pass');
    const erin = uniqueId('erin');
    await sql.query(
      `INSERT INTO device (id, user_id, name, status, created_at, updated_at)
       SELECT $1 || '-' || n, $2, 'phone ' || n, 'RUNNING', now() - n * interval '1 second', now() FROM generate_series(1, 100) AS n`,
      [`dev-${erin}`, erin],
    );
    await sql.query(
      `INSERT INTO app_installation (id, device_id, user_id, package_name, status, installed_at, created_at, updated_at)
       SELECT $1 || '-' || n || '-' || k, $1 || '-' || n, $2, 'com.example.app' || k, 'INSTALLED', now(), now(), now()
       FROM generate_series(1, 100) AS n, generate_series(1, 2) AS k`,
      [`dev-${erin}`, erin],
    );

    const measure = async (first: number) => {
      const before = proxy.statements();
      const result = await http(counted.httpUrl, DevicesWithInstallationsDocument, { token: token(erin), variables: { first } });
      expect(result.body.errors).toBeUndefined();
      return { statements: proxy.statements() - before, devices: result.body.data!.devices.edges };
    };
    await measure(1); // warm-up: the pool's first connection runs its own set-up statements
    const one = await measure(1);
    const hundred = await measure(100);
    expect(hundred.devices).toHaveLength(100);
    for (const edge of hundred.devices) {
      expect(edge.node.installations.map((i) => i.packageName).sort()).toEqual(['com.example.app1', 'com.example.app2']);
    }
    // One statement for the page of devices, one for all their installations.
    expect(hundred.statements).toBe(2);
    expect(one.statements).toBe(hundred.statements);
    process.stdout.write(`N+1 check: devices(first: 1) ${one.statements} SQL statements, devices(first: 100) ${hundred.statements}\n`);
  });
});

describe('inputs PostgreSQL cannot take, and existence probes', () => {
  it('answers BAD_USER_INPUT for a NUL in an id or variable, a tampered cursor, a blank name; never INTERNAL_SERVER_ERROR', async () => {
    const ula = uniqueId('ula');
    const nulId = await http(gateway.httpUrl, DeviceDocument, { token: token(ula), variables: { id: 'a\u0000b' } });
    expect(nulId.status).toBe(400);
    expect(nulId.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    // In the document itself: refused by validation, as any malformed document is.
    const inline = await http(gateway.httpUrl, '{ device(id: "a\\u0000b") { id } }', { token: token(ula) });
    expect(inline.body.errors?.[0]).toMatchObject({
      message: expect.stringMatching(/NUL/),
      extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
    });
    for (const cursor of [
      ['-010000-01-01T00:00:00.000Z', 'x'],
      ['0000-01-01T00:00:00.000Z', 'x'],
      ['2020-01-01T00:00:00.000Z', 'x'.repeat(500)],
    ]) {
      const after = Buffer.from(JSON.stringify(cursor)).toString('base64url');
      const page = await http(gateway.httpUrl, DevicesDocument, { token: token(ula), variables: { first: 5, after } });
      expect(page.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    }
    const blank = await http(gateway.httpUrl, CreateDeviceDocument, { token: token(ula), variables: { input: { name: '   ' } } });
    expect(blank.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it("answers appInstallations for another user's device exactly as for a device that does not exist", async () => {
    const [owner, prober] = [uniqueId('vic'), uniqueId('wes')];
    const device = await createDevice(owner);
    const foreign = await http(gateway.httpUrl, AppInstallationsDocument, { token: token(prober), variables: { deviceId: device.id } });
    const missing = await http(gateway.httpUrl, AppInstallationsDocument, {
      token: token(prober),
      variables: { deviceId: uniqueId('nodev') },
    });
    expect(foreign.body).toEqual(missing.body);
    expect(foreign.body).toEqual({ data: { appInstallations: [] } });
  });
});
