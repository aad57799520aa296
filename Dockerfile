# syntax=docker/dockerfile:1
# cloudphone-realtime, multi-stage: build with every dependency, run with production ones only.
# NOT BUILT HERE: the machines this repository is developed on have no Docker engine. The same
# steps without Docker are in docs/deploy.md and are what .ci/smoke-production.sh runs in CI.
#
#   docker build -t cloudphone-realtime .
#   docker run -p 4000:4000 -e DATABASE_URL=... -e REDIS_URL=... -e AMQP_URL=... -e JWT_SECRET=... cloudphone-realtime

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# --ignore-scripts: every dependency install script is denied in package.json "allowScripts"
# anyway, and the image's npm may predate allowScripts (npm 11.16).
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY prisma ./prisma
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force
# The migrations are applied on start (src/infra/db/migrate.ts reads prisma/migrations).
COPY --from=build /app/prisma ./prisma
COPY --from=build /app/dist ./dist
USER node
EXPOSE 4000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.PORT || 4000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
CMD ["node", "dist/main.js"]
