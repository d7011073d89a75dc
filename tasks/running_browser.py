"""One started Chromium as the worker holds it: where its debugger listens, its processes, its folders,
and how its process tree is ended so that nothing of a session outlives it.

Whichever launcher started it (tasks/launchers/), the rest of the worker sees only this.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from core.cdp import CdpConnection
from core.files import DOWNLOADS, UPLOADS
from tasks.browser_users import BrowserUser

#: How often a launch or a stop looks again (seconds): a port file, a CDP answer, a process gone.
POLL = 0.01
#: How long a browser's processes get to exit by themselves before they are killed (seconds).
EXIT_GRACE = 5.0
#: Seconds by which the platform's SIGTERM may reach a browser before its worker's handler runs and still count as
#: the one signal that stops both: a dyno restart signals every process at once, Chromium shuts down in ~0.2 s, and a
#: busy host delays the worker's handler. A browser that ended within this before its worker was told to stop ended
#: with it (tasks/moving.py moves its session); one that ended earlier ended by itself.
SIGNAL_SPREAD = 3.0


@dataclass
class RunningBrowser:
    profile_dir: Path
    port: int
    browser_path: str
    pids: list[int]
    handle: Any = field(repr=False)
    user: BrowserUser
    #: The process group the launcher started the browser's tree in (tasks/warm.py sets its niceness at once).
    pgid: int = 0
    #: Chromium's own browser process (not ChromeDriver's), watched to notice the browser exiting by itself.
    main: psutil.Process | None = field(default=None, repr=False)
    version: str = ""
    user_agent: str = ""
    #: ``Browser.getVersion``'s jsVersion and revision: /json/version's V8-Version and WebKit-Version.
    js_version: str = ""
    revision: str = ""
    #: When :meth:`exited` first found Chromium gone (monotonic): how long ago it ended, within the asker's interval
    #: (housekeeping asks every second). None while it runs.
    seen_gone_at: float | None = field(default=None, repr=False)

    @property
    def downloads_dir(self) -> Path:
        return session_temp_dir(self.profile_dir) / DOWNLOADS

    @property
    def uploads_dir(self) -> Path:
        return session_temp_dir(self.profile_dir) / UPLOADS

    def ws_url(self, host: str = "127.0.0.1") -> str:
        return f"ws://{host}:{self.port}{self.browser_path}"

    def tree(self) -> list[psutil.Process]:
        """Chromium's processes now: its own and its descendants (:func:`process_tree`)."""
        return process_tree([self.main] if self.main is not None else [])

    def exited(self) -> bool:
        """True once Chromium itself has gone: closed over CDP (``browser.close()``), crashed or killed. The first
        answer of True is remembered (:attr:`seen_gone_at`)."""
        gone = self.main is not None and not (self.main.is_running() and _running(self.main))
        if gone and self.seen_gone_at is None:
            self.seen_gone_at = time.monotonic()
        return gone

    def gone_before(self, moment: float) -> bool:
        """Whether Chromium was already found gone before ``moment`` (monotonic): it ended at least that long ago."""
        return self.exited() and self.seen_gone_at < moment


def session_temp_dir(profile_dir: Path) -> Path:
    """The TMPDIR of one browser and its ChromeDriver: they leave folders there when killed hard.

    Short on purpose (Chromium puts a Unix socket in it, 108 bytes at most) and
    named after the profile, so the pool removes it with the profile, even after a crash.
    """
    return Path(tempfile.gettempdir()) / f"bb-{profile_dir.name[-16:]}"


def process_tree(roots: list[psutil.Process]) -> list[psutil.Process]:
    """Each root still running and its descendants. Objects, not PID numbers: psutil tells a root whose process
    ended and whose PID another process took since (by its start time), where a number would name that other
    process, and its children, to be ended."""
    procs: list[psutil.Process] = []
    for root in roots:
        try:
            children = root.children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        procs.append(root)
        procs.extend(children)
    return procs


def own_processes(pids: list[int]) -> list[psutil.Process]:
    """Objects for processes this worker started and has not reaped (a PID stays theirs until then)."""
    found = []
    for pid in pids:
        try:
            found.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    return found


def _running(proc: psutil.Process) -> bool:
    """A zombie has exited: its parent (often PID 1, for Chromium's reparented children) reaps it in its own time."""
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_exit(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if _running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(POLL)
        alive = [p for p in alive if _running(p)]
    return alive


def end_processes(procs: list[psutil.Process], grace: float = EXIT_GRACE) -> None:
    """Wait for a clean exit, then kill what is left: nothing of a session outlives it."""
    alive = _wait_exit(procs, grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    _wait_exit(alive, EXIT_GRACE)


def close_browser(browser: RunningBrowser) -> None:
    """``Browser.close`` over CDP (Chromium writes its profile out), then whatever of its tree is left is ended."""
    procs = browser.tree()
    try:
        with CdpConnection(browser.ws_url(), timeout=2) as conn:
            conn.call("Browser.close")
    except Exception:  # already gone or wedged: the processes are ended below either way
        pass
    end_processes(procs)
