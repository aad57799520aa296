/** A platform-side AMQP peer: publishes as the platform's services do, reads queues as an operator would. */
import amqp, { type Channel, type ChannelModel, type ConfirmChannel, type GetMessage } from 'amqplib';
import { TEST_AMQP_URL, TEST_EXCHANGE } from './services';
import { track } from './teardown';
import { waitFor } from './wait';

export interface PlatformPeer {
  readonly channel: ConfirmChannel;
  /** Publishes to `exchange` (default: this test file's own exchange, TEST_EXCHANGE) and waits for the broker's confirm. */
  publish(routingKey: string, body: unknown, properties?: { messageId?: string; timestamp?: number; exchange?: string }): Promise<void>;
  /** Waits until `queue` holds a message matching `predicate`; acks what it reads. */
  take(queue: string, predicate: (message: GetMessage) => boolean, what: string): Promise<GetMessage>;
  /** Declares a temporary queue bound to this test file's exchange (TEST_EXCHANGE) with `binding` (a wiretap). */
  tap(binding: string): Promise<string>;
  close(): Promise<void>;
}

export async function openPlatformPeer(): Promise<PlatformPeer> {
  const connection: ChannelModel = await amqp.connect(TEST_AMQP_URL);
  connection.on('error', () => undefined);
  // Tracked before the channels: a failing assertExchange must not leave the connection open.
  const tracked = track('platform AMQP peer', () => connection.close().catch(() => undefined));
  const channel = await connection.createConfirmChannel();
  channel.on('error', () => undefined);
  const reader: Channel = await connection.createChannel();
  reader.on('error', () => undefined);
  await channel.assertExchange(TEST_EXCHANGE, 'topic', { durable: true });
  const seen = new Map<string, GetMessage[]>();

  return {
    channel,
    async publish(routingKey, body, properties = {}) {
      const content = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      await new Promise<void>((resolve, reject) =>
        channel.publish(
          properties.exchange ?? TEST_EXCHANGE,
          routingKey,
          content,
          { persistent: true, contentType: 'application/json', messageId: properties.messageId, timestamp: properties.timestamp },
          (error) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve()),
        ),
      );
    },
    async take(queue, predicate, what) {
      const buffer = seen.get(queue) ?? [];
      seen.set(queue, buffer);
      let found: GetMessage | undefined;
      await waitFor(async () => {
        found = buffer.find(predicate);
        if (found) return true;
        for (let i = 0; i < 100; i++) {
          const message = await reader.get(queue, { noAck: true });
          if (!message) break;
          buffer.push(message);
        }
        found = buffer.find(predicate);
        return found !== undefined;
      }, what);
      buffer.splice(buffer.indexOf(found as GetMessage), 1);
      return found as GetMessage;
    },
    async tap(binding) {
      const { queue } = await reader.assertQueue('', { exclusive: true, autoDelete: true });
      await reader.bindQueue(queue, TEST_EXCHANGE, binding);
      return queue;
    },
    close: () => tracked.close(),
  };
}
