#!/usr/bin/env bash
# The README's run command: installs what is missing, then runs Redis, the web process
# (API + CDP relay), a worker, beat and Flower on this machine, and prints the URL and an API key.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export PATH="$PWD/.venv/bin:$PATH"
state="$PWD/.state"
mkdir -p "$state"
export PORT="${PORT:-8000}"
export BROKER_PUBLIC_URL="${BROKER_PUBLIC_URL:-http://127.0.0.1:$PORT}"
export BROKER_STATE_DIR="${BROKER_STATE_DIR:-$state}"
if [ -z "${BROKER_BOOTSTRAP_API_KEY:-}" ]; then
  [ -s "$state/api-key" ] || .venv/bin/python -c "import secrets; print('bb_' + secrets.token_urlsafe(32))" > "$state/api-key"
  export BROKER_BOOTSTRAP_API_KEY="$(cat "$state/api-key")"
fi

if [ -z "${BROKER_SECRET_KEY:-}" ]; then
  # Encrypts stored proxy passwords; kept beside the state so a restart can still read them.
  [ -s "$state/secret-key" ] || (umask 077 && .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(32))" > "$state/secret-key")
  export BROKER_SECRET_KEY="$(cat "$state/secret-key")"
fi

redis_pid=""
if [ -z "${REDIS_URL:-}" ]; then
  redis_port="${BROKER_REDIS_PORT:-6380}"
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$state" --save 60 1 --appendonly no --daemonize no \
    > "$state/redis.log" 2>&1 &
  redis_pid=$!
  export REDIS_URL="redis://127.0.0.1:$redis_port/0"
fi
trap '[ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null; exit 0' INT TERM EXIT

cat <<INFO

  Browser Broker is starting.
    URL:      $BROKER_PUBLIC_URL   (docs: $BROKER_PUBLIC_URL/docs)
    API key:  $BROKER_BOOTSTRAP_API_KEY
    Flower:   http://127.0.0.1:${FLOWER_PORT:-5555}
  Try:  curl -s -X POST -H "X-API-Key: $BROKER_BOOTSTRAP_API_KEY" $BROKER_PUBLIC_URL/v1/sessions

INFO
.venv/bin/honcho start -f Procfile web worker beat flower
