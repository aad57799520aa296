/**
 * A graceful stop, as an orchestrator sends it: SIGTERM to `main.ts` in a process of its own, in
 * production mode (where Apollo Server would install termination-signal handlers of its own; jest
 * runs with NODE_ENV=test, so only a child process outside it shows how the server really stops).
 * Sockets are closed with 1001 so clients reconnect elsewhere, and the process exits 0 promptly.
 */
import { subscribe, token, wsClient } from '../helpers/clients';
import { realServicesEnv, startGateway, stopGateway } from '../helpers/gateway';
import { startGatewayProcess, stopGatewayProcesses } from '../helpers/gateway-process';
import { uniqueId } from '../helpers/services';
import { gatewaySuite } from '../helpers/suite';
import { within } from '../helpers/wait';

const suite = gatewaySuite();

afterAll(() => stopGatewayProcesses());

it('SIGTERM in production: 1001 to the sockets, every part stopped, exit 0 within the shutdown timeout', async () => {
  const env = realServicesEnv(suite.database.url, { NODE_ENV: 'production', SHUTDOWN_TIMEOUT_MS: '3000' });
  const gateway = await startGatewayProcess(env);
  const user = uniqueId('term');
  const { client, closed, connected } = wsClient(gateway.wsUrl, { authorization: `Bearer ${token(user)}` });
  await within(connected, 'the socket to be acknowledged');
  // A live query over the socket proves the operation layer serves before the stop.
  const hello = subscribe(client, '{ __typename }', {});
  expect((await hello.next()).data).toEqual({ __typename: 'Query' });
  const began = Date.now();
  gateway.kill('SIGTERM');
  expect(await within(closed, 'the socket to close', 10_000)).toBe(1001);
  expect(await within(gateway.exited, 'the process to exit', 10_000)).toBe('0');
  // The stop is bounded by SHUTDOWN_TIMEOUT_MS (3 s here) plus the parts' own closes.
  expect(Date.now() - began).toBeLessThan(8_000);
  expect(gateway.stderr()).not.toMatch(/shutdown failed|unhandled/i);
});

it('installs no termination-signal handlers of its own in production (main.ts alone decides how to stop)', async () => {
  // Apollo Server installs SIGTERM/SIGINT handlers outside NODE_ENV=test; a second, concurrent
  // stop() of Apollo's never resolves, which hung the process on SIGTERM. Deterministic here:
  // count the listeners a production gateway adds.
  const before = { term: process.listenerCount('SIGTERM'), int: process.listenerCount('SIGINT') };
  const nodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = 'production';
  try {
    const gateway = await startGateway(realServicesEnv(suite.database.url, { NODE_ENV: 'production' }));
    expect({ term: process.listenerCount('SIGTERM'), int: process.listenerCount('SIGINT') }).toEqual(before);
    await stopGateway(gateway);
  } finally {
    process.env.NODE_ENV = nodeEnv;
  }
});
