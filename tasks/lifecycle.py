"""The worker's housekeeping, once a second on a thread of its own: heartbeat, expiries, idle timeouts, closed
browsers, browsers no longer the worker's or left stopping, lost workers. No Celery beat: each worker looks after
its own browsers, and any process may reap a lost worker (core/reaping.py)."""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from core.logs import session_fields
from core.reaping import INTERVAL, LostWorkerReaper
from core.states import LIVE_STATUSES, Status, StopReason
from tasks.browser import end_session
from tasks.running_browser import SIGNAL_SPREAD

if TYPE_CHECKING:
    from tasks.worker import Worker

log = logging.getLogger(__name__)


class Housekeeping:
    """Started and stopped with its worker (tasks/worker.py)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: Sessions whose browser this worker holds and whose record was missing at the last look
        #: (:meth:`settle_browsers_with_records`).
        self._unrecorded: set[str] = set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="housekeeping", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """The loop ends after its current round; a round under way is not waited for."""
        self._stopping.set()

    def settle_browsers_with_records(self) -> None:
        """A browser whose session is over or was declared lost (this worker was cut off meanwhile) is ended, not
        served; a session left stopping with no stop under way (BROKER_STOP_NEVER_SENT_AFTER) is stopped through the
        normal flow; a browser whose session has no record any more is ended like a lost session's.

        No context save for the first: a lost session's hold was released with its
        last good snapshot, which a newer session may already have replaced. A
        pending session's browser is a warm one being handed over (the launch task
        moves the record next, or ends the browser itself).

        A record is gone when Redis lost its data (restarted empty, or failed over to a replica without the last
        writes) or a launch outlived its pending record's TTL. Such a browser was invisible to the API, counted as
        running, and served any client still connected to it: it goes through the stop flow as ``worker_lost`` (its
        clients told, its downloads archived; with no record there is no context to save), once its record was
        missing at two looks in a row, one heartbeat apart: a record is written before its browser is launched, so
        one look would do, and the second costs a heartbeat and keeps a single odd read from ending a session.
        """
        worker = self.worker
        unrecorded = set()
        for session_id in worker.pool.session_ids():
            record = worker.store.sessions.get(session_id)
            if record is None:
                if session_id in worker.stops_under_way:
                    continue
                if session_id not in self._unrecorded:
                    unrecorded.add(session_id)
                    continue
                log.warning("session %s: its record is gone (Redis lost its data?); ending its browser as "
                            "worker_lost", session_id, extra={"session": session_id})
                threading.Thread(target=end_session, args=(worker, session_id, StopReason.WORKER_LOST),
                                 name=f"stop-{session_id}", daemon=True).start()
                continue
            if record["status"] == Status.PENDING or record.get("moving"):
                continue  # a warm browser being handed over, or a moved session being relaunched here (tasks/moving.py)
            if record["status"] not in LIVE_STATUSES or record.get("worker") != worker.queue:
                log.warning("session %s: no longer this worker's (%s); ending its browser", session_id,
                            record["status"], extra=session_fields(record))
                worker.pool.release(session_id)
            elif (record["status"] == Status.STOPPING and session_id not in worker.stops_under_way
                  and time.time() - record.get("stopRequestedEpoch", 0) > worker.config.worker.stop_never_sent_after):
                log.warning("session %s: stopping for over %.0f s and no stop task came; stopping it here",
                            session_id, worker.config.worker.stop_never_sent_after, extra=session_fields(record))
                threading.Thread(target=end_session, args=(worker, session_id, StopReason(record["stopReason"])),
                                 name=f"stop-{session_id}", daemon=True).start()
        self._unrecorded.clear()
        self._unrecorded.update(unrecorded)

    def stop_expired_sessions(self) -> None:
        """Both schedules are sorted sets in Redis, so they survive any process restart."""
        worker = self.worker
        for session_id in worker.store.sessions.take_expired():
            log.info("session %s: timeout reached", session_id, extra={"session": session_id})
            worker.machine.stop(session_id, StopReason.TIMEOUT)
        for session_id in worker.store.sessions.take_idle():
            log.info("session %s: idle timeout reached", session_id, extra={"session": session_id})
            worker.machine.stop(session_id, StopReason.TIMEOUT)

    def notice_closed_browsers(self) -> None:
        """A browser that exited by itself (closed over CDP, crashed, killed) ends its session within a second or two;
        a movable session's after SIGNAL_SPREAD more, since the platform's SIGTERM may have reached its browser
        before its worker, and then it moves (tasks/moving.py).

        The stop goes through the state machine like a DELETE, so of this and a
        concurrent DELETE or timeout exactly one stop task runs; until the session is
        running (still launching) the move is refused and tried again next round.
        """
        worker = self.worker
        if worker.shutting_down.is_set():  # the worker's stop moves or stops every session (tasks/moving.py)
            return
        for session_id in worker.pool.session_ids():
            browser = worker.pool.get(session_id)
            if browser is None or not browser.exited():
                continue
            if not browser.gone_before(time.monotonic() - SIGNAL_SPREAD) and self._movable(session_id):
                continue
            if worker.machine.stop(session_id, StopReason.BROWSER_CLOSED):
                log.warning("session %s: its browser exited by itself", session_id, extra={"session": session_id})

    def _movable(self, session_id: str) -> bool:
        record = self.worker.store.sessions.get(session_id)
        return bool(record and record.get("movable"))

    def _run(self) -> None:
        """Heartbeat, expiries, closed browsers, browsers no longer ours or left stopping, lost workers, once a second.

        After a failed round (Redis unreachable, this host cut off) the heartbeat is
        sent first, then the pool is checked against the store: sessions declared
        lost meanwhile have their browsers ended before anything else. A heartbeat
        the store did not expect (Redis lost its data, or a reaper declared this
        worker lost and withdrew its offers) has the warm browsers offered again.
        """
        worker = self.worker
        reaper = LostWorkerReaper(worker.machine, own_name=worker.name, snapshots=worker.snapshots)
        last_beat = 0.0
        while not self._stopping.is_set():
            try:
                now = time.monotonic()
                if now - last_beat >= worker.config.worker.heartbeat_interval:
                    known = worker.store.workers.heartbeat(
                        worker.name, {"queue": worker.queue, "freeSlots": worker.pool.free_slots(),
                                      "browsers": {**worker.pool.counts(), "warmTarget": worker.warm.target},
                                      "gateway": worker.gateway.address,
                                      "pid": os.getpid(), "isolation": worker.isolation()})
                    last_beat = now
                    if not known and (again := worker.warm.offer_again()):
                        log.warning("the store did not know this worker (Redis lost its data, or this worker was "
                                    "declared lost): its warm browsers %s are offered again", ", ".join(again))
                    self.settle_browsers_with_records()
                self.stop_expired_sessions()
                self.notice_closed_browsers()
                worker.intake.reconcile()
                reaper.tick()
            except Exception:
                last_beat = 0.0
                reaper.note_outage()
                log.exception("housekeeping failed (Redis unreachable?); retrying")
            self._stopping.wait(INTERVAL)
