"""A stopped session's downloads, kept in the snapshot store (file:// or s3://) for BROKER_DOWNLOAD_RETENTION.

The worker copies them there once the browser has exited (tasks/browser.py),
before the session is ``stopped``; the web process reads them from there, so
they stay readable when the worker is on another host or gone. Each file is its
own blob (``downloads/<session id>/<name>``), so one can be streamed without the
others. The stop schedules their deletion (core.states ``EXPIRE_DOWNLOADS``);
:func:`sweep_forever` carries it out, in the web process.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from core.files import COMPLETE, list_folder
from core.snapshots import SnapshotStore
from core.store import Store

log = logging.getLogger(__name__)
PREFIX = "downloads"
#: Seconds between two sweeps.
SWEEP_INTERVAL = 2.0


class DownloadArchive:
    def __init__(self, blobs: SnapshotStore) -> None:
        self.blobs = blobs

    @staticmethod
    def _folder(session_id: str) -> str:
        return f"{PREFIX}/{session_id}"

    def save(self, session_id: str, folder: Path) -> list[dict]:
        """Copy the complete files of ``folder``; what was copied, as the API lists it (unfinished ones are dropped)."""
        saved = []
        for entry in list_folder(folder):
            if entry["state"] != COMPLETE:
                continue
            self.blobs.put_blob(f"{self._folder(session_id)}/{entry['name']}", folder / entry["name"])
            saved.append(entry)
        return saved

    def open(self, session_id: str, name: str) -> BinaryIO:
        return self.blobs.open_blob(f"{self._folder(session_id)}/{name}")

    def delete(self, session_id: str) -> None:
        self.blobs.delete_blobs(self._folder(session_id))

    def sweep(self, store: Store) -> list[str]:
        """Delete every archive whose retention ran out; the sessions swept."""
        swept = store.sessions.take_expired_downloads()
        for session_id in swept:
            self.delete(session_id)
            log.info("session %s: archived downloads deleted (BROKER_DOWNLOAD_RETENTION)", session_id)
        return swept


def sweep_forever(archive: DownloadArchive, store: Store, sleep: Callable[[float], object] = time.sleep) -> None:
    while True:
        try:
            archive.sweep(store)
        except Exception as error:
            log.warning("sweeping archived downloads failed (%s); retrying", error)
        sleep(SWEEP_INTERVAL)
