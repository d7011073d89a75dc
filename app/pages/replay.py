"""A session's replay page (``/replay/<id>?token=…``): rrweb-player, served by the web process, over the recording.

The page, its script and rrweb-player come from this deployment (assets/rrweb, installed from its lock file), never
a CDN. The credential in the URL (core/replay_links.py) opens this page and ``/replay/<id>/recording`` only: read,
never write. The recorded pages are rebuilt in rrweb's sandboxed iframe, where no script runs; their styles are
inline and their images load from where they were, so the policy allows those and nothing else beyond 'self'.
"""
from __future__ import annotations

from flask import Blueprint, Response, request, send_from_directory
from flask_smorest import abort

from app.extensions import store
from app.pages import SECURITY_HEADERS, STATIC
from app.sessions.recording import events_of, recorded, replay_links
from core.recordings import RRWEB_DIR
from core.tokens import TOKEN_PARAM

PLAYER = RRWEB_DIR / "rrweb-player" / "dist"
PLAYER_FILES = {"rrweb-player.js": "rrweb-player.umd.min.cjs", "rrweb-player.css": "style.min.css"}
REPLAY_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; connect-src 'self'; "
                               "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob: http: https:; "
                               "font-src 'self' data: http: https:; media-src 'none'; object-src 'none'; "
                               "base-uri 'none'; form-action 'none'",
}

blp = Blueprint("replay", __name__)


def _opened(session_id: str) -> dict | None:
    record = store().sessions.get(session_id)
    if record is None or not recorded(record) or not replay_links().opens(record, request.args.get(TOKEN_PARAM)):
        return None
    return record


@blp.get("/replay/<ses_id:session_id>")
def replay(session_id: str) -> Response:
    """The page; 404 (the same page, which then says so) when the link does not open a recording."""
    response = send_from_directory(STATIC, "replay.html", max_age=0)
    response.status_code = 200 if _opened(session_id) else 404
    response.headers.update(REPLAY_HEADERS)
    return response


@blp.get("/replay/<ses_id:session_id>/recording")
def replay_events(session_id: str) -> Response:
    record = _opened(session_id)
    if record is None:
        abort(404, message="No recording answers to this replay link (deleted, expired or wrong).")
    return Response(events_of(record), 200, {"Content-Encoding": "gzip", **REPLAY_HEADERS},
                    mimetype="application/json", direct_passthrough=True)


@blp.get("/replay/assets/<name>")
def player_asset(name: str) -> Response:
    if name not in PLAYER_FILES:
        abort(404, message=f"No replay asset {name}.")
    mimetype = "text/javascript" if name.endswith(".js") else "text/css"
    response = send_from_directory(PLAYER, PLAYER_FILES[name], mimetype=mimetype, max_age=3600)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
