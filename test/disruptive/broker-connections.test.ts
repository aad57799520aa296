/**
 * RabbitMQ closes every connection from the server side (`rabbitmqctl close_all_connections`,
 * as a broker restart or an operator would). Runs alone (npm run test:disruptive): it closes other
 * clients' connections too, and leaves the broker itself up.
 *
 * Two gateway instances of one deployment lose their links; both report it in /readyz, reconnect
 * with backoff, redeclare the topology and consume again; the events published while they were
 * away wait in the durable queue and reach the subscribers on both instances exactly once.
 */
import { execFileSync } from 'node:child_process';
import { DeviceStatusChangedDocument } from '../generated/graphql';
import { openPlatformPeer, type PlatformPeer } from '../helpers/amqp';
import { disposeClients, subscribe, token, wsClient } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { createTestDatabase, uniqueId, type TestDatabase } from '../helpers/services';
import { waitFor } from '../helpers/wait';

let database: TestDatabase;
let first: TestGateway;
let second: TestGateway;
const peers: PlatformPeer[] = [];
const exchange = uniqueId('cpr-test-x');

beforeAll(async () => {
  database = await createTestDatabase();
  // Counts every delivery of one device's events: no coalescing of state-like events (default 100 ms).
  const env = realServicesEnv(database.url, { AMQP_EXCHANGE: exchange, EVENT_COALESCE_MS: '0' });
  first = await startGateway(env);
  second = await startGateway(env);
});

afterAll(async () => {
  await disposeClients();
  await stopGateways();
  const cleanup = await openPlatformPeer();
  await cleanup.channel.deleteExchange(exchange).catch(() => undefined);
  for (const peer of [...peers, cleanup]) await peer.close();
  await database?.drop();
});

const ready = async (g: TestGateway) => (await fetch(`${g.app.url}/readyz`)).status === 200;

it('recovers from close_all_connections on its own and loses no event published meanwhile', async () => {
  const user = uniqueId('broker');
  const subs = [first, second].map((g) =>
    subscribe(wsClient(g.wsUrl, { authorization: `Bearer ${token(user)}` }).client, DeviceStatusChangedDocument, {}),
  );
  await waitForSubscriptions(first, 1, 'deviceStatusChanged');
  await waitForSubscriptions(second, 1, 'deviceStatusChanged');
  const reconnectsBefore = [first, second].map((g) => g.app.stats().reconnects.eventBus);

  execFileSync('rabbitmqctl', ['-q', 'close_all_connections', 'cloudphone-realtime test: broker closes every connection']);
  await waitFor(async () => !(await ready(first)) && !(await ready(second)), 'both instances to report the broker down', 5_000);

  // Published while the gateways are away (their first reconnect waits 250 ms): kept by the queue.
  const peer = await openPlatformPeer();
  peers.push(peer);
  const N = 20;
  const ids = Array.from({ length: N }, (_, i) => `away-${user}-${i}`);
  for (const id of ids)
    await peer.publish('device.status.changed', { userId: user, deviceId: 'd', newStatus: 'running' }, { messageId: id, exchange });

  await waitFor(async () => (await ready(first)) && (await ready(second)), 'both instances to recover by themselves', 30_000);
  [first, second].forEach((g, i) => expect(g.app.stats().reconnects.eventBus).toBeGreaterThan(reconnectsBefore[i] as number));

  for (const sub of subs) {
    const got: string[] = [];
    for (let i = 0; i < N; i++) got.push((await sub.next(20_000)).data?.deviceStatusChanged.eventId as string);
    expect([...got].sort()).toEqual([...ids].sort());
  }
  await peer.publish('device.stopped', { userId: user, deviceId: 'd' }, { messageId: `last-${user}`, exchange });
  for (const sub of subs) {
    expect((await sub.next()).data?.deviceStatusChanged).toMatchObject({ eventId: `last-${user}`, status: 'STOPPED' });
    expect(sub.pending()).toBe(0);
  }
}, 90_000);
