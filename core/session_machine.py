"""The session state machine's moves as calls, applied through the store: the one writer of a session's status.

The table (what each move may do) is :mod:`core.states`; this module is what the API, the worker's tasks and its
housekeeping call, adding to each move the fields it writes and, for a stop requested by the API, the task that
asks the owning worker to stop the browser. Every other consequence of a move (indexes, holds, the create told,
the CDP clients told) is an effect carried out in the move's own transaction by :mod:`core.store.sessions`, so it
happens exactly when the move does.
"""
from __future__ import annotations

import time
from typing import Any

from core.dispatch import Dispatcher
from core.ids import utcnow_iso
from core.states import (
    ABANDON, BEGIN_MOVE, CLAIM, DROP, FINISH_STOP, HAND_OVER, LOSE, READY, REQUEST_STOP, SETTLE_MOVE, Move,
    SessionRecord, Status, StopReason,
)
from core.store import Store

#: A lost session's ``snapshotError`` when it had a context and its stop had not saved it.
LOST_BEFORE_SAVE = "the session's worker was lost before its context was saved; previous snapshot kept"
#: What a stopped session's record forgets: the hashes its connect token and live-view links are checked against
#: (core.tokens).
TOKEN_DEAD = {"connectTokenHash": None, "liveViewHash": None, "liveViewReadOnlyHash": None}


class SessionMachine:
    """Each method is one move: the new record if it happened, None if the session was not in a state it starts from
    (of two racing moves exactly one wins; the loser has no effect at all)."""

    def __init__(self, store: Store, dispatcher: Dispatcher | None = None) -> None:
        self.store = store
        self.dispatcher = dispatcher

    def _apply(self, move: Move, session_id: str, **changes: Any) -> SessionRecord | None:
        record = self.store.sessions.move(session_id, move, changes)
        if record is not None and move.target in (Status.STOPPING, Status.STOPPED):
            self.store.session_events.status_changed(record)
        return record

    def claim(self, session_id: str, worker: str) -> SessionRecord | None:
        return self._apply(CLAIM, session_id, worker=worker)

    def abandon(self, session_id: str) -> SessionRecord | None:
        return self._apply(ABANDON, session_id)

    def drop(self, session_id: str) -> SessionRecord | None:
        """Gives back what a create that gave up held, once its deadline has passed; None if it has not (or the
        session is past launching, or already abandoned)."""
        return self._apply(DROP, session_id)

    def ready(self, session_id: str, **browser: Any) -> SessionRecord | None:
        return self._apply(READY, session_id, **browser)

    def hand_over(self, session_id: str, worker: str, **browser: Any) -> SessionRecord | None:
        return self._apply(HAND_OVER, session_id, worker=worker, **browser)

    def stop(self, session_id: str, reason: StopReason) -> SessionRecord | None:
        """Ask the owning worker to stop a running session; idempotent (a second call finds it stopping).

        The task is sent only after the move, and only by its winner: of two racing stops, one task.
        """
        record = self.begin_stop(session_id, reason)
        if record is not None and self.dispatcher is not None:
            self.dispatcher.send_stop(record["worker"], session_id, reason)
        return record

    def begin_stop(self, session_id: str, reason: StopReason) -> SessionRecord | None:
        """A running session becomes stopping, its CDP clients told in the move; no task is sent.

        The worker's stop flow starts with it, so that the clients of a stop the worker decided itself (SIGTERM)
        hear the reason before the browser ends, as they do for a stop the API requested; None when the session is
        not running (its stop was requested already, and its clients told then; or it has no record).
        """
        return self._apply(REQUEST_STOP, session_id, stopReason=reason, stopRequestedEpoch=time.time())

    def finish_stop(self, session_id: str, reason: StopReason, snapshot_error: str | None,
                    downloads: list[dict] | None = None, downloads_expire: float | None = None) -> SessionRecord | None:
        """The browser is gone, its context saved and its downloads archived: the session is stopped."""
        archived = {"downloads": downloads, "downloadsExpireEpoch": downloads_expire} if downloads else {}
        return self._apply(FINISH_STOP, session_id, stoppedAt=utcnow_iso(), stopReason=reason,
                           snapshotError=snapshot_error, **archived, **TOKEN_DEAD)

    def begin_move(self, session_id: str, moves: list[float], **changes: Any) -> SessionRecord | None:
        """A worker told to stop moves the session away (tasks/moving.py): it stays running, moving, its clients
        closed with 1012 in the move, before its state is saved; ``moves``: when it moved, this move included."""
        return self._apply(BEGIN_MOVE, session_id, moving=True, moveEpochs=moves, **changes)

    def settle_move(self, session_id: str, worker: str, **browser: Any) -> SessionRecord | None:
        """The session runs again on ``worker``; None (and the caller ends its browser) if it stopped meanwhile."""
        return self._apply(SETTLE_MOVE, session_id, worker=worker, moving=False, moveState=None, **browser)

    def lose(self, session_id: str, reason: StopReason = StopReason.WORKER_LOST) -> SessionRecord | None:
        """The worker holding the browser is gone: no save is possible, the last good snapshot stays in force.

        A session with a context says so in ``snapshotError``, unless its stop had already committed the save (the
        worker died after that). Once lost, no save of it can commit any more (``ContextRecords.commit_save``
        requires a live session), so the answer cannot go stale after the move; only a save committed by a worker
        that is declared lost yet still alive, in the instant between this check and the move, would be reported
        as not saved. ``reason``: ``move_limit`` for a lost session a checkpoint could have brought back, had it not
        moved too often (core/recovery.py).
        """
        changes = {"stoppedAt": utcnow_iso(), "stopReason": reason, **TOKEN_DEAD}
        if not self._context_saved(session_id):
            changes["snapshotError"] = LOST_BEFORE_SAVE
        return self._apply(LOSE, session_id, **changes)

    def _context_saved(self, session_id: str) -> bool:
        """True unless the session has a context its stop has not saved: only that session's commit names it
        ``lastSessionId``, and no later session can save the context while this one still holds it."""
        record = self.store.sessions.get(session_id)
        context_id = record.get("contextId") if record else None
        if not context_id:
            return True
        context = self.store.contexts.get(context_id)
        return context is not None and context.get("lastSessionId") == session_id
