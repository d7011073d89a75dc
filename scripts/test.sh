#!/usr/bin/env bash
# The README's test command: installs what is missing, then runs the suite against real Redis,
# real Celery workers and real headless Chromium, all started (and stopped) by the suite itself.
set -euo pipefail
cd "$(dirname "$0")/.."
began=$(date +%s)
# Three test workers run their deployments' browsers side by side, each as a browser user of its own: 96, not 32.
BB_BROWSER_USERS="${BB_BROWSER_USERS:-96}" bash scripts/setup.sh --with-node
# The suite starts a few hundred web and worker processes; where PYTHONDONTWRITEBYTECODE is set (CI's machines) each
# would compile the project's modules again (~0.2 s of CPU a start). Compiled once here, they only read them.
.venv/bin/python -m compileall -q app core tasks proxy web.py tests/support > /dev/null
# The layers contract (pyproject.toml): app, tasks and proxy import core, never each other.
.venv/bin/lint-imports --no-cache
# Three pytest-xdist workers (`bash scripts/test.sh -n 0` for none): most of a test's time is spent waiting on
# processes, browsers and timeouts (a file alone keeps 0.3-0.5 of a core busy), so three run side by side on two
# cores (docs/TESTING.md, "Time"). --dist loadfile keeps each test file on one worker,
# so a module's deployment is started once; the slowest files go out first (tests/conftest.py, docs/TESTING.md),
# in that order (--no-loadscope-reorder: xdist would otherwise send the files with the most tests first).
# The 25 slowest tests close every run: where the suite's time goes is read off each CI log.
echo "setup and lint took $(( $(date +%s) - began )) s"
exec .venv/bin/python -m pytest -n 3 --dist loadfile --no-loadscope-reorder --durations=25 "$@"
