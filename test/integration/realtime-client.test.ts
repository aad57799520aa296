/**
 * @cloudphone/realtime-client as a page uses it (the built package, in a Node process of its own,
 * test/fixtures/realtime-client-probe.mjs) against a gateway on the real services: getToken on
 * connect and an in-band renewal before exp keep the socket and its subscription open past the
 * first token's expiry; an `after` the gateway no longer retains surfaces as the typed
 * HISTORY_EXPIRED signal and the subscription carries on live.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { scrape } from '../helpers/metrics';
import { TEST_JWT_SECRET, uniqueId } from '../helpers/services';
import { gatewaySuite } from '../helpers/suite';
import { track } from '../helpers/teardown';
import { waitFor } from '../helpers/wait';

const root = path.resolve(__dirname, '../..');
const suite = gatewaySuite();

interface Line {
  readonly type: string;
  readonly [key: string]: unknown;
}

/** Starts the probe; its lines accumulate in `lines`; `stop` (or teardown) kills it by pid. */
function probe(mode: 'renew' | 'expired', userId: string, env: Record<string, string>): { lines: Line[]; stop: () => Promise<void> } {
  const child = spawn(process.execPath, [path.join(root, 'test/fixtures/realtime-client-probe.mjs'), mode], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      HTTP_URL: suite.gateway.httpUrl,
      WS_URL: suite.gateway.wsUrl,
      JWT_SECRET: TEST_JWT_SECRET,
      USER_ID: userId,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tracked = track(
    `realtime-client probe ${child.pid}`,
    () =>
      new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : (child.once('exit', () => resolve()), child.kill('SIGKILL')))),
  );
  const lines: Line[] = [];
  let pending = '';
  child.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString();
    for (let i = pending.indexOf('\n'); i >= 0; i = pending.indexOf('\n')) {
      lines.push(JSON.parse(pending.slice(0, i)) as Line);
      pending = pending.slice(i + 1);
    }
  });
  child.stderr.on('data', (chunk: Buffer) => lines.push({ type: 'stderr', text: chunk.toString() }));
  return { lines, stop: () => tracked.close() };
}

/** Resolves once the gateway holds `count` deviceStatusChanged subscriptions (each probe has one). */
const subscribed = async (count: number) => {
  const base = suite.gateway.httpUrl.replace(/\/graphql$/, '');
  await waitFor(
    async () => ((await scrape(base)).value('cloudphone_realtime_subscriptions', { field: 'deviceStatusChanged' }) ?? 0) === count,
    `${count} subscriptions on the gateway`,
    20_000,
  );
};
const eventIds = (lines: readonly Line[]) => lines.filter((l) => l.type === 'event').map((l) => l.eventId);

it('asks getToken on connect and renews in band before exp: the subscription outlives the first token', async () => {
  const userId = uniqueId('renew');
  const deviceId = `${userId}-d`;
  const { lines, stop } = probe('renew', userId, { TOKEN_TTL_SEC: '6', RENEW_BEFORE_MS: '4000' });
  await waitFor(() => lines.some((l) => l.type === 'state' && l.status === 'connected'), 'the probe to connect', 20_000);
  await subscribed(1);
  const firstExp = lines.find((l) => l.type === 'token')?.exp as number;

  await suite.peer.publish('device.started', { userId, deviceId }, { messageId: `${userId}-1` });
  await waitFor(() => eventIds(lines).includes(`${userId}-1`), 'the first event', 15_000);
  // Renewal (a second getToken, then renewSession over the socket) comes 4 s before exp; then
  // the first token's expiry passes: without the renewal the gateway would close with 4403.
  await waitFor(() => lines.filter((l) => l.type === 'token').length >= 2, 'the renewal to ask for a token', 15_000);
  await waitFor(() => Date.now() > firstExp + 1_500, 'the first token to expire', 15_000);
  await suite.peer.publish('device.stopped', { userId, deviceId }, { messageId: `${userId}-2` });
  await waitFor(() => eventIds(lines).includes(`${userId}-2`), 'an event after the first token expired', 15_000);

  expect(lines.filter((l) => l.type === 'stderr' || l.type === 'error')).toEqual([]);
  // One connection all along: renewed, never closed for the token.
  expect(lines.filter((l) => l.type === 'state').map((l) => l.status)).toEqual(['connecting', 'connected']);
  expect(lines.find((l) => l.type === 'event' && l.eventId === `${userId}-2`)).toMatchObject({
    device: { id: deviceId, status: 'STOPPED' },
  });
  await stop();
  await subscribed(0);
}, 60_000);

it('surfaces an after the gateway does not retain as HISTORY_EXPIRED, then carries on live', async () => {
  const userId = uniqueId('expired');
  const { lines, stop } = probe('expired', userId, { TOKEN_TTL_SEC: '600', RENEW_BEFORE_MS: '60000' });
  await waitFor(() => lines.some((l) => l.type === 'expired'), 'the HISTORY_EXPIRED signal', 20_000);
  expect(lines.find((l) => l.type === 'expired')).toMatchObject({
    signal: { type: 'HISTORY_EXPIRED', operationName: 'DeviceStatusChanged', after: 'no-such-event-id' },
  });
  await subscribed(1);
  await suite.peer.publish('device.started', { userId, deviceId: `${userId}-d` }, { messageId: `${userId}-live` });
  await waitFor(() => eventIds(lines).includes(`${userId}-live`), 'the live event after the signal', 15_000);
  expect(lines.filter((l) => l.type === 'stderr' || l.type === 'error')).toEqual([]);
  expect(lines.filter((l) => l.type === 'expired')).toHaveLength(1);
  await stop();
}, 60_000);
