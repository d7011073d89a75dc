"""Launch and stop tasks: thin, they move the session record and call the pool.

Both are idempotent, keyed by the session id: a launch acts only on a pending
record it wins, a stop of a browser this worker no longer has only records the end.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from celery import shared_task
from celery.exceptions import Reject
from redis.exceptions import RedisError

from core.browser_link import local_host_id
from core.cdp import navigate_first_page
from core.dispatch import LAUNCH_TASK, STOP_TASK, can_use_warm
from core.ids import iso_after
from core.logs import session_fields
from core.store.metrics import CREATE_PATHS
from core.snapshots import SnapshotError, SnapshotNotHere
from core.states import SessionRecord, Status, StopReason
from tasks.chromium_flags import browser_flags
from tasks.running_browser import RunningBrowser
from tasks.pool import PoolFull
from tasks.profile_cookies import ProfileCookiesError, exited_cleanly, read_profile_cookies
from tasks.worker_task import WorkerTask

if TYPE_CHECKING:
    from tasks.worker import Worker

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Seconds a launch refused by the project gate waits before it goes back to the queue.
OTHER_PROJECT_PAUSE = 1.0


@shared_task(name=LAUNCH_TASK, base=WorkerTask, bind=True, acks_late=True)
def launch(self: WorkerTask, session_id: str, warm: str | None = None) -> None:
    launch_session(self.worker, session_id, warm)


def launch_session(worker: Worker, session_id: str, warm: str | None = None) -> None:
    """Whatever the launch did not see through (Redis failed under it) gives back the slot reserved at receipt and
    the project gate, unless a browser holds them: that one's record decides its fate (tasks.lifecycle)."""
    try:
        _launch(worker, session_id, warm)
    except Reject:
        raise
    except BaseException:
        if worker.pool.get(session_id) is None:
            worker.intake.give_back(session_id)
            worker.project_gate.release(session_id)
        raise


def _launch(worker: Worker, session_id: str, warm: str | None) -> None:
    """Hands the session a warm browser when it can, else launches one in the slot reserved at receipt.

    ``warm`` names this worker's warm browser whose offer the create took (sent
    to this worker's own queue, no slot reserved: the warm browser holds one). A
    create that came through the shared queue and needs nothing special takes
    any warm browser still on offer (its reserved slot comes back); the rest
    launch cold. A redelivered launch finds its session no longer pending; a
    launch whose create gave up (its deadline passed, core.states) is dropped,
    and what the create held given back, whether or not the create could say so.
    """
    record, create_waits = worker.store.sessions.get_for_launch(session_id)
    if record is None or record["status"] != Status.PENDING or not create_waits:
        worker.intake.give_back(session_id)
        if record is not None and record["status"] == Status.PENDING:
            drop(worker, session_id)
            log.info("session %s: launch dropped, its create gave up", session_id, extra=session_fields(record))
        else:
            log.info("session %s: launch skipped, the session is no longer pending", session_id,
                     extra={"session": session_id})
        return
    log.info("session %s: launch taken%s", session_id, f" for warm browser {warm}" if warm else "",
             extra=session_fields(record))
    if not worker.project_gate.admit(session_id, record["project"]):
        return _not_for_this_worker(worker, session_id, record, warm)
    browser = None
    if warm is not None:
        browser = worker.warm.take(warm, session_id)
        if browser is None:
            worker.project_gate.release(session_id)
            log.info("session %s: warm browser %s is gone, or every session slot is taken; the launch goes to the "
                     "shared queue", session_id, warm,
                     extra=session_fields(record))
            if worker.store.sessions.join_line(session_id):
                worker.dispatcher.send_launch(session_id)
            return
    elif can_use_warm(record):
        browser = worker.warm.take_any(session_id)
        if browser is not None:
            worker.intake.reconcile()
    if browser is not None and not record["url"]:
        try:
            worker.session_watches.begin(record)
            options = worker.browser_options.start(session_id, browser, record)
            worker.session_watches.settle(session_id)
            fields = {**_running_fields(worker, browser, record), **options}
            _finish(worker, session_id, _decided(
                worker, session_id, lambda: worker.machine.hand_over(session_id, worker.queue, **fields)))
        finally:
            worker.warm.handed_over()
        worker.store.metrics.count(CREATE_PATHS, worker.intake.path_of_spare(session_id))
        return
    if browser is not None:  # a first page to load: the create waits for that, not for these
        worker.warm.handed_over()
        worker.store.metrics.count(CREATE_PATHS, worker.intake.path_of_spare(session_id))
    if browser is None:
        _reserve_slot(worker, session_id)
    claimed = worker.machine.claim(session_id, worker.queue)
    if claimed is None:
        if browser is None:
            worker.intake.give_back(session_id)
            worker.project_gate.release(session_id)
        else:
            worker.pool.release(session_id)
        drop(worker, session_id)
        log.info("session %s: launch skipped, the create already gave up", session_id, extra=session_fields(record))
        return
    record = claimed
    worker.store.sessions.push_launch_event(session_id, {"event": "claimed"})
    if browser is None:
        browser = _launch_cold(worker, session_id, record)
        if browser is None:
            return
        worker.prepare_browser(session_id, browser)
    worker.session_watches.begin(record)
    options = worker.browser_options.start(session_id, browser, record)
    navigation_error = None
    waits_until = None
    if record["url"]:
        left = _create_waits_for(worker, session_id)
        if left is None:
            return _finish(worker, session_id, None)
        waits_until = time.monotonic() + left
        navigation_error = navigate_first_page(browser.ws_url(), record["url"],
                                               min(worker.config.worker.navigate_timeout, left))
        if navigation_error:
            log.info("session %s: first navigation failed: %s", session_id, navigation_error,
                     extra=session_fields(record))
    # The log's wait never outlasts the create's: a navigation that took all of it leaves none for the log.
    worker.session_watches.settle(session_id, pages=bool(record["url"]), until=waits_until)
    fields = {"navigationError": navigation_error, **_running_fields(worker, browser, record), **options}
    _finish(worker, session_id, _decided(worker, session_id, lambda: worker.machine.ready(session_id, **fields)))


