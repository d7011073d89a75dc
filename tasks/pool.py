"""The Chromium pool a worker owns: a fixed number of slots, one browser and profile directory each.

A browser is held under a key: a session id, or the key of a spare (a warm
browser, tasks.warm) that no session has yet; ``rekey`` hands a spare to a session.
Sessions are held to ``size`` (BROKER_POOL_SIZE, what the cores carry busy). Spares
are idle: they may use a free session slot and ``spare_room`` slots more
(BROKER_WARM_MAX, what memory holds), so a stream of creates finds them ready
without the spares taking the running sessions' room.
"""
from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil

from core.logs import about_session
from tasks.launchers.base import Launcher
from tasks.running_browser import RunningBrowser, end_processes, process_tree, session_temp_dir

log = logging.getLogger(__name__)
ProfileStep = Callable[[Path], None]


class PoolFull(RuntimeError):
    pass


class ChromiumPool:
    """Thread-safe: launch and stop tasks run on the worker's threads at once.

    A slot is reserved before the (slow) launch starts, so two launches can never
    both take the last slot.
    """

    def __init__(self, launcher: Launcher, size: int, root: Path, spare_room: int = 0) -> None:
        self.launcher = launcher
        self.size = size
        self.spare_room = spare_room
        self.root = root
        self._lock = threading.Lock()
        self._reserved: set[str] = set()
        self._browsers: dict[str, RunningBrowser] = {}
        self._spares: set[str] = set()
        #: Called with the session id just before its browser is ended, while it still answers: what the browser
        #: still holds is taken from it here (a recorded page's last events).
        self.end_hooks: list[Callable[[str], None]] = []
        #: Called with the session id once its browser has ended: what lives and dies with a browser ends here too.
        self.release_hooks: list[Callable[[str], None]] = []
        #: Called with the key when its launch failed: what was made for that browser alone ends here too.
        self.failed_launch_hooks: list[Callable[[str], None]] = []
        #: Called with the session id once a browser launched for it (not a spare handed to it) is up.
        self.cold_launch_hooks: list[Callable[[str], None]] = []
        #: Called with the old and new key once a spare's browser is held for a session.
        self.rekey_hooks: list[Callable[[str, str], None]] = []
        root.mkdir(parents=True, exist_ok=True)

    def free_slots(self) -> int:
        """Slots a session's launch could take now."""
        with self._lock:
            return self._free_for_sessions()

    def free_for_spares(self) -> int:
        """Slots a spare could take now: a free session slot or one of its own."""
        with self._lock:
            return self.size + self.spare_room - len(self._reserved) - len(self._browsers)

    def session_room(self, session_id: str | None = None) -> bool:
        """Whether a spare may become a session's browser: a session slot is free (or was reserved for it)."""
        with self._lock:
            return session_id in self._reserved or self._sessions_held() < self.size

    def _sessions_held(self) -> int:
        return len((self._reserved | self._browsers.keys()) - self._spares)

    def _free_for_sessions(self) -> int:
        taken = len(self._reserved) + len(self._browsers)
        return max(0, min(self.size - self._sessions_held(), self.size + self.spare_room - taken))

    def session_ids(self) -> list[str]:
        """Keys of browsers serving sessions, spares left out."""
        with self._lock:
            return [key for key in self._browsers if key not in self._spares]

    def keys(self) -> list[str]:
        """Keys of every browser held, spares included."""
        with self._lock:
            return list(self._browsers)

    def counts(self) -> dict[str, int]:
        """Slots by use; ``launching`` covers spares and sessions alike until their browser answers."""
        with self._lock:
            spares = sum(1 for key in self._browsers if key in self._spares)
            return {
                "slots": self.size,
                "spareSlots": self.spare_room,
                "free": self._free_for_sessions(),
                "warm": spares,
                "running": len(self._browsers) - spares,
                "launching": len(self._reserved),
            }

    def get(self, session_id: str) -> RunningBrowser | None:
        with self._lock:
            return self._browsers.get(session_id)

    def profile_dir(self, session_id: str) -> Path:
        return self.root / session_id

    def reserve(self, session_id: str, spare: bool = False) -> None:
        """Hold a slot for a launch about to start; idempotent for the same key."""
        with self._lock:
            if session_id in self._reserved or session_id in self._browsers:
                return
            if len(self._reserved) + len(self._browsers) >= self.size + self.spare_room:
                raise PoolFull(f"all {self.size + self.spare_room} browser slots of this worker are taken")
            if not spare and self._sessions_held() >= self.size:
                raise PoolFull(f"all {self.size} session slots of this worker are taken")
            self._reserved.add(session_id)
            if spare:
                self._spares.add(session_id)

    def unreserve(self, session_id: str) -> None:
        with self._lock:
            self._reserved.discard(session_id)
            if session_id not in self._browsers:
                self._spares.discard(session_id)

    def rekey(self, old: str, new: str) -> RunningBrowser | None:
        """Hold the browser of ``old`` under ``new`` (a spare handed to a session); None if absent.

        A slot reserved for ``new`` (its launch came through the shared queue) is
        given back: the browser brings its own. The PID file follows, so a
        restart still finds the processes. PoolFull when no session slot is free
        for ``new`` (:meth:`session_room`, asked before, can be overtaken).
        """
        with self._lock:
            if old not in self._browsers:
                return None
            if new not in self._reserved and self._sessions_held() >= self.size:
                raise PoolFull(f"all {self.size} session slots of this worker are taken")
            browser = self._browsers.pop(old)
            self._spares.discard(old)
            self._reserved.discard(new)
            self._browsers[new] = browser
            self._pid_file(old).rename(self._pid_file(new))
        for hook in self.rekey_hooks:
            hook(old, new)
        return browser

    def _pid_file(self, session_id: str) -> Path:
        return self.root / f"{session_id}.pids"

    def clean_leftovers(self) -> list[str]:
        """End what an earlier life of this worker left (killed before it could stop its browsers).

        Processes are found by the PIDs this pool recorded, checked against their
        start time so a reused PID is never killed; then any browser still running
        on a profile under this worker's own folder (one whose launch was cut short
        before its PID file was written); never by process name.
        """
        ended = []
        for pid_file in self.root.glob("*.pids"):
            record = json.loads(pid_file.read_text() or "{}")
            if isinstance(record, list):  # written before the profile was recorded beside the processes
                record = {"processes": record}
            procs = []
            for entry in record.get("processes", []):
                try:
                    proc = psutil.Process(entry["pid"])
                    if abs(proc.create_time() - entry["started"]) < 1:
                        procs.append(proc)
                except psutil.NoSuchProcess:
                    continue
            end_processes(process_tree(procs), grace=0)
            # A warm browser handed to a session keeps its own profile folder, named unlike the session.
            profile = Path(record.get("profile") or self.profile_dir(pid_file.stem))
            shutil.rmtree(profile, ignore_errors=True)
            shutil.rmtree(session_temp_dir(profile), ignore_errors=True)
            ended.append(pid_file.stem)
            pid_file.unlink()
        strays = self._unrecorded_browsers()
        if strays:
            end_processes(process_tree(strays), grace=0)
            ended.extend(f"pid {p.pid}" for p in strays)
        for leftover in self.root.iterdir():
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
                shutil.rmtree(session_temp_dir(leftover), ignore_errors=True)
        if ended:
            log.warning("ended browsers left by an earlier life of this worker: %s", ", ".join(ended))
        return ended

    def _unrecorded_browsers(self) -> list[psutil.Process]:
        """Processes started with a profile under this pool's folder, or with the temp dir of one as their TMPDIR.

        The profile finds a browser; the temp dir finds its ChromeDriver too, whose command line names no
        profile: a worker killed between ChromeDriver's start and the browser's (or before ChromeDriver was
        ended) leaves it listening on loopback, which must not outlive the launch (tasks/launchers/chromedriver.py).
        """
        prefix = f"--user-data-dir={self.root}/"
        temp_dirs = {str(session_temp_dir(folder)) for folder in self.root.iterdir() if folder.is_dir()}
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            with_profile = any(arg.startswith(prefix) for arg in proc.info["cmdline"] or ())
            if with_profile or (temp_dirs and _tmpdir(proc) in temp_dirs):
                found.append(proc)
        return found

    def acquire(
        self, session_id: str, flags: list[str], timeout: float, prepare: ProfileStep | None = None,
        spare: bool = False, env: Mapping[str, str] | None = None,
    ) -> RunningBrowser:
        """Start the browser in the key's slot (reserved here if not already).

        ``prepare`` fills the empty profile before Chromium starts (a context's snapshot); ``env`` is added to
        Chromium's environment.
        """
        with self._lock:
            if session_id in self._browsers:
                return self._browsers[session_id]
        self.reserve(session_id, spare)
        profile = self.profile_dir(session_id)
        try:
            profile.mkdir(parents=True, exist_ok=True)
            if prepare is not None:
                prepare(profile)
            browser = self.launcher.start(profile, flags, timeout, env or {})
        except BaseException:
            shutil.rmtree(profile, ignore_errors=True)
            shutil.rmtree(session_temp_dir(profile), ignore_errors=True)
            self.unreserve(session_id)
            for hook in self.failed_launch_hooks:
                hook(session_id)
            raise
        self._pid_file(session_id).write_text(json.dumps({
            "profile": str(profile),
            "processes": [{"pid": p.pid, "started": p.create_time()} for p in browser.tree()],
        }))
        with self._lock:
            self._reserved.discard(session_id)
            self._browsers[session_id] = browser
        log.info("%s: browser up on port %s", session_id, browser.port, extra=about_session(session_id))
        if not spare:
            for hook in self.cold_launch_hooks:
                hook(session_id)
        return browser

    def release(self, session_id: str, after_exit: ProfileStep | None = None) -> bool:
        """End the browser and delete its profile; False if this pool had no such browser.

        ``after_exit`` sees the profile once Chromium has exited and before it is
        deleted: the only moment a snapshot of it is consistent.
        """
        with self._lock:
            browser = self._browsers.pop(session_id, None)
            self._spares.discard(session_id)
        if browser is None:
            return False
        try:
            for hook in self.end_hooks:
                hook(session_id)
            self.launcher.stop(browser)
            if after_exit is not None:
                after_exit(browser.profile_dir)
        finally:
            shutil.rmtree(browser.profile_dir, ignore_errors=True)
            shutil.rmtree(session_temp_dir(browser.profile_dir), ignore_errors=True)
            self._pid_file(session_id).unlink(missing_ok=True)
            for hook in self.release_hooks:
                hook(session_id)
        log.info("%s: browser ended", session_id, extra=about_session(session_id))
        return True


def _tmpdir(proc: psutil.Process) -> str | None:
    """The process's TMPDIR, or None where it has ended or its environment is not ours to read."""
    try:
        return proc.environ().get("TMPDIR")
    except (psutil.Error, OSError):
        return None
