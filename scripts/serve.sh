#!/usr/bin/env bash
# The README's run command: installs what is missing, then runs Redis and the Procfile's processes
# (web: API + CDP relay, worker, flower) on this machine, and prints the URL and an API key.
#
# Stopping: Ctrl-C, or SIGTERM (or SIGHUP) to this script's PID. The worker stops first, so its
# sessions go through the normal stop flow (contexts saved) within BROKER_SHUTDOWN_GRACE while
# Redis is still up; then the other processes; Redis last. Every process runs in a session of its
# own, so a terminal's Ctrl-C (sent to the whole foreground process group) reaches only this script,
# which orders the stop. honcho is not used for this: it SIGKILLs every process 5 s after the first
# one exits, which can cut a worker's stop flow short.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export PATH="$PWD/.venv/bin:$PATH"
export PORT="${PORT:-8000}"
export BROKER_PUBLIC_URL="${BROKER_PUBLIC_URL:-http://127.0.0.1:$PORT}"
# Redis data, the API and secret keys and context snapshots live here, readable by nobody else
# (browsers' users included: README, "Security").
export BROKER_STATE_DIR="${BROKER_STATE_DIR:-$PWD/.state}"
state="$BROKER_STATE_DIR"
# Browsers' profiles: apart from the state, where their users can reach them; one folder per checkout.
export BROKER_PROFILES_DIR="${BROKER_PROFILES_DIR:-${TMPDIR:-/tmp}/browser-broker-profiles-$(printf %s "$PWD" | sha256sum | cut -c1-8)}"
# The worker's name comes from DYNO (Procfile): kept the same across restarts, so a worker that
# was killed is followed by one that ends what it left (its browsers, its sessions' records).
export DYNO="${DYNO:-local}"
umask 077
mkdir -p "$state"
chmod 700 "$state"

if [ -z "${BROKER_BOOTSTRAP_API_KEY:-}" ]; then
  chmod 600 "$state/api-key" 2>/dev/null || true   # an older serve.sh left it world-readable
  [ -s "$state/api-key" ] || .venv/bin/python -c "import secrets; print('bb_' + secrets.token_urlsafe(32))" > "$state/api-key"
  export BROKER_BOOTSTRAP_API_KEY="$(cat "$state/api-key")"
fi
if [ -z "${BROKER_SECRET_KEY:-}" ]; then
  # Encrypts stored proxy passwords; kept beside the state so a restart can still read them.
  [ -s "$state/secret-key" ] || .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(32))" > "$state/secret-key"
  export BROKER_SECRET_KEY="$(cat "$state/secret-key")"
fi

declare -A pids=()
order=()

start() {  # name command: in a session of its own, each output line prefixed with the name
  local name=$1 command=$2 label
  printf -v label '%-7s| ' "$name"
  setsid bash -c "exec $command" > >(trap '' INT TERM HUP; exec sed -u "s/^/$label/") 2>&1 &
  pids[$name]=$!
  order+=("$name")
}

stop() {  # names...: SIGTERM to each, then wait until each has exited
  local name pid
  for name in "$@"; do
    [ -n "${pids[$name]:-}" ] && kill -TERM "${pids[$name]}" 2>/dev/null || true
  done
  for name in "$@"; do
    pid="${pids[$name]:-}"
    [ -n "$pid" ] || continue
    # A signal arriving meanwhile interrupts `wait`; keep waiting for the process itself.
    while kill -0 "$pid" 2>/dev/null; do wait "$pid" 2>/dev/null || true; done
    unset "pids[$name]"
  done
}

shutdown() {  # worker first, Redis last; safe to call twice
  trap 'echo "serve: stopping; the worker has up to ${BROKER_SHUTDOWN_GRACE:-25} s to stop its sessions"' INT TERM HUP
  local rest=() name
  for name in "${order[@]}"; do
    [ "$name" = worker ] || [ "$name" = redis ] || rest=("$name" "${rest[@]}")
  done
  stop worker
  stop "${rest[@]}"
  stop redis
}
trap shutdown EXIT
trap 'exit 0' INT TERM HUP

if [ -z "${REDIS_URL:-}" ]; then
  redis_port="${BROKER_REDIS_PORT:-6380}"
  start redis "redis-server --port $redis_port --bind 127.0.0.1 --dir '$state' --save 60 1 --appendonly no"
  export REDIS_URL="redis://127.0.0.1:$redis_port/0"
  for _ in $(seq 100); do
    [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && break
    kill -0 "${pids[redis]}" 2>/dev/null || { echo "serve: redis-server did not start (port $redis_port taken?)" >&2; exit 1; }
    sleep 0.1
  done
fi

while IFS= read -r line; do
  case "$line" in ''|'#'*) continue ;; esac
  command="${line#*:}"
  start "${line%%:*}" "${command#"${command%%[![:space:]]*}"}"
done < Procfile

cat <<INFO

  Browser Broker is starting.
    URL:      $BROKER_PUBLIC_URL   (docs: $BROKER_PUBLIC_URL/docs)
    API key:  $BROKER_BOOTSTRAP_API_KEY
    Flower:   http://127.0.0.1:${FLOWER_PORT:-5555}
  Try:  curl -s -X POST -H "X-API-Key: $BROKER_BOOTSTRAP_API_KEY" $BROKER_PUBLIC_URL/v1/sessions
  Stop: Ctrl-C (or kill $$); sessions are stopped and their contexts saved first.
  Sessions reach public addresses only (${BROKER_EGRESS_ALLOW:+also $BROKER_EGRESS_ALLOW}); for a site on
  this machine, start with e.g. BROKER_EGRESS_ALLOW=127.0.0.1/32:3000 (README, "Security").

INFO

# Until a signal arrives (the trap exits) or a process exits by itself; then everything stops, in order.
status=0
wait -n -p ended "${pids[@]}" || status=$?
for name in "${!pids[@]}"; do
  [ "${pids[$name]}" = "$ended" ] && unset "pids[$name]" && echo "serve: $name exited (status $status); stopping the rest" >&2
done
exit 1