def _decided(worker: Worker, session_id: str, move: Callable[[], SessionRecord | None]) -> SessionRecord | None:
    """The outcome of the move that makes the session run, even if Redis fails under it (the browser keeps its slot
    meanwhile). A try whose answer was lost may have happened, so each later try first reads the record; one that
    commits after the create's deadline is refused by Redis (core.states)."""
    tries = 0

    def attempt() -> SessionRecord | None:
        nonlocal tries
        tries += 1
        if tries > 1 and (record := _ran_here(worker, session_id)) is not None:
            return record
        return move()

    return _until_redis_answers(worker, session_id, "the move to running", attempt)


def _until_redis_answers(worker: Worker, session_id: str, what: str, call: Callable[[], T]) -> T:
    """``call`` tried again every second while Redis fails (a stall, a restart), until the worker shuts down."""
    while True:
        try:
            return call()
        except RedisError as error:
            if worker.shutting_down.is_set():
                raise
            log.warning("session %s: Redis did not answer %s (%s); trying again", session_id, what, error,
                        extra={"session": session_id})
            worker.shutting_down.wait(1)


def _ran_here(worker: Worker, session_id: str) -> SessionRecord | None:
    """The record if the session got past launching on this worker."""
    record = worker.store.sessions.get(session_id)
    if record and record.get("worker") == worker.queue and record["status"] in (Status.RUNNING, Status.STOPPING,
                                                                           Status.STOPPED):
        return record
    return None


def _create_waits_for(worker: Worker, session_id: str) -> float | None:
    """Before a first page that may take BROKER_NAVIGATE_TIMEOUT: how much longer the create waits (None: it gave
    up), for no navigation outlasts the create's deadline only to have the move to running refused. When Redis
    cannot tell, the whole BROKER_NAVIGATE_TIMEOUT (the move to running decides then)."""
    try:
        return worker.store.sessions.deadline_left(session_id)
    except RedisError:
        return worker.config.worker.navigate_timeout


