#!/usr/bin/env node
/**
 * `npm run example`: builds the dashboard, starts the gateway on its embedded default (unless
 * GATEWAY_URL points at one already running) and serves the page with /graphql and /dev proxied
 * to it, on one origin. Ctrl-C stops both.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { build, preview } from 'vite';

const here = import.meta.dirname;
const root = path.resolve(here, '../../..');
const port = Number(process.env.EXAMPLE_PORT ?? 5173);

let gateway;
if (!process.env.GATEWAY_URL) {
  const gatewayPort = process.env.PORT ?? '4000';
  process.env.GATEWAY_URL = `http://127.0.0.1:${gatewayPort}`;
  gateway = spawn(process.execPath, [path.join(root, 'dist/main.js')], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, PORT: gatewayPort },
  });
  gateway.once('exit', (code, signal) => {
    console.error(`gateway exited (${signal ?? code})`);
    process.exit(1);
  });
}

const configFile = path.join(here, '../vite.config.mjs');
await build({ configFile, logLevel: 'warn' });
const server = await preview({ configFile, preview: { port, strictPort: port !== 0 } });
const url = server.resolvedUrls?.local[0] ?? `http://127.0.0.1:${port}/`;
// One JSON line first (tests read the port from it), then the sentence for a person.
console.log(JSON.stringify({ dashboard: url, gateway: process.env.GATEWAY_URL }));
console.log(`dashboard: ${url} (gateway ${process.env.GATEWAY_URL}); sign in as a demo user there`);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    // The gateway first: it stops gracefully on SIGTERM whatever happens to this process.
    gateway?.removeAllListeners('exit');
    gateway?.kill('SIGTERM');
    void server.close().finally(() => process.exit(0));
  });
}
