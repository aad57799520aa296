/**
 * The example dashboard (examples/dashboard, built from the packages' published entry points) in
 * Debian's Chromium against a gateway process on the real services: the page lists devices and
 * quota from queries, then changes come from pushes only. Records (a) publish-to-DOM time, (b) the
 * HTTP requests after the first load (none for a pushed change), (c) that a gateway restart leaves
 * the page reconnected and complete: events published meanwhile (bridged by the suite's other
 * instance) arrive through resume with `after`, none twice on screen.
 */
import 'reflect-metadata';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { closeBrowsers, launchChromium, openPage, requireChromium, ARTIFACTS, type RecordedPage } from '../helpers/browser';
import { runCli } from '../helpers/cli';
import { startGatewayProcess, stopGatewayProcesses, type GatewayProcess } from '../helpers/gateway-process';
import type { TestGateway } from '../helpers/gateway';
import { claims, signHs } from '../helpers/jwt';
import { scrape } from '../helpers/metrics';
import { TEST_AMQP_URL, TEST_EXCHANGE, TEST_JWT_SECRET, uniqueId } from '../helpers/services';
import { gatewaySuite } from '../helpers/suite';
import { track } from '../helpers/teardown';
import { deferred, waitFor, within } from '../helpers/wait';

requireChromium();
const root = path.resolve(__dirname, '../..');
const suite = gatewaySuite();
const user = uniqueId('dash-user');
const devices = [1, 2, 3].map((n) => `${user}-dev-${n}`);

/** Another instance of the suite's gateway (same database, queue, topic prefix), as a process. */
function sameInstanceEnv(gateway: TestGateway, port: number): Record<string, string> {
  const { config } = gateway;
  if (config.amqp.kind !== 'amqp' || config.redis.kind !== 'redis' || config.database.kind !== 'postgres')
    throw new Error('real services expected');
  return {
    PORT: String(port),
    DATABASE_URL: config.database.url,
    REDIS_URL: config.redis.url,
    REDIS_TOPIC_PREFIX: config.redis.topicPrefix,
    AMQP_URL: config.amqp.url,
    AMQP_EXCHANGE: config.amqp.exchange,
    AMQP_QUEUE: config.amqp.queue,
    AMQP_DLX: config.amqp.deadLetterExchange,
    AMQP_DLQ: config.amqp.deadLetterQueue,
    LOG_LEVEL: 'info',
  };
}

/** `node examples/dashboard/scripts/serve.mjs` against `gatewayUrl`; resolves with the page's URL. */
async function serveDashboard(gatewayUrl: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [path.join(root, 'examples/dashboard/scripts/serve.mjs')], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', GATEWAY_URL: gatewayUrl, EXAMPLE_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(
    `dashboard server ${child.pid}`,
    () =>
      new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : (child.once('exit', () => resolve()), child.kill('SIGKILL')))),
  );
  const ready = deferred<string>();
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    const line = out.split('\n').find((l) => l.startsWith('{"dashboard"'));
    if (line) ready.resolve((JSON.parse(line) as { dashboard: string }).dashboard);
  });
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
  child.once('exit', (code) => ready.reject(new Error(`dashboard server exited (${code}): ${err}`)));
  return { url: await within(ready.promise, 'the dashboard to be built and served', 90_000), child };
}

let gateway: GatewayProcess;
let port = 0;
let dashboardUrl: string;
let recorded: RecordedPage;
const results: Record<string, unknown> = { user };

const publish = (routingKey: string, body: object, messageId: string) => suite.peer.publish(routingKey, body, { messageId });
const statusOf = (deviceId: string) => recorded.page.getByTestId(`device-${deviceId}`).getByTestId('status').textContent();

beforeAll(async () => {
  // State the page loads with queries: three devices and a quota, bridged before it opens.
  for (const [i, deviceId] of devices.entries())
    await publish('device.created', { userId: user, deviceId, deviceName: `Phone ${i + 1}`, status: 'idle' }, `${deviceId}-created`);
  await publish(
    'quota.updated',
    { userId: user, quotaId: `${user}-q`, limits: { maxDevices: 10 }, usage: { currentDevices: 3 } },
    `${user}-quota`,
  );
  await waitFor(
    async () => (await suite.sql.query(`SELECT count(*)::int AS n FROM device WHERE user_id = $1`, [user]))[0]?.n === 3,
    'the devices in the read model',
    20_000,
  );

  gateway = await startGatewayProcess(sameInstanceEnv(suite.gateway, 0));
  port = gateway.port;
  dashboardUrl = (await serveDashboard(`http://127.0.0.1:${port}`)).url;
  recorded = await openPage(await launchChromium());
  // Development sign-in without the embedded default: the page's POST /dev/token answered here.
  await recorded.page.route('**/dev/token', (route) =>
    route.fulfill({ contentType: 'application/json', body: JSON.stringify({ token: signHs(TEST_JWT_SECRET, claims(user)) }) }),
  );
}, 180_000);

