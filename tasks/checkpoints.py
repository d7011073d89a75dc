"""Checkpoints: a running session's state saved every ``checkpointInterval`` seconds, if it changed, so that a lost
worker's session can be relaunched from it elsewhere (core/recovery.py).

A checkpoint is what a move saves (tasks/moving.py: the whole profile, the tabs' URLs, the cookies, session ones
included), in the same place (``moves/<session id>/<version>/``), but taken while the browser runs: the profile is
copied file by file into scratch first, then packed from the copy, so the browser is never stopped or paused. The
copy is what a crash at that instant would have left on disk (Chromium recovers its databases from that, as after
a crash); cookies and tabs come exactly from CDP. LocalStorage reaches the disk 5 s or more after a page writes it
(Chromium batches its commits, at most ~60 an hour per origin), so a checkpoint holds it once written.

"If it changed": each due session's fingerprint (every kept profile file's name, size and mtime, plus the tabs and
cookies) is compared with the one of its last checkpoint; an idle session costs a directory walk and one CDP call
per interval. Saves run one at a time on one thread per worker: their CPU (copy, zstd) is bounded to one core.

The checkpoint replaces the previous one only once written whole and accepted by the record (``commit_checkpoint``:
the session still runs here, not moving); the previous is deleted then. When a session's browser ends here, an
ended session's saved states all go; one that moved away loses only its last checkpoint from here (:meth:`forget`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from core.logs import about_session
from core.recovery import moves_folder
from core.snapshots import SKIPPED_DIRS, SKIPPED_FILES, SKIPPED_PREFIXES, new_version
from core.states import Status
from tasks.moving import read_cookies_of, read_tabs, save_state
from tasks.running_browser import RunningBrowser

if TYPE_CHECKING:
    from tasks.worker import Worker

log = logging.getLogger(__name__)
#: How often the thread looks for due sessions (seconds).
TICK = 1.0


@dataclass
class Plan:
    """One session's checkpoints on this worker."""

    interval: int
    due: float
    fingerprint: str | None = None
    #: The last checkpoint saved here and accepted by the record.
    state: str | None = None


