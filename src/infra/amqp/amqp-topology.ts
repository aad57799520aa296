/**
 * The queues and exchanges the gateway declares (docs/cluster.md): the platform's topic exchange,
 * the dead-letter exchange and queue, and either the shared queue (unpartitioned) or the router
 * queue, the consistent-hash exchange and the partition queues (single active consumer each);
 * and the migration off the shared queue.
 */
import type { ChannelModel, ConfirmChannel } from 'amqplib';
import type { AmqpNames } from '../../contracts/options';
import { PARTITION_KEY_HEADER } from '../../contracts/partition';
import { QUEUE_BINDINGS } from '../../contracts/routing';
import { PARTITION_WEIGHT, type PartitionTopology } from './partition-topology';

export async function declareTopology(channel: ConfirmChannel, names: AmqpNames, topology: PartitionTopology | undefined): Promise<void> {
  const { exchange, queue, deadLetterExchange, deadLetterQueue } = names;
  await channel.assertExchange(exchange, 'topic', { durable: true });
  await channel.assertExchange(deadLetterExchange, 'direct', { durable: true });
  await channel.assertQueue(deadLetterQueue, { durable: true });
  await channel.bindQueue(deadLetterQueue, deadLetterExchange, deadLetterQueue);
  // Anything the broker itself dead-letters (e.g. a consumer nacking without requeue) lands
  // in the same DLQ as the gateway's own rejections.
  const deadLettering = { 'x-dead-letter-exchange': deadLetterExchange, 'x-dead-letter-routing-key': deadLetterQueue };
  if (!topology) {
    await channel.assertQueue(queue, { durable: true, arguments: deadLettering });
    for (const binding of QUEUE_BINDINGS) await channel.bindQueue(queue, exchange, binding);
    return;
  }
  const ordered = { ...deadLettering, 'x-single-active-consumer': true };
  await channel.assertExchange(topology.exchange, 'x-consistent-hash', {
    durable: true,
    arguments: { 'hash-header': PARTITION_KEY_HEADER },
  });
  for (const partition of topology.partitions) {
    await channel.assertQueue(partition, { durable: true, arguments: ordered });
    await channel.bindQueue(partition, topology.exchange, PARTITION_WEIGHT);
  }
  await channel.assertQueue(topology.router, { durable: true, arguments: ordered });
  for (const binding of QUEUE_BINDINGS) await channel.bindQueue(topology.router, exchange, binding);
}

/**
 * Migration from the shared queue: it stops receiving (its bindings go; the router queue has
 * them), and what it holds is drained through the router before the router queue is read
 * (`AmqpEventBus.drainLegacy`). Checked on a throwaway channel: a missing queue closes the channel.
 */
export async function retireLegacyBindings(connection: ChannelModel, names: AmqpNames): Promise<boolean> {
  const legacy = await inspectLegacy(connection, names.queue);
  if (!legacy) return false;
  const channel = await connection.createChannel();
  channel.on('error', () => undefined);
  try {
    for (const binding of QUEUE_BINDINGS) await channel.unbindQueue(names.queue, names.exchange, binding);
  } finally {
    await channel.close().catch(() => undefined);
  }
  return true;
}

/** The shared queue's counts, or undefined when it does not exist. */
export async function inspectLegacy(
  connection: ChannelModel,
  queue: string,
): Promise<{ messageCount: number; consumerCount: number } | undefined> {
  const channel = await connection.createChannel();
  channel.on('error', () => undefined);
  try {
    return await channel.checkQueue(queue);
  } catch {
    return undefined;
  } finally {
    await channel.close().catch(() => undefined);
  }
}
