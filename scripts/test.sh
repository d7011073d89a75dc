#!/usr/bin/env bash
# The README's test command: installs what is missing, then runs the suite against real Redis,
# real Celery workers and real headless Chromium, all started (and stopped) by the suite itself.
set -euo pipefail
cd "$(dirname "$0")/.."
began=$(date +%s)
# Two test workers run their deployments' browsers side by side, each as a browser user of its own: 64, not 32.
BB_BROWSER_USERS="${BB_BROWSER_USERS:-64}" bash scripts/setup.sh --with-node
# The suite starts a few hundred web and worker processes; where PYTHONDONTWRITEBYTECODE is set (CI's machines) each
# would compile the project's modules again (~0.2 s of CPU a start). Compiled once here, they only read them (the
# installed packages are compiled at their install, scripts/setup.sh).
step=$(date +%s)
.venv/bin/python -m compileall -q app core tasks proxy web.py tests/support > /dev/null
echo "compileall took $(( $(date +%s) - step )) s"
# The layers contract (pyproject.toml): app, tasks and proxy import core, never each other.
step=$(date +%s)
.venv/bin/lint-imports --no-cache
echo "lint-imports took $(( $(date +%s) - step )) s"
# Two pytest-xdist workers (`bash scripts/test.sh -n 0` for none, `-n 3` for three): most of a test's time is spent
# waiting on processes, browsers and timeouts, so two run side by side on two cores. Three were faster (9 min 22 s)
# but on two cores their workers' starts and exits outran the tests' bounds in two of three clean-clone runs
# (docs/TESTING.md, "Time"). --dist loadfile keeps each test file on one worker,
# so a module's deployment is started once; the slowest files go out first (tests/conftest.py, docs/TESTING.md),
# in that order (--no-loadscope-reorder: xdist would otherwise send the files with the most tests first).
# The 25 slowest tests close every run: where the suite's time goes is read off each CI log.
echo "setup and lint took $(( $(date +%s) - began )) s"
exec .venv/bin/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=25 "$@"
