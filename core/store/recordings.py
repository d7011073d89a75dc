"""Which chunks a session's recording has in the snapshot store, how many bytes they hold, and when they go.

The chunks themselves are blobs (core/recordings.py); this list is how a reader finds them in order without
listing the store (file:// cannot list blobs, S3 charges for it), and what the size cap is counted against.
A chunk is named here only after its blob is written whole, so a reader never meets a half-written one.
"""
from __future__ import annotations

import json

from core.store import keys
from core.store.base import RecordKind

#: A running session's list outlives the longest session by a day, then lapses if nobody stopped it.
RUNNING_TTL = 2 * 86400


class RecordingRecords(RecordKind):
    def add_chunk(self, session_id: str, blob: str, size: int, events: int, capped: bool = False) -> None:
        key = keys.recording_chunks(session_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(key, json.dumps({"blob": blob, "bytes": size, "events": events, "capped": capped}))
        pipe.expire(key, RUNNING_TTL)
        pipe.execute()

    def chunks(self, session_id: str) -> list[dict]:
        return [json.loads(raw) for raw in self.redis.lrange(keys.recording_chunks(session_id), 0, -1)]

    def forget(self, session_id: str) -> None:
        """DELETE of the recording: no chunk is listed any more (the blobs go at once, by the caller), and the
        session says so as long as its record is kept."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(keys.recording_chunks(session_id))
        pipe.zrem(keys.RECORDING_EXPIRIES, session_id)
        pipe.set(keys.recording_deleted(session_id), 1, ex=self.config.sessions.retention)
        pipe.execute()

    def deleted(self, session_id: str) -> bool:
        return bool(self.redis.exists(keys.recording_deleted(session_id)))

    def take_expired(self, now: float) -> list[str]:
        """Sessions whose recording's retention ran out, each handed to one sweeper only."""
        due = self.redis.zrangebyscore(keys.RECORDING_EXPIRIES, "-inf", now, start=0, num=100)
        return [session_id for session_id in due if self.redis.zrem(keys.RECORDING_EXPIRIES, session_id)]
