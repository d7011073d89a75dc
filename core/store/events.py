"""Stop announcements: how every web process hears to close a session's CDP clients now.

Published only from a move's transaction (core.states.Effect.ANNOUNCE_STOP), so a web process hears of a stop once,
and never of a move that lost.
"""
from __future__ import annotations

import json
from collections.abc import Iterator

from core.store import keys
from core.store.base import Pipeline, RecordKind


def queue_stop_announcement(pipe: Pipeline, session_id: str, reason: str) -> None:
    """Into a transaction: Redis publishes it when, and only if, the transaction commits."""
    pipe.publish(keys.STOP_CHANNEL, json.dumps({"sessionId": session_id, "reason": str(reason)}))


class StopEvents(RecordKind):
    def stop_announcements(self) -> Iterator[dict]:
        """Yields stop announcements forever; raises on a broken Redis connection (callers retry)."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(keys.STOP_CHANNEL)
        try:
            while True:
                message = pubsub.get_message(timeout=1.0)
                if message and message["type"] == "message":
                    yield json.loads(message["data"])
        finally:
            pubsub.close()
