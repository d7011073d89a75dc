"""Pages for people, served by the web process itself: a session's live view and the sessions dashboard.

Both are static files (no CDN, no external font or script: they work on a
network with no way out). The dashboard is a client of the public /v1 API with
the key the person enters; the live view's page talks only to its own socket
(``/live/<id>/socket``, served by proxy.live_view), with the credential in its
URL. The page's URL carries that credential, so it is never sent on as a
referrer, never cached, and the access log redacts it (core.tokens.redact).
"""
from __future__ import annotations

import time
from pathlib import Path

from flask import Blueprint, Response, request, send_from_directory
from flask_smorest import abort

from app.extensions import store
from core.states import Status
from core.tokens import TOKEN_PARAM, live_view_access

STATIC = Path(__file__).parent / "static"
#: Only this origin's own files; frames arrive as data: URLs; the page may be embedded (human-in-the-loop tools).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

blp = Blueprint("pages", __name__, static_folder=str(STATIC), static_url_path="/pages")


def _page(name: str, status: int = 200) -> Response:
    response = send_from_directory(STATIC, name, max_age=0)
    response.status_code = status
    response.headers.update(SECURITY_HEADERS)
    return response


def _opens(session_id: str) -> bool:
    record = store().sessions.get(session_id)
    opened = live_view_access(record, request.args.get(TOKEN_PARAM), time.time()) is not None
    return opened and record["status"] == Status.RUNNING


@blp.get("/live/<ses_id:session_id>")
def live_view(session_id: str) -> Response:
    """The viewer page; 404 (the same page, which then says the view is not available) when its link does not open."""
    return _page("live.html", 200 if _opens(session_id) else 404)


@blp.get("/live/<ses_id:session_id>/socket", websocket=True)
def refused_live_socket(session_id: str):
    """proxy.server takes every live-view upgrade it can serve: one that arrives here is refused."""
    if not _opens(session_id):
        abort(404, message="No running session answers to this live-view link (ended, expired, revoked or wrong).")
    abort(503, message="The live view is not ready; try again.", headers={"Retry-After": "1"})


@blp.get("/dashboard")
def dashboard() -> Response:
    return _page("dashboard.html")
