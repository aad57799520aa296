/**
 * `npm run subscribe -- --sub <userId> [--roles admin] [--user-id <id>] [--url ws://127.0.0.1:$PORT/graphql]`
 * Opens a graphql-ws subscription to quotaChanged as that user (token minted with the configured
 * development secret, or `--token <jwt>`) and prints each event as a JSON line until Ctrl-C.
 */
import { parseArgs } from 'node:util';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { loadConfig } from '../config';
import { mintDevelopmentToken } from './dev-token';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    sub: { type: 'string' },
    roles: { type: 'string', default: '' },
    'user-id': { type: 'string' },
    token: { type: 'string' },
  },
});

// The gateway started from the same environment listens on its PORT (4000 unless set).
values.url ??= `ws://127.0.0.1:${loadConfig().port}/graphql`;

// Minting checks its arguments before its first await, so a usage error still exits at once.
const token = values.token ?? mintDevelopmentToken('npm run subscribe', { sub: values.sub, roles: values.roles });

const client = createClient({
  url: values.url,
  webSocketImpl: WebSocket,
  connectionParams: async () => ({ authorization: `Bearer ${await token}` }),
  on: { connected: () => process.stderr.write(`connected to ${values.url}; waiting for quotaChanged events\n`) },
});

client.subscribe(
  {
    query: `subscription ($userId: ID) {
      quotaChanged(userId: $userId) {
        eventId type userId occurredAt quotaId kind status usagePercent severity validUntil
        limits { maxDevices maxConcurrentDevices totalCpuCores totalMemoryGB totalStorageGB monthlyTrafficGB }
        usage { currentDevices usedCpuCores usedMemoryGB usedStorageGB monthlyTrafficUsedGB }
      }
    }`,
    variables: { userId: values['user-id'] ?? null },
  },
  {
    next: (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
    error: (error) => {
      process.stderr.write(`subscription ended: ${JSON.stringify(error)}\n`);
      process.exit(1);
    },
    complete: () => process.exit(0),
  },
);

process.on('SIGINT', () => {
  void client.dispose();
  process.exit(0);
});
