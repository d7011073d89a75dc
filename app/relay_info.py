"""Plain-HTTP answers on the CDP socket's path; the upgrade itself is served by ``proxy``.

``/ws/session/<id>/json/version`` answers like Chromium's own endpoint so that
tools that discover the socket over HTTP find the relay, never the browser.
"""
from __future__ import annotations

from flask import Blueprint, jsonify
from flask_smorest import abort

from app.extensions import config, store
from core.states import Status

blp = Blueprint("relay_info", __name__)


def running_session(session_id: str) -> dict:
    record = store().sessions.get(session_id)
    if record is None or record["status"] != Status.RUNNING:
        abort(404, message=f"No running session {session_id}.")
    return record


@blp.get("/ws/session/<session_id>", websocket=True)
def refused_upgrade(session_id: str):
    """Reached only when the relay did not take the upgrade: the session is not running (anymore)."""
    running_session(session_id)
    abort(503, message="The session's socket is not ready; try again.", headers={"Retry-After": "1"})


@blp.get("/ws/session/<session_id>")
def not_upgraded(session_id: str):
    running_session(session_id)
    message = "This is a WebSocket endpoint: connect with a CDP client."
    return jsonify(code=426, status="Upgrade Required", message=message), 426, {"Upgrade": "websocket"}


@blp.get("/ws/session/<session_id>/json/version")
@blp.get("/ws/session/<session_id>/json/version/")
def version(session_id: str):
    record = running_session(session_id)
    return jsonify(
        {
            "Browser": record.get("browserVersion", ""),
            "Protocol-Version": "1.3",
            "User-Agent": record.get("userAgent", ""),
            "webSocketDebuggerUrl": config().cdp_url(session_id),
        }
    )
