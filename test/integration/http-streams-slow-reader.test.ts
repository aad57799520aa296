/**
 * A multipart or SSE stream whose client sends the request and then stops reading (a raw TCP
 * client, so nothing reads on its behalf). Large events go straight onto the user's Redis channel,
 * paced by a healthy neighbour that must receive a marker after each batch, until the gateway's
 * kernel send buffer and then its own bounds fill. Two bounds, as on the WebSocket path
 * (storm.test.ts):
 * - the subscription's event buffer (`EVENT_BUFFER_MAX`): while the response needs a drain the
 *   sink is not ready, events wait there, and one too many ends the stream;
 * - unsent bytes (`WS_MAX_BUFFERED_BYTES`): an event bigger than what is left ends it at the write.
 * Either way the stream ends with SLOW_CONSUMER (multipart `{"payload":null,"errors"}` and the
 * closing boundary, SSE a `next` with `errors` and `complete`), the operation and the user's
 * connection slot are released at once, the gateway holds only a bounded number of bytes for the
 * dead reader, and its socket is destroyed `WS_SLOW_CLOSE_GRACE_MS` later.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import Redis from 'ioredis';
import { token } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateways, waitForSubscriptions, type TestGateway } from '../helpers/gateway';
import { openSse, sseUrl } from '../helpers/http-streams';
import { openRawHttpStream, type RawHttpStream } from '../helpers/raw-http';
import { createTestDatabase, TEST_REDIS_URL, uniqueId, type TestDatabase } from '../helpers/services';
import { track } from '../helpers/teardown';
import { waitFor, within } from '../helpers/wait';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let database: TestDatabase;
let redis: Redis;

beforeAll(async () => {
  database = await createTestDatabase();
  redis = new Redis(TEST_REDIS_URL);
  // quit, not disconnect: a disconnected client's socket outlived jest's exit check here.
  track('redis publisher', () => redis.quit().catch(() => undefined));
});

afterAll(async () => {
  await stopGateways();
  await redis?.quit().catch(() => undefined);
  await database?.drop();
});

const QUERY = 'subscription { quotaChanged { eventId kind severity } }';
/** Each event carries this much text: a few dozen fill the loopback buffers quickly. */
const EVENT_BYTES = 64 * 1024;
const BATCH = 8;
/** At most this many batches (32 MB): the kernel buffers here take a few MB. */
const MAX_BATCHES = 64;

function rawRequest(gateway: TestGateway, transport: 'multipart' | 'sse', jwt: string): string {
  const host = `Host: 127.0.0.1:${gateway.app.port}`;
  if (transport === 'sse') {
    const url = new URL(sseUrl(gateway.httpUrl, QUERY, { token: jwt }));
    return [`GET ${url.pathname}${url.search} HTTP/1.1`, host, 'Accept: text/event-stream', 'Connection: close', '', ''].join('\r\n');
  }
  const body = JSON.stringify({ query: QUERY });
  return [
    'POST /graphql HTTP/1.1',
    host,
    'Accept: multipart/mixed;subscriptionSpec="1.0",application/json',
    'Content-Type: application/json',
    `Authorization: Bearer ${jwt}`,
    `Content-Length: ${Buffer.byteLength(body)}`,
    // So the reader that comes back sees the connection end after the response.
    'Connection: close',
    '',
    body,
  ].join('\r\n');
}

const heapMb = () => {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 1_048_576;
};

/** Publishes large events for `user` until `done()`, each batch confirmed by the neighbour's marker. */
async function flood(gateway: TestGateway, user: string, neighbour: string, done: () => boolean): Promise<number> {
  const prefix = gateway.config.redis.topicPrefix;
  const neighbourStream = await openSse(sseUrl(gateway.httpUrl, 'subscription { quotaChanged { eventId } }', { token: token(neighbour) }));
  await waitForSubscriptions(gateway, 2);
  const severity = 'x'.repeat(EVENT_BYTES);
  let published = 0;
  for (let batch = 0; batch < MAX_BATCHES && !done(); batch++) {
    const pipeline = redis.pipeline();
    for (let i = 0; i < BATCH; i++, published++) {
      const event = {
        family: 'quota',
        eventId: `big-${published}`,
        type: 'quota.alert',
        userId: user,
        occurredAt: new Date().toISOString(),
        kind: 'ALERT',
        severity,
      };
      pipeline.publish(`${prefix}quota:user:${user}`, JSON.stringify(event));
    }
    const marker = `m-${batch}-${neighbour}`;
    pipeline.publish(
      `${prefix}quota:user:${neighbour}`,
      JSON.stringify({
        family: 'quota',
        eventId: marker,
        type: 'quota.alert',
        userId: neighbour,
        occurredAt: new Date().toISOString(),
        kind: 'ALERT',
      }),
    );
    await pipeline.exec();
    // The neighbour reads: it gets every marker, whatever the reader beside it does.
    expect((await neighbourStream.next(`marker ${batch}`)).id).toBe(marker);
  }
  neighbourStream.close();
  return published;
}

