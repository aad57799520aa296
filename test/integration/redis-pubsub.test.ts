/**
 * The Redis pub/sub adapter on the real Redis, at the edges the gateway must survive: a slow
 * consumer's overflow releasing its neighbours on the same channel from inside the delivery loop,
 * and whatever else arrives on a channel.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import Redis from 'ioredis';
import pino from 'pino';
import type { GatewayEvent } from '../../src/contracts/events';
import { RedisEventPubSub } from '../../src/infra/redis/redis-pubsub';
import { bundleEntry } from '../helpers/cli';
import { TEST_REDIS_URL, uniqueId } from '../helpers/services';

let pubsub: RedisEventPubSub;
let raw: Redis;
const prefix = `${uniqueId('cpr-test')}:`;

beforeAll(async () => {
  pubsub = new RedisEventPubSub(TEST_REDIS_URL, prefix, pino({ level: 'silent' }), { maxBuffered: 2, coalesceMs: 0 });
  await pubsub.ready();
  raw = new Redis(TEST_REDIS_URL);
});

afterAll(async () => {
  await pubsub?.close();
  raw?.disconnect();
});

const event = (n: number) =>
  ({
    family: 'order',
    eventId: `e${n}`,
    type: 'order.completed',
    userId: 'u',
    occurredAt: new Date().toISOString(),
    orderId: `o${n}`,
  }) as GatewayEvent;

it('survives an overflow that releases the other subscriptions on the same channel from inside the delivery loop', async () => {
  // In a process of its own: the failure this guards against is an uncaught exception in ioredis'
  // data handler, which kills a real process but which jest only prints.
  const outfile = await bundleEntry(path.join(__dirname, '../fixtures/overflow-release.ts'), 'overflow-release');
  const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, [outfile, TEST_REDIS_URL, `${prefix}fixture:`], { timeout: 20_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    ),
  );
  expect(result.stderr).toBe('');
  expect(result).toMatchObject({ code: 0, stdout: 'alive\n' });
});

it('drops what is not an event on a channel, and keeps delivering', async () => {
  const topic = `${prefix}order:user:noise`;
  const sub = await pubsub.subscribe(topic);
  for (const junk of ['null', '42', '"text"', 'not json']) await raw.publish(topic, junk);
  await pubsub.publish(topic, event(9));
  const next = await sub.next();
  expect(next.value).toMatchObject({ eventId: 'e9' });
  await sub.return?.();
});
