"""Stop announcements: how a worker tells every web process to close a session's CDP clients now."""
from __future__ import annotations

import json
from collections.abc import Iterator

from core.store import keys
from core.store.base import RecordKind


class StopEvents(RecordKind):
    def announce_stop(self, session_id: str, reason: str) -> None:
        self.redis.publish(keys.STOP_CHANNEL, json.dumps({"sessionId": session_id, "reason": str(reason)}))

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
