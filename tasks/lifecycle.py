"""Worker start and end, and its housekeeping: heartbeat, expiries, lost workers, no browser left at exit."""
from __future__ import annotations

import logging
import threading
import time

from celery.signals import celeryd_after_setup, worker_ready, worker_shutdown

from core.dispatch import worker_queue
from core.states import StopReason
from tasks.browser import end_session
from tasks.celery_app import config
from tasks.runtime import forwarders, intake, machine, pool, set_worker_name, store, worker_name

log = logging.getLogger(__name__)
HOUSEKEEPING_INTERVAL = 1.0
_stopping = threading.Event()


@celeryd_after_setup.connect
def consume_own_queue(sender: str, instance, **_: object) -> None:
    """Before any task arrives: take this worker's queue and settle what an earlier life left."""
    set_worker_name(sender)
    instance.app.amqp.queues.select_add(worker_queue(sender))
    try:
        pool().clean_leftovers()
    except Exception as error:
        # ConfinementError (its browsers could read the host) or a pool that cannot be built at all.
        # Celery's signal dispatch would log an Exception and carry on without a pool; SystemExit ends the worker.
        log.critical("this worker does not start: %s", error)
        raise SystemExit(1) from error
    for session_id in store.sessions.on_worker(worker_queue(sender)):
        machine.lose(session_id)


def reap_lost_workers() -> None:
    """Every live worker looks; the store lets exactly one of them end a lost worker's sessions."""
    for worker in store.workers.silent():
        if worker != worker_name() and store.workers.take_silent(worker):
            log.warning("worker %s stopped heartbeating; ending its sessions", worker)
            for session_id in store.sessions.on_worker(worker_queue(worker)):
                machine.lose(session_id)
            store.workers.forget(worker)


def stop_expired_sessions() -> None:
    """Both schedules are sorted sets in Redis, so they survive any process restart."""
    for session_id in store.sessions.take_expired():
        log.info("session %s: timeout reached", session_id)
        machine.stop(session_id, StopReason.TIMEOUT)
    for session_id in store.sessions.take_idle():
        log.info("session %s: idle timeout reached", session_id)
        machine.stop(session_id, StopReason.TIMEOUT)


def notice_closed_browsers() -> None:
    """A browser that exited by itself (closed over CDP, crashed, killed) ends its session within a second or two.

    The stop goes through the state machine like a DELETE, so of this and a
    concurrent DELETE or timeout exactly one stop task runs; until the session is
    running (still launching) the move is refused and tried again next round.
    """
    for session_id in pool().session_ids():
        browser = pool().get(session_id)
        if browser is not None and browser.exited() and machine.stop(session_id, StopReason.BROWSER_CLOSED):
            log.warning("session %s: its browser exited by itself", session_id)


def _housekeeping() -> None:
    """Heartbeat, expiries, closed browsers, lost workers, once a second.

    Lost workers are judged only by a worker whose own heartbeats have gone
    through for a whole TTL: after a Redis outage every worker looks silent
    for a moment, and none should be reaped for that.
    """
    healthy_since: float | None = None
    last_beat = 0.0
    while not _stopping.is_set():
        try:
            now = time.monotonic()
            if now - last_beat >= config.heartbeat_interval:
                store.workers.heartbeat(worker_name(), {"queue": worker_queue(worker_name()), "freeSlots": pool().free_slots()})
                last_beat = now
                healthy_since = healthy_since or now
            stop_expired_sessions()
            notice_closed_browsers()
            intake().reconcile()
            if healthy_since is not None and now - healthy_since > config.worker_ttl:
                reap_lost_workers()
        except Exception:
            healthy_since = None
            last_beat = 0.0
            log.exception("housekeeping failed (Redis unreachable?); retrying")
        _stopping.wait(HOUSEKEEPING_INTERVAL)


@worker_ready.connect
def start_housekeeping(**_: object) -> None:
    threading.Thread(target=_housekeeping, name="housekeeping", daemon=True).start()


@worker_shutdown.connect
def end_all_browsers(**_: object) -> None:
    """SIGTERM (a redeploy): every session goes through the normal stop flow, in parallel, within the grace period."""
    _stopping.set()
    stoppers = [threading.Thread(target=end_session, args=(session_id, StopReason.WORKER_LOST), daemon=True)
                for session_id in pool().session_ids()]
    for thread in stoppers:
        thread.start()
    deadline = time.monotonic() + config.shutdown_grace
    for thread in stoppers:
        thread.join(max(0.0, deadline - time.monotonic()))
    # Ending each browser ended its forwarder; this catches one whose launch was cut short.
    forwarders().stop_all()
    store.workers.forget(worker_name())
