/** Direct SQL on a test database: seeding what only the platform creates, and reading what a mutation wrote. */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { track } from './teardown';

export interface TestSql {
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  /** Outbox rows (routing key, payload) written for an entity id named in the payload. */
  outboxFor(
    field: string,
    id: string,
  ): Promise<
    { id: string; routing_key: string; payload: { eventId: string; payload: Record<string, unknown> }; published_at: Date | null }[]
  >;
  /** A PENDING order, as the platform's billing service would create it. */
  seedOrder(order: { userId: string; amount?: string; deviceId?: string; planId?: string; id?: string; createdAt?: Date }): Promise<string>;
  close(): Promise<void>;
}

export async function openSql(url: string): Promise<TestSql> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  const tracked = track(`SQL client on ${new URL(url).pathname.slice(1)}`, () => client.end().catch(() => undefined));
  await client.connect();
  return {
    async query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]) {
      return (await client.query<R>(sql, params)).rows;
    },
    async outboxFor(field, id) {
      return (
        await client.query<Awaited<ReturnType<TestSql['outboxFor']>>[number]>(
          `SELECT id, routing_key, payload, published_at FROM outbox_event WHERE payload->'payload'->>$1 = $2 ORDER BY created_at, id`,
          [field, id],
        )
      ).rows;
    },
    async seedOrder(order) {
      const id = order.id ?? randomUUID();
      await client.query(
        `INSERT INTO billing_order (id, user_id, status, amount, device_id, plan_id, created_at, updated_at)
         VALUES ($1, $2, 'PENDING', $3, $4, $5, $6, now())`,
        [id, order.userId, order.amount ?? null, order.deviceId ?? null, order.planId ?? null, order.createdAt ?? new Date()],
      );
      return id;
    },
    close: () => tracked.close(),
  };
}
