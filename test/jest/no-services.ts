/**
 * The unit project's guard: a unit test that reaches PostgreSQL, Redis or RabbitMQ fails at once
 * with a message saying where it belongs, instead of passing here and failing on a machine where
 * the services are down. Loopback servers a test starts itself (a JWKS endpoint) stay allowed.
 *
 * `net` is Node's own module, shared by every test file a jest worker runs, and workers run unit
 * and integration files alike (`npm test` runs both projects in one jest): the guard is put back
 * after the file's last test, or the integration files that worker runs next could not connect.
 */
import net from 'node:net';
import { TEST_AMQP_URL, TEST_DATABASE_URL, TEST_REDIS_URL } from '../helpers/services';

const refused = new Map<number, string>([
  [5432, 'PostgreSQL'],
  [6379, 'Redis'],
  [5672, 'RabbitMQ'],
]);
for (const [url, name] of [
  [TEST_DATABASE_URL, 'PostgreSQL'],
  [TEST_REDIS_URL, 'Redis'],
  [TEST_AMQP_URL, 'RabbitMQ'],
] as const) {
  const port = Number(new URL(url).port);
  if (port) refused.set(port, name);
}

// eslint-disable-next-line @typescript-eslint/unbound-method -- the original, called below with the socket as `this` (apply)
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function guardedConnect(this: net.Socket, ...args: unknown[]) {
  const [first, second] = args;
  const port = Number(typeof first === 'object' && first !== null ? (first as { port?: unknown }).port : first);
  const service = refused.get(port);
  if (service) {
    const named = typeof first === 'object' && first !== null ? (first as { host?: unknown }).host : second;
    const host = typeof named === 'string' ? named : 'localhost';
    throw new Error(`a unit test connected to ${service} (${host}:${port}): unit tests run without services; move it to test/integration/`);
  }
  return (connect as (...a: unknown[]) => net.Socket).apply(this, args);
};
afterAll(() => {
  net.Socket.prototype.connect = connect;
});
