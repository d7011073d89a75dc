#!/usr/bin/env bash
# Installs whatever is missing for running and testing Browser Broker on Debian; safe to run again.
# As root it also creates the users browsers run as and installs Chromium's managed policy.
# Chromium, ChromeDriver and Redis come from Debian's packages; Python packages are pinned by
# constraints.txt; rrweb by assets/rrweb/package-lock.json; the Node test client by tests/js/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

want_node="${1:-}"
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
# Chromium's locale files: a session's locale is its UI locale too, Intl's default (tasks/browser_options.py).
[ -f /usr/lib/chromium/locales/fr.pak ] || missing+=(chromium-l10n)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v python3 >/dev/null || missing+=(python3)
python3 -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
# npm installs rrweb for session recordings (assets/rrweb) and, for the tests, the Node clients.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ "$want_node" = "--with-node" ]; then
  # The multi-host tests build hosts from network namespaces (ip netns) with hostnames of their own (unshare).
  command -v ip >/dev/null || missing+=(iproute2)
  command -v unshare >/dev/null || missing+=(util-linux)
  # The compose test runs each container's command under tini, as the Dockerfile's ENTRYPOINT does.
  [ -x /usr/bin/tini ] || missing+=(tini)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Browsers never run as root: a root worker starts each one as a user of its own, one per browser
# running on the host (README, "Security"). Chromium's managed policy refuses file://, chrome://,
# devtools:// and view-source: to every page and CDP client; it is machine-wide, and a worker
# outside development does not start without it.
prefix="${BROKER_BROWSER_USER:-bb-browser}"
if [ "$(id -u)" = 0 ]; then
  getent group "$prefix" >/dev/null || groupadd --system "$prefix"
  for i in $(seq 0 $(( ${BB_BROWSER_USERS:-32} - 1 ))); do
    id -u "$prefix-$i" >/dev/null 2>&1 || useradd --system --gid "$prefix" --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin "$prefix-$i"
  done
  # The image's user (Dockerfile): tests/hosts/test_compose.py runs the compose file's containers as it.
  id -u broker >/dev/null 2>&1 || useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin broker
  policy=/etc/chromium/policies/managed/browser-broker.json
  cmp -s tasks/chromium_policy.json "$policy" || install -D -m 0644 tasks/chromium_policy.json "$policy"
else
  echo "setup: not root: no browser users created and no Chromium policy installed; browsers will run as" \
       "the worker's user, and a worker outside BROKER_ENV=development refuses to start until" \
       "'sudo bash scripts/setup.sh' installs the policy" >&2
fi

# Each install below runs only if its stamp (the hash of what pins it) is missing, so a changed pin installs again.
# The three run side by side: each mostly waits on downloads and unpacking, one core apiece.
python_packages() {
  [ -x .venv/bin/python ] || python3 -m venv .venv
  local stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
  [ -f "$stamp" ] && return
  echo "setup: installing Python packages (pinned by constraints.txt)"
  local began=$SECONDS
  # uv (pinned in constraints.txt too, and installed into the venv) installs the same pins as pip would, fetching
  # and unpacking in parallel: 4-5 s here with an empty cache, where pip took 53 s.
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt uv
  # --compile-bytecode: every package's .pyc written once here (~12 s of this install). Where PYTHONDONTWRITEBYTECODE
  # is set (this machine, CI's), no process writes them, so each web, worker and relay start compiled Celery, Flask,
  # kombu and the rest from source again: 0.80 CPU-s for their imports, 0.49 s compiled.
  .venv/bin/uv pip install --quiet --python .venv/bin/python -c constraints.txt -e ".[test]" --compile-bytecode
  rm -f .venv/.installed-* && touch "$stamp"
  echo "setup: Python packages installed in $(( SECONDS - began )) s"
}

# rrweb and rrweb-player: the worker injects the one into recorded pages, the web serves the other (/replay).
# --prefer-offline: a package already in npm's cache is taken from it without asking the registry again; the lock
# file names every version and its integrity hash, so the cache cannot give anything else.
rrweb() {
  local stamp="assets/rrweb/node_modules/.installed-$(sha256sum < assets/rrweb/package-lock.json | cut -c1-16)"
  [ -f "$stamp" ] && return
  echo "setup: installing rrweb and rrweb-player (pinned by assets/rrweb/package-lock.json)"
  local began=$SECONDS
  (cd assets/rrweb && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
  touch "$stamp"
  echo "setup: rrweb installed in $(( SECONDS - began )) s"
}

node_clients() {
  local stamp="tests/js/node_modules/.installed-$(sha256sum < tests/js/package-lock.json | cut -c1-16)"
  [ -f "$stamp" ] && return
  echo "setup: installing the Node test clients (puppeteer-core without a browser download, chrome-remote-interface)"
  local began=$SECONDS
  (cd tests/js && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
  touch "$stamp"
  echo "setup: Node test clients installed in $(( SECONDS - began )) s"
}

python_packages & jobs_started=("$!")
rrweb & jobs_started+=("$!")
if [ "$want_node" = "--with-node" ]; then
  node_clients & jobs_started+=("$!")
fi
failed=0
for job in "${jobs_started[@]}"; do
  wait "$job" || failed=1
done
[ "$failed" = 0 ] || { echo "setup: an install failed (its error is above)" >&2; exit 1; }
