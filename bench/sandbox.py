"""Prints what Chromium's sandbox and a user per browser cost: launch time and idle PSS, sandbox on vs off.

    PYTHONPATH=. .venv/bin/python bench/sandbox.py [--launcher selenium|direct|both] [--n 10]

Launches go through the worker's own launcher (users, folders, flags) without a broker around it,
the three ways interleaved, each first in turn, so the shared machine's noise falls on all alike; nothing is asserted.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import summary, tree_memory
from core.config import load
from tasks.browser_users import BrowserUser, BrowserUsers
from tasks.chromium_flags import browser_flags
from tasks.launchers import make_launcher
from tasks.running_browser import session_temp_dir
from tasks.confinement import start_checks
from tests.support.processes import TEST_FLAGS

IDLE = 3.0


class WorkersOwnUser:
    """The way browsers ran before (as the worker, root here): the baseline the other two are compared to."""

    def acquire(self) -> BrowserUser:
        return BrowserUser("worker", os.geteuid(), os.getegid())


def idle_pss(browser) -> float:
    """PSS of the browser (and its ChromeDriver) once its first tab has settled."""
    time.sleep(IDLE)
    return tree_memory(browser.pids)[0]


def measure(launcher_name: str, n: int) -> None:
    base = load()
    config = dataclasses.replace(base, chromium=dataclasses.replace(
        base.chromium, launcher=launcher_name, extra_flags=tuple(shlex.split(TEST_FLAGS))))
    users = BrowserUsers(config.chromium.browser_user)
    root = Path(tempfile.mkdtemp(prefix="bb-bench-sandbox-"))
    root.chmod(0o711)
    launchers = {
        "own user, sandbox on": make_launcher(config, users, True),
        "own user, --no-sandbox": make_launcher(config, users, False),
        "worker's user, --no-sandbox (before)": make_launcher(config, WorkersOwnUser(), False),  # type: ignore[arg-type]
    }
    times: dict[str, list[float]] = {label: [] for label in launchers}
    memory: dict[str, list[float]] = {label: [] for label in launchers}
    try:
        for i in range(n):
            order = list(launchers.items())
            for number, (label, launcher) in enumerate(order[i % 3:] + order[:i % 3]):  # each goes first in turn
                profile = root / f"{number}-{i}"
                profile.mkdir()
                start = time.perf_counter()
                browser = launcher.start(profile, browser_flags(config), 60, {})
                times[label].append(time.perf_counter() - start)
                memory[label].append(idle_pss(browser))
                launcher.stop(browser)
                shutil.rmtree(profile, ignore_errors=True)
                shutil.rmtree(session_temp_dir(profile), ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    baseline = statistics.median(times["worker's user, --no-sandbox (before)"])
    for label in launchers:
        print(f"  {launcher_name} · {label}: launch {summary(times[label])} "
              f"[{statistics.median(times[label]) / baseline:.2f}× before]; idle PSS median "
              f"{statistics.median(memory[label]):.0f} MiB (min {min(memory[label]):.0f}, max {max(memory[label]):.0f})")


def start_check_time() -> None:
    """What the worker's start checks (policy + one probe browser) add to its start."""
    base = Path(tempfile.mkdtemp(prefix="bb-bench-check-"))
    loaded = load()
    config = dataclasses.replace(
        loaded, worker=dataclasses.replace(loaded.worker, state_dir=base / "state"),
        chromium=dataclasses.replace(loaded.chromium, profiles_dir=base / "profiles",
                                     extra_flags=tuple(shlex.split(TEST_FLAGS))))
    base.chmod(0o711)
    try:
        start = time.perf_counter()
        sandbox = start_checks(config, BrowserUsers(config.chromium.browser_user), config.chromium.profiles_dir / "bench")
        print(f"  worker start checks: {(time.perf_counter() - start) * 1000:.0f} ms (sandbox {'on' if sandbox else 'off'})")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--launcher", default="both", choices=["selenium", "direct", "both"])
    parser.add_argument("--n", type=int, default=10)
    args = parser.parse_args()
    users = BrowserUsers(load().chromium.browser_user)
    print(f"browsers run {users.describe()}")
    start_check_time()
    for name in (["selenium", "direct"] if args.launcher == "both" else [args.launcher]):
        measure(name, args.n)


if __name__ == "__main__":
    main()