afterAll(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  await writeFile(path.join(ARTIFACTS, 'dashboard-browser.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log(`dashboard browser results: ${JSON.stringify(results)}`);
  await closeBrowsers();
  await stopGatewayProcesses();
});

const subscriptionsOnGateway = async () => {
  const metrics = await scrape(`http://127.0.0.1:${port}`);
  return (
    (metrics.value('cloudphone_realtime_subscriptions', { field: 'deviceStatusChanged' }) ?? 0) +
    (metrics.value('cloudphone_realtime_subscriptions', { field: 'quotaChanged' }) ?? 0)
  );
};

it('loads the devices and the quota with queries, then shows a device event published with the CLI, with no HTTP request', async () => {
  const { page, requests } = recorded;
  await page.goto(dashboardUrl);
  await page.getByRole('textbox').fill(user);
  await page.getByRole('button', { name: 'Sign in as demo user' }).click();
  await page.getByTestId('connection').and(page.locator('[data-status="connected"]')).waitFor({ timeout: 20_000 });
  for (const deviceId of devices) await page.getByTestId(`device-${deviceId}`).waitFor();
  expect(await page.getByTestId('quota-devices').textContent()).toBe('3');
  await waitFor(async () => (await subscriptionsOnGateway()) === 2, 'the page subscriptions on the gateway', 20_000);
  const loaded = requests.length;

  const cli = await runCli(
    'publish-event',
    ['device.started', JSON.stringify({ userId: user, deviceId: devices[0] }), '--message-id', `${user}-cli-1`],
    {
      AMQP_URL: TEST_AMQP_URL,
      AMQP_EXCHANGE: TEST_EXCHANGE,
      JWT_SECRET: TEST_JWT_SECRET,
    },
  );
  expect(cli).toMatchObject({ code: 0, stderr: '' });
  await waitFor(async () => (await statusOf(devices[0]!)) === 'RUNNING', 'the CLI event on screen', 15_000);

  // (a) publish to DOM: the page stamps each status change (MutationObserver, same machine clock).
  await page.evaluate(() => {
    const w = window as unknown as { changes: { text: string; at: number }[] };
    w.changes = [];
    new MutationObserver(() =>
      w.changes.push({ text: document.querySelector('[data-testid="devices"]')!.textContent ?? '', at: Date.now() }),
    ).observe(document.querySelector('[data-testid="devices"]')!, { subtree: true, childList: true, characterData: true });
  });
  const latencies: number[] = [];
  for (let n = 1; n <= 10; n++) {
    const status = n % 2 ? 'stopped' : 'started';
    const expected = n % 2 ? 'STOPPED' : 'RUNNING';
    const t0 = Date.now();
    await publish(`device.${status}`, { userId: user, deviceId: devices[1] }, `${user}-timed-${n}`);
    await waitFor(async () => (await statusOf(devices[1]!)) === expected, `timed event ${n} on screen`, 10_000);
    const changes = await page.evaluate(() => (window as unknown as { changes: { at: number }[] }).changes.splice(0));
    expect(changes.length).toBeGreaterThan(0);
    latencies.push(changes[0]!.at - t0);
  }
  latencies.sort((x, y) => x - y);
  results.publishToDomMs = {
    samples: latencies.length,
    median: latencies[Math.floor(latencies.length / 2)],
    max: latencies.at(-1),
    min: latencies[0],
  };

  // (b) After the first load, pushes only: not one HTTP request for 11 changes.
  const after = requests.slice(loaded).filter((url) => !url.startsWith('ws'));
  results.httpRequestsAfterLoad = after.length;
  expect(after).toEqual([]);
  expect(recorded.errors).toEqual([]);
}, 120_000);

it('reconnects after a gateway restart and shows what happened meanwhile (via resume), once each', async () => {
  const { page, requests } = recorded;
  const mark = requests.length;
  gateway.kill('SIGKILL');
  await gateway.exited;
  await page.locator('[data-testid="connection"][data-status="reconnecting"]').waitFor({ timeout: 15_000 });

  // The suite's in-process instance keeps bridging: these land in the retained log while the page is away.
  const outage = [
    ['device.stopped', devices[0]!],
    ['device.error', devices[2]!],
    ['device.started', devices[1]!],
  ] as const;
  for (const [n, [key, deviceId]] of outage.entries())
    await publish(key, { userId: user, deviceId, reason: 'outage test' }, `${user}-outage-${n}`);
  await waitFor(
    async () =>
      (await suite.sql.query(`SELECT count(*)::int AS n FROM processed_event WHERE event_id LIKE $1`, [`${user}-outage-%`]))[0]?.n === 3,
    'the outage events bridged',
    20_000,
  );

  const restartedAt = Date.now();
  gateway = await startGatewayProcess(sameInstanceEnv(suite.gateway, port));
  await page.locator('[data-testid="connection"][data-status="connected"]').waitFor({ timeout: 30_000 });
  await waitFor(
    async () =>
      (await statusOf(devices[2]!)) === 'ERROR' &&
      (await statusOf(devices[0]!)) === 'STOPPED' &&
      (await statusOf(devices[1]!)) === 'RUNNING',
    'the outage events on screen',
    20_000,
  );
  results.restart = { reconnectedAndCompleteMs: Date.now() - restartedAt };

  const ids = await page.locator('[data-testid="events"] li').evaluateAll((items) => items.map((li) => li.getAttribute('data-event-id')));
  for (let n = 0; n < outage.length; n++) expect(ids).toContain(`${user}-outage-${n}`);
  expect(new Set(ids).size).toBe(ids.length);
  expect(await page.locator('[data-testid="devices"] tr').count()).toBe(devices.length);
  // Resumed, not refetched: the only HTTP after the restart is the token for the new connection.
  const http = requests.slice(mark).filter((url) => !url.startsWith('ws'));
  results.restart = { ...(results.restart as object), httpRequests: http.map((url) => new URL(url).pathname) };
  expect(http.filter((url) => !url.endsWith('/dev/token'))).toEqual([]);
}, 120_000);
