"""Launch and stop tasks: thin, they move the session record and call the pool.

Both are idempotent, keyed by the session id: a launch acts only on a pending
record it wins, a stop of a browser this worker no longer has only records the end.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from celery.exceptions import Reject

from app.store import ABANDONED, LAUNCHING, PENDING, RUNNING, STOPPED, STOPPING, iso_after, utcnow_iso
from tasks.cdp import navigate_first_page
from tasks.celery_app import LAUNCH_TASK, STOP_TASK, celery, config, worker_queue
from tasks.chromium import browser_flags
from tasks.pool import PoolFull
from tasks.runtime import contexts, forwarders, intake, pool, secret_box, store
from tasks.snapshots import SnapshotError

log = logging.getLogger(__name__)


@celery.task(name=LAUNCH_TASK, bind=True, acks_late=True)
def launch(self, session_id: str) -> None:
    """Takes a launch only with a free slot; otherwise the message goes back to the head of the queue.

    acks_late makes that ``Reject(requeue=True)`` possible; a redelivered launch
    finds its session no longer pending and does nothing.
    """
    try:
        pool().reserve(session_id)
    except PoolFull:
        intake().pool_full()
        raise Reject("no free browser slot", requeue=True) from None
    record = store.update_session(
        session_id, expect={PENDING}, status=LAUNCHING, worker=worker_queue(self.request.hostname)
    )
    if record is None:
        pool().unreserve(session_id)
        log.info("session %s: launch skipped, the create already gave up", session_id)
        return
    store.push_launch_event(session_id, {"event": "claimed"})
    context_id = record["contextId"]
    prepare = (lambda profile: contexts.restore(context_id, profile)) if context_id else None
    try:
        flags = browser_flags(config, forwarders().route(record, store, secret_box))
        browser = pool().acquire(session_id, flags, timeout=config.launch_timeout, prepare=prepare)
    except SnapshotError as error:
        return _fail(session_id, f"Context {context_id} cannot be restored ({error}); "
                     "delete the context to start over.", code=409)
    except Exception as error:
        log.exception("session %s: launch failed", session_id)
        return _fail(session_id, f"The browser failed to start: {error}")
    if record["url"]:
        problem = navigate_first_page(browser.ws_url(), record["url"], config.navigate_timeout)
        if problem:
            log.info("session %s: first navigation to %s: %s", session_id, record["url"], problem)
    running = store.update_session(
        session_id,
        expect={LAUNCHING},
        status=RUNNING,
        browserWsUrl=browser.ws_url(config.worker_host),
        browserVersion=browser.version,
        userAgent=browser.user_agent,
        expiresAt=iso_after(record["timeout"]),
        expiresEpoch=time.time() + record["timeout"],
    )
    if running is None:
        log.info("session %s: the create gave up during launch; ending the browser", session_id)
        pool().release(session_id)
        return
    store.push_launch_event(session_id, {"event": "ready"})


def _fail(session_id: str, message: str, code: int = 503) -> None:
    """Whatever step failed, the slot and the forwarder are given back."""
    pool().unreserve(session_id)
    forwarders().stop(session_id)
    intake().reconcile()
    store.update_session(session_id, expect={LAUNCHING}, status=ABANDONED)
    store.push_launch_event(session_id, {"event": "failed", "message": message, "code": code})


@celery.task(name=STOP_TASK)
def stop(session_id: str, reason: str) -> None:
    end_session(session_id, reason)


def end_session(session_id: str, reason: str) -> None:
    """Clients first (they get a close frame with the reason), then the context's state, then the record."""
    store.announce_stop(session_id, reason)
    record = store.get_session(session_id) or {}
    context_id = record.get("contextId")
    browser = pool().get(session_id)
    problems: list[str] = []
    if context_id and browser is not None:
        try:
            contexts.sync_cookies(context_id, session_id, browser)
        except Exception as error:
            log.exception("session %s: cookie sync failed", session_id)
            problems.append(f"cookie sync failed: {error}")

    def save(profile: Path) -> None:
        problem = contexts.save(context_id, session_id, profile)
        if problem:
            problems.append(problem)

    pool().release(session_id, after_exit=save if context_id else None)
    store.update_session(
        session_id, expect={RUNNING, STOPPING}, status=STOPPED, stoppedAt=utcnow_iso(), stopReason=reason,
        snapshotError="; ".join(problems) or None,
    )
    if context_id:
        store.release_context(context_id, session_id)
    log.info("session %s: stopped (%s)", session_id, reason)


def end_lost_session(session_id: str) -> None:
    """The session's worker is gone with its browser: record the end and free the context (last good snapshot)."""
    record = store.update_session(
        session_id, expect={LAUNCHING, RUNNING, STOPPING}, status=STOPPED, stoppedAt=utcnow_iso(),
        stopReason="worker_lost",
    )
    if record is None:
        return
    store.announce_stop(session_id, "worker_lost")
    if record.get("contextId"):
        store.release_context(record["contextId"], session_id)
    log.warning("session %s: its worker was lost", session_id)
