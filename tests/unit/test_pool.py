"""The pool's slots (sessions held to its size, spares with room of their own), and what a killed worker's pool
leaves, ended at the next start (``clean_leftovers``): real processes stand in for a browser and a ChromeDriver whose
launch was cut short before its PID file was written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tasks.pool import ChromiumPool, PoolFull
from tasks.running_browser import end_processes, process_tree, session_temp_dir

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def spawned():
    procs: list[subprocess.Popen] = []

    def spawn(*args: str, tmpdir: Path | None = None) -> subprocess.Popen:
        env = {**os.environ, **({"TMPDIR": str(tmpdir)} if tmpdir else {})}
        proc = subprocess.Popen([*SLEEPER, *args], env=env)
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        proc.kill()
        proc.wait()


def _ended(proc: subprocess.Popen) -> bool:
    try:
        proc.wait(timeout=5)
        return True
    except subprocess.TimeoutExpired:
        return False


def test_a_cut_short_launch_leaves_neither_its_browser_nor_its_chromedriver(tmp_path, spawned):
    root = tmp_path / "pool"
    pool = ChromiumPool(launcher=None, size=2, root=root)  # type: ignore[arg-type]
    cut_short = root / "sess-cut-short"
    cut_short.mkdir()
    browser = spawned(f"--user-data-dir={cut_short}", tmpdir=session_temp_dir(cut_short))
    # ChromeDriver names no profile: only its TMPDIR (tasks/launchers/base.py child_env) says whose it is.
    driver = spawned("--port=0", tmpdir=session_temp_dir(cut_short))
    someone_else = spawned("--port=0", tmpdir=tmp_path / "not-the-pools")

    ended = pool.clean_leftovers()

    assert _ended(browser) and _ended(driver)
    assert psutil.Process(someone_else.pid).is_running() and someone_else.poll() is None
    assert sorted(ended) == sorted([f"pid {browser.pid}", f"pid {driver.pid}"])
    assert not cut_short.exists()


def test_sessions_are_held_to_the_pool_size_and_spares_may_also_take_their_own_slots(tmp_path):
    pool = ChromiumPool(launcher=None, size=1, root=tmp_path / "pool", spare_room=1)  # type: ignore[arg-type]
    pool.reserve("warm-a", spare=True)
    pool.reserve("ses-a")
    assert pool.free_slots() == 0 and pool.free_for_spares() == 0 and not pool.session_room()
    pool.unreserve("warm-a")
    # A session slot is held: the free one is for spares only.
    with pytest.raises(PoolFull):
        pool.reserve("ses-b")
    pool.reserve("warm-b", spare=True)
    assert pool.counts() == {"slots": 1, "spareSlots": 1, "free": 0, "warm": 0, "running": 0, "launching": 2}


def test_a_browser_whose_process_ended_and_whose_pid_another_took_ends_nothing(tmp_path):
    """psutil tells processes apart by PID and start time: an object whose start time is not the running process's
    stands for a browser that ended and whose PID the running process took since. Ending the browser's tree must
    leave that process, and its children, alone (a PID number would have named them)."""
    other = subprocess.Popen(["sleep", "60"])
    try:
        stale = psutil.Process(other.pid)
        stale._ident = (other.pid, stale._ident[1] - 100)  # started 100 s before the process now holding its PID
        assert process_tree([stale]) == []
        end_processes(process_tree([stale]), grace=0)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait(5)
