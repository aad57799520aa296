#!/usr/bin/env bash
# Production smoke test: what docs/deploy.md tells an operator to do, end to end.
# Builds, copies what a deploy ships (package.json, package-lock.json, .npmrc, dist/, prisma/) to
# a temporary directory, installs production dependencies only there, starts `node dist/main.js`
# with NODE_ENV=production against a database it creates, the shared Redis and RabbitMQ under
# names of its own, waits for GET /readyz to answer 200, then stops the server with SIGTERM and
# checks it exits 0. Cleans up its database, queues, exchanges and directory whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$(date +%s)

PG_ADMIN_URL=${SMOKE_PG_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
REDIS_URL=${SMOKE_REDIS_URL:-redis://127.0.0.1:6379}
AMQP_URL=${SMOKE_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672}

id="smoke_$$_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
work=$(mktemp -d "${TMPDIR:-/tmp}/cpr-smoke-XXXXXX")
queue="cpr-$id.events"
exchange="cpr-$id.x"
dlx="cpr-$id.dlx"
dlq="cpr-$id.dlq"
server_pid=""
database_created=""

log() { echo "smoke: $*"; }

cleanup() {
  local status=$?
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if [[ -d $work/node_modules/amqplib ]]; then
    # The queue and exchange are durable: remove them, or every run leaves two behind.
    (cd "$work" && AMQP_URL=$AMQP_URL node -e '
      const amqp = require("amqplib");
      const [queues, exchanges] = [process.argv.slice(1, 3), process.argv.slice(3)];
      (async () => {
        const connection = await amqp.connect(process.env.AMQP_URL);
        const channel = await connection.createChannel();
        for (const queue of queues) await channel.deleteQueue(queue);
        for (const exchange of exchanges) await channel.deleteExchange(exchange);
        await connection.close();
      })().catch((error) => { console.error(`smoke: broker cleanup: ${error.message}`); process.exit(1); });
    ' "$queue" "$dlq" "$exchange" "$dlx") || true
  fi
  if [[ -n $database_created ]]; then
    psql "$PG_ADMIN_URL" -qAtc "DROP DATABASE IF EXISTS \"$id\" WITH (FORCE)" || true
  fi
  rm -rf "$work"
  log "cleaned up ($(($(date +%s) - started)) s in all)"
  exit "$status"
}
trap cleanup EXIT

log "building"
npm run -s build >/dev/null

log "shipping to $work"
cp package.json package-lock.json "$work"/
if [[ -f .npmrc ]]; then cp .npmrc "$work"/; fi
cp -R dist prisma "$work"/
(cd "$work" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
log "production dependencies: $(cd "$work" && npm ls --omit=dev --parseable --all 2>/dev/null | wc -l) packages"

psql "$PG_ADMIN_URL" -qAtc "CREATE DATABASE \"$id\""
database_created=1
database_url=$(node -e 'const u = new URL(process.argv[1]); u.pathname = "/" + process.argv[2]; console.log(u.toString())' "$PG_ADMIN_URL" "$id")

# A free port: ask the kernel for one, release it, give it to the server.
port=$(node -e 'const s = require("node:net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')

log "starting node dist/main.js on port $port"
(
  cd "$work"
  exec env -i PATH="$PATH" HOME="${HOME:-/tmp}" NODE_ENV=production PORT="$port" HOST=127.0.0.1 \
    DATABASE_URL="$database_url" REDIS_URL="$REDIS_URL" AMQP_URL="$AMQP_URL" \
    AMQP_QUEUE="$queue" AMQP_EXCHANGE="$exchange" AMQP_DLX="$dlx" AMQP_DLQ="$dlq" REDIS_TOPIC_PREFIX="cpr-$id:" \
    JWT_SECRET="smoke-$id-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" LOG_LEVEL="${SMOKE_LOG_LEVEL:-warn}" \
    node dist/main.js
) >"$work/server.log" 2>&1 &
server_pid=$!

ready=""
for ((i = 0; i < 240; i++)); do # 240 x 0.25 s = 60 s
  if ! kill -0 "$server_pid" 2>/dev/null; then
    log "the server exited before it was ready:"
    cat "$work/server.log"
    exit 1
  fi
  if body=$(curl -fsS --max-time 2 "http://127.0.0.1:$port/readyz" 2>/dev/null); then
    ready=1
    break
  fi
  sleep 0.25
done
if [[ -z $ready ]]; then
  log "GET /readyz did not answer 200 within 60 s; server log:"
  cat "$work/server.log"
  exit 1
fi
log "GET /readyz -> 200 after $(($(date +%s) - started)) s: $body"

log "stopping with SIGTERM"
kill -TERM "$server_pid"
exited=""
for ((i = 0; i < 60; i++)); do # 60 x 0.25 s = 15 s
  if ! kill -0 "$server_pid" 2>/dev/null; then
    exited=1
    break
  fi
  sleep 0.25
done
if [[ -z $exited ]]; then
  log "the server did not exit within 15 s of SIGTERM; server log:"
  cat "$work/server.log"
  exit 1
fi
set +e
wait "$server_pid"
code=$?
set -e
server_pid=""
if [[ $code -ne 0 ]]; then
  log "the server exited $code after SIGTERM; server log:"
  cat "$work/server.log"
  exit 1
fi
log "the server exited 0 after SIGTERM"
if [[ -s $work/server.log ]]; then
  log "server log (LOG_LEVEL=${SMOKE_LOG_LEVEL:-warn}):"
  cat "$work/server.log"
fi
