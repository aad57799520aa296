/**
 * Redis goes away under a running gateway and comes back (a Redis of this test's own, so the
 * shared one is untouched): /readyz says so meanwhile and recovers by itself, an event that
 * arrives during the outage stays in RabbitMQ (requeued, never acknowledged) and reaches every
 * subscriber once Redis is back, with the subscriptions resubscribed.
 */
import { QuotaChangedDocument } from '../generated/graphql';
import { openPlatformPeer, type PlatformPeer } from '../helpers/amqp';
import { disposeClients, subscribe, token, wsClient } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { privateRedis, type PrivateRedis } from '../helpers/private-redis';
import { createTestDatabase, uniqueId, type TestDatabase } from '../helpers/services';
import { waitFor } from '../helpers/wait';

let database: TestDatabase;
let redis: PrivateRedis;
let gateway: TestGateway;
let peer: PlatformPeer;
const exchange = uniqueId('cpr-test-x');

beforeAll(async () => {
  database = await createTestDatabase();
  redis = await privateRedis();
  gateway = await startGateway(
    realServicesEnv(database.url, { REDIS_URL: redis.url, AMQP_EXCHANGE: exchange, AMQP_REQUEUE_DELAY_MS: '200' }),
  );
  peer = await openPlatformPeer();
});

afterAll(async () => {
  await disposeClients();
  await stopGateways();
  await peer?.channel.deleteExchange(exchange).catch(() => undefined);
  await peer?.close();
  await redis?.stop();
  await database?.drop();
});

async function readiness(): Promise<{ status: number; pubsub: string }> {
  const response = await fetch(`${gateway.app.url}/readyz`);
  const body = (await response.json()) as { dependencies: { pubsub: { status: string } } };
  return { status: response.status, pubsub: body.dependencies.pubsub.status };
}

it('loses nothing while Redis restarts, and resubscribes every channel and pattern', async () => {
  const user = uniqueId('outage');
  const own = subscribe(wsClient(gateway.wsUrl, { authorization: `Bearer ${token(user)}` }).client, QuotaChangedDocument, {});
  const admin = subscribe(
    wsClient(gateway.wsUrl, { authorization: `Bearer ${token('ops', { roles: ['admin'] })}` }).client,
    QuotaChangedDocument,
    {},
  );
  await waitForSubscriptions(gateway, 2);
  const publish = (id: string) => peer.publish('quota.updated', { userId: user }, { messageId: id, exchange });

  await publish(`before-${user}`);
  for (const sub of [own, admin]) expect((await sub.next()).data?.quotaChanged.eventId).toBe(`before-${user}`);

  await redis.stop();
  await waitFor(async () => (await readiness()).status === 503, '/readyz to report Redis down');
  expect(await readiness()).toEqual({ status: 503, pubsub: 'down' });

  const requeuedBefore = gateway.app.stats().bridge.requeued;
  await publish(`during-${user}`);
  // The event cannot reach Redis: it is held and requeued, again and again, never acknowledged.
  await waitFor(() => gateway.app.stats().bridge.requeued >= requeuedBefore + 2, 'the event to be requeued');
  expect(gateway.app.stats().bridge.deadLettered).toBe(0);

  await redis.start();
  await waitFor(async () => (await readiness()).status === 200, '/readyz to recover by itself', 30_000);
  expect(gateway.app.stats().reconnects.pubsub).toBeGreaterThanOrEqual(2);

  for (const sub of [own, admin]) expect((await sub.next(20_000)).data?.quotaChanged.eventId).toBe(`during-${user}`);
  await publish(`after-${user}`);
  for (const sub of [own, admin]) {
    expect((await sub.next()).data?.quotaChanged.eventId).toBe(`after-${user}`);
    expect(sub.pending()).toBe(0);
  }
  expect(gateway.app.stats().subscriptions.quotaChanged).toBe(2);
}, 90_000);
