/**
 * The router stage's ceiling (docs/cluster.md): how many events per second one router process
 * moves from the router queue to the partitions, and its CPU per event (so events/s on one core
 * is 1e6 / µs per event).
 *
 * 1. `decide`: the router's decision alone (normalizeEvent, the key, the learned owners), no broker.
 * 2. `amqp`: N events published to a fresh exchange first (no gateway running), then one
 *    AmqpEventBus (the gateway's own) consumes the router queue and republishes with confirms; its
 *    partition consumers ack what arrives. Wall time until every event reached a partition, and
 *    this process's CPU (user + system) over that time.
 *
 *   npx tsc -p test --noEmit false --outDir .tmp/router && node .tmp/router/test/bench/router-ceiling.js [N=20000]
 *
 * Uses the shared RabbitMQ (BENCH_AMQP_URL, else the tests' default) and deletes what it declares.
 */
import amqp from 'amqplib';
import pino from 'pino';
import { PartitionRouter } from '../../src/bridge/partition-router';
import type { IncomingMessage } from '../../src/contracts/events';
import { AmqpEventBus } from '../../src/infra/amqp/amqp-bus';
import { partitionTopology } from '../../src/infra/amqp/partition-topology';
import { TEST_AMQP_URL, uniqueId } from '../helpers/services';

const N = Number(process.argv[2] ?? 20_000);
const AMQP_URL = process.env.BENCH_AMQP_URL ?? TEST_AMQP_URL;
const USERS = 1_000;

/** A realistic mix: envelopes and flat bodies, device events with and without their user. */
function body(i: number): { routingKey: string; body: Buffer } {
  const user = `user-${i % USERS}`;
  const device = `dev-${i % USERS}`;
  switch (i % 4) {
    case 0:
      return {
        routingKey: 'quota.updated',
        body: Buffer.from(
          JSON.stringify({
            userId: user,
            quotaId: `q-${user}`,
            usage: { currentDevices: i % 7, usedCpuCores: 2 },
            limits: { maxDevices: 5 },
            timestamp: Date.now(),
          }),
        ),
      };
    case 1:
      return {
        routingKey: 'device.status.changed',
        body: Buffer.from(
          JSON.stringify({
            eventId: `e-${i}`,
            eventType: 'device.status.changed',
            timestamp: new Date().toISOString(),
            payload: { userId: user, deviceId: device, oldStatus: 'running', newStatus: 'stopped' },
          }),
        ),
      };
    case 2:
      return { routingKey: 'device.started', body: Buffer.from(JSON.stringify({ deviceId: device, startedAt: new Date().toISOString() })) };
    default:
      return {
        routingKey: 'order.completed',
        body: Buffer.from(JSON.stringify({ userId: user, orderId: `o-${i}`, amount: '59.90', timestamp: Date.now() })),
      };
  }
}

function decideOnly(): void {
  const messages: IncomingMessage[] = Array.from({ length: N }, (_, i) => ({ ...body(i), messageId: `m-${i}` }));
  let forwarded = 0;
  const router = new PartitionRouter<number>({ forward: () => void forwarded++, maxMessageBytes: 262_144 });
  // Teach the owners first, as the devices' earlier events would have.
  for (let i = 0; i < USERS; i++)
    router.push({ routingKey: 'device.created', body: Buffer.from(JSON.stringify({ userId: `user-${i}`, deviceId: `dev-${i}` })) }, -1);
  const cpu = process.cpuUsage();
  const began = process.hrtime.bigint();
  for (let i = 0; i < messages.length; i++) router.push(messages[i] as IncomingMessage, i);
  const wallMs = Number(process.hrtime.bigint() - began) / 1e6;
  const used = process.cpuUsage(cpu);
  const usPerEvent = (used.user + used.system) / N;
  console.log(
    JSON.stringify({
      stage: 'decide',
      events: N,
      forwarded: forwarded - USERS,
      wallMs: Math.round(wallMs),
      cpuUsPerEvent: +usPerEvent.toFixed(2),
      eventsPerSecOneCore: Math.round(1e6 / usPerEvent),
    }),
  );
}

async function throughAmqp(): Promise<void> {
  const id = uniqueId('router-bench');
  const names = {
    exchange: `${id}.x`,
    queue: `${id}.events`,
    deadLetterExchange: `${id}.dlx`,
    deadLetterQueue: `${id}.dlq`,
    prefetch: 500,
    partitions: 16,
    maxMessageBytes: 262_144,
    requeueDelayMs: 100,
    ownerAttempts: 1,
  };
  const topology = partitionTopology(names.queue, names.partitions);
  const logger = pino({ level: 'warn' });
  // Declare the topology once (no consumer), so the events wait in the router queue.
  const declare = new AmqpEventBus(AMQP_URL, names, logger, {
    router: (forward) => new PartitionRouter({ forward, maxMessageBytes: 262_144 }),
  });
  await declare.connect();
  await declare.close();
  const connection = await amqp.connect(AMQP_URL);
  const channel = await connection.createConfirmChannel();
  for (let i = 0; i < USERS; i++) {
    channel.publish(names.exchange, 'device.created', Buffer.from(JSON.stringify({ userId: `user-${i}`, deviceId: `dev-${i}` })), {
      persistent: true,
    });
  }
  for (let i = 0; i < N; i++) {
    const { routingKey, body: content } = body(i);
    if (!channel.publish(names.exchange, routingKey, content, { persistent: true, messageId: `m-${i}` })) {
      await new Promise((resolve) => channel.once('drain', resolve));
    }
  }
  await channel.waitForConfirms();
  const total = N + USERS;
  let received = 0;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const bus = new AmqpEventBus(AMQP_URL, names, logger, {
    router: (forward) => new PartitionRouter({ forward, maxMessageBytes: 262_144 }),
  });
  await bus.connect();
  const cpu = process.cpuUsage();
  const began = Date.now();
  await bus.consume(async () => {
    if (++received === total) resolveDone();
    return { action: 'ack' };
  });
  const timeout = setTimeout(resolveDone, 300_000);
  await done;
  clearTimeout(timeout);
  const wallMs = Date.now() - began;
  const used = process.cpuUsage(cpu);
  await bus.close();
  // The partition consumers' share (consume + ack) is in these figures too: an upper bound for the router.
  const usPerEvent = (used.user + used.system) / total;
  console.log(
    JSON.stringify({
      stage: 'amqp',
      events: total,
      received,
      wallMs,
      eventsPerSec: Math.round((total / wallMs) * 1_000),
      cpuUsPerEvent: +usPerEvent.toFixed(1),
      eventsPerSecOneCore: Math.round(1e6 / usPerEvent),
    }),
  );
  for (const queue of [topology.router, ...topology.partitions, names.queue, names.deadLetterQueue]) await channel.deleteQueue(queue);
  for (const exchange of [topology.exchange, names.exchange, names.deadLetterExchange]) await channel.deleteExchange(exchange);
  await connection.close();
}

async function main(): Promise<void> {
  decideOnly();
  await throughAmqp();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
