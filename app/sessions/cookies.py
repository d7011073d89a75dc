"""A running session's cookies, read and written by the web process itself over the browser's CDP socket.

The web process already reaches every browser (the relay's route: loopback on
its own host, the worker's gateway from another, core/browser_link.py), so it
calls CDP directly rather than sending a task to the owning worker. bench/cookies.py, 100 cookies: the direct read is 4 ms
p50 / 7 ms p95; the same read as a Celery task, answer back over Redis, is
11 / 15 ms, and would add a worker thread and a reply channel per call.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import websocket
from flask_smorest import abort

from app.sessions.schemas import too_large
from app.extensions import links
from app.sessions.service import get_visible
from core.ids import utcnow_iso
from core.states import Status
from core.store import Store
from core.cdp import CdpConnection, CdpError
from core.cookies import merge_cookies, read_cookies, replace_cookies

log = logging.getLogger(__name__)

#: Seconds a cookie call may wait on the browser; Chromium answers in about a millisecond.
CDP_TIMEOUT = 10.0
MERGE, REPLACE = "merge", "replace"


def _running(store: Store, project: str, session_id: str) -> dict:
    record = get_visible(store, project, session_id)
    if record["status"] != Status.RUNNING:
        abort(409, message=f"Session {session_id} is {record['status']}; cookies need a running session.")
    return record


@contextmanager
def _browser(store: Store, record: dict) -> Iterator[CdpConnection]:
    """A CDP connection to the session's browser; a browser that went away mid-call is a 409 if the session is ending."""
    session_id = record["id"]
    try:
        route = links().route(record)
        with CdpConnection(route.url, timeout=CDP_TIMEOUT, header=route.header_lines()) as conn:
            yield conn
    except (OSError, websocket.WebSocketException, CdpError) as error:
        current = store.sessions.get(session_id)
        if current is None or current["status"] != Status.RUNNING:
            abort(409, message=f"Session {session_id} stopped during the call; cookies need a running session.")
        log.warning("session %s: cookie call could not reach the browser: %s", session_id, error)
        abort(502, message="The session's browser cannot be reached.")


def export(store: Store, project: str, session_id: str, domain: str | None) -> dict:
    record = _running(store, project, session_id)
    with _browser(store, record) as conn:
        cookies = read_cookies(conn, domain)
    return {"sessionId": session_id, "exportedAt": utcnow_iso(), "count": len(cookies), "cookies": cookies}


def inject(store: Store, project: str, session_id: str, cookies: list[dict], mode: str, max_bytes: int) -> dict:
    """Validated cookies in; Chromium refusing one anyway is a 422 and leaves the browser's cookies as they were."""
    record = _running(store, project, session_id)
    problems = too_large(cookies, max_bytes)
    if problems:
        abort(422, message="The request did not pass validation; see errors.", errors=problems)
    with _browser(store, record) as conn:
        try:
            (replace_cookies if mode == REPLACE else merge_cookies)(conn, cookies)
        except CdpError as error:
            log.info("session %s: browser refused injected cookies: %s", session_id, error)
            abort(422, message=f"The browser refused the cookies ({error}); nothing changed.",
                  errors={"json": {"cookies": [str(error)]}})
    log.info("session %s: %d cookies injected (%s)", session_id, len(cookies), mode)
    return {"sessionId": session_id, "count": len(cookies), "mode": mode}
