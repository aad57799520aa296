/**
 * One Redis shard's cost per published event (docs/cluster.md capacity): the gateway's own
 * publish path (RedisEventPubSub.publish: the Lua script appending to the user's and the
 * every-user log, then PUBLISH) against a private redis-server on a free loopback port, N events
 * of 1,000 users with W in flight; the server's CPU (utime + stime from /proc) over the run.
 * Events/s one shard sustains on one core = 1e6 / µs per event. No subscriber is connected: each
 * subscribed instance adds its share of the PUBLISH fan-out.
 *
 *   npx tsc -p test --noEmit false --outDir .tmp/router && node .tmp/router/test/bench/redis-shard.js [N=50000] [W=200]
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import pino from 'pino';
import type { GatewayEvent } from '../../src/contracts/events';
import { createTopics } from '../../src/contracts/topics';
import { RedisEventPubSub } from '../../src/infra/redis/redis-pubsub';
import { freePort } from '../chaos/private-services';

const N = Number(process.argv[2] ?? 50_000);
const W = Number(process.argv[3] ?? 200);

/** utime + stime of a process, in microseconds (clock ticks of 10 ms). */
function cpuUs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function main(): Promise<void> {
  const port = await freePort();
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  try {
    const pubsub = new RedisEventPubSub(`redis://127.0.0.1:${port}`, 'bench:', pino({ level: 'silent' }), undefined, {
      maxEvents: 500,
      maxAllEvents: 10_000,
      maxAgeMs: 3_600_000,
    });
    for (let i = 0; i < 100; i++) {
      try {
        await pubsub.ready();
        break;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    const topics = createTopics('bench:');
    const event = (i: number): GatewayEvent =>
      ({
        family: 'quota',
        eventId: `e-${i}`,
        type: 'quota.updated',
        userId: `user-${i % 1_000}`,
        occurredAt: new Date().toISOString(),
        kind: 'UPDATED',
        quotaId: `q-${i % 1_000}`,
        usage: { currentDevices: i % 7, usedCpuCores: 2 },
        limits: { maxDevices: 5 },
      }) as GatewayEvent;
    const cpu0 = cpuUs(server.pid as number);
    const began = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: W }, async () => {
        while (next < N) {
          const e = event(next++);
          await pubsub.publish(topics.user('quota', e.userId as string), e);
        }
      }),
    );
    const wallMs = Date.now() - began;
    const usPerEvent = (cpuUs(server.pid as number) - cpu0) / N;
    console.log(
      JSON.stringify({
        stage: 'redis-shard',
        events: N,
        inFlight: W,
        wallMs,
        eventsPerSec: Math.round((N / wallMs) * 1_000),
        redisCpuUsPerEvent: +usPerEvent.toFixed(1),
        eventsPerSecOneCore: Math.round(1e6 / usPerEvent),
      }),
    );
    await pubsub.close();
  } finally {
    server.kill('SIGTERM');
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
