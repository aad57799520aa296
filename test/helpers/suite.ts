/**
 * One gateway on the real services for a whole test file, the setup most integration suites share:
 * its own database (migrated), queues, exchange and topic prefix, a platform-side AMQP peer and
 * SQL access; in `afterAll` every client and gateway stopped, the queues deleted, the database
 * dropped. The fields are set in `beforeAll`: read them inside tests and hooks.
 */
import { openPlatformPeer, type PlatformPeer } from './amqp';
import { disposeClients } from './clients';
import { openSql, type TestSql } from './db';
import { realServicesEnv, startGateway, stopGateways, type TestGateway } from './gateway';
import { createTestDatabase, type TestDatabase } from './services';

export interface GatewaySuite {
  readonly database: TestDatabase;
  readonly gateway: TestGateway;
  readonly peer: PlatformPeer;
  readonly sql: TestSql;
}

/** Registers the file's `beforeAll`/`afterAll`; `env` overrides the gateway's environment. */
export function gatewaySuite(env: Record<string, string> = {}): GatewaySuite {
  const suite: { -readonly [K in keyof GatewaySuite]?: GatewaySuite[K] } = {};
  beforeAll(async () => {
    suite.database = await createTestDatabase();
    suite.gateway = await startGateway(realServicesEnv(suite.database.url, env));
    suite.peer = await openPlatformPeer();
    suite.sql = await openSql(suite.database.url);
  });
  afterAll(async () => {
    await disposeClients();
    await stopGateways();
    await suite.peer?.close();
    await suite.sql?.close();
    await suite.database?.drop();
  });
  return suite as GatewaySuite;
}
