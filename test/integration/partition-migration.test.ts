/**
 * Migration from the single shared queue (docs/cluster.md): what waits in the old queue when the
 * partitioned version starts is drained through the router, in order and before what the router
 * queue received since (the user's retained log shows one order); then the old queue is deleted. Also: the router dead-letters a malformed
 * message with its reason, and the events after it keep flowing.
 */
import amqp from 'amqplib';
import Redis from 'ioredis';
import { QuotaChangedDocument } from '../generated/graphql';
import { PARTITION_KEY_HEADER } from '../../src/contracts/partition';
import { partitionTopology } from '../../src/infra/amqp/partition-topology';
import { openPlatformPeer, type PlatformPeer } from '../helpers/amqp';
import { disposeClients, subscribe, token, wsClient } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateway, stopGateways, waitForSubscriptions } from '../helpers/gateway';
import { createTestDatabase, TEST_AMQP_URL, TEST_REDIS_URL, uniqueId, type TestDatabase } from '../helpers/services';
import { waitFor } from '../helpers/wait';

let database: TestDatabase;
let peer: PlatformPeer;

beforeAll(async () => {
  database = await createTestDatabase();
  peer = await openPlatformPeer();
});

afterAll(async () => {
  await disposeClients();
  await stopGateways();
  await peer?.close();
  await database?.drop();
});

it('drains the old shared queue through the router before the router queue, then deletes it', async () => {
  const env = realServicesEnv(database.url);
  // The old version: one shared queue. It declares its topology, then goes away.
  const old = await startGateway({ ...env, AMQP_PARTITIONS: '0' });
  await stopGateway(old);
  const user = uniqueId('mig');
  for (let i = 1; i <= 20; i++)
    await peer.publish('quota.updated', { userId: user, usage: { currentDevices: i } }, { messageId: `${user}:${i}` });
  expect((await peer.channel.checkQueue(env.AMQP_QUEUE as string)).messageCount).toBe(20);

  await startGateway(env);
  // Published after the switch: these land in the router queue only (the old queue is unbound).
  for (let i = 21; i <= 30; i++)
    await peer.publish('quota.updated', { userId: user, usage: { currentDevices: i } }, { messageId: `${user}:${i}` });
  // The user's retained log is the order every subscriber and every resume sees.
  const redis = new Redis(TEST_REDIS_URL);
  const logged = async () =>
    (await redis.xrange(`${env.REDIS_TOPIC_PREFIX}log:user:${user}`, '-', '+')).map(([, fields]) => fields[fields.indexOf('i') + 1]);
  try {
    await waitFor(async () => (await logged()).length >= 30, 'all 30 events in the retained log');
    expect(await logged()).toEqual(Array.from({ length: 30 }, (_, i) => `${user}:${i + 1}`));
  } finally {
    redis.disconnect();
  }
  // Gone once drained (checkQueue on a missing queue closes the channel: use a throwaway one).
  const connection = await amqp.connect(TEST_AMQP_URL);
  connection.on('error', () => undefined);
  try {
    await waitFor(async () => {
      const channel = await connection.createChannel();
      channel.on('error', () => undefined);
      try {
        await channel.checkQueue(env.AMQP_QUEUE as string);
        return false;
      } catch {
        return true;
      } finally {
        await channel.close().catch(() => undefined);
      }
    }, 'the old queue to be deleted');
  } finally {
    await connection.close().catch(() => undefined);
  }
}, 60_000);

it('dead-letters a malformed message from the router with its reason; the next events flow', async () => {
  const env = realServicesEnv(database.url);
  const gateway = await startGateway(env);
  const user = uniqueId('bad');
  const client = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(user)}` });
  const sub = subscribe(client.client, QuotaChangedDocument, {});
  await waitForSubscriptions(gateway, 1);
  await peer.publish('quota.updated', '{"userId": ', { messageId: `${user}:bad` });
  await peer.publish('quota.updated', { userId: user }, { messageId: `${user}:good` });
  expect((await sub.next()).data?.quotaChanged.eventId).toBe(`${user}:good`);
  const dead = await peer.take(env.AMQP_DLQ as string, (m) => m.properties.messageId === `${user}:bad`, 'the dead letter');
  expect(dead.properties.headers?.['x-rejection-reason']).toBe('not JSON');
  // The router decided (a message the bridge rejects carries the partition key it was routed with),
  // and counted it where the bridge counts its own.
  expect(dead.properties.headers?.[PARTITION_KEY_HEADER]).toBeUndefined();
  expect(gateway.app.stats().bridge.deadLettered).toBe(1);
  const topology = partitionTopology(gateway.config.amqp.queue, gateway.config.amqp.partitions);
  expect((await peer.channel.checkQueue(topology.router)).consumerCount).toBe(1);
}, 60_000);
