"""A session's event log over HTTP: a page at a time, or as Server-Sent Events while the session runs.

The stream is a generator the web process's gevent server writes as it yields, so one blocked reader holds a
greenlet and a Redis connection (XREAD waits inside Redis), never a thread. It ends after the ``stopped`` event,
or at once for a session already stopped once its log is sent.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator

from app.sessions.service import get_visible
from core.states import Status
from core.store import Store
from core.store.session_events import CURSOR, STOPPED

__all__ = ["CURSOR", "page", "stream"]
#: Seconds one XREAD waits (under the Redis client's 5 s socket timeout).
WAIT = 3.0
#: Seconds of silence after which the stream sends a comment, so proxies and routers keep it open.
KEEPALIVE = 15.0


def page(store: Store, project: str, session_id: str, since: str | None, limit: int) -> dict:
    get_visible(store, project, session_id)
    events, more = store.session_events.page(session_id, since, limit)
    return {"sessionId": session_id, "events": events, "next": events[-1]["id"] if events else since,
            "hasMore": more}


def _frame(event: dict) -> bytes:
    return f"id: {event['id']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def stream(store: Store, project: str, session_id: str, since: str | None) -> Iterator[bytes]:
    """Checked before the first byte (a 404 is an ordinary JSON answer); then the events, as they come."""
    get_visible(store, project, session_id)
    return _follow(store, session_id, since or "0-0")


def _follow(store: Store, session_id: str, cursor: str) -> Iterator[bytes]:
    yield b"retry: 2000\n\n"
    quiet_since = time.monotonic()
    while True:
        events = store.session_events.wait(session_id, cursor, WAIT)
        for event in events:
            yield _frame(event)
            cursor = event["id"]
            if event["type"] == STOPPED:
                return
        if events:
            quiet_since = time.monotonic()
            continue
        record = store.sessions.get(session_id)
        if record is None or record["status"] == Status.STOPPED:
            # The move to stopped commits a moment before its event is written: whatever came meanwhile.
            last, _ = store.session_events.page(session_id, cursor, 1000)
            yield from (_frame(event) for event in last)
            return
        if time.monotonic() - quiet_since > KEEPALIVE:
            quiet_since = time.monotonic()
            yield b": keepalive\n\n"
