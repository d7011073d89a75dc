"""Plain-HTTP answers on the CDP socket's path; the upgrade itself is served by ``proxy``.

Every URL here needs the session's connect token (``?token=``, core.tokens),
as the socket does: without one the answer is 401, and with one that does not
match a running session (unknown id, stopped session, wrong or another
session's token) it is the same 404, so a refusal says nothing about which.
``/ws/session/<id>/json/version`` answers like Chromium's own endpoint so that
tools that discover the socket over HTTP find the relay (token included),
never the browser.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask_smorest import abort

from app.extensions import config, store
from core.states import Status
from core.tokens import TOKEN_PARAM, matches

blp = Blueprint("relay_info", __name__)


def running_session(session_id: str) -> tuple[dict, str]:
    """The session's record and the token that matched it; a refusal before anything else is read or said."""
    token = request.args.get(TOKEN_PARAM)
    if not token:
        abort(401, message="This URL needs the session's connect token: use the cdpUrl as the API gave it (?token=…).")
    record = store().sessions.get(session_id)
    if record is None or record["status"] != Status.RUNNING or not matches(record, token):
        abort(404, message="No running session answers to this URL and token.")
    return record, token


@blp.get("/ws/session/<session_id>", websocket=True)
def refused_upgrade(session_id: str):
    """Reached only when the relay did not take the upgrade; with a valid token, the session just stopped."""
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
    record, token = running_session(session_id)
    return jsonify(
        {
            "Browser": record.get("browserVersion", ""),
            "Protocol-Version": "1.3",
            "User-Agent": record.get("userAgent", ""),
            "webSocketDebuggerUrl": config().cdp_url(session_id, token),
        }
    )
