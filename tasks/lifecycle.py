"""Worker start and end: its own queue, its heartbeat, and no browser left when it exits."""
from __future__ import annotations

import logging
import threading

from celery.signals import celeryd_after_setup, worker_ready, worker_shutdown

from tasks.browser import end_lost_session, end_session
from tasks.celery_app import config, worker_queue
from tasks.runtime import forwarders, pool, set_worker_name, store, worker_name

log = logging.getLogger(__name__)
_stopping = threading.Event()


@celeryd_after_setup.connect
def consume_own_queue(sender: str, instance, **_: object) -> None:
    """Before any task arrives: take this worker's queue and settle what an earlier life left."""
    set_worker_name(sender)
    instance.app.amqp.queues.select_add(worker_queue(sender))
    pool().clean_leftovers()
    for session_id in store.worker_sessions(worker_queue(sender)):
        end_lost_session(session_id)


def reap_lost_workers() -> None:
    """Every live worker looks; the store lets exactly one of them end a lost worker's sessions."""
    for worker in store.silent_workers():
        if worker != worker_name() and store.take_silent_worker(worker):
            log.warning("worker %s stopped heartbeating; ending its sessions", worker)
            for session_id in store.worker_sessions(worker_queue(worker)):
                end_lost_session(session_id)
            store.forget_worker(worker)


def _beat() -> None:
    while not _stopping.is_set():
        try:
            store.heartbeat(worker_name(), {"queue": worker_queue(worker_name()), "freeSlots": pool().free_slots()})
            reap_lost_workers()
        except Exception:
            log.exception("heartbeat failed; retrying")
        _stopping.wait(config.heartbeat_interval)


@worker_ready.connect
def start_heartbeat(**_: object) -> None:
    threading.Thread(target=_beat, name="heartbeat", daemon=True).start()


@worker_shutdown.connect
def end_all_browsers(**_: object) -> None:
    _stopping.set()
    for session_id in pool().session_ids():
        end_session(session_id, "worker_lost")
    # Ending each browser ended its forwarder; this catches one whose launch was cut short.
    forwarders().stop_all()
    store.forget_worker(worker_name())
