"""A small synchronous CDP client for the worker's own calls (readiness, first navigation).

Users' traffic never passes here; it goes through the relay. One connection is
used by one thread at a time.
"""
from __future__ import annotations

import itertools
import json
import time
from typing import Any

import websocket


class CdpError(RuntimeError):
    pass


class CdpConnection:
    def __init__(self, ws_url: str, timeout: float = 10.0, header: list[str] | None = None) -> None:
        """``header``: extra upgrade headers (``Name: value``), e.g. a worker gateway's credential."""
        self._ws = websocket.create_connection(
            ws_url, timeout=timeout, skip_utf8_validation=True, suppress_origin=True, enable_multithread=False,
            header=header or [],
        )
        self._ids = itertools.count(1)
        self._events: list[dict] = []

    def __enter__(self) -> CdpConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._ws.close()

    def abort(self) -> None:
        """Drop the connection without the closing handshake, which a hung browser would never answer."""
        self._ws.shutdown()

    def call(self, method: str, params: dict | None = None, session_id: str | None = None) -> dict[str, Any]:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        self._ws.send(json.dumps(message))
        while True:
            reply = json.loads(self._ws.recv())
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def wait_event(self, method: str, session_id: str | None, timeout: float) -> dict | None:
        """The first such event already seen or arriving within ``timeout``; None when none came."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self._events:
                if event["method"] == method and event.get("sessionId") == session_id:
                    self._events.remove(event)
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._ws.settimeout(remaining)
            try:
                self._events.append(json.loads(self._ws.recv()))
            except websocket.WebSocketTimeoutException:
                return None


def first_page_target(conn: CdpConnection) -> str:
    targets = conn.call("Target.getTargets")["targetInfos"]
    pages = [t for t in targets if t["type"] == "page"]
    if pages:
        return pages[0]["targetId"]
    return conn.call("Target.createTarget", {"url": "about:blank"})["targetId"]


#: The main document's HTTP status as the page itself saw it (Navigation Timing Level 2, Chromium 109+).
RESPONSE_STATUS = "performance.getEntriesByType('navigation')[0]?.responseStatus ?? 0"


def navigate_first_page(ws_url: str, url: str, timeout: float) -> str | None:
    """Navigate the browser's first tab and wait for its load event; what went wrong, else None.

    A network failure is Chromium's error text (``net::ERR_CONNECTION_REFUSED``);
    a page that loaded with an error status is ``HTTP 404``: both are failures
    a caller wants to know about, though the browser is up either way.
    """
    with CdpConnection(ws_url, timeout=timeout) as conn:
        target_id = first_page_target(conn)
        session_id = conn.call("Target.attachToTarget", {"targetId": target_id, "flatten": True})["sessionId"]
        conn.call("Page.enable", session_id=session_id)
        try:
            result = conn.call("Page.navigate", {"url": url}, session_id=session_id)
        except CdpError as error:
            # A URL Chromium cannot parse ("Cannot navigate to invalid URL") is the caller's navigation error.
            return str(error)
        if result.get("errorText"):
            return result["errorText"]
        if conn.wait_event("Page.loadEventFired", session_id, timeout) is None:
            return "load event did not fire in time"
        status = conn.call("Runtime.evaluate", {"expression": RESPONSE_STATUS, "returnByValue": True},
                           session_id=session_id)["result"].get("value", 0)
        conn.call("Target.detachFromTarget", {"sessionId": session_id})
        return f"HTTP {status}" if status >= 400 else None
