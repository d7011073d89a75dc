"""What a moving session needs from Redis beside its record: one relaunch at a time, a way to wait for it, its
checkpoints, and the moves no worker took up.

A relaunch task may be delivered twice (acks_late, a worker lost mid-task); the claim makes the second a no-op
while the first is under way. The record's status and ``moving`` change only through the state machine's
``begin_move`` and ``settle_move`` (core.states); a checkpoint writes only ``checkpointState`` and
``checkpointedAt``, and only on a session still running, not moving, on the worker that saved it.
"""
from __future__ import annotations

import time

from core.states import SessionRecord, Status
from core.store import keys
from core.store.base import Pipeline, RecordKind, dump, load

#: How often a client waiting for a moving session looks at its record again (seconds).
POLL = 0.2


def _claim_key(session_id: str, state: str) -> str:
    return f"{keys.session(session_id)}:relaunch:{state}"


class MoveRecords(RecordKind):
    def claim_relaunch(self, session_id: str, state: str, seconds: float) -> bool:
        """True for the one worker that relaunches the session from ``state``, for ``seconds`` (its launch's
        bound): a relaunch that died with its worker can be taken again after that."""
        return bool(self.redis.set(_claim_key(session_id, state), "1", nx=True, ex=max(1, int(seconds))))

    def release_relaunch(self, session_id: str, state: str) -> None:
        """A relaunch refused here (no slot, another project's browsers) goes back to the queue for any worker."""
        self.redis.delete(_claim_key(session_id, state))

    def wait_settled(self, session_id: str, timeout: float) -> SessionRecord | None:
        """The record once it no longer moves (or is not running any more), or as it is after ``timeout``.

        Polls: a move takes seconds and a connect waits for it rarely, so a subscription would buy nothing. Under
        gevent (the web process) the sleep yields to the other clients.
        """
        deadline = time.monotonic() + timeout
        while True:
            record = self._load(keys.session(session_id))
            if record is None or record["status"] != Status.RUNNING or not record.get("moving"):
                return record
            if time.monotonic() >= deadline:
                return record
            time.sleep(POLL)

    def commit_checkpoint(self, session_id: str, worker: str, state: str, saved_at: str) -> tuple[bool, str | None]:
        """Point the session at its new checkpoint: (True, the checkpoint it replaces), or (False, None) and nothing
        written if it no longer runs on ``worker`` (stopped, moving, reaped meanwhile): the caller deletes ``state``."""
        key = keys.session(session_id)

        def write(pipe: Pipeline) -> tuple[bool, str | None]:
            record = load(pipe.get(key))
            if (record is None or record["status"] != Status.RUNNING or record.get("moving")
                    or record.get("worker") != worker):
                return False, None
            previous = record.get("checkpointState")
            record.update(checkpointState=state, checkpointedAt=saved_at)
            pipe.multi()
            pipe.set(key, dump(record), keepttl=True)
            return True, previous

        return self.redis.transaction(write, key, value_from_callable=True)

    def take_stuck(self, older_than: float) -> list[str]:
        """Sessions moving for over ``older_than`` seconds; each handed to exactly one caller (whoever removes it)."""
        due = self.redis.zrangebyscore(keys.MOVES_UNDER_WAY, "-inf", time.time() - older_than)
        return [session_id for session_id in due if self.redis.zrem(keys.MOVES_UNDER_WAY, session_id)]
