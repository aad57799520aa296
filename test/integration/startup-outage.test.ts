/**
 * A gateway started while RabbitMQ or Redis cannot be reached serves anyway: /healthz is 200,
 * /readyz is 503 naming the dependency, and once it can be reached the gateway connects by itself
 * and delivers. The outages are simulated without touching the shared services: RabbitMQ is
 * reached through a loopback TCP relay this test opens late, Redis is a private server started late.
 */
// Typed matchers: @types/jest's expect.stringMatching()/objectContaining() return `any`.
import { expect } from '@jest/globals';
import net from 'node:net';
import { QuotaChangedDocument } from '../generated/graphql';
import { openPlatformPeer, type PlatformPeer } from '../helpers/amqp';
import { disposeClients, subscribe, token, wsClient } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateways, waitForSubscriptions } from '../helpers/gateway';
import { privateRedis, type PrivateRedis } from '../helpers/private-redis';
import { createTestDatabase, TEST_AMQP_URL, uniqueId, type TestDatabase } from '../helpers/services';
import { waitFor } from '../helpers/wait';

let database: TestDatabase;
let peer: PlatformPeer;
let relay: net.Server | undefined;
const relaySockets = new Set<net.Socket>();
let redis: PrivateRedis | undefined;
const exchange = uniqueId('cpr-test-x');

beforeAll(async () => {
  database = await createTestDatabase();
  peer = await openPlatformPeer();
});

afterAll(async () => {
  await disposeClients();
  await stopGateways();
  for (const socket of relaySockets) socket.destroy();
  await new Promise((resolve) => (relay ? relay.close(resolve) : resolve(undefined)));
  await redis?.stop();
  await peer?.channel.deleteExchange(exchange).catch(() => undefined);
  await peer?.close();
  await database?.drop();
});

/** A free loopback port nothing listens on (yet). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Forwards `port` to the real broker, from now on. */
async function openRelay(port: number): Promise<void> {
  const target = new URL(TEST_AMQP_URL);
  relay = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5672), target.hostname);
    for (const s of [client, upstream]) {
      relaySockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => relaySockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => relay?.listen(port, '127.0.0.1', resolve));
}

type Readiness = { status: number; body: { dependencies: Record<string, { status: string; detail?: string }> } };
async function readiness(url: string): Promise<Readiness> {
  const response = await fetch(`${url}/readyz`);
  return { status: response.status, body: (await response.json()) as Readiness['body'] };
}

it('starts while RabbitMQ and Redis are unreachable, reports both, then connects to each by itself', async () => {
  const amqpPort = await freePort();
  const redisPort = await freePort();
  const amqpUrl = new URL(TEST_AMQP_URL);
  amqpUrl.port = String(amqpPort);
  const gateway = await startGateway(
    realServicesEnv(database.url, {
      AMQP_URL: amqpUrl.toString(),
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      AMQP_EXCHANGE: exchange,
    }),
  );

  expect((await fetch(`${gateway.app.url}/healthz`)).status).toBe(200);
  const down = await readiness(gateway.app.url);
  expect(down.status).toBe(503);
  expect(down.body.dependencies.eventBus).toMatchObject({ status: 'down', detail: expect.stringMatching(/ECONNREFUSED/) });
  expect(down.body.dependencies.pubsub).toMatchObject({ status: 'down' });
  expect(down.body.dependencies.database).toMatchObject({ status: 'up' });

  await openRelay(amqpPort);
  await waitFor(
    async () => (await readiness(gateway.app.url)).body.dependencies.eventBus?.status === 'up',
    'the broker to be reached',
    30_000,
  );
  expect((await readiness(gateway.app.url)).status).toBe(503);

  redis = await privateRedis(redisPort);
  await waitFor(async () => (await readiness(gateway.app.url)).status === 200, 'Redis to be reached', 30_000);

  const user = uniqueId('late');
  const sub = subscribe(wsClient(gateway.wsUrl, { authorization: `Bearer ${token(user)}` }).client, QuotaChangedDocument, {});
  await waitForSubscriptions(gateway, 1);
  await peer.publish('quota.updated', { userId: user }, { messageId: `late-${user}`, exchange });
  expect((await sub.next()).data?.quotaChanged.eventId).toBe(`late-${user}`);
}, 90_000);
