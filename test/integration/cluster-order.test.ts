/**
 * The fast part of the chaos suite (test/chaos/), on the shared services (nothing restarted):
 * two gateway instances as child processes, resuming clients tracking each user's sequence, and
 * a confirmed publisher. With no fault, and with the instance holding the router and every
 * partition SIGKILLed mid-stream: nothing lost, nothing out of order per user.
 */
import { runScenario, type ChaosServices } from '../chaos/scenario';
import { stopGatewayProcesses } from '../helpers/gateway-process';
import { createTestDatabase, TEST_AMQP_URL, TEST_REDIS_URL, type TestDatabase } from '../helpers/services';

const databases: TestDatabase[] = [];
const services: ChaosServices = {
  amqpUrl: TEST_AMQP_URL,
  redisUrl: TEST_REDIS_URL,
  async database() {
    const database = await createTestDatabase();
    databases.push(database);
    return database.url;
  },
};

afterAll(async () => {
  await stopGatewayProcesses();
  for (const database of databases) await database.drop();
});

it("keeps every user's order across two instances (no fault)", async () => {
  const result = await runScenario(services, { name: 'no fault', instances: 2, users: 20, events: 600, intervalMs: 5 });
  expect(result).toMatchObject({ lost: 0, outOfOrder: 0, duplicated: 0, expected: 600, received: 600 });
}, 180_000);

it('loses nothing and reorders nothing when the instance holding the partitions is SIGKILLed', async () => {
  const result = await runScenario(services, {
    name: 'SIGKILL',
    instances: 2,
    users: 20,
    events: 600,
    intervalMs: 5,
    // The first instance subscribed first: it reads the router queue and every partition.
    fault: {
      atEvent: 300,
      play: async ({ instances }) => {
        const first = instances[0]!;
        first.kill('SIGKILL');
        await first.exited;
      },
    },
  });
  expect(result.lost).toBe(0);
  expect(result.outOfOrder).toBe(0);
  expect(result.expected).toBe(620);
  expect(result.recoverMs).toBeLessThan(30_000);
}, 180_000);

it("keeps one user's burst in order when it is handed over in runs (issue 16)", async () => {
  // One user, published back to back: the partition holds many of the user's messages at once,
  // which go to the bridge as runs (one read-model batch, one publish each).
  const result = await runScenario(services, { name: 'one-user burst', instances: 2, users: 1, events: 2_000, intervalMs: 0 });
  expect(result).toMatchObject({ lost: 0, outOfOrder: 0, duplicated: 0, expected: 2_000, received: 2_000 });
}, 180_000);
