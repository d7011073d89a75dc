"""Launch and stop tasks: thin, they move the session record and call the pool.

Both are idempotent, keyed by the session id: a launch acts only on a pending
record it wins, a stop of a browser this worker no longer has only records the end.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from celery.exceptions import Reject
from celery.signals import task_received, task_revoked

from core.browser_link import local_host_id
from core.cdp import navigate_first_page
from core.dispatch import LAUNCH_TASK, STOP_TASK, worker_queue
from core.ids import iso_after
from core.snapshots import SnapshotError, SnapshotNotHere
from core.states import StopReason
from tasks.celery_app import celery, config
from tasks.chromium import browser_flags
from tasks.pool import PoolFull
from tasks.profile_cookies import ProfileCookiesError, exited_cleanly
from tasks.runtime import contexts, forwarders, gateway, intake, machine, pool, secret_box, store

log = logging.getLogger(__name__)


@task_received.connect
def reserve_slot_on_receipt(sender, request, **_: object) -> None:
    """On the consumer's thread, before it reads another message: see :mod:`tasks.intake`."""
    if request.name == LAUNCH_TASK:
        intake().received(sender, request.args[0])


@task_revoked.connect
def free_slot_of_expired_launch(sender, request, **_: object) -> None:
    """A launch can expire between its receipt (slot reserved) and its start; the slot comes back."""
    if sender.name == LAUNCH_TASK:
        intake().give_back(request.args[0])


@celery.task(name=LAUNCH_TASK, bind=True, acks_late=True)
def launch(self, session_id: str) -> None:
    """Runs in the slot reserved when the message arrived; a redelivered launch finds its session no longer pending.

    Only a launch received with no slot at all (which the intake's consumer
    switch prevents) goes back to the queue: acks_late makes that
    ``Reject(requeue=True)`` possible, and it puts the launch behind later ones.
    """
    try:
        pool().reserve(session_id)
    except PoolFull:
        raise Reject("no free browser slot", requeue=True) from None
    record = machine.claim(session_id, worker_queue(self.request.hostname))
    if record is None:
        intake().give_back(session_id)
        log.info("session %s: launch skipped, the create already gave up", session_id)
        return
    store.sessions.push_launch_event(session_id, {"event": "claimed"})
    context_id = record["contextId"]
    prepare = (lambda profile: contexts.restore(context_id, profile)) if context_id else None
    try:
        flags = browser_flags(config, forwarders().route(record, store, secret_box))
        browser = pool().acquire(session_id, flags, timeout=config.launch_timeout, prepare=prepare)
    except SnapshotNotHere as error:
        return _fail(session_id, f"Context {context_id} cannot be restored here: {error}.", code=409)
    except SnapshotError as error:
        return _fail(session_id, f"Context {context_id} cannot be restored ({error}); "
                     "delete the context to start over.", code=409)
    except Exception as error:
        log.exception("session %s: launch failed", session_id)
        return _fail(session_id, f"The browser failed to start: {error}")
    navigation_error = None
    if record["url"]:
        navigation_error = navigate_first_page(browser.ws_url(), record["url"], config.navigate_timeout)
        if navigation_error:
            log.info("session %s: first navigation to %s: %s", session_id, record["url"], navigation_error)
    running = machine.ready(
        session_id,
        browserWsUrl=browser.ws_url(),
        hostId=local_host_id(),
        gateway=gateway().address,
        browserVersion=browser.version,
        userAgent=browser.user_agent,
        expiresAt=iso_after(record["timeout"]),
        expiresEpoch=time.time() + record["timeout"],
        navigationError=navigation_error,
    )
    if running is None:
        log.info("session %s: the create gave up during launch; ending the browser", session_id)
        pool().release(session_id)
        return
    store.sessions.push_launch_event(session_id, {"event": "ready"})


def _fail(session_id: str, message: str, code: int = 503) -> None:
    """Whatever step failed, the slot and the forwarder are given back."""
    forwarders().stop(session_id)
    intake().give_back(session_id)
    machine.abandon(session_id)
    store.sessions.push_launch_event(session_id, {"event": "failed", "message": message, "code": code})


@celery.task(name=STOP_TASK)
def stop(session_id: str, reason: str) -> None:
    end_session(session_id, StopReason(reason))


def end_session(session_id: str, reason: StopReason) -> None:
    """Clients first (they get a close frame with the reason), then the context's state, then the record.

    A browser that exited by itself cannot be asked for its cookies: they are read
    from its profile instead, and only a clean exit's profile becomes a snapshot.
    """
    store.events.announce_stop(session_id, reason)
    record = store.sessions.get(session_id) or {}
    context_id = record.get("contextId")
    browser = pool().get(session_id)
    closed_by_itself = browser is not None and browser.exited()
    problems: list[str] = []
    if context_id and browser is not None and not closed_by_itself:
        try:
            contexts.sync_cookies(context_id, session_id, browser)
        except Exception as error:
            log.exception("session %s: cookie sync failed", session_id)
            problems.append(f"cookie sync failed: {error}")

    def save(profile: Path) -> None:
        if closed_by_itself:
            if not exited_cleanly(profile):
                problems.append("the browser crashed, so its profile may be inconsistent; previous snapshot kept")
                return
            try:
                contexts.sync_cookies_from_profile(context_id, session_id, profile)
            except ProfileCookiesError as error:
                problems.append(f"cookie sync failed: {error}")
        problem = contexts.save(context_id, session_id, profile)
        if problem:
            problems.append(problem)

    pool().release(session_id, after_exit=save if context_id else None)
    machine.finish_stop(session_id, reason, "; ".join(problems) or None)
    log.info("session %s: stopped (%s)", session_id, reason)
