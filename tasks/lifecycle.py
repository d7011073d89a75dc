"""Worker start and end, and its housekeeping: heartbeat, expiries, lost workers, warm browsers, no browser left
at exit or unserved."""
from __future__ import annotations

import gc
import logging
import os
import threading
import time
from urllib.parse import urlsplit

from celery.signals import celeryd_after_setup, worker_ready, worker_shutdown

from core.dispatch import worker_queue
from core.logs import session_fields
from core.reaping import INTERVAL, LostWorkerReaper
from core.states import LIVE_STATUSES, STOP_NEVER_SENT_AFTER, Status, StopReason
from tasks.browser import end_session, stops_under_way
from tasks.celery_app import config
from tasks.runtime import (
    browser_counts, forwarders, gateway, intake, isolation, machine, pool, set_worker_name, store, warm_browsers,
    worker_name,
)

log = logging.getLogger(__name__)
_stopping = threading.Event()


@celeryd_after_setup.connect
def consume_own_queue(sender: str, instance, **_: object) -> None:
    """Before any task arrives: take this worker's queue, settle what an earlier life left, open the gateway.

    The name is stable across restarts (Procfile, compose), so the earlier
    life's PID files are found and its sessions end as ``worker_lost`` at once,
    without waiting for a TTL.
    """
    set_worker_name(sender)
    instance.app.amqp.queues.select_add(worker_queue(sender))
    try:
        pool().clean_leftovers()
    except Exception as error:
        # ConfinementError (its browsers could read the host) or a pool that cannot be built at all.
        # Celery's signal dispatch would log an Exception and carry on without a pool; SystemExit ends the worker.
        log.critical("this worker does not start: %s", error)
        raise SystemExit(1) from error
    store.warm.forget(sender)
    for session_id in store.sessions.on_worker(worker_queue(sender)):
        if machine.lose(session_id):
            log.warning("session %s: left running by an earlier life of this worker; ended as worker_lost", session_id,
                        extra={"session": session_id})
    gateway().start()
    if urlsplit(config.snapshot_url).scheme == "file":
        log.warning("BROKER_SNAPSHOT_URL is %s: file:// snapshots do not move between hosts (only workers that mount "
                    "this folder see them); with workers on several hosts set an s3:// store", config.snapshot_url)


#: Sessions whose browser this worker holds and whose record was missing at the last look (settle_browsers_with_records).
_unrecorded: set[str] = set()


def settle_browsers_with_records() -> None:
    """A browser whose session is over or was declared lost (this worker was cut off meanwhile) is ended, not served;
    a session left stopping with no stop under way (``STOP_NEVER_SENT_AFTER``) is stopped through the normal flow;
    a browser whose session has no record any more is ended like a lost session's.

    No context save for the first: a lost session's hold was released with its
    last good snapshot, which a newer session may already have replaced. A
    pending session's browser is a warm one being handed over (the launch task
    moves the record next, or ends the browser itself).

    A record is gone when Redis lost its data (restarted empty, or failed over to a replica without the last
    writes) or a launch outlived its pending record's TTL. Such a browser was invisible to the API, counted as
    running, and served any client still connected to it: it goes through the stop flow as ``worker_lost`` (its
    clients told, its downloads archived; with no record there is no context to save), once its record was missing
    at two looks in a row, one heartbeat apart: a record is written before its browser is launched, so one look
    would do, and the second costs a heartbeat and keeps a single odd read from ending a session.
    """
    own_queue = worker_queue(worker_name())
    unrecorded = set()
    for session_id in pool().session_ids():
        record = store.sessions.get(session_id)
        if record is None:
            if session_id in stops_under_way:
                continue
            if session_id not in _unrecorded:
                unrecorded.add(session_id)
                continue
            log.warning("session %s: its record is gone (Redis lost its data?); ending its browser as worker_lost",
                        session_id, extra={"session": session_id})
            threading.Thread(target=end_session, args=(session_id, StopReason.WORKER_LOST),
                             name=f"stop-{session_id}", daemon=True).start()
            continue
        if record["status"] == Status.PENDING:
            continue
        if record["status"] not in LIVE_STATUSES or record.get("worker") != own_queue:
            log.warning("session %s: no longer this worker's (%s); ending its browser", session_id, record["status"],
                        extra=session_fields(record))
            pool().release(session_id)
        elif (record["status"] == Status.STOPPING and session_id not in stops_under_way
              and time.time() - record.get("stopRequestedEpoch", 0) > STOP_NEVER_SENT_AFTER):
            log.warning("session %s: stopping for over %.0f s and no stop task came; stopping it here", session_id,
                        STOP_NEVER_SENT_AFTER, extra=session_fields(record))
            threading.Thread(target=end_session, args=(session_id, StopReason(record["stopReason"])),
                             name=f"stop-{session_id}", daemon=True).start()
    _unrecorded.clear()
    _unrecorded.update(unrecorded)


