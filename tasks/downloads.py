"""Keeps a session's downloads in its own folder and under its size cap, from the worker, for the browser's whole life.

Where a download lands is decided in three places, and all three name the session's folder:

1. **The profile's preferences** (tasks/chromium_flags.py ``start_on_blank``): ``download.default_directory``.
   Chromium uses it whenever no CDP client has set a behaviour, and falls back to it for the default
   browser context when the client that set one disconnects (CDP's setting lives only as long as the
   connection that made it: measured on Chromium 156).
2. **This guard**: one CDP connection per browser, open until the browser ends, which sets
   ``Browser.setDownloadBehavior`` to the folder for the default context and for every new browser
   context as soon as its first target appears (``Target.setDiscoverTargets``). A context created over
   CDP has no download behaviour otherwise: its downloads never finish.
3. **The relay** (proxy/download_rewrite.py): every ``Browser.setDownloadBehavior`` or
   ``Page.setDownloadBehavior`` a client sends (Puppeteer's ``createBrowserContext({downloadBehavior})``,
   Playwright's own call on ``connect_over_cdp``) reaches Chromium with ``downloadPath`` replaced by the
   session's folder. Clients reach a browser only through the relay (Chromium listens on loopback, the
   gateway admits only the web process), so no client call can point Chromium elsewhere; without that,
   Chromium would create any folder the browser's user may write (``/tmp/…``) and write there.

The guard also enforces BROKER_DOWNLOAD_MAX_BYTES: it asks for download events, and a download that
would take the folder past the cap (by its announced size, or by the bytes it has written so far) is
cancelled (Chromium deletes the partial file) and reported once through ``on_over``. A download can still
finish before its cancel lands (a fast one, or a busy worker: a local 3 MiB download did in ~1 run of 20
beside CPU hogs, with the guard before the CDP client's change as with it): it is then removed, as the
cancel would have.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from core.cdp import CdpConnection
from core.files import folder_bytes, opened_folder
from tasks.running_browser import RunningBrowser

log = logging.getLogger(__name__)

#: Seconds between looks at the folder's size while downloads run (events may be rarer than this).
POLL = 0.5
SET_BEHAVIOR = "Browser.setDownloadBehavior"


class DownloadGuard:
    def __init__(self, browser: RunningBrowser, cap: int, on_over: Callable[[str], None]) -> None:
        self.folder: Path = browser.downloads_dir
        self.cap = cap
        self.on_over = on_over
        self._contexts: set[str] = set()
        #: In-progress downloads: guid → (bytes announced, 0 when unknown; bytes received so far).
        self._running: dict[str, tuple[int, int]] = {}
        self._cancelled: set[str] = set()
        self._cdp = CdpConnection(browser.ws_url(), timeout=10)
        self._cdp.subscribe(self._on)
        self._cdp.send(SET_BEHAVIOR, {"behavior": "allow", "downloadPath": str(self.folder), "eventsEnabled": True})
        self._cdp.send("Target.setDiscoverTargets", {"discover": True})
        self._thread = threading.Thread(target=self._run, name="download-guard", daemon=True)
        self._thread.start()

    def subscribe(self, callback: Callable[[dict], None]) -> None:
        """``callback(event)`` for each download event (begin, progress) the guard reads."""
        self._cdp.subscribe(callback, "Browser.downloadWillBegin", "Browser.downloadProgress")

    def close(self) -> None:
        try:
            self._cdp.abort()
        except Exception:  # already gone with the browser
            pass

    def _run(self) -> None:
        """Until the browser ends: events as they come (``_on``), and the folder's size every POLL besides."""
        while self._cdp.listen(POLL):
            if self._running:
                self._check_size()

    def _on(self, message: dict) -> None:
        """Each event, on the guard's thread; a download's size is looked at as soon as it is announced."""
        method, params = message["method"], message.get("params", {})
        if method in ("Target.targetCreated", "Target.targetInfoChanged"):
            context = params.get("targetInfo", {}).get("browserContextId")
            if context and context not in self._contexts:
                self._contexts.add(context)
                self._cdp.send(SET_BEHAVIOR, {"behavior": "allow", "downloadPath": str(self.folder),
                                              "browserContextId": context, "eventsEnabled": True})
        elif method == "Browser.downloadWillBegin":
            self._running[params["guid"]] = (0, 0)
        elif method == "Browser.downloadProgress":
            guid = params["guid"]
            if params.get("state") != "inProgress":
                self._running.pop(guid, None)
                if params.get("state") == "completed" and guid in self._cancelled:
                    self._remove(params.get("filePath"))
            elif guid in self._running:
                self._running[guid] = (params.get("totalBytes") or 0, params.get("receivedBytes") or 0)
        if self._running:
            self._check_size()

    def _check_size(self) -> None:
        """Announced sizes count in full before a byte is written: a download that cannot fit is stopped at once."""
        on_disk = folder_bytes(self.folder)
        for guid, (announced, received) in list(self._running.items()):
            if guid in self._cancelled or on_disk + max(announced - received, 0) <= self.cap:
                continue
            self._cancelled.add(guid)
            self._running.pop(guid, None)
            for context in [None, *self._contexts]:
                self._cdp.send("Browser.cancelDownload", {"guid": guid, **({"browserContextId": context} if context else {})})
            self.on_over(f"a download was cancelled: the session's downloads may hold at most {self.cap} bytes "
                         "(BROKER_DOWNLOAD_MAX_BYTES)")

    def _remove(self, file_path: str | None) -> None:
        """A cancelled download that completed anyway: its file goes (only from the session's folder, never
        through a link: the folder is the browser's user's)."""
        if not file_path or Path(file_path).parent != self.folder:
            log.warning("a cancelled download completed at %r, outside %s: not removed", file_path, self.folder)
            return
        try:
            with opened_folder(self.folder) as folder:
                os.unlink(Path(file_path).name, dir_fd=folder)
        except OSError as error:
            log.warning("a cancelled download that completed could not be removed: %s", error)


