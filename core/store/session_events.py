"""A session's event log: one capped Redis stream per session, kept as long as the session's record.

Any process appends (the worker's watcher of the browser, the relay, the state machine) and any web process
reads, so a stream is the one place they meet, ordered by Redis's own clock: each entry's id is the cursor a
reader passes back (``?since=``), and a live reader blocks on the same key (XREAD) rather than polling.

While the session lives its stream expires a day past the longest session (a worker that vanished leaves no
key behind for good); the stop sets the session record's own retention (BROKER_SESSION_RETENTION), and schedules
the deletion of the session's recording, if it has one (core/recordings.py), after BROKER_DOWNLOAD_RETENTION, as
its downloads'.
"""
from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from redis.exceptions import RedisError

from core.ids import utcnow_iso
from core.store import keys
from core.store.base import RecordKind

log = logging.getLogger(__name__)
#: A cursor is a stream id: milliseconds, a dash, a sequence number.
CURSOR = re.compile(r"^\d{1,15}-\d{1,10}$")
#: A running session's stream outlives the longest session (86400 s) by a day, then lapses if nobody stopped it.
RUNNING_TTL = 2 * 86400
#: Most events one session's log keeps; past it the oldest go (XADD's approximate trim).
EVENTS_MAX = 10000
STOPPING = "stopping"
STOPPED = "stopped"


class SessionEvents(RecordKind):
    def add(self, session_id: str, kind: str, **fields: Any) -> str:
        """Appends one event; its id (the cursor that follows it). The oldest go once the stream passes its cap."""
        event = {"type": kind, "at": utcnow_iso(), **{k: v for k, v in fields.items() if v is not None}}
        key = keys.session_events(session_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(key, {"e": json.dumps(event)}, maxlen=EVENTS_MAX, approximate=True)
        if kind == STOPPED:
            pipe.expire(key, self.config.sessions.retention)
        else:
            pipe.expire(key, RUNNING_TTL)
        return pipe.execute()[0]

    def status_changed(self, record: dict) -> None:
        """After a move to stopping or stopped (core.session_machine): its event and, once stopped, how long the
        log and the recording stay. Bookkeeping: the move has happened, so a Redis failure here is logged, never
        raised (a caller retrying the move would find it lost)."""
        session_id = record["id"]
        try:
            if record["status"] == STOPPING:
                self.add(session_id, STOPPING, reason=record.get("stopReason"))
                return
            self.add(session_id, STOPPED, reason=record.get("stopReason"), snapshotError=record.get("snapshotError"))
            if self.redis.expire(keys.recording_chunks(session_id), self.config.sessions.retention):
                self.redis.zadd(keys.RECORDING_EXPIRIES, {session_id: time.time() + self.config.files.download_retention})
        except RedisError as error:
            log.warning("session %s: its event log missed a %s event (%s)", session_id, record["status"], error,
                        extra={"session": session_id})

    def page(self, session_id: str, since: str | None, limit: int) -> tuple[list[dict], bool]:
        """Up to ``limit`` events after ``since`` (from the first without it), oldest first; and whether more follow."""
        start = f"({since}" if since else "-"
        entries = self.redis.xrange(keys.session_events(session_id), start, "+", count=limit + 1)
        return [_event(i, f) for i, f in entries[:limit]], len(entries) > limit

    def wait(self, session_id: str, since: str, timeout: float) -> list[dict]:
        """Events after ``since`` (``$``: from now on), waiting up to ``timeout`` seconds for the first."""
        answer = self.redis.xread({keys.session_events(session_id): since}, count=100,
                                  block=max(1, int(timeout * 1000)))
        return [_event(i, f) for _, entries in answer for i, f in entries]

    def last_id(self, session_id: str) -> str:
        """The newest event's id, or ``0-0`` for an empty log: where a live reader starts after a page."""
        newest = self.redis.xrevrange(keys.session_events(session_id), count=1)
        return newest[0][0] if newest else "0-0"


def _event(entry_id: str, fields: dict) -> dict:
    return {"id": entry_id, **json.loads(fields["e"])}
