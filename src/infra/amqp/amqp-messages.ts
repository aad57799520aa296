/**
 * What the bus does with single AMQP messages: reading one (`incomingOf`), publishing with a
 * confirm, and the properties of a dead letter and of a router republish.
 */
import type { Channel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import type { IncomingMessage } from '../../contracts/events';
import { PARTITION_KEY_HEADER } from '../../contracts/partition';

/** Publishes on a confirm channel; resolves once the broker confirmed it. */
export function publishConfirmed(
  channel: ConfirmChannel,
  exchange: string,
  routingKey: string,
  content: Buffer,
  options: Options.Publish,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    try {
      channel.publish(exchange, routingKey, content, options, (error) =>
        error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(),
      );
    } catch (error) {
      reject(error instanceof Error ? error : new Error(String(error)));
    }
  });
}

/** A rejected message as the dead-letter queue keeps it: as delivered, with why and where from. */
export function deadLetterOptions(message: ConsumeMessage, reason: string): Options.Publish {
  const { properties, fields } = message;
  return {
    persistent: true,
    // amqplib types received properties as `any`: they are what the broker delivered, forwarded as is.
    contentType: properties.contentType as string | undefined,
    messageId: properties.messageId as string | undefined,
    timestamp: properties.timestamp as number | undefined,
    headers: {
      ...(properties.headers ?? {}),
      'x-rejection-reason': reason,
      'x-original-exchange': fields.exchange,
      'x-original-routing-key': fields.routingKey,
    },
  };
}

/** A routed message as its partition receives it: as delivered, with its partition key. */
export function republishOptions(message: ConsumeMessage, key: string): Options.Publish {
  const { properties } = message;
  return {
    persistent: true,
    // amqplib types received properties as `any`: they are what the broker delivered, forwarded as is.
    contentType: properties.contentType as string | undefined,
    contentEncoding: properties.contentEncoding as string | undefined,
    messageId: properties.messageId as string | undefined,
    timestamp: properties.timestamp as number | undefined,
    headers: { ...(properties.headers ?? {}), [PARTITION_KEY_HEADER]: key },
  };
}

/** Acknowledges or nacks, ignoring a channel that closed meanwhile (the broker redelivers). */
export function tryNack(channel: Channel, message: ConsumeMessage, requeue: boolean): boolean {
  try {
    channel.nack(message, false, requeue);
    return true;
  } catch {
    return false;
  }
}

/**
 * Heartbeats every 15 s unless the URL sets `heartbeat`: a half-open TCP link (a broker host lost
 * without a FIN) is then noticed in about 30 s rather than at the next publish.
 */
export function withHeartbeat(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.searchParams.has('heartbeat')) parsed.searchParams.set('heartbeat', '15');
    return parsed.toString();
  } catch {
    return url;
  }
}

export function partitionKeyOf(message: ConsumeMessage): string | undefined {
  const value: unknown = message.properties.headers?.[PARTITION_KEY_HEADER];
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'number') return String(value);
  return undefined;
}

export function incomingOf(message: ConsumeMessage): IncomingMessage {
  const timestamp = message.properties.timestamp as unknown;
  return {
    routingKey: message.fields.routingKey,
    body: message.content,
    messageId: typeof message.properties.messageId === 'string' ? message.properties.messageId : undefined,
    timestamp: typeof timestamp === 'number' ? timestamp : undefined,
    partitionKey: partitionKeyOf(message),
  };
}
