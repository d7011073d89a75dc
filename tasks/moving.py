"""Sessions that outlive their worker: saved on SIGTERM, relaunched by another worker with the same id and URLs.

Leaving (:meth:`Mover.leave`, from the worker's stop): the record moves to running+moving first (``begin_move``: its
CDP clients are closed with 1012 in that move, and a client connecting from then on waits in the relay), then the
open tabs' URLs and the cookies are read over CDP while the browser runs, Chromium ends cleanly, and its whole
profile is packed into the snapshot store under ``moves/<session id>/<version>/`` beside a small JSON of the tabs
and cookies (session cookies included: Chromium keeps those in memory only). A session with a context saves into
it too, as a stop would. Only then is the relaunch sent to the shared launch queue, which every worker consumes,
this one's successor under the same name included.

Arriving (:meth:`Mover.arrive`, the relaunch task): one worker claims the relaunch, launches a browser in the
unpacked profile (its proxy routed as at create), sets the cookies, opens the tabs, and writes its own browser's
address over the old one (``settle_move``): the connect token and live-view credentials are the record's, so the
``cdpUrl`` and live-view links stay as they were. What cannot move ends: a session past its timeout, one whose save
failed, one moved MOVE_LIMIT times within MOVE_WINDOW (``move_limit``, core/recovery.py).

The same relaunch brings back a lost worker's session from its last checkpoint (tasks/checkpoints.py saves it with
this module's :func:`save_state`; core/recovery.py begins that move).
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from celery import shared_task
from celery.exceptions import Reject

from core.cdp import CdpConnection, navigate_first_page
from core.cookies import merge_cookies, read_cookies, sort_key
from core.dispatch import RELAUNCH_TASK
from core.logs import session_fields
from core.recovery import MOVE_LIMIT, MOVE_WINDOW, moves_folder, recent_moves
from core.snapshots import SnapshotStore, new_version, pack_profile, unpack_profile
from core.states import SessionRecord, Status, StopReason
from tasks.browser import _running_fields, end_session
from tasks.chromium_flags import browser_flags
from tasks.pool import PoolFull
from tasks.profile_cookies import ProfileCookiesError, exited_cleanly, read_profile_cookies
from tasks.running_browser import RunningBrowser
from tasks.worker_task import WorkerTask

if TYPE_CHECKING:
    from tasks.worker import Worker

log = logging.getLogger(__name__)
CDP_TIMEOUT = 10.0
#: The blob names under a move's folder.
PROFILE_BLOB = "profile.tar.zst"
STATE_BLOB = "state.json"
#: A download still being written when the browser ended: Chromium's partial file.
PARTIAL_DOWNLOAD = ".crdownload"
DOWNLOAD_LOST = "a download in progress was lost when the session moved to another worker"
#: Seconds a relaunch refused here (no slot, another project's browsers) waits before it goes back to the queue.
REQUEUE_PAUSE = 1.0


@shared_task(name=RELAUNCH_TASK, base=WorkerTask, bind=True, acks_late=True)
def relaunch(self: WorkerTask, session_id: str, state: str) -> None:
    self.worker.mover.arrive(session_id, state)


class Mover:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        #: Sessions this worker has begun to move and not yet handed back: what the grace may cut short.
        self._leaving: set[str] = set()
        self._lock = threading.Lock()

    # -- leaving: the worker was told to stop ------------------------------------------
    def leave(self, session_id: str) -> bool:
        """Move the session away; False if it cannot move (the caller stops it as ``shutdown``). A session at its
        move limit is stopped here, as ``move_limit``."""
        worker = self.worker
        record = worker.store.sessions.get(session_id)
        browser = worker.pool.get(session_id)
        if not self._may_move(record, browser):
            return False
        now = time.time()
        moves = recent_moves(record, now)
        if len(moves) >= MOVE_LIMIT:
            log.warning("session %s: moved %d times within %.0f s; stopped instead of moved again", session_id,
                        len(moves), MOVE_WINDOW, extra=session_fields(record))
            end_session(worker, session_id, StopReason.MOVE_LIMIT)
            return True
        started = time.monotonic()
        try:
            tabs, cookies = self._read_state(session_id, browser)
        except Exception as error:
            log.warning("session %s: its tabs or cookies could not be read (%s); it stops instead of moving",
                        session_id, error, extra=session_fields(record))
            return False
        lost = {"downloadError": DOWNLOAD_LOST} if _downloading(browser.downloads_dir) else {}
        if worker.machine.begin_move(session_id, moves + [now], **lost) is None:
            return False
        with self._lock:
            self._leaving.add(session_id)
        try:
            self._hand_back(session_id, record, tabs, cookies, now, started)
        finally:
            with self._lock:
                self._leaving.discard(session_id)
        return True

    def _read_state(self, session_id: str, browser: RunningBrowser) -> tuple[list[str], list[dict] | None]:
        """The tabs' URLs and the cookies, over CDP while the browser runs.

        A platform that signals every process of the container at once (Heroku's dyno restarts) reaches the
        browser too, and Chromium shuts down on SIGTERM, closing its tabs: then the tabs are those its watch saw when
        the worker was signalled (tasks/session_watch.py ``hold``), and the cookies (None here) are found once it is
        down (:meth:`_cookies_left`). Raises when neither can say.
        """
        held = self.worker.session_watches.tabs(session_id)
        if held is not None and browser.exited():
            log.info("session %s: its browser ended by itself with its worker; moved from its profile",
                     session_id, extra={"session": session_id})
            return held, None
        try:
            tabs, cookies = read_tabs(browser), read_cookies_of(browser)
        except Exception as error:
            if held is None:
                raise
            log.info("session %s: its browser is shutting down by itself (%s); moved from its profile",
                     session_id, error, extra={"session": session_id})
            return held, None
        # Read while Chromium closed its tabs: the watch held them all.
        return (held if held is not None and len(held) > len(tabs) else tabs), cookies

    def _cookies_left(self, record: SessionRecord, profile: Path) -> list[dict]:
        """The cookies of a browser that ended by itself: what its profile holds (Chromium writes cookies to disk
        every 30 s or so, and its network service got the platform's SIGTERM too), under the last checkpoint's
        (session cookies included) where it has one: the profile's win where both have a cookie."""
        session_id = record["id"]
        cookies: dict[tuple, dict] = {}  # by core.cookies' key: one cookie per name, domain and path
        if state := record.get("checkpointState"):
            try:
                with self.worker.snapshots.open_blob(f"{state}/{STATE_BLOB}") as blob:
                    cookies.update((sort_key(c), c) for c in json.load(blob).get("cookies", []))
            except Exception as error:
                log.warning("session %s: its last checkpoint's cookies could not be read (%s)", session_id, error,
                            extra={"session": session_id})
        try:
            if exited_cleanly(profile):
                cookies.update((sort_key(c), c) for c in read_profile_cookies(profile))
        except ProfileCookiesError as error:
            log.warning("session %s: its profile's cookies could not be read (%s)", session_id, error,
                        extra={"session": session_id})
        return list(cookies.values())

    def cut_short(self) -> None:
        """The grace ran out with these sessions begun to move and not handed back (their browsers are ended next,
        with no save): each ends as ``shutdown`` rather than stay moving with no relaunch to come."""
        with self._lock:
            leaving = sorted(self._leaving)
        for session_id in leaving:
            log.warning("session %s: BROKER_SHUTDOWN_GRACE ran out while it was saved for its move; it ends",
                        session_id, extra={"session": session_id})
            try:
                self.worker.machine.finish_stop(session_id, StopReason.SHUTDOWN,
                                                "its worker's shutdown grace ran out while it was saved for a move")
            except Exception as error:
                log.warning("session %s: could not record its end (%s)", session_id, error,
                            extra={"session": session_id})

    def _hand_back(self, session_id: str, record: SessionRecord, tabs: list[str], cookies: list[dict] | None,
                   now: float, started: float) -> None:
        """The profile saved, then the relaunch sent; a failed save ends the session as ``shutdown``."""
        worker = self.worker
        state = f"{moves_folder(session_id)}/{new_version()}"
        problems: list[str] = []

        def after_exit(profile: Path) -> None:
            nonlocal cookies
            if cookies is None:
                cookies = self._cookies_left(record, profile)
            try:
                self._save(state, profile, {"tabs": tabs, "cookies": cookies, "savedAt": now})
            except Exception as error:
                log.exception("session %s: saving it for the move failed", session_id, extra=session_fields(record))
                problems.append(f"its state could not be saved for the move ({error})")
                return
            if record.get("contextId"):
                problem = worker.contexts.save(record["contextId"], session_id, profile, cookies)
                if problem:
                    log.warning("session %s: its context was not saved at the move: %s", session_id, problem,
                                extra=session_fields(record))

        worker.pool.release(session_id, after_exit=after_exit)
        if problems:
            worker.snapshots.delete_blobs(state)
            worker.machine.finish_stop(session_id, StopReason.SHUTDOWN, "; ".join(problems))
            return
        worker.store.sessions.update_running(session_id, {"moveState": state})
        worker.dispatcher.send_relaunch(session_id, state)
        log.info("session %s: saved in %.2f s (%d tabs, %d cookies) and handed back to the queue to move",
                 session_id, time.monotonic() - started, len(tabs), len(cookies or []), extra=session_fields(record))

    def _may_move(self, record: SessionRecord | None, browser: RunningBrowser | None) -> bool:
        """Movable, running here with its browser (live, or ended by itself with its worker: :meth:`_read_state`),
        and not past its timeout (that one ends as it would)."""
        return (record is not None and bool(record.get("movable")) and record["status"] == Status.RUNNING
                and not record.get("moving") and record.get("worker") == self.worker.queue
                and record.get("expiresEpoch", 0) > time.time() and browser is not None
                and record["id"] not in self.worker.closed_before_stop)

    def _save(self, state: str, profile: Path, saved: dict) -> None:
        with tempfile.TemporaryDirectory(dir=self._scratch()) as scratch:
            save_state(self.worker.snapshots, Path(scratch), state, profile, saved)

    def _scratch(self) -> Path:
        folder = self.worker.config.worker.state_dir / "scratch"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # -- arriving: the relaunch task ----------------------------------------------------
    def arrive(self, session_id: str, state: str) -> None:
        worker = self.worker
        record = worker.store.sessions.get(session_id)
        if record is None or not record.get("moving") or record.get("moveState") != state:
            log.info("session %s: relaunch skipped, it is not moving from %s", session_id, state,
                     extra={"session": session_id})
            return
        if record["status"] == Status.STOPPING:
            self._finish_stop_asked_meanwhile(session_id)
            worker.snapshots.delete_blobs(state)
            return
        if record["status"] != Status.RUNNING:
            worker.snapshots.delete_blobs(state)
            return
        if worker.shutting_down.is_set():
            raise Reject("this worker is stopping", requeue=True)
        if not worker.store.moves.claim_relaunch(session_id, state, worker.config.worker.launch_timeout + 60):
            log.info("session %s: another worker relaunches it", session_id, extra=session_fields(record))
            return
        if not worker.project_gate.admit(session_id, record["project"]):
            worker.store.moves.release_relaunch(session_id, state)
            time.sleep(REQUEUE_PAUSE)
            raise Reject("this worker serves another project now", requeue=True)
        try:
            browser = self._launch(session_id, state, record)
        except PoolFull:
            worker.project_gate.release(session_id)
            worker.store.moves.release_relaunch(session_id, state)
            time.sleep(REQUEUE_PAUSE)
            raise Reject("no free browser slot for a moving session", requeue=True) from None
        except Exception as error:
            log.exception("session %s: its relaunch after the move failed", session_id, extra=session_fields(record))
            worker.forwarders.stop(session_id)
            worker.project_gate.release(session_id)
            worker.machine.finish_stop(session_id, StopReason.ERROR, f"its relaunch after a move failed: {error}")
            worker.snapshots.delete_blobs(state)
            return
        worker.session_watches.begin(record, moved=True)
        fields = {**_running_fields(worker, browser, record), **worker.browser_options.start(session_id, browser, record),
                  "checkpointState": None, "checkpointedAt": None}
        for kept in ("expiresAt", "expiresEpoch"):  # its timeout runs from its create, not from the move
            fields.pop(kept)
        if worker.machine.settle_move(session_id, worker.queue, **fields) is None:
            log.info("session %s: stopped while it moved; ending the browser", session_id, extra={"session": session_id})
            worker.pool.release(session_id)
            self._finish_stop_asked_meanwhile(session_id)
        else:
            log.info("session %s: running again after its move", session_id, extra=session_fields(record))
        worker.snapshots.delete_blobs(state)

    def _finish_stop_asked_meanwhile(self, session_id: str) -> None:
        """A stop asked while the session moved (DELETE, timeout) went to its old worker's queue, which no longer
        holds a browser for it: the relaunch, which sees it first, finishes it (its state was saved at the move)."""
        record = self.worker.store.sessions.get(session_id)
        if record is not None and record["status"] == Status.STOPPING:
            self.worker.machine.finish_stop(session_id, StopReason(record["stopReason"]), None)

    def _launch(self, session_id: str, state: str, record: SessionRecord) -> RunningBrowser:
        """The browser in the saved profile, its cookies and tabs put back; raises PoolFull with no slot free."""
        worker = self.worker
        while True:
            try:
                worker.pool.reserve(session_id)
                break
            except PoolFull:
                if not worker.warm.make_room(session_id):
                    raise
        saved: dict = {}

        def unpack(profile: Path) -> None:
            with tempfile.TemporaryDirectory(dir=self._scratch()) as scratch:
                archive = Path(scratch) / PROFILE_BLOB
                with worker.snapshots.open_blob(f"{state}/{PROFILE_BLOB}") as blob, open(archive, "wb") as out:
                    shutil.copyfileobj(blob, out)
                unpack_profile(archive, profile)
                with worker.snapshots.open_blob(f"{state}/{STATE_BLOB}") as blob:
                    saved.update(json.load(blob))

        parts = worker.browser_options.launch_parts(record, worker.pool.profile_dir(session_id), unpack)
        flags = browser_flags(worker.config, worker.forwarders.route(record, worker.store, worker.secret_box)
                              + parts.flags)
        browser = worker.pool.acquire(session_id, flags, timeout=worker.config.worker.launch_timeout,
                                      prepare=parts.prepare, env=parts.env)
        worker.prepare_browser(session_id, browser)
        _put_back(browser, saved.get("cookies") or [], saved.get("tabs") or [], worker.config.worker.navigate_timeout)
        return browser


def save_state(snapshots: SnapshotStore, scratch: Path, state: str, profile: Path, saved: dict) -> int:
    """The profile packed and the tabs and cookies (``saved``) written under ``state``: a move's save and a
    checkpoint's alike. Returns the archive's size."""
    archive, about = scratch / PROFILE_BLOB, scratch / STATE_BLOB
    size = pack_profile(profile, archive)
    about.write_text(json.dumps(saved))
    snapshots.put_blob(f"{state}/{PROFILE_BLOB}", archive)
    snapshots.put_blob(f"{state}/{STATE_BLOB}", about)
    return size


def read_tabs(browser: RunningBrowser) -> list[str]:
    """The open pages' URLs, oldest first (Chromium lists the newest first)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{browser.port}/json/list", timeout=CDP_TIMEOUT) as answer:
        targets = json.load(answer)
    return [target["url"] for target in reversed(targets) if target.get("type") == "page"]


def read_cookies_of(browser: RunningBrowser) -> list[dict]:
    with CdpConnection(browser.ws_url(), timeout=CDP_TIMEOUT) as conn:
        return read_cookies(conn)


def _downloading(folder: Path) -> bool:
    try:
        return any(entry.name.endswith(PARTIAL_DOWNLOAD) for entry in folder.iterdir())
    except OSError:
        return False


def _put_back(browser: RunningBrowser, cookies: list[dict], tabs: list[str], timeout: float) -> None:
    """Cookies before any page loads; the first tab in the browser's first page, the others in new ones. A page
    that fails to load is still open at its URL, as it would be after a reload that failed."""
    if cookies:
        with CdpConnection(browser.ws_url(), timeout=CDP_TIMEOUT) as conn:
            merge_cookies(conn, cookies)
    pages = [url for url in tabs if url and url != "about:blank"]
    if not pages:
        return
    navigate_first_page(browser.ws_url(), pages[0], timeout)
    with CdpConnection(browser.ws_url(), timeout=CDP_TIMEOUT) as conn:
        for url in pages[1:]:
            conn.call("Target.createTarget", {"url": url})
