"""Stop announcements: how every web process hears to close a session's CDP clients now.

Published only from a move's transaction (core.states.Effect.ANNOUNCE_STOP), so a web process hears of a stop once,
and never of a move that lost.
"""
from __future__ import annotations

import json
from collections.abc import Iterator

from core.store import keys
from core.store.base import Pipeline, RecordKind


#: The close code for clients of a session that moves (RFC 6455's "service restart"): reconnect, it comes back.
SERVICE_RESTART = 1012


def queue_stop_announcement(pipe: Pipeline, session_id: str, reason: str, code: int | None = None) -> None:
    """Into a transaction: Redis publishes it when, and only if, the transaction commits. ``code``: the close code
    the clients get, when not the relay's own for a stop (1001)."""
    announcement = {"sessionId": session_id, "reason": str(reason)}
    if code is not None:
        announcement["code"] = code
    pipe.publish(keys.STOP_CHANNEL, json.dumps(announcement))


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
