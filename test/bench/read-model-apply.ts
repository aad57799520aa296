/**
 * The read model's apply path alone, on a fresh database of the real PostgreSQL: CPU per event of
 * this process (the gateway's share) and of the PostgreSQL backends serving it (they share the
 * machine), N events of N distinct users (quota and device, half each).
 *
 *   npx tsc -p test --noEmit false --outDir .tmp/rm && ln -sfn ../../prisma .tmp/rm/prisma
 *   [BENCH_RETAIN=1] node .tmp/rm/test/bench/read-model-apply.js [N=1000] [W=500] [BATCHES=1,10,50]
 *
 * (the link: the compiled migration runner looks for `prisma/migrations` three levels above it).
 * Rounds 1-3 keep W applies in flight (the bridge's prefetch window): round 1 creates every
 * user's quota and device, rounds 2-3 update them. Then one update round per batch size B: the
 * events are applied B at a time, each B in the same tick (one group commit of exactly B), the
 * next B when they resolved. One JSON line per round: wall time, events/s, client CPU (user +
 * system) and PostgreSQL backend CPU (`/proc/<pid>/schedstat` of the backends connected to the
 * bench's database, from `pg_stat_activity`) per event.
 */
import 'reflect-metadata';
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import pino from 'pino';
import type { GatewayEvent } from '../../src/contracts/events';
import { createReadModelService } from '../../src/domains/read-model/read-model.service';
import { openDatabase } from '../../src/infra/db/database';
import { createTestDatabase } from '../helpers/services';

const N = Number(process.argv[2] ?? 1000);
const WINDOW = Number(process.argv[3] ?? 500);
const BATCHES = (process.argv[4] ?? '1,10,50').split(',').map(Number);

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

/** CPU nanoseconds of the PostgreSQL backends connected to `database` (but the monitor's own), by pid. */
async function backendCpu(monitor: pg.Client, database: string): Promise<Map<number, number>> {
  const { rows } = await monitor.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [
    database,
  ]);
  const out = new Map<number, number>();
  for (const { pid } of rows) {
    const stat = await readFile(`/proc/${pid}/schedstat`, 'utf8').catch(() => undefined);
    if (stat !== undefined) out.set(pid, Number(stat.split(' ')[0]));
  }
  return out;
}

/** Nanoseconds the backends used between two readings (a backend new since `before` counts from 0). */
function cpuBetween(before: ReadonlyMap<number, number>, after: ReadonlyMap<number, number>): number {
  let ns = 0;
  for (const [pid, now] of after) ns += now - (before.get(pid) ?? 0);
  return ns;
}

async function main(): Promise<void> {
  const testDb = await createTestDatabase();
  const db = await openDatabase({ kind: 'postgres', url: testDb.url }, pino({ level: 'silent' }));
  const monitor = new pg.Client({ connectionString: testDb.url });
  await monitor.connect();
  // BENCH_RETAIN=1: also write the durable event log (docs/decisions/0300), to compare its cost.
  const readModel = createReadModelService({ prisma: () => db.prisma, sql: () => db.sql, retainEvents: process.env.BENCH_RETAIN === '1' });
  const measure = async (round: string, shape: Record<string, number>, run: () => Promise<number>) => {
    const pgBefore = await backendCpu(monitor, testDb.name);
    const cpu = process.cpuUsage();
    const started = process.hrtime.bigint();
    const failed = await run();
    const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
    const used = process.cpuUsage(cpu);
    const pgNs = cpuBetween(pgBefore, await backendCpu(monitor, testDb.name));
    console.log(
      JSON.stringify({
        round,
        ...shape,
        events: N,
        failed,
        wallMs: Math.round(wallMs),
        eventsPerSecond: Math.round((N / wallMs) * 1000),
        cpuUsPerEvent: Math.round((used.user + used.system) / N),
        pgCpuUsPerEvent: Math.round(pgNs / 1000 / N),
      }),
    );
  };
  try {
    await readModel.apply(events(0)[0] as GatewayEvent); // warm-up: connection, query compiler
    for (const round of [1, 2, 3]) {
      const batch = events(round);
      await measure(round === 1 ? 'create' : 'update', { window: WINDOW }, async () => {
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
        return failed;
      });
    }
    for (const [i, size] of BATCHES.entries()) {
      const batch = events(4 + i);
      await measure('update', { batch: size }, async () => {
        let failed = 0;
        for (let from = 0; from < batch.length; from += size) {
          const outcomes = await Promise.allSettled(batch.slice(from, from + size).map((event) => readModel.apply(event)));
          failed += outcomes.filter((o) => o.status === 'rejected').length;
        }
        return failed;
      });
    }
  } finally {
    await monitor.end();
    await db.close();
    await testDb.drop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
