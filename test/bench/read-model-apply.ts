/**
 * The read model's apply path alone: CPU per event when N events of N distinct users go through
 * `readModel.apply` with at most W in flight (the bridge's prefetch window), on a fresh database
 * of the real PostgreSQL. Round 1 creates every user's quota and device, round 2 updates them.
 *
 *   npx tsc -p test --noEmit false --outDir .tmp/rm && ln -sfn ../../prisma .tmp/rm/prisma
 *   [BENCH_RETAIN=1] node .tmp/rm/test/bench/read-model-apply.js [N=1000] [W=500]
 *
 * (the link: the compiled migration runner looks for `prisma/migrations` three levels above it).
 * One JSON line per round: wall time, events/s and gateway CPU (user + system) per event.
 */
import 'reflect-metadata';
import pino from 'pino';
import type { GatewayEvent } from '../../src/contracts/events';
import { createReadModelService } from '../../src/domains/read-model/read-model.service';
import { openDatabase } from '../../src/infra/db/database';
import { createTestDatabase } from '../helpers/services';

const N = Number(process.argv[2] ?? 1000);
const WINDOW = Number(process.argv[3] ?? 500);

function events(round: number): GatewayEvent[] {
  const out: GatewayEvent[] = [];
  const at = new Date(Date.UTC(2026, 10, 25, 0, round)).toISOString();
  for (let i = 0; i < N; i++) {
    const userId = `user-${i}`;
    out.push(
      i % 2
        ? {
            family: 'device',
            eventId: `r${round}-${i}`,
            type: 'device.status.changed',
            userId,
            occurredAt: at,
            deviceId: `dev-${i}`,
            status: round % 2 ? 'RUNNING' : 'STOPPED',
          }
        : ({
            family: 'quota',
            eventId: `r${round}-${i}`,
            type: 'quota.updated',
            userId,
            occurredAt: at,
            kind: 'UPDATED',
            quotaId: `q-${i}`,
            usage: { currentDevices: round },
            limits: { maxDevices: 5 },
          } as GatewayEvent),
    );
  }
  return out;
}

async function main(): Promise<void> {
  const testDb = await createTestDatabase();
  const db = await openDatabase({ kind: 'postgres', url: testDb.url }, pino({ level: 'silent' }));
  // BENCH_RETAIN=1: also write the durable event log (docs/decisions/0300), to compare its cost.
  const readModel = createReadModelService({ prisma: () => db.prisma, retainEvents: process.env.BENCH_RETAIN === '1' });
  try {
    await readModel.apply(events(0)[0] as GatewayEvent); // warm-up: connection, query compiler
    for (const round of [1, 2, 3]) {
      const batch = events(round);
      const cpu = process.cpuUsage();
      const started = process.hrtime.bigint();
      let next = 0;
      let failed = 0;
      // W workers, each applying the next event when its previous one resolved: W in flight.
      await Promise.all(
        Array.from({ length: Math.min(WINDOW, N) }, async () => {
          while (next < batch.length) {
            const event = batch[next++] as GatewayEvent;
            await readModel.apply(event).catch(() => failed++);
          }
        }),
      );
      const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
      const used = process.cpuUsage(cpu);
      const cpuUs = used.user + used.system;
      console.log(
        JSON.stringify({
          round: round === 1 ? 'create' : 'update',
          events: N,
          window: WINDOW,
          failed,
          wallMs: Math.round(wallMs),
          eventsPerSecond: Math.round((N / wallMs) * 1000),
          cpuUsPerEvent: Math.round(cpuUs / N),
        }),
      );
    }
  } finally {
    await db.close();
    await testDb.drop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
