/**
 * `npm run chaos`: the cluster's guarantees under faults, on service instances of the run's own
 * (test/chaos/private-services.ts: a RabbitMQ node, a Redis, a PostgreSQL cluster on free
 * loopback ports, removed at the end), so restarting them disturbs nobody. Each scenario runs
 * fresh gateway instances (child processes), a confirmed publisher at 200 events/s and one
 * resuming client per user (scenario.ts), and the run prints one line per scenario: expected,
 * received, lost, duplicated, out of order (per user), time to recover. It fails (exit 1) on
 * any loss or reorder. Bounded: every scenario settles within a minute; the run within ten.
 */
import { formatResults, runScenario, type ChaosServices, type ScenarioResult, type ScenarioSpec } from './scenario';
import { startPrivateServices, type PrivateServices } from './private-services';
import { stopGatewayProcesses } from '../helpers/gateway-process';
import { uniqueId } from '../helpers/services';

let privateServices: PrivateServices | undefined;
const results: ScenarioResult[] = [];
const say = (line: string) => void process.stdout.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

beforeAll(async () => {
  const began = Date.now();
  privateServices = await startPrivateServices();
  say(
    `private services up in ${((Date.now() - began) / 1_000).toFixed(1)} s: ${privateServices.rabbit.url}, ${privateServices.redis.url}, ${privateServices.postgres.url}`,
  );
}, 180_000);

afterAll(async () => {
  await stopGatewayProcesses();
  await privateServices?.stopAll();
  say('private services stopped and removed');
}, 120_000);

const many = { instances: 3, users: 50, events: 3_000, intervalMs: 5 } as const;
const SCENARIOS: ScenarioSpec[] = [
  { name: 'no fault', instances: 2, users: 50, events: 2_000, intervalMs: 5 },
  { name: 'one user, events 5 ms apart, coalescing off', instances: 2, users: 1, events: 500, intervalMs: 5 },
  {
    name: 'SIGKILL of the instance holding router and partitions',
    ...many,
    fault: {
      atEvent: 1_000,
      async play({ instances }) {
        instances[0]!.kill('SIGKILL');
        await instances[0]!.exited;
      },
    },
  },
  {
    name: 'RabbitMQ stop_app 10 s / start_app',
    ...many,
    fault: {
      atEvent: 1_000,
      async play() {
        await privateServices!.rabbit.stopApp();
        await new Promise((resolve) => setTimeout(resolve, 10_000));
        await privateServices!.rabbit.startApp();
      },
    },
  },
  {
    name: 'Redis restart (shutdown nosave, start)',
    ...many,
    fault: { atEvent: 1_000, play: () => privateServices!.redis.restart() },
  },
  {
    name: 'PostgreSQL restart (pg_ctl restart -m fast)',
    ...many,
    fault: { atEvent: 1_000, play: () => privateServices!.postgres.restart() },
  },
];

it("loses nothing and keeps every user's order in every scenario", async () => {
  const only = process.env.CHAOS_ONLY;
  for (const spec of SCENARIOS) {
    if (only && !spec.name.toLowerCase().includes(only.toLowerCase())) continue;
    const services: ChaosServices = {
      amqpUrl: privateServices!.rabbit.url,
      redisUrl: privateServices!.redis.url,
      database: () => privateServices!.database(uniqueId('chaos_db')),
    };
    const began = Date.now();
    const result = await runScenario(services, spec, say);
    results.push(result);
    say(`${spec.name}: ${JSON.stringify(result)} (${((Date.now() - began) / 1_000).toFixed(0)} s)`);
  }
  process.stdout.write(`\n${formatResults(results)}\n\n`);
  for (const result of results) {
    expect({ scenario: result.name, lost: result.lost, outOfOrder: result.outOfOrder }).toEqual({
      scenario: result.name,
      lost: 0,
      outOfOrder: 0,
    });
  }
}, 540_000);
