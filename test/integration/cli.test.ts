/**
 * The command-line helpers as separate processes: `npm run token` (refuses in production) and
 * `npm run publish-event` to RabbitMQ (AMQP_URL) and to a running embedded gateway's in-process
 * bus (no AMQP_URL, through its development-only POST /dev/events).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTokenVerifier } from '../../src/auth/jwt';
import { loadConfig } from '../../src/config';
import type { MemoryEventBus } from '../../src/infra/memory/memory-bus';
import { QuotaChangedDocument } from '../generated/graphql';
import { openPlatformPeer, type PlatformPeer } from '../helpers/amqp';
import { runCli } from '../helpers/cli';
import { disposeClients, subscribe, token, wsClient } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { createTestDatabase, TEST_AMQP_URL, TEST_EXCHANGE, TEST_JWT_SECRET, uniqueId, type TestDatabase } from '../helpers/services';
import { waitFor } from '../helpers/wait';

jest.setTimeout(60_000);

let database: TestDatabase;
let dataDir: string;
let rabbitGateway: TestGateway;
let embeddedGateway: TestGateway;
let peer: PlatformPeer;

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'cpr-cli-'));
  // One after the other, each assigned as it exists: with Promise.all, one rejecting left the
  // others unassigned (the helpers' teardown closes them now, but afterAll could not).
  rabbitGateway = await startGateway(realServicesEnv(database.url));
  embeddedGateway = await startGateway({ DATA_DIR: path.join(dataDir, 'db') });
  peer = await openPlatformPeer();
});

afterEach(async () => {
  await disposeClients();
});

afterAll(async () => {
  await disposeClients();
  await stopGateways();
  await peer?.close();
  await database?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

const PRODUCTION = {
  NODE_ENV: 'production',
  DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/postgres',
  REDIS_URL: 'redis://127.0.0.1:6379',
  AMQP_URL: TEST_AMQP_URL,
  JWT_SECRET: 'a-production-secret',
};

describe('npm run token', () => {
  it('mints a token the gateway accepts, with the roles asked for', async () => {
    const result = await runCli('token', ['--sub', 'u-42', '--roles', 'admin,user'], { JWT_SECRET: TEST_JWT_SECRET });
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const user = await createTokenVerifier(loadConfig({ JWT_SECRET: TEST_JWT_SECRET }).jwt).verify(result.stdout.trim());
    expect(user).toMatchObject({ id: 'u-42', roles: ['admin', 'user'], isAdmin: true });
  });

  it('refuses with NODE_ENV=production and prints no token', async () => {
    const result = await runCli('token', ['--sub', 'u-42'], PRODUCTION);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('refuses to mint tokens with NODE_ENV=production');
  });

  it('says how to use it without --sub', async () => {
    const result = await runCli('token', [], {});
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('usage: npm run token -- --sub <userId>');
  });
});

describe('npm run publish-event', () => {
  it('publishes to the configured exchange with messageId, timestamp and contentType; subscribers get it', async () => {
    const user = uniqueId('kim');
    const wiretap = await peer.tap('quota.alert');
    const client = wsClient(rabbitGateway.wsUrl, { authorization: `Bearer ${token(user)}` });
    const sub = subscribe(client.client, QuotaChangedDocument, {});
    await waitForSubscriptions(rabbitGateway, 1);

    const began = Date.now();
    const result = await runCli(
      'publish-event',
      ['quota.alert', JSON.stringify({ userId: user, usagePercent: 91, severity: 'warning' }), '--message-id', `cli-${user}`],
      { AMQP_URL: TEST_AMQP_URL, AMQP_EXCHANGE: TEST_EXCHANGE },
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ exchange: TEST_EXCHANGE, routingKey: 'quota.alert', messageId: `cli-${user}` });

    const seen = await peer.take(wiretap, (m) => m.properties.messageId === `cli-${user}`, 'the CLI message on the wiretap');
    expect(seen.properties.contentType).toBe('application/json');
    expect(seen.properties.deliveryMode).toBe(2);
    expect(seen.properties.timestamp).toBeGreaterThanOrEqual(began);
    expect((await sub.next()).data?.quotaChanged).toMatchObject({
      eventId: `cli-${user}`,
      type: 'quota.alert',
      kind: 'ALERT',
      userId: user,
      usagePercent: 91,
      severity: 'warning',
    });
  });

  it("without AMQP_URL, posts to the running gateway's in-process bus; subscribers get it", async () => {
    const user = uniqueId('lou');
    const client = wsClient(embeddedGateway.wsUrl, { authorization: `Bearer ${token(user)}` });
    const sub = subscribe(client.client, QuotaChangedDocument, {});
    await waitForSubscriptions(embeddedGateway, 1);

    const result = await runCli('publish-event', ['quota.renewed', JSON.stringify({ userId: user }), '--url', embeddedGateway.app.url], {
      JWT_SECRET: TEST_JWT_SECRET,
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const printed = JSON.parse(result.stdout) as { messageId: string; routed: boolean };
    expect(printed).toMatchObject({ routingKey: 'quota.renewed', routed: true });
    expect((await sub.next()).data?.quotaChanged).toMatchObject({ eventId: printed.messageId, kind: 'RENEWED', userId: user });
  });

  it('without AMQP_URL and no gateway running, explains where the in-process bus lives and fails', async () => {
    const result = await runCli('publish-event', ['quota.updated', '{"userId":"u"}', '--url', 'http://127.0.0.1:9'], {
      JWT_SECRET: TEST_JWT_SECRET,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('no gateway answered at http://127.0.0.1:9');
    expect(result.stderr).toContain('the event bus is in-process');
    expect(result.stderr).toContain('AMQP_URL');
  });

  it('points at AMQP_URL when the gateway it reaches runs on RabbitMQ (no /dev/events there)', async () => {
    const result = await runCli('publish-event', ['quota.updated', '{"userId":"u"}', '--url', rabbitGateway.app.url], {
      JWT_SECRET: TEST_JWT_SECRET,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('has no in-process bus');
  });

  it('rejects a body that is not JSON unless --raw, and refuses in production', async () => {
    const notJson = await runCli('publish-event', ['quota.updated', 'not json'], { AMQP_URL: TEST_AMQP_URL });
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toContain('the body is not JSON (pass --raw');
    const usage = await runCli('publish-event', ['quota.updated'], { AMQP_URL: TEST_AMQP_URL });
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('usage: npm run publish-event');
    const production = await runCli('publish-event', ['quota.updated', '{"userId":"u"}'], PRODUCTION);
    expect(production.code).toBe(1);
    expect(production.stderr).toContain('refuses to publish test events with NODE_ENV=production');
  });
});

describe('POST /dev/events', () => {
  const post = (url: string, body: unknown, bearer?: string) =>
    fetch(`${url}/dev/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
      body: JSON.stringify(body),
    });

  it('exists only with the in-process bus, and only for administrators', async () => {
    const event = { routingKey: 'quota.updated', body: '{"userId":"u"}' };
    expect((await post(rabbitGateway.app.url, event, token('a', { roles: ['admin'] }))).status).toBe(404);
    const anonymous = await post(embeddedGateway.app.url, event);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ errors: [{ extensions: { code: 'UNAUTHENTICATED' } }] });
    const user = await post(embeddedGateway.app.url, event, token('plain-user'));
    expect(user.status).toBe(403);
    expect(await user.json()).toMatchObject({ errors: [{ extensions: { code: 'FORBIDDEN' } }] });
    const bad = await post(embeddedGateway.app.url, { routingKey: 'no spaces allowed', body: '{}' }, token('a', { roles: ['admin'] }));
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ errors: [{ extensions: { code: 'BAD_USER_INPUT' } }] });
  });

  it('puts a bad body through the same dead-lettering as RabbitMQ would', async () => {
    const admin = token('a', { roles: ['admin'] });
    const response = await post(embeddedGateway.app.url, { routingKey: 'quota.updated', body: 'not json', messageId: 'dev-bad-1' }, admin);
    expect(response.status).toBe(202);
    const bus = embeddedGateway.app.bus as MemoryEventBus;
    await waitFor(() => bus.deadLetters.some((d) => d.message.messageId === 'dev-bad-1' && d.reason === 'not JSON'), 'the dead letter');
  });
});