class Checkpoints:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._plans: dict[str, Plan] = {}
        #: Held while a save runs, and by a session's release (its last checkpoint is deleted after any save of it).
        self._saving = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        worker.pool.release_hooks.append(self.forget)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="checkpoints", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """No checkpoint starts after this; one under way finishes (or is refused by its record: the session moves)."""
        self._stopping.set()

    def forget(self, session_id: str) -> None:
        """The session's browser ended here. Ended for good: every saved state of it goes (a checkpoint whose save
        failed halfway included). Moved away or running elsewhere: only the last checkpoint from here, unless it is
        the one the session is being relaunched from (this worker was declared lost while it still ran)."""
        with self._saving:
            plan = self._plans.pop(session_id, None)
        if plan is None or not plan.interval:
            return
        try:
            record = self.worker.store.sessions.get(session_id)
            if record is None or record["status"] in (Status.STOPPING, Status.STOPPED):
                self.worker.snapshots.delete_blobs(moves_folder(session_id))
            elif plan.state is not None and record.get("moveState") != plan.state:
                self.worker.snapshots.delete_blobs(plan.state)
        except Exception:
            log.exception("session %s: its checkpoints could not be deleted (the orphan sweep deletes them once its "
                          "record is gone)", session_id, extra=about_session(session_id))

    def _run(self) -> None:
        while not self._stopping.wait(TICK):
            for session_id in self.worker.pool.session_ids():
                if self._stopping.is_set():
                    return
                try:
                    self.tick(session_id, time.monotonic())
                except Exception:
                    log.exception("session %s: its checkpoint failed; the previous one stays", session_id,
                                  extra=about_session(session_id))

    def tick(self, session_id: str, now: float) -> None:
        """Save the session's checkpoint if due and changed."""
        plan = self._plans.get(session_id) or self._plan(session_id, now)
        if plan is None or not plan.interval or now < plan.due:
            return
        plan.due = now + plan.interval
        browser = self.worker.pool.get(session_id)
        if browser is None or browser.exited():
            return
        with self._saving:
            if self._plans.get(session_id) is plan:  # not released meanwhile
                self._save_if_changed(session_id, plan, browser)

    def _plan(self, session_id: str, now: float) -> Plan | None:
        """Read once, when the session first runs here: its interval never changes."""
        record = self.worker.store.sessions.get(session_id)
        if (record is None or record["status"] != Status.RUNNING or record.get("moving")
                or record.get("worker") != self.worker.queue):
            return None  # still launching here, or being relaunched: looked at again next tick
        interval = int(record.get("checkpointInterval") or 0)
        plan = self._plans[session_id] = Plan(interval, due=now + interval)
        return plan

    def _save_if_changed(self, session_id: str, plan: Plan, browser: RunningBrowser) -> None:
        """``checkpointedAt`` is when the tabs and cookies were read, to the millisecond. A save that fails halfway
        deletes what it wrote; the previous checkpoint stays in force."""
        read_at = datetime.now(timezone.utc)
        tabs, cookies = read_tabs(browser), read_cookies_of(browser)
        fingerprint = profile_fingerprint(browser.profile_dir, tabs, cookies)
        if fingerprint == plan.fingerprint:
            return
        started, cpu = time.monotonic(), time.thread_time()
        state = f"{moves_folder(session_id)}/{new_version()}"
        saved_at = read_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        try:
            with tempfile.TemporaryDirectory(dir=self._scratch()) as scratch:
                copy = Path(scratch) / "profile"
                copy_live_profile(browser.profile_dir, copy)
                size = save_state(self.worker.snapshots, Path(scratch), state, copy,
                                  {"tabs": tabs, "cookies": cookies, "savedAt": read_at.timestamp()})
            committed, previous = self.worker.store.moves.commit_checkpoint(session_id, self.worker.queue, state,
                                                                            saved_at)
        except BaseException:
            self.worker.snapshots.delete_blobs(state)
            raise
        if not committed:
            self.worker.snapshots.delete_blobs(state)
            return
        if previous and previous != state:
            self.worker.snapshots.delete_blobs(previous)
        plan.fingerprint, plan.state = fingerprint, state
        log.info("session %s: checkpoint saved in %.2f s (CPU %.2f s, %d bytes, %d tabs, %d cookies)", session_id,
                 time.monotonic() - started, time.thread_time() - cpu, size, len(tabs), len(cookies),
                 extra=about_session(session_id))

    def _scratch(self) -> Path:
        folder = self.worker.config.worker.state_dir / "scratch"
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def _kept(entry: os.DirEntry) -> bool:
    """core.snapshots' rule (no caches, locks or symlinks), on a directory entry: no extra stat per file."""
    if entry.is_symlink():
        return False
    if entry.is_dir():
        return entry.name not in SKIPPED_DIRS
    return entry.name not in SKIPPED_FILES and not entry.name.startswith(SKIPPED_PREFIXES)


def _walk(profile: Path):
    """(relative path, DirEntry) of every kept file and folder under ``profile``; entries vanishing are skipped."""
    stack = [profile]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if not _kept(entry):
                continue
            yield os.path.relpath(entry.path, profile), entry
            if entry.is_dir():
                stack.append(Path(entry.path))


def profile_fingerprint(profile: Path, tabs: list[str], cookies: list[dict]) -> str:
    """Changes when any kept file's size or mtime does, or the tabs or cookies do (session cookies live in memory)."""
    digest = hashlib.blake2b(digest_size=16)
    for relative, entry in _walk(profile):
        try:
            stat = entry.stat()
        except OSError:
            continue
        digest.update(f"{relative}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    digest.update(json.dumps([tabs, cookies], sort_keys=True).encode())
    return digest.hexdigest()


def copy_live_profile(profile: Path, target: Path) -> None:
    """The kept files as they are now; a file removed mid-copy is left out (Chromium rewrites some by rename)."""
    target.mkdir()
    for relative, entry in _walk(profile):
        destination = target / relative
        try:
            if entry.is_dir():
                destination.mkdir(exist_ok=True)
            elif entry.is_file():
                shutil.copyfile(entry.path, destination)
        except FileNotFoundError:
            continue
