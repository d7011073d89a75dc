"""A context's state on the worker side: restored into a new profile, saved from an ended one.

Save order at stop (API.md): cookies read over CDP while the browser still runs
and kept in memory (nothing is written yet); Chromium ends cleanly (its SQLite
and LevelDB files are then consistent); the profile is packed and written whole
under a new version; only then do the context's pointer, its cookies and its
figures (cookieCount, snapshotBytes, lastSessionId, updatedAt) change, in one
Redis transaction, and only after that are old versions deleted. A failure or a
crash anywhere leaves all of them as they were: what the API says is what is saved.
"""
from __future__ import annotations

import logging
import os
import signal
import tempfile
import time
from pathlib import Path

from core.config import Config
from core.metrics import RESTORE, SAVE, SNAPSHOT_BYTES_BUCKETS, SNAPSHOT_SECONDS_BUCKETS
from core.store import Store
from core import test_hooks
from core.store.metrics import SNAPSHOT_BYTES, SNAPSHOT_SECONDS
from core.cdp import CdpConnection
from core.store.contexts import SaveRefused
from tasks.running_browser import RunningBrowser
from core.cookies import read_cookies
from core.snapshots import SnapshotError, SnapshotStore, new_version, pack_profile, unpack_profile

log = logging.getLogger(__name__)
CDP_TIMEOUT = 10.0


class ContextState:
    def __init__(self, config: Config, store: Store, snapshots: SnapshotStore,
                 hooks: test_hooks.Hooks | None = None) -> None:
        self.config = config
        self.hooks = hooks or test_hooks.load()
        self.store = store
        self.snapshots = snapshots
        self.scratch = config.worker.state_dir / "scratch"

    def _scratch_file(self) -> Path:
        self.scratch.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=self.scratch, suffix=".tar.zst")
        os.close(handle)
        return Path(name)

    def restore(self, context_id: str, profile: Path) -> None:
        """Unpack the snapshot in force into an empty profile; raises SnapshotError if it cannot be read."""
        record = self.store.contexts.get(context_id)
        if record is None:
            raise SnapshotError(f"context {context_id} no longer exists")
        version = record.get("snapshotVersion")
        if not version:
            return
        archive = self._scratch_file()
        started = time.monotonic()
        try:
            self.snapshots.get(context_id, version, archive)
            size = archive.stat().st_size
            unpack_profile(archive, profile)
        finally:
            archive.unlink(missing_ok=True)
        self._measure(RESTORE, time.monotonic() - started, size)
        log.info("context %s: restored snapshot %s (%d bytes)", context_id, version, size)

    def read_cookies(self, browser: RunningBrowser) -> list[dict]:
        """The running browser's cookies (httpOnly and session cookies included), for :meth:`save` to commit."""
        with CdpConnection(browser.ws_url(), timeout=CDP_TIMEOUT) as conn:
            return read_cookies(conn)

    def save(self, context_id: str, session_id: str, profile: Path, cookies: list[dict]) -> str | None:
        """Snapshot an ended browser's profile and commit it with ``cookies``; the reason it was not saved, else None.

        Not saved, nothing of the context changed: not its snapshot, not its cookies, not its figures.
        """
        archive = self._scratch_file()
        started = time.monotonic()
        try:
            size = pack_profile(profile, archive)
            if size > self.config.snapshots.max_bytes:
                return f"profile archive is {size} bytes, over the {self.config.snapshots.max_bytes} byte limit; previous snapshot kept"
            version = new_version()
            self._test_kill("before-archive-write")
            self.snapshots.put(context_id, version, archive)
            self._test_kill("after-archive-write")
            try:
                self.store.contexts.commit_save(context_id, session_id, version, size, cookies,
                                                self.config.snapshots.keep)
            except SaveRefused as refused:
                self.snapshots.delete(context_id, version)
                log.warning("session %s: context %s not saved: %s", session_id, context_id, refused,
                            extra={"session": session_id})
                return str(refused)
            self._measure(SAVE, time.monotonic() - started, size)
            self._delete_unused(context_id)
            log.info("session %s: context %s saved as %s (%d bytes, %d cookies)", session_id, context_id, version,
                     size, len(cookies), extra={"session": session_id})
            return None
        except Exception as error:
            log.exception("session %s: context %s snapshot failed", session_id, context_id,
                          extra={"session": session_id})
            return f"snapshot failed: {error}; previous snapshot kept"
        finally:
            archive.unlink(missing_ok=True)

    def _measure(self, operation: str, seconds: float, size: int) -> None:
        """Into the store, so /metrics shows it wherever this worker runs; a failure to count fails nothing."""
        try:
            self.store.metrics.observe(SNAPSHOT_SECONDS, operation, seconds, SNAPSHOT_SECONDS_BUCKETS)
            self.store.metrics.observe(SNAPSHOT_BYTES, operation, size, SNAPSHOT_BYTES_BUCKETS)
        except Exception as error:
            log.warning("could not record a snapshot %s's figures (%s)", operation, error)

    def _delete_unused(self, context_id: str) -> None:
        """Versions beyond the kept ones, including orphans of saves that crashed before their pointer moved."""
        record = self.store.contexts.get(context_id)
        if record is None:
            return
        kept = set(record.get("snapshotVersions", []))
        for version in self.snapshots.versions(context_id):
            if version not in kept:
                self.snapshots.delete(context_id, version)

    def _test_kill(self, point: str) -> None:
        if self.hooks.kill_at == point:
            log.warning("BROKER_TEST_KILL_AT=%s: killing this worker now", point)
            os.kill(os.getpid(), signal.SIGKILL)
