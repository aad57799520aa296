/**
 * Liveness and readiness, kept apart (graphql-yoga's health/readiness checks): `/healthz` says
 * the process serves; `/readyz` reports each dependency and answers 503 while one is down or the
 * instance is stopping, so a load balancer drains it.
 */
import type { Router } from 'express';
import express from 'express';
import type { DependencyStatus } from '../../contracts/ports';

export type DependencyCheck = () => DependencyStatus | Promise<DependencyStatus>;

export function healthRouter(options: {
  checks: Record<string, { mode: string; check: DependencyCheck }>;
  isStopping: () => boolean;
}): Router {
  const router = express.Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const entries = await Promise.all(
      Object.entries(options.checks).map(async ([name, { mode, check }]) => {
        let status: DependencyStatus;
        try {
          status = await check();
        } catch (error) {
          status = { up: false, detail: error instanceof Error ? error.message : String(error) };
        }
        return [name, { status: status.up ? 'up' : 'down', mode, ...(status.detail ? { detail: status.detail } : {}) }] as const;
      }),
    );
    const dependencies = Object.fromEntries(entries);
    const stopping = options.isStopping();
    const ready = !stopping && entries.every(([, d]) => d.status === 'up');
    res.status(ready ? 200 : 503).json({ status: stopping ? 'stopping' : ready ? 'ready' : 'unavailable', dependencies });
  });
  return router;
}
