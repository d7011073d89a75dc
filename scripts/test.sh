#!/usr/bin/env bash
# The README's test command: installs what is missing, then runs the suite against real Redis,
# real Celery workers and real headless Chromium, all started (and stopped) by the suite itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-node
# The layers contract (pyproject.toml): app, tasks and proxy import core, never each other.
.venv/bin/lint-imports --no-cache
# The 25 slowest tests close every run: where the suite's time goes is read off each CI log.
exec .venv/bin/python -m pytest --durations=25 "$@"