def stop_expired_sessions() -> None:
    """Both schedules are sorted sets in Redis, so they survive any process restart."""
    for session_id in store.sessions.take_expired():
        log.info("session %s: timeout reached", session_id, extra={"session": session_id})
        machine.stop(session_id, StopReason.TIMEOUT)
    for session_id in store.sessions.take_idle():
        log.info("session %s: idle timeout reached", session_id, extra={"session": session_id})
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
            log.warning("session %s: its browser exited by itself", session_id, extra={"session": session_id})


def _housekeeping() -> None:
    """Heartbeat, expiries, closed browsers, browsers no longer ours or left stopping, lost workers, once a second.

    After a failed round (Redis unreachable, this host cut off) the heartbeat is
    sent first, then the pool is checked against the store: sessions declared
    lost meanwhile have their browsers ended before anything else. A heartbeat
    the store did not expect (Redis lost its data, or a reaper declared this
    worker lost and withdrew its offers) has the warm browsers offered again.
    """
    reaper = LostWorkerReaper(machine, own_name=worker_name())
    last_beat = 0.0
    while not _stopping.is_set():
        try:
            now = time.monotonic()
            if now - last_beat >= config.heartbeat_interval:
                known = store.workers.heartbeat(
                    worker_name(), {"queue": worker_queue(worker_name()), "freeSlots": pool().free_slots(),
                                    "browsers": browser_counts(), "gateway": gateway().address, "pid": os.getpid(),
                                    "isolation": isolation()})
                last_beat = now
                if not known and (again := warm_browsers().offer_again()):
                    log.warning("the store did not know this worker (Redis lost its data, or this worker was declared "
                                "lost): its warm browsers %s are offered again", ", ".join(again))
                settle_browsers_with_records()
            stop_expired_sessions()
            notice_closed_browsers()
            intake().reconcile()
            reaper.tick()
        except Exception:
            last_beat = 0.0
            reaper.note_outage()
            log.exception("housekeeping failed (Redis unreachable?); retrying")
        _stopping.wait(INTERVAL)


@worker_ready.connect
def start_housekeeping(**_: object) -> None:
    """Start-up's objects are frozen first, as in the web process (web.py): a full collection of them took
    ~40 ms, holding the GIL that hand-overs and the gateway's pumps need."""
    gc.freeze()
    threading.Thread(target=_housekeeping, name="housekeeping", daemon=True).start()
    warm_browsers().start()


@worker_shutdown.connect
def end_all_browsers(**_: object) -> None:
    """SIGTERM (a redeploy): every session goes through the normal stop flow, in parallel, within the grace period.

    Warm browsers end beside them, their offers withdrawn first. Ending a browser needs no Redis: a stop whose store
    calls fail (Redis down or unreachable at exit) ends its browser without them, and whatever browser is still held
    when the grace runs out is ended the same way, so no Chromium outlives its worker.
    """
    _stopping.set()
    stoppers = [threading.Thread(target=_end_at_exit, args=(session_id,), daemon=True)
                for session_id in pool().session_ids()]
    stoppers.append(threading.Thread(target=warm_browsers().close, args=(config.shutdown_grace,), daemon=True))
    for thread in stoppers:
        thread.start()
    deadline = time.monotonic() + config.shutdown_grace
    for thread in stoppers:
        thread.join(max(0.0, deadline - time.monotonic()))
    for key in pool().keys():
        log.warning("%s: its browser is still up at exit; ending it without its stop flow", key,
                    extra={"session": key})
        _end_browser(key)
    # Ending each browser ended its forwarder; this catches one whose launch was cut short.
    forwarders().stop_all()
    gateway().stop()
    try:
        store.workers.forget(worker_name())
    except Exception as error:  # Redis down at exit: the heartbeat runs out and reapers do the rest
        log.warning("could not remove this worker from the store at exit (%s)", error)


def _end_at_exit(session_id: str) -> None:
    try:
        end_session(session_id, StopReason.WORKER_LOST)
    except Exception:
        log.exception("session %s: its stop failed at exit (Redis unreachable?); ending its browser without it",
                      session_id, extra={"session": session_id})
        _end_browser(session_id)


def _end_browser(key: str) -> None:
    """The browser ended and its folders deleted with no store call; a failing release hook is logged, not raised
    (the browser has ended before any hook runs)."""
    try:
        pool().release(key)
    except Exception:
        log.exception("%s: a step after ending its browser failed", key, extra={"session": key})
