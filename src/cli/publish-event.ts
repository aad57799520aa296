/**
 * `npm run publish-event -- <routingKey> '<json body>' [--message-id <id>] [--raw] [--url <gateway>]`
 *
 * Publishes one test event as a platform service would.
 * - With AMQP_URL: to the configured exchange (AMQP_EXCHANGE), persistent, with `messageId`,
 *   `timestamp` (ms) and `contentType: application/json`, and waits for the broker's confirm.
 * - Without AMQP_URL the event bus is in-process: it lives inside the running gateway, so the
 *   command posts the message to that gateway's development-only `POST /dev/events` (which exists
 *   only there and outside production) with an administrator token minted from the configured
 *   secret. `--url` names the gateway (default `http://127.0.0.1:$PORT`).
 * Refuses with NODE_ENV=production. Prints `{ routingKey, messageId, ... }` as one JSON line.
 * `--raw` sends the body as given even when it is not JSON (to try dead-lettering).
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import { ConfigError, loadConfig, type Config } from '../config';
import { mintDevelopmentToken } from './dev-token';

const COMMAND = 'npm run publish-event';
const USAGE = `usage: ${COMMAND} -- <routingKey> '<json body>' [--message-id <id>] [--raw] [--url http://127.0.0.1:4000]`;

function exit(code: number, message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

async function publishToRabbit(config: Config & { amqp: { kind: 'amqp' } }, routingKey: string, body: Buffer, messageId: string) {
  const connection = await amqp.connect(config.amqp.url, {
    clientProperties: { connection_name: `cloudphone-realtime publish-event pid ${process.pid}` },
  });
  connection.on('error', () => undefined);
  try {
    const channel = await connection.createConfirmChannel();
    channel.on('error', () => undefined);
    // The gateway declares it too; the same arguments make this a no-op when it exists.
    await channel.assertExchange(config.amqp.exchange, 'topic', { durable: true });
    const timestamp = Date.now();
    await new Promise<void>((resolve, reject) =>
      channel.publish(
        config.amqp.exchange,
        routingKey,
        body,
        { persistent: true, contentType: 'application/json', messageId, timestamp },
        (error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve()),
      ),
    );
    return { exchange: config.amqp.exchange, routingKey, messageId, timestamp };
  } finally {
    await connection.close().catch(() => undefined);
  }
}

async function publishToGateway(url: string, routingKey: string, body: string, messageId: string) {
  const token = await mintDevelopmentToken(COMMAND, { sub: 'publish-event-cli', roles: 'admin' }, 300);
  const target = new URL('/dev/events', url).toString();
  let response: Response;
  try {
    response = await fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ routingKey, body, messageId }),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error instanceof Error ? error.message : String(error));
    exit(
      1,
      `${COMMAND}: no gateway answered at ${url} (${cause}).\n` +
        'Without AMQP_URL the event bus is in-process: it lives inside the running gateway, so start it first\n' +
        '(`npm start`, same environment) and pass --url if it is not on 127.0.0.1:$PORT; or set AMQP_URL to\n' +
        'publish to RabbitMQ instead.',
    );
  }
  const text = await response.text();
  if (response.status === 404) {
    exit(
      1,
      `${COMMAND}: the gateway at ${url} has no in-process bus (it runs with AMQP_URL, or in production):\n` +
        'run this command with the same AMQP_URL (and AMQP_EXCHANGE) as the gateway.',
    );
  }
  if (response.status !== 202) exit(1, `${COMMAND}: the gateway refused the event (${response.status}): ${text}`);
  return { gateway: url, ...(JSON.parse(text) as { messageId: string; routed: boolean }), routingKey };
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        'message-id': { type: 'string' },
        raw: { type: 'boolean', default: false },
        url: { type: 'string' },
      },
    });
  } catch (error) {
    exit(2, `${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  const [routingKey, text, ...extra] = positionals;
  if (!routingKey || text === undefined || extra.length > 0) exit(2, USAGE);

  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    exit(78, `${COMMAND}: configuration error: ${error.message}`);
  }
  if (config.production) exit(1, `${COMMAND} refuses to publish test events with NODE_ENV=production`);

  if (!values.raw) {
    try {
      JSON.parse(text);
    } catch {
      exit(2, `${COMMAND}: the body is not JSON (pass --raw to send it anyway): ${text.slice(0, 200)}`);
    }
  }
  const messageId = values['message-id'] ?? randomUUID();
  const result =
    config.amqp.kind === 'amqp'
      ? await publishToRabbit(config as Config & { amqp: { kind: 'amqp' } }, routingKey, Buffer.from(text, 'utf8'), messageId)
      : await publishToGateway(values.url ?? `http://127.0.0.1:${config.port}`, routingKey, text, messageId);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((error: unknown) => exit(1, `${COMMAND}: ${error instanceof Error ? error.message : String(error)}`));
