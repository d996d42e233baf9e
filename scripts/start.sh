#!/usr/bin/env bash
# Runs paystate on one machine: a private Redis (unless REDIS_URL is set), then web and worker from the build.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${NODE_ENV:-development}" != production ]; then
  # Local-only defaults so a fresh checkout can be tried at once; production must set its own.
  export WEBHOOK_KEYS="${WEBHOOK_KEYS:-local-key:local-secret}"
  export API_TOKENS="${API_TOKENS:-local-token}"
  export ADMIN_TOKEN="${ADMIN_TOKEN:-local-admin}"
fi

pids=()
stop() {
  trap - TERM INT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait
}
trap stop TERM INT

if [ -z "${REDIS_URL:-}" ]; then
  bash scripts/ensure-redis.sh
  port="${REDIS_PORT:-6379}"
  mkdir -p data/redis
  redis-server --port "$port" --bind 127.0.0.1 --dir "$PWD/data/redis" --appendonly yes --save '' \
    --maxmemory-policy noeviction --daemonize no --loglevel warning &
  pids+=($!)
  export REDIS_URL="redis://127.0.0.1:$port"
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
fi

npm run --silent build
echo "paystate: REDIS_URL=$REDIS_URL LEDGER_PATH=${LEDGER_PATH:-./data/ledger.db} PORT=${PORT:-3000}" >&2
[ "${NODE_ENV:-development}" != production ] && echo "paystate: local webhook key id 'local-key', API token 'local-token', admin token 'local-admin' unless set" >&2
node --max-semi-space-size=2 --heap-growing-percent=20 dist/src/http/server.js &
pids+=($!)
node --max-semi-space-size=2 --heap-growing-percent=20 dist/workers/status-worker.js &
pids+=($!)
node --max-semi-space-size=2 --heap-growing-percent=20 dist/workers/scheduler.js &
pids+=($!)
wait -n || true
stop
