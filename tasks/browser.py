"""Launch and stop tasks: thin, they move the session record and call the pool.

Both are idempotent, keyed by the session id: a launch acts only on a pending
record it wins, a stop of a browser this worker no longer has only records the end.
"""
from __future__ import annotations

import logging

from app.store import ABANDONED, LAUNCHING, PENDING, RUNNING, STOPPING, iso_after, utcnow_iso
from tasks.cdp import navigate_first_page
from tasks.celery_app import LAUNCH_TASK, STOP_TASK, celery, config, worker_queue
from tasks.chromium import browser_flags
from tasks.pool import PoolFull
from tasks.runtime import pool, store

log = logging.getLogger(__name__)


@celery.task(name=LAUNCH_TASK, bind=True)
def launch(self, session_id: str) -> None:
    record = store.update_session(
        session_id, expect={PENDING}, status=LAUNCHING, worker=worker_queue(self.request.hostname)
    )
    if record is None:
        log.info("session %s: launch skipped, the create already gave up", session_id)
        return
    store.push_launch_event(session_id, {"event": "claimed"})
    try:
        browser = pool().acquire(session_id, browser_flags(config), timeout=config.launch_timeout)
    except PoolFull as full:
        return _fail(session_id, f"No free browser slot: {full}.")
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
    )
    if running is None:
        log.info("session %s: the create gave up during launch; ending the browser", session_id)
        pool().release(session_id)
        return
    store.push_launch_event(session_id, {"event": "ready"})


def _fail(session_id: str, message: str) -> None:
    store.update_session(session_id, expect={LAUNCHING}, status=ABANDONED)
    store.push_launch_event(session_id, {"event": "failed", "message": message})


@celery.task(name=STOP_TASK)
def stop(session_id: str, reason: str) -> None:
    end_session(session_id, reason)


def end_session(session_id: str, reason: str) -> None:
    """Clients first (they get a close frame with the reason), then the browser, then the record."""
    store.announce_stop(session_id, reason)
    pool().release(session_id)
    store.update_session(
        session_id, expect={RUNNING, STOPPING}, status="stopped", stoppedAt=utcnow_iso(), stopReason=reason
    )
    log.info("session %s: stopped (%s)", session_id, reason)
