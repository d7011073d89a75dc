"""Files in the snapshot store whose record is gone, deleted by the web process after BROKER_ORPHAN_FILES_GRACE.

A context's snapshots (``<context id>/``), a stopped session's downloads (``downloads/<session id>/``) and its
recording (``recordings/<session id>/``) and its move's or checkpoints' saved states (``moves/<session id>/``) are
reached only through their records in Redis. A Redis that lost its
data (restarted empty, or failed over to a replica without the last writes) leaves them where no API call reaches
or deletes them. Every web process looks
through the store every :func:`sweep_interval`; a folder whose record was missing at every look for a whole grace
is deleted, and one whose record is back meanwhile (Redis restored from a backup) is kept. A look that cannot read
Redis counts for nothing. Only folders named as the broker names them are looked at: anything else kept beside
them stays.

A folder is written only while its record exists (a context is created before its first snapshot; a session is
stopping while its downloads are archived), except the downloads a worker archives for a browser whose record is
already gone (tasks/lifecycle.py): those are kept for the grace too, then deleted.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from core.download_archive import PREFIX as DOWNLOADS
from core.recordings import PREFIX as RECORDINGS
from core.recovery import MOVES
from core.snapshots import SnapshotStore
from core.store import Store

log = logging.getLogger(__name__)
CONTEXT_FOLDER = re.compile(r"ctx_[0-9a-f]{32}")
SESSION_FOLDER = re.compile(r"ses_[0-9a-f]{32}")


def sweep_interval(grace: float) -> float:
    """A quarter of the grace, between 1 s and a minute: a listing of the whole store (one S3 request per
    thousand folders) is not repeated more often than that."""
    return min(60.0, max(1.0, grace / 4))


class OrphanFiles:
    def __init__(self, blobs: SnapshotStore, store: Store, grace: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.blobs = blobs
        self.store = store
        self.grace = grace
        self.clock = clock
        #: Folders (their path in the store) whose record was missing at every look since then.
        self._missing_since: dict[str, float] = {}

    def sweep(self) -> list[str]:
        """One look; the folders deleted."""
        contexts = [name for name in self.blobs.folders() if CONTEXT_FOLDER.fullmatch(name)]
        sessions = [name for name in self.blobs.folders(DOWNLOADS) if SESSION_FOLDER.fullmatch(name)]
        recorded = [name for name in self.blobs.folders(RECORDINGS) if SESSION_FOLDER.fullmatch(name)]
        moved = [name for name in self.blobs.folders(MOVES) if SESSION_FOLDER.fullmatch(name)]
        recorded_contexts = self.store.contexts.existing(contexts)
        recorded_sessions = self.store.sessions.existing(sorted({*sessions, *recorded, *moved}))
        missing = [name for name in contexts if name not in recorded_contexts]
        missing += [f"{DOWNLOADS}/{name}" for name in sessions if name not in recorded_sessions]
        missing += [f"{RECORDINGS}/{name}" for name in recorded if name not in recorded_sessions]
        missing += [f"{MOVES}/{name}" for name in moved if name not in recorded_sessions]
        now = self.clock()
        self._missing_since = {path: self._missing_since.get(path, now) for path in missing}
        swept = []
        for path, since in list(self._missing_since.items()):
            if now - since < self.grace:
                continue
            self.blobs.delete_blobs(path)
            del self._missing_since[path]
            swept.append(path)
            log.warning("%s: deleted from the snapshot store, its record gone for %.0f s (BROKER_ORPHAN_FILES_GRACE)",
                        path, now - since)
        return swept


def sweep_forever(orphans: OrphanFiles, sleep: Callable[[float], object] = time.sleep) -> None:
    """The web process's loop (on a greenlet, with gevent's sleep); it survives Redis outages."""
    interval = sweep_interval(orphans.grace)
    while True:
        try:
            orphans.sweep()
        except Exception as error:
            log.warning("looking for snapshot-store files whose record is gone failed (%s); retrying", error)
        sleep(interval)