def drop(worker: Worker, session_id: str) -> None:
    """What a create that gave up held (project slot, context, proxy) goes back, if its deadline has passed: a
    create that could not write its give-up (Redis was out) leaves that to the launch that meets it."""
    try:
        if worker.machine.drop(session_id) is not None:
            log.info("session %s: its create's deadline passed; what it held is given back", session_id,
                     extra={"session": session_id})
    except RedisError as error:
        log.warning("session %s: could not give back what its create held (%s); it lapses with the record",
                    session_id, error, extra={"session": session_id})


def _not_for_this_worker(worker: Worker, session_id: str, record: SessionRecord, warm: str | None) -> None:
    """Another project's sessions run on this worker's shared user (tasks/project_gate.py): the launch goes back
    to the shared queue, after a pause so a lone worker does not spin on it until the create gives up."""
    worker.intake.give_back(session_id)
    log.info("session %s: this worker's browsers share one user and serve project %s now; the launch goes back to "
             "the queue", session_id, worker.project_gate.project(), extra=session_fields(record))
    if warm is not None:
        if worker.store.sessions.join_line(session_id):
            worker.dispatcher.send_launch(session_id)
        return
    time.sleep(OTHER_PROJECT_PAUSE)
    raise Reject("this worker serves another project now", requeue=True)


def _reserve_slot(worker: Worker, session_id: str) -> None:
    """The slot reserved at receipt, a free one, or that of a warm browser ended for it.

    Without any (the intake's consumer switch makes that rare) the launch goes back
    to the queue: acks_late makes ``Reject(requeue=True)`` possible, and it puts
    the launch behind later ones.
    """
    while True:
        try:
            worker.pool.reserve(session_id)
            return
        except PoolFull:
            if worker.warm.make_room(session_id):
                continue
            raise Reject("no free browser slot", requeue=True) from None


def _launch_cold(worker: Worker, session_id: str, record: SessionRecord) -> RunningBrowser | None:
    """Start the session's own browser (its context restored, its proxy routed); None once the failure is recorded."""
    context_id = record["contextId"]
    prepare = (lambda profile: worker.contexts.restore(context_id, profile)) if context_id else None
    try:
        parts = worker.browser_options.launch_parts(record, worker.pool.profile_dir(session_id), prepare)
        flags = browser_flags(worker.config, worker.forwarders.route(record, worker.store, worker.secret_box)
                              + parts.flags)
        return worker.pool.acquire(session_id, flags, timeout=worker.config.worker.launch_timeout,
                                   prepare=parts.prepare, env=parts.env)
    except SnapshotNotHere as error:
        _fail(worker, session_id, f"Context {context_id} cannot be restored here: {error}.", code=409)
    except SnapshotError as error:
        _fail(worker, session_id,
              f"Context {context_id} cannot be restored ({error}); delete the context to start over.", code=409)
    except Exception as error:
        log.exception("session %s: launch failed", session_id, extra=session_fields(record))
        _fail(worker, session_id, f"The browser failed to start: {error}")
    return None


def _running_fields(worker: Worker, browser: RunningBrowser, record: SessionRecord) -> dict:
    """What a running session's record learns from its browser and this worker."""
    return {
        "browserWsUrl": browser.ws_url(),
        "hostId": local_host_id(),
        "gateway": worker.gateway.address,
        "browserVersion": browser.version,
        "userAgent": browser.user_agent,
        "browserJsVersion": browser.js_version,
        "browserRevision": browser.revision,
        "downloadsPath": str(browser.downloads_dir),
        "uploadsPath": str(browser.uploads_dir),
        "expiresAt": iso_after(record["timeout"]),
        "expiresEpoch": time.time() + record["timeout"],
    }


def _finish(worker: Worker, session_id: str, running: SessionRecord | None) -> None:
    """The waiting create heard the running record in the move itself (Effect.TELL_CREATE); or end the browser it left."""
    if running is None:
        log.info("session %s: the create gave up during launch; ending the browser", session_id,
                 extra={"session": session_id})
        worker.pool.release(session_id)
        drop(worker, session_id)
        return
    log.info("session %s: running (Chromium %s)", session_id, running.get("browserVersion"),
             extra=session_fields(running))


def _fail(worker: Worker, session_id: str, message: str, code: int = 503) -> None:
    """Whatever step failed, the slot, the forwarder and the project gate are given back."""
    worker.forwarders.stop(session_id)
    worker.intake.give_back(session_id)
    worker.project_gate.release(session_id)
    worker.machine.abandon(session_id)
    worker.store.sessions.push_launch_event(session_id, {"event": "failed", "message": message, "code": code})


