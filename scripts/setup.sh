#!/usr/bin/env bash
# Installs whatever is missing for running and testing Browser Broker on Debian; safe to run again.
# Chromium, ChromeDriver and Redis come from Debian's packages; Python packages are pinned by
# constraints.txt; the Node test client is pinned by tests/js/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

want_node="${1:-}"
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v python3 >/dev/null || missing+=(python3)
python3 -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
if [ "$want_node" = "--with-node" ]; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages (pinned by constraints.txt)"
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"
  rm -f .venv/.installed-* && touch "$stamp"
fi

if [ "$want_node" = "--with-node" ] && [ ! -d tests/js/node_modules/puppeteer-core ]; then
  echo "setup: installing puppeteer-core (no browser download) for the tests"
  (cd tests/js && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
