/** GET /graphiql as served over HTTP: the page's settings, its security headers, and a clear 503 when unbuilt. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import { GRAPHIQL_DIR, graphiqlRouter, type GraphiqlPageConfig } from '../../src/transports/http/graphiql';
import { ensureGraphiqlBuilt } from '../helpers/browser';

const servers: http.Server[] = [];

async function serve(config: GraphiqlPageConfig, dir?: string): Promise<string> {
  const app = express();
  app.use(graphiqlRouter(config, dir));
  const server = http.createServer(app);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(() => ensureGraphiqlBuilt(), 60_000);
afterAll(() => Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve)))));

/** The JSON block the page reads its settings from. */
async function pageConfig(url: string): Promise<unknown> {
  const html = await (await fetch(`${url}/graphiql`)).text();
  const match = /<script type="application\/json" id="graphiql-config">(.*?)<\/script>/s.exec(html);
  return match ? JSON.parse(match[1] as string) : undefined;
}

it('tells the page to show the development-token hint and control in embedded mode, and not in production', async () => {
  const embedded = { tokenHint: true, embedded: true, devTokens: true };
  const production = { tokenHint: false, embedded: false, devTokens: false };
  expect(await pageConfig(await serve(embedded))).toEqual(embedded);
  expect(await pageConfig(await serve(production))).toEqual(production);
});

it('serves the page with a same-origin-only Content-Security-Policy, and its bundled assets', async () => {
  const url = await serve({ tokenHint: false, embedded: false, devTokens: false });
  const page = await fetch(`${url}/graphiql`);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toMatch(/^text\/html/);
  const csp = page.headers.get('content-security-policy') ?? '';
  expect(csp).toContain("default-src 'self'");
  expect(csp).toContain("connect-src 'self'");
  expect(csp).not.toMatch(/https?:/);
  const html = await page.text();
  // Every script and stylesheet the page names is on this origin.
  const references = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
  expect(references.length).toBeGreaterThan(1);
  for (const reference of references) expect(reference).toMatch(/^(\/graphiql\/assets\/|data:)/);
  for (const asset of ['graphiql.js', 'graphiql.css', 'editor.worker.js', 'json.worker.js', 'graphql.worker.js']) {
    const response = await fetch(`${url}/graphiql/assets/${asset}`);
    expect([asset, response.status]).toEqual([asset, 200]);
    await response.arrayBuffer();
  }
  expect(path.relative(path.resolve(__dirname, '../..'), GRAPHIQL_DIR)).toBe(path.join('dist', 'graphiql'));
});

it('answers 503 with what to run when the page has not been built', async () => {
  const url = await serve({ tokenHint: true, embedded: true, devTokens: true }, path.join(os.tmpdir(), 'cpr-no-graphiql-here'));
  const response = await fetch(`${url}/graphiql`);
  expect(response.status).toBe(503);
  expect(await response.text()).toContain('npm run build');
});