class StopsUnderWay:
    """Sessions this worker is stopping right now. A second stop of one (SIGTERM's stop of every session beside a
    stop task, or the housekeeping's for a stop task that never came) leaves it to the first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: set[str] = set()

    def begin(self, session_id: str) -> bool:
        """False if a stop of the session is already under way here."""
        with self._lock:
            if session_id in self._ids:
                return False
            self._ids.add(session_id)
            return True

    def end(self, session_id: str) -> None:
        with self._lock:
            self._ids.discard(session_id)

    def __contains__(self, session_id: object) -> bool:
        with self._lock:
            return session_id in self._ids


@shared_task(name=STOP_TASK, base=WorkerTask, bind=True)
def stop(self: WorkerTask, session_id: str, reason: str) -> None:
    end_session(self.worker, session_id, StopReason(reason))


def end_session(worker: Worker, session_id: str, reason: StopReason) -> None:
    if not worker.stops_under_way.begin(session_id):
        log.info("session %s: a stop is already under way here", session_id, extra={"session": session_id})
        return
    try:
        _end_session(worker, session_id, reason)
    finally:
        worker.stops_under_way.end(session_id)


def _end_session(worker: Worker, session_id: str, reason: StopReason) -> None:
    """Clients first (they get a close frame with the reason), then the context's state, then the record.

    The context's cookies are read while the browser still runs and kept in memory: they reach the store only with
    the snapshot they belong to (ContextState.save), so a save that fails leaves the context's cookies and figures
    as they were. A browser that exited by itself cannot be asked: its cookies are read from its profile instead,
    and only a clean exit's profile becomes a snapshot.
    """
    worker.machine.begin_stop(session_id, reason)
    record = worker.store.sessions.get(session_id) or {}
    fields = {**session_fields(record), "session": session_id}
    context_id = record.get("contextId")
    browser = worker.pool.get(session_id)
    closed_by_itself = browser is not None and browser.exited()
    problems: list[str] = []
    cookies: list[dict] | None = None
    cdp_error: Exception | None = None
    if context_id and browser is not None and not closed_by_itself:
        try:
            cookies = worker.contexts.read_cookies(browser)
        except Exception as error:
            log.warning("session %s: reading its cookies over CDP failed (%s); they are read from its profile once "
                        "the browser has exited", session_id, error, extra=fields)
            cdp_error = error

    def save(profile: Path) -> None:
        saved_cookies = cookies
        if saved_cookies is None:
            if not exited_cleanly(profile):
                problems.append("the browser crashed, so its profile may be inconsistent; previous snapshot kept"
                                if closed_by_itself else
                                f"its cookies could not be read ({cdp_error}) and the browser did not exit cleanly; "
                                "previous snapshot kept")
                return
            try:
                saved_cookies = read_profile_cookies(profile)
            except ProfileCookiesError as error:
                problems.append(f"cookie sync failed: {error}; previous snapshot kept")
                return
        problem = worker.contexts.save(context_id, session_id, profile, saved_cookies)
        if problem:
            problems.append(problem)

    archived: list[dict] = []

    def after_exit(profile: Path) -> None:
        """Downloads first: the browser has exited, so every file in the folder is as complete as it will be."""
        if browser is not None:
            try:
                archived.extend(worker.download_archive.save(session_id, browser.downloads_dir,
                                                             owner=browser.user.uid))
            except Exception as error:
                log.exception("session %s: archiving its downloads failed", session_id, extra=fields)
                problems.append(f"archiving downloads failed: {error}")
        if context_id:
            save(profile)

    worker.pool.release(session_id, after_exit=after_exit)
    # The browser is gone: the record must say so, or the session stays stopping, holding its context and project
    # slot, with no browser left for the worker's housekeeping to notice.
    _until_redis_answers(worker, session_id, "the stop", lambda: worker.machine.finish_stop(
        session_id, reason, "; ".join(problems) or None, archived, time.time() + worker.config.files.download_retention))
    log.info("session %s: stopped (%s)", session_id, reason, extra=fields)
