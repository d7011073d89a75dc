"""A lost worker's session brought back from its last checkpoint, and what a move may not do: the rules every
process that ends or moves a session applies (a reaper in the web process or any worker, a worker at start).

A session with a checkpoint (tasks/checkpoints.py) whose worker vanished (SIGKILL, host gone) is not ended as
``worker_lost``: it moves, as a SIGTERMed worker's session does (tasks/moving.py), but from its last checkpoint
rather than from a save at the end: same id, ``cdpUrl``, token and live-view links, ``restoredFrom`` saying when
its state is from. The move limit holds for both kinds of move, so a session whose workers keep dying ends.
"""
from __future__ import annotations

import logging
import time

from core.logs import session_fields
from core.session_machine import SessionMachine
from core.snapshots import SnapshotStore
from core.states import SessionRecord, Status, StopReason

log = logging.getLogger(__name__)
#: A session moved this many times within MOVE_WINDOW seconds (a crash loop: each worker it lands on stops or dies)
#: ends as ``move_limit`` instead of moving again. Constants, not settings: no deploy cadence comes near 3 in 10 min.
MOVE_LIMIT = 3
MOVE_WINDOW = 600.0
#: The snapshot store's folder of saved states, one folder per session.
MOVES = "moves"


def moves_folder(session_id: str) -> str:
    """Where a session's saved states live in the snapshot store: its move's and its checkpoints'."""
    return f"{MOVES}/{session_id}"


def recent_moves(record: SessionRecord, now: float) -> list[float]:
    """When the session moved within MOVE_WINDOW (Unix seconds), oldest first."""
    return [epoch for epoch in record.get("moveEpochs") or [] if now - epoch < MOVE_WINDOW]


def recover_or_lose(machine: SessionMachine, snapshots: SnapshotStore, session_id: str) -> SessionRecord | None:
    """The lost worker's session moves from its last checkpoint if it has one, runs, is not past its timeout and
    has not moved MOVE_LIMIT times lately; else it ends (``worker_lost``, or ``move_limit``) and its checkpoint is
    deleted. The new record, or None if another move won the race."""
    record = machine.store.sessions.get(session_id)
    if record is None:
        return None
    now = time.time()
    state = record.get("checkpointState")
    moves = recent_moves(record, now)
    can_move = (state and record["status"] == Status.RUNNING and not record.get("moving")
                and record.get("expiresEpoch", 0) > now and machine.dispatcher is not None)
    if not can_move or len(moves) >= MOVE_LIMIT:
        reason = StopReason.MOVE_LIMIT if can_move else StopReason.WORKER_LOST
        lost = machine.lose(session_id, reason)
        if lost is not None and state:
            snapshots.delete_blobs(moves_folder(session_id))
        return lost
    moved = machine.begin_move(session_id, moves + [now], moveState=state, checkpointState=None,
                               restoredFrom=record.get("checkpointedAt"))
    if moved is None:
        return None
    machine.dispatcher.send_relaunch(session_id, state)
    log.warning("session %s: its worker was lost; relaunching it from its checkpoint of %s", session_id,
                record.get("checkpointedAt"), extra=session_fields(record))
    return moved


def end_stuck_moves(machine: SessionMachine, snapshots: SnapshotStore) -> list[str]:
    """Sessions moving for over BROKER_MOVE_TIMEOUT (no worker took the relaunch: none up, none with room, the
    state unreadable and the relaunch's worker lost too) end as ``move_timeout``, or as the stop asked meanwhile,
    and their saved states are deleted: nothing stays ``running`` with no browser behind it."""
    ended = []
    for session_id in machine.store.moves.take_stuck(machine.store.config.worker.move_timeout):
        record = machine.store.sessions.get(session_id)
        if record is None or not record.get("moving"):
            continue
        stopping = record["status"] == Status.STOPPING
        reason = StopReason(record["stopReason"]) if stopping else StopReason.MOVE_TIMEOUT
        if machine.finish_stop(session_id, reason, None) is not None:
            log.warning("session %s: no worker ran it again within BROKER_MOVE_TIMEOUT; ended as %s", session_id,
                        reason, extra=session_fields(record))
            snapshots.delete_blobs(moves_folder(session_id))
            ended.append(session_id)
    return ended
