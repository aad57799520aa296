/**
 * The broker closes this gateway's connection (only this one: the others on the shared broker are
 * untouched); the gateway reports itself unready, reconnects, redeclares and consumes again.
 */
import { execFileSync } from 'node:child_process';
import { QuotaChangedDocument } from '../generated/graphql';
import { openPlatformPeer, type PlatformPeer } from '../helpers/amqp';
import { disposeClients, subscribe, token, wsClient } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { partitionTopology } from '../../src/infra/amqp/partition-topology';
import { scrape } from '../helpers/metrics';
import { createTestDatabase, uniqueId, type TestDatabase } from '../helpers/services';
import { waitFor } from '../helpers/wait';

let database: TestDatabase;
let gateway: TestGateway;
let peer: PlatformPeer;

beforeAll(async () => {
  database = await createTestDatabase();
  gateway = await startGateway(realServicesEnv(database.url));
  peer = await openPlatformPeer();
});

afterAll(async () => {
  await disposeClients();
  await stopGateways();
  await peer?.close();
  await database?.drop();
});

/** The broker-side id of this gateway's connection, found by its unique connection name. */
function connectionPid(queue: string): string {
  const rows = execFileSync('rabbitmqctl', ['-q', 'list_connections', 'pid', 'client_properties']).toString().split('\n');
  const row = rows.find((r) => r.includes(`cloudphone-realtime ${queue} pid ${process.pid}`));
  if (!row) throw new Error(`no broker connection named for ${queue}`);
  return row.split('\t')[0] as string;
}

it('reconnects after the broker closes its connection, and delivers again', async () => {
  const reconnects = async () => (await scrape(gateway.app.url)).value('cloudphone_realtime_amqp_reconnects_total');
  expect(await reconnects()).toBe(0);
  const pid = connectionPid(gateway.config.amqp.queue);
  execFileSync('rabbitmqctl', ['-q', 'close_connection', pid, 'test: closed by the broker']);
  // The first reconnect waits 250 ms: readiness must say so meanwhile, then recover by itself.
  const readiness = async () => {
    const response = await fetch(`${gateway.app.url}/readyz`);
    return { status: response.status, body: (await response.json()) as { dependencies: { eventBus: { status: string } } } };
  };
  let down: Awaited<ReturnType<typeof readiness>> | undefined;
  await waitFor(async () => (down = await readiness()).status === 503, '/readyz to report the lost broker');
  expect(down?.body.dependencies.eventBus.status).toBe('down');
  await waitFor(async () => (await readiness()).status === 200, '/readyz to recover', 20_000);
  expect(connectionPid(gateway.config.amqp.queue)).not.toBe(pid);
  await waitFor(async () => (await reconnects()) === 1, 'amqp_reconnects_total to count the reconnect');

  const user = uniqueId('quinn');
  const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(user)}` });
  const sub = subscribe(client.client, QuotaChangedDocument, {});
  await waitForSubscriptions(gateway, 1);
  await peer.publish('quota.updated', { userId: user }, { messageId: `after-reconnect-${user}` });
  expect((await sub.next()).data?.quotaChanged.eventId).toBe(`after-reconnect-${user}`);
}, 60_000);

it('consumes again after the broker cancels its consumer (its queue deleted under it)', async () => {
  const { queue } = gateway.config.amqp;
  const reconnectsBefore = gateway.app.stats().reconnects.eventBus;
  // Deleting the queue makes the broker cancel the consumer: amqplib hands it a null message.
  // Partitioned, the router queue is the one bound to the platform's exchange.
  await peer.channel.deleteQueue(partitionTopology(queue, gateway.config.amqp.partitions).router);
  await waitFor(() => gateway.app.stats().reconnects.eventBus > reconnectsBefore, 'the gateway to reconnect');
  await waitFor(async () => (await fetch(`${gateway.app.url}/readyz`)).status === 200, '/readyz to recover', 20_000);
  // The queue was declared again, with its bindings: events flow once more.
  const user = uniqueId('cancel');
  const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(user)}` });
  const sub = subscribe(client.client, QuotaChangedDocument, {});
  await waitForSubscriptions(gateway, 2);
  await peer.publish('quota.updated', { userId: user }, { messageId: `after-cancel-${user}` });
  expect((await sub.next()).data?.quotaChanged.eventId).toBe(`after-cancel-${user}`);
}, 60_000);
