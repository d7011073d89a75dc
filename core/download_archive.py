"""A stopped session's downloads, kept in the snapshot store (file:// or s3://) for BROKER_DOWNLOAD_RETENTION.

The worker copies them there once the browser has exited (tasks/browser.py),
before the session is ``stopped``, without following links (a linked folder is
refused, a linked file or one not the folder owner's is skipped); the web
process reads them from there, so they stay readable when the worker is on
another host or gone. Each file is its
own blob (``downloads/<session id>/<name>``), so one can be streamed without the
others. The stop schedules their deletion (core.states ``EXPIRE_DOWNLOADS``);
:func:`sweep_forever` carries it out, in the web process.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from core.files import COMPLETE, UnsafeFile, describe, list_folder, open_file, open_folder
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

    def save(self, session_id: str, folder: Path, owner: int | None = None) -> list[dict]:
        """Copy the complete files of ``folder``; what was copied, as the API lists it (unfinished ones are dropped).

        The folder is opened without following a link (and, with ``owner``, must be that uid's): a linked one
        raises UnsafeFolder and nothing is copied; a missing one copies nothing. Each file is opened relative to
        it with O_NOFOLLOW and handed to the store as ``/proc/self/fd/<n>``, which reopens that very file, so
        a link put in place of a name (before or during the copy) is never read.
        """
        try:
            directory = open_folder(folder, owner)
        except FileNotFoundError:
            return []
        saved = []
        try:
            for entry in list_folder(directory):
                if entry["state"] != COMPLETE:
                    continue
                try:
                    fd = open_file(directory, entry["name"])
                except (FileNotFoundError, UnsafeFile) as error:
                    log.warning("session %s: download %s not archived (%s)", session_id, entry["name"], error)
                    continue
                try:
                    self.blobs.put_blob(f"{self._folder(session_id)}/{entry['name']}", Path(f"/proc/self/fd/{fd}"))
                    saved.append(describe(entry["name"], os.fstat(fd)))
                finally:
                    os.close(fd)
        finally:
            os.close(directory)
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
