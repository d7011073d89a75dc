"""Ending the sessions of workers that went silent, from any process: the web process or any live worker.

Reaping needs no live worker: the web process runs a reaper too, so the only
worker's sessions end as ``worker_lost`` when it disappears (or, those with a
checkpoint, move from it: core/recovery.py). Any number of
reapers may run; the store's take-once (``WorkerRecords.take_silent``) hands
each lost worker to exactly one of them.

A reaper judges only after its own Redis calls have gone through for a whole
BROKER_WORKER_TTL: after a Redis outage every worker looks silent for a
moment, and a reaper that came back first must give the workers that time to
heartbeat again. So a Redis outage reaps nobody.

Each look also ends the moves no worker took up within BROKER_MOVE_TIMEOUT
(core/recovery.py's ``end_stuck_moves``), whoever began them.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from core.dispatch import worker_queue
from core.logs import session_fields
from core.recovery import end_stuck_moves, recover_or_lose
from core.session_machine import SessionMachine
from core.snapshots import SnapshotStore, open_snapshot_store

log = logging.getLogger(__name__)
#: Seconds between two looks, in every process that reaps.
INTERVAL = 1.0


class LostWorkerReaper:
    def __init__(self, machine: SessionMachine, own_name: str | None = None,
                 snapshots: SnapshotStore | None = None) -> None:
        """``machine`` needs its dispatcher for a lost session to move from its checkpoint; without one, every
        lost session ends. ``snapshots``: where checkpoints are (BROKER_SNAPSHOT_URL's by default)."""
        self.machine = machine
        self.store = machine.store
        self.snapshots = snapshots if snapshots is not None else open_snapshot_store(machine.store.config)
        #: A worker never reaps itself (it may be the one whose heartbeat is late).
        self.own_name = own_name
        self._healthy_since: float | None = None

    def tick(self) -> list[str]:
        """One look; the workers this call reaped. Any Redis error restarts the healthy clock, then propagates."""
        try:
            silent = self.store.workers.silent()
            now = time.monotonic()
            if self._healthy_since is None:
                self._healthy_since = now
            if now - self._healthy_since < self.store.config.worker.ttl:
                return []
            end_stuck_moves(self.machine, self.snapshots)
            return [worker for worker in silent if worker != self.own_name and self.reap(worker)]
        except Exception:
            self._healthy_since = None
            raise

    def reap(self, worker: str) -> bool:
        """End a silent worker's sessions (or move those with a checkpoint) and withdraw its warm browsers' offers,
        if this caller is the one the store hands it to."""
        if not self.store.workers.take_silent(worker):
            return False
        sessions = self.store.sessions.on_worker(worker_queue(worker))
        log.warning("worker %s stopped heartbeating; ending (or moving from their checkpoints) its %d sessions",
                    worker, len(sessions))
        for session_id in sessions:
            record = recover_or_lose(self.machine, self.snapshots, session_id)
            if record is not None and record["status"] != "running":
                log.warning("session %s: ended as %s", session_id, record["stopReason"], extra=session_fields(record))
        self.store.warm.forget(worker)
        self.store.workers.declare_lost(worker)
        return True

    def note_outage(self) -> None:
        """The caller's own Redis call failed elsewhere: start counting healthy time again."""
        self._healthy_since = None


def reap_forever(reaper: LostWorkerReaper, sleep: Callable[[float], object] = time.sleep) -> None:
    """The web process's loop (on a greenlet, with gevent's sleep); it survives Redis outages."""
    while True:
        try:
            reaper.tick()
        except Exception as error:
            log.warning("reaping lost workers failed (%s); retrying", error)
        sleep(INTERVAL)