class DownloadGuards:
    """The guards of one worker's browsers, by session id, or by a warm browser's key until it is handed over.

    A warm browser gets its guard when it is ready, so a hand-over does not wait for a CDP connection.
    """

    def __init__(self, cap: int, on_over: Callable[[str, str], None]) -> None:
        self.cap = cap
        self.on_over = on_over
        self._lock = threading.Lock()
        self._guards: dict[str, DownloadGuard] = {}
        #: Told of every download event with the key its guard has then (the session's event log).
        self.listeners: list[Callable[[str, dict], None]] = []

    def start(self, key: str, browser: RunningBrowser) -> None:
        """``key``: the session's id, or a warm browser's key until ``rekey`` gives it the session's."""
        reported: list[str] = []
        guard: DownloadGuard | None = None

        def over(message: str) -> None:
            with self._lock:
                owner = next((k for k, g in self._guards.items() if g is guard), None)
            if owner is not None and not reported:
                reported.append(message)
                log.warning("session %s: %s", owner, message)
                self.on_over(owner, message)

        guard = DownloadGuard(browser, self.cap, over)
        for listener in self.listeners:
            guard.subscribe(lambda event, tell=listener: tell(self._key_of(guard), event))
        with self._lock:
            old = self._guards.pop(key, None)
            self._guards[key] = guard
        if old is not None:
            old.close()

    def _key_of(self, guard: DownloadGuard | None) -> str | None:
        with self._lock:
            return next((k for k, g in self._guards.items() if g is guard), None)

    def rekey(self, old: str, new: str) -> None:
        with self._lock:
            guard = self._guards.pop(old, None)
            if guard is not None:
                self._guards[new] = guard

    def stop(self, session_id: str) -> None:
        with self._lock:
            guard = self._guards.pop(session_id, None)
        if guard is not None:
            guard.close()
