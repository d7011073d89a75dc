#!/usr/bin/env bash
# The README's test command: installs what is missing, then runs the suite against real Redis,
# real Celery workers and real headless Chromium, all started (and stopped) by the suite itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-node
# The layers contract (pyproject.toml): app, tasks and proxy import core, never each other.
.venv/bin/lint-imports --no-cache
# Two pytest-xdist workers (BB_TEST_WORKERS, 0 for none): most of a test's time is spent waiting on processes,
# browsers and timeouts, so two run side by side on two cores. --dist loadfile keeps each test file on one worker,
# so a module's deployment is started once; the slowest files go out first (tests/conftest.py, docs/TESTING.md).
# The 25 slowest tests close every run: where the suite's time goes is read off each CI log.
exec .venv/bin/python -m pytest -n "${BB_TEST_WORKERS:-2}" --dist loadfile --durations=25 "$@"
