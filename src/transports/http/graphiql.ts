/**
 * `GET /graphiql`: the GraphiQL page bundled by `npm run build:graphiql` (src/graphiql/) into
 * dist/graphiql/, served from this process with a Content-Security-Policy that lets the page talk
 * only to its own origin. The page's settings travel in a non-executable JSON block.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import express, { type Router } from 'express';

/** dist/graphiql at the repository root, from both src/transports/http (ts-jest) and dist/transports/http. */
export const GRAPHIQL_DIR = path.resolve(__dirname, '../../../dist/graphiql');

export interface GraphiqlPageConfig {
  /** Show how to mint a development token (outside production, HS256 secret configured). */
  readonly tokenHint: boolean;
  /** No DATABASE_URL, REDIS_URL or AMQP_URL. */
  readonly embedded: boolean;
  /** Show the development-only "act as user / as admin" control (`POST /dev/token` is mounted). */
  readonly devTokens: boolean;
}

// 'self' covers same-origin ws(s) in current browsers; Monaco needs inline styles and data: fonts.
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "worker-src 'self'",
  "frame-ancestors 'none'",
].join('; ');

export function graphiqlRouter(config: GraphiqlPageConfig, dir: string = GRAPHIQL_DIR): Router {
  const router = express.Router();
  let page: string | undefined;
  const render = (): string | undefined => {
    if (page) return page;
    let html: string;
    try {
      html = readFileSync(path.join(dir, 'index.html'), 'utf8');
    } catch {
      return undefined;
    }
    // `<` escaped so the JSON can never close the script element.
    const json = JSON.stringify(config).replace(/</g, '\\u003c');
    page = html.replace('<!--graphiql-config-->', `<script type="application/json" id="graphiql-config">${json}</script>`);
    return page;
  };

  router.get(['/graphiql', '/graphiql/'], (_req, res) => {
    const html = render();
    if (!html) {
      res.status(503).type('text/plain').send('GraphiQL is not built: run `npm run build` (or `npm run build:graphiql`) and reload.\n');
      return;
    }
    res.set({ 'content-security-policy': CSP, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
    res.type('html').send(html);
  });
  router.use('/graphiql/assets', express.static(path.join(dir, 'assets'), { index: false, maxAge: '1h' }));
  return router;
}
