// The dashboard builds to dist/ and is served next to a proxy to the gateway (scripts/serve.mjs),
// so the page, /graphql (HTTP and WebSocket) and /dev/token share one origin.
import { defineConfig } from 'vite';

const gateway = process.env.GATEWAY_URL ?? 'http://127.0.0.1:4000';

export default defineConfig({
  root: import.meta.dirname,
  // React 19's automatic JSX runtime, without a plugin (no fast refresh needed for an example).
  oxc: { jsx: { runtime: 'automatic' } },
  build: { outDir: 'dist', emptyOutDir: true },
  logLevel: 'warn',
  preview: {
    host: '127.0.0.1',
    proxy: {
      '/graphql': { target: gateway, ws: true, changeOrigin: true },
      '/dev': { target: gateway, changeOrigin: true },
    },
  },
});