const ENDINGS = {
  multipart: {
    error:
      /\{"payload":null,"errors":\[\{"message":"Client too slow: [^"]+","extensions":\{"code":"SLOW_CONSUMER"\}\}\]\}\r\n--graphql--\r\n/,
    last: '--graphql--\r\n',
  },
  sse: {
    error:
      /event: next\ndata: \{"errors":\[\{"message":"Client too slow: [^"]+","extensions":\{"code":"SLOW_CONSUMER"\}\}\]\}\n\nevent: complete\ndata:\n\n/,
    last: 'event: complete\ndata:\n\n',
  },
} as const;

describe.each(['multipart', 'sse'] as const)('a %s stream that never reads', (transport) => {
  async function slowReader(
    limits: Record<string, string>,
  ): Promise<{ gateway: TestGateway; user: string; reader: RawHttpStream; published: number; baseline: number }> {
    const gateway = await startGateway(
      // One connection per user: a second stream opening proves the slot was released.
      realServicesEnv(database.url, { ...limits, WS_MAX_SOCKETS_PER_USER: '1', EVENT_COALESCE_MS: '0' }),
    );
    const user = uniqueId(`slow-${transport}`);
    const baseline = heapMb();
    const reader = await openRawHttpStream(gateway.app.port, rawRequest(gateway, transport, token(user)));
    expect(reader.status).toBe(200);
    await waitForSubscriptions(gateway, 1);
    const ended = () => gateway.app.stats().sessions.transports[transport].slowConsumer > 0;
    const published = await flood(gateway, user, uniqueId('neighbour'), ended);
    await waitFor(ended, 'the slow stream to be ended');
    return { gateway, user, reader, published, baseline };
  }

  async function expectReleased(gateway: TestGateway, user: string, baseline: number, figures: Record<string, unknown>): Promise<void> {
    // The operation and the slot go at once, whether or not the peer ever reads again.
    await waitForSubscriptions(gateway, 0);
    expect(gateway.app.stats().sessions.transports[transport].open).toBe(0);
    const again = await openSse(sseUrl(gateway.httpUrl, QUERY, { token: token(user) }));
    expect(again.status).toBe(200);
    again.close();
    const after = heapMb();
    console.log(
      `slow ${transport} reader: ${JSON.stringify({ ...figures, heapBaselineMb: +baseline.toFixed(1), heapAfterMb: +after.toFixed(1) })}`,
    );
    expect(after - baseline).toBeLessThan(16);
  }

  it('overflows its event buffer (the sink waits for the drain): SLOW_CONSUMER, released, the end delivered to a reader that comes back within the grace', async () => {
    const { gateway, user, reader, published, baseline } = await slowReader({ EVENT_BUFFER_MAX: '20', WS_SLOW_CLOSE_GRACE_MS: '60000' });
    const stats = gateway.app.stats();
    // The event buffer ended it, not the byte bound: the sink stopped writing while the response needed a drain.
    expect(stats.overflowed).toBe(1);
    // What the gateway still holds for the dead reader: at most an event or two, nowhere near the 1 MB byte bound.
    const held = reader.serverSocket.writableLength;
    expect(held).toBeLessThan(3 * EVENT_BYTES);
    await expectReleased(gateway, user, baseline, { published, heldBytes: held, path: 'overflow' });

    reader.resume();
    await within(reader.ended, 'the response to end once read', 20_000);
    const text = reader.text();
    expect(text).toMatch(ENDINGS[transport].error);
    // Chunked: the last chunk carries the end, then the zero-length chunk.
    expect(text.endsWith(`${ENDINGS[transport].last}\r\n0\r\n\r\n`)).toBe(true);
  }, 60_000);

  it('exceeds WS_MAX_BUFFERED_BYTES at a write: SLOW_CONSUMER, released, the socket destroyed after WS_SLOW_CLOSE_GRACE_MS', async () => {
    const grace = 2_000;
    const { gateway, user, reader, published, baseline } = await slowReader({
      EVENT_BUFFER_MAX: '100000',
      WS_MAX_BUFFERED_BYTES: '16384',
      WS_SLOW_CLOSE_GRACE_MS: String(grace),
    });
    // Not yet: the grace lets a reader that comes back take the end.
    expect(reader.serverSocket.destroyed).toBe(false);
    const endedAt = Date.now();
    expect(gateway.app.stats().overflowed).toBe(0);
    await expectReleased(gateway, user, baseline, { published, path: 'bytes' });
    // A peer that never reads never takes the end either: the gateway lets go of its socket.
    await within(reader.serverClosed, 'the gateway to destroy the socket', 10_000);
    expect(Date.now() - endedAt).toBeGreaterThanOrEqual(grace - 100);
    expect(reader.serverSocket.destroyed).toBe(true);
  }, 60_000);
});
