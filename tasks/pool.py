"""The Chromium pool a worker owns: a fixed number of slots, one browser and profile directory each."""
from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import psutil

from tasks.chromium import Launcher, RunningBrowser, end_processes, process_tree, session_temp_dir

log = logging.getLogger(__name__)
ProfileStep = Callable[[Path], None]


class PoolFull(RuntimeError):
    pass


class ChromiumPool:
    """Thread-safe: launch and stop tasks run on the worker's threads at once.

    A slot is reserved before the (slow) launch starts, so two launches can never
    both take the last slot.
    """

    def __init__(self, launcher: Launcher, size: int, root: Path) -> None:
        self.launcher = launcher
        self.size = size
        self.root = root
        self._lock = threading.Lock()
        self._reserved: set[str] = set()
        self._browsers: dict[str, RunningBrowser] = {}
        #: Called with the session id once its browser has ended: what lives and dies with a browser ends here too.
        self.release_hooks: list[Callable[[str], None]] = []
        root.mkdir(parents=True, exist_ok=True)

    def free_slots(self) -> int:
        with self._lock:
            return self.size - len(self._reserved) - len(self._browsers)

    def session_ids(self) -> list[str]:
        with self._lock:
            return list(self._browsers)

    def get(self, session_id: str) -> RunningBrowser | None:
        with self._lock:
            return self._browsers.get(session_id)

    def profile_dir(self, session_id: str) -> Path:
        return self.root / session_id

    def reserve(self, session_id: str) -> None:
        """Hold a slot for a launch about to start; idempotent for the same session."""
        with self._lock:
            if session_id in self._reserved or session_id in self._browsers:
                return
            if len(self._reserved) + len(self._browsers) >= self.size:
                raise PoolFull(f"all {self.size} browser slots of this worker are taken")
            self._reserved.add(session_id)

    def unreserve(self, session_id: str) -> None:
        with self._lock:
            self._reserved.discard(session_id)

    def _pid_file(self, session_id: str) -> Path:
        return self.root / f"{session_id}.pids"

    def clean_leftovers(self) -> list[str]:
        """End what an earlier life of this worker left (killed before it could stop its browsers).

        Processes are found by the PIDs this pool recorded, checked against their
        start time so a reused PID is never killed; never by process name.
        """
        ended = []
        for pid_file in self.root.glob("*.pids"):
            procs = []
            for entry in json.loads(pid_file.read_text() or "[]"):
                try:
                    proc = psutil.Process(entry["pid"])
                    if abs(proc.create_time() - entry["started"]) < 1:
                        procs.append(proc)
                except psutil.NoSuchProcess:
                    continue
            end_processes(process_tree([p.pid for p in procs]), grace=0)
            shutil.rmtree(session_temp_dir(self.profile_dir(pid_file.stem)), ignore_errors=True)
            ended.append(pid_file.stem)
            pid_file.unlink()
        for leftover in self.root.iterdir():
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
                shutil.rmtree(session_temp_dir(leftover), ignore_errors=True)
        if ended:
            log.warning("ended browsers left by an earlier life of this worker: %s", ", ".join(ended))
        return ended

    def acquire(
        self, session_id: str, flags: list[str], timeout: float, prepare: ProfileStep | None = None
    ) -> RunningBrowser:
        """Start the browser in the session's slot (reserved here if not already).

        ``prepare`` fills the empty profile before Chromium starts (a context's snapshot).
        """
        with self._lock:
            if session_id in self._browsers:
                return self._browsers[session_id]
        self.reserve(session_id)
        profile = self.profile_dir(session_id)
        try:
            profile.mkdir(parents=True, exist_ok=True)
            if prepare is not None:
                prepare(profile)
            browser = self.launcher.start(profile, flags, timeout)
        except BaseException:
            shutil.rmtree(profile, ignore_errors=True)
            shutil.rmtree(session_temp_dir(profile), ignore_errors=True)
            with self._lock:
                self._reserved.discard(session_id)
            raise
        self._pid_file(session_id).write_text(json.dumps(
            [{"pid": p.pid, "started": p.create_time()} for p in process_tree(browser.pids)]
        ))
        with self._lock:
            self._reserved.discard(session_id)
            self._browsers[session_id] = browser
        log.info("session %s: browser up on port %s", session_id, browser.port)
        return browser

    def release(self, session_id: str, after_exit: ProfileStep | None = None) -> bool:
        """End the browser and delete its profile; False if this pool had no such browser.

        ``after_exit`` sees the profile once Chromium has exited and before it is
        deleted: the only moment a snapshot of it is consistent.
        """
        with self._lock:
            browser = self._browsers.pop(session_id, None)
        if browser is None:
            return False
        try:
            self.launcher.stop(browser)
            if after_exit is not None:
                after_exit(browser.profile_dir)
        finally:
            shutil.rmtree(browser.profile_dir, ignore_errors=True)
            shutil.rmtree(session_temp_dir(browser.profile_dir), ignore_errors=True)
            self._pid_file(session_id).unlink(missing_ok=True)
            for hook in self.release_hooks:
                hook(session_id)
        log.info("session %s: browser ended", session_id)
        return True
