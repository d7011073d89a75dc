"""Plain-HTTP answers on the CDP socket's path; the upgrade itself is served by ``proxy``.

Every URL here needs the session's connect token (``?token=``, core.tokens),
as the socket does: without one the answer is 401, and with one that does not
match a running session (unknown id, stopped session, wrong or another
session's token) it is the same 404, so a refusal says nothing about which.
``/ws/session/<id>/json/version``, ``json/list`` (and ``json``) and
``json/protocol`` answer like Chromium's own endpoints, so that tools that
discover the socket over HTTP (chrome-remote-interface, ChromeDriver's
``debuggerAddress``, ``connectOverCDP("http://…")``) find the relay, token
included, never the browser: each page target's ``webSocketDebuggerUrl`` is the
relay's page socket ``/ws/session/<id>/devtools/page/<target id>?token=…``.
``/json/protocol`` is also served at the root without a token, because
chrome-remote-interface given only a ``ws://`` URL asks there: it is Chromium's
public protocol description (the newest worker's browser's), no secret. All are
in the OpenAPI document, without the API key.
"""
from __future__ import annotations

import logging

import websocket
from flask import Blueprint as FlaskBlueprint, Response, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import Schema, fields

from app.docs import ERROR_REF, responds
from app.extensions import config, links, store
from core.cdp import CdpConnection, CdpError
from core.states import Status
from core.tokens import TOKEN_PARAM, matches

blp = Blueprint("relay", __name__, url_prefix="/ws/session",
                description="A session's CDP socket and Chromium's discovery endpoint; the connect token is the key.")
NO_KEY = {"security": []}
TOKEN_401 = "No `token` in the query."
TOKEN_404 = "No running session matches this id and token (unknown, stopped, or a wrong token: not told apart)."


class TokenQuerySchema(Schema):
    token = fields.String(metadata={"description": "The connect token, as in the session's cdpUrl."})


class VersionSchema(Schema):
    class Meta:
        ordered = True

    Browser = fields.String(required=True)
    ProtocolVersion = fields.String(required=True, data_key="Protocol-Version")
    UserAgent = fields.String(required=True, data_key="User-Agent")
    V8Version = fields.String(required=True, data_key="V8-Version")
    WebKitVersion = fields.String(required=True, data_key="WebKit-Version")
    webSocketDebuggerUrl = fields.String(required=True, metadata={"description": "The session's cdpUrl, token included."})


class TargetSchema(Schema):
    class Meta:
        ordered = True

    description = fields.String(required=True)
    id = fields.String(required=True)
    title = fields.String(required=True)
    type = fields.String(required=True)
    url = fields.String(required=True)
    webSocketDebuggerUrl = fields.String(required=True, metadata={
        "description": "The relay's socket for this page target, token included."})


def running_session(session_id: str, token: str | None) -> dict:
    """The session's record, if ``token`` opens it; a refusal before anything else is read or said."""
    if not token:
        abort(401, message="This URL needs the session's connect token: use the cdpUrl as the API gave it (?token=…).")
    record = store().sessions.get(session_id)
    if record is None or record["status"] != Status.RUNNING or not matches(record, token):
        abort(404, message="No running session answers to this URL and token.")
    return record


@blp.route("/<session_id>")
class CdpSocket(MethodView):
    @blp.arguments(TokenQuerySchema, location="query")
    @blp.alt_response(426, schema=ERROR_REF, description="Not a WebSocket upgrade: connect with a CDP client.",
                      headers={"Upgrade": {"required": True, "schema": {"type": "string", "enum": ["websocket"]}}})
    @blp.alt_response(101, description="Switching Protocols: the socket relays CDP frames to and from the browser.")
    @responds(blp, "connectCdp", 401, 404, common=(413, 503), d401=TOKEN_401, d404=TOKEN_404,
              d503="The session's socket is not ready (it is stopping), or storage (Redis) unreachable.")
    @blp.doc(**NO_KEY)
    def get(self, query: dict, session_id: str):
        """The session's CDP WebSocket: connect to the cdpUrl as given (`puppeteer.connect`, `connectOverCDP`)."""
        running_session(session_id, query.get(TOKEN_PARAM))
        # Werkzeug has no exception for 426, so the answer is built here rather than raised.
        message = "This is a WebSocket endpoint: connect with a CDP client."
        return jsonify(code=426, status="Upgrade Required", message=message), 426, {"Upgrade": "websocket"}


#: Upgrades the relay did not take arrive here (Werkzeug routes WebSocket requests to WebSocket rules only).
upgrades = FlaskBlueprint("relay_upgrades", __name__)


@upgrades.get("/ws/session/<session_id>", websocket=True)
def refused_upgrade(session_id: str):
    """The relay takes every upgrade it can serve: with a token that matches, the session just stopped."""
    running_session(session_id, request.args.get(TOKEN_PARAM))
    abort(503, message="The session's socket is not ready; try again.", headers={"Retry-After": "1"})


@blp.route("/<session_id>/json/version", strict_slashes=False)  # Playwright asks for json/version/
class JsonVersion(MethodView):
    @blp.arguments(TokenQuerySchema, location="query")
    @blp.response(200, VersionSchema)
    @responds(blp, "cdpVersion", 401, 404, common=(413, 503), d401=TOKEN_401, d404=TOKEN_404)
    @blp.doc(**NO_KEY)
    def get(self, query: dict, session_id: str):
        """Like Chromium's `/json/version`, with `webSocketDebuggerUrl` pointing at the relay (token included)."""
        token = query.get(TOKEN_PARAM)
        record = running_session(session_id, token)
        return {
            "Browser": record.get("browserVersion", ""),
            "ProtocolVersion": "1.3",
            "UserAgent": record.get("userAgent", ""),
            "V8Version": record.get("browserJsVersion", ""),
            # Chromium's own: "537.36 (@<revision>)"; Blink has reported WebKit 537.36 since it forked.
            "WebKitVersion": f"537.36 ({record.get('browserRevision', '')})",
            "webSocketDebuggerUrl": config().cdp_url(session_id, token),
        }


log = logging.getLogger(__name__)


def page_targets(record: dict, token: str) -> list[dict]:
    """The browser's page targets, as Chromium's /json/list shows them, each pointing at the relay's page socket."""
    route = links().route(record)
    try:
        with CdpConnection(route.url, timeout=10, header=route.header_lines()) as conn:
            infos = conn.call("Target.getTargets")["targetInfos"]
    except (OSError, websocket.WebSocketException, CdpError) as error:
        log.warning("session %s: /json/list could not reach the browser: %s", record["id"], error)
        abort(502, message="The session's browser cannot be reached.")
    base = config().cdp_url(record["id"], None)
    return [{"description": "", "id": t["targetId"], "title": t["title"], "type": t["type"], "url": t["url"],
             "webSocketDebuggerUrl": f"{base}/devtools/page/{t['targetId']}?token={token}"}
            for t in infos if t["type"] == "page"]


@blp.route("/<session_id>/json/list", strict_slashes=False)
class JsonList(MethodView):
    @blp.arguments(TokenQuerySchema, location="query")
    @blp.response(200, TargetSchema(many=True))
    @responds(blp, "cdpList", 401, 404, 502, common=(413, 503), d401=TOKEN_401, d404=TOKEN_404)
    @blp.doc(**NO_KEY)
    def get(self, query: dict, session_id: str):
        """Like Chromium's `/json/list`: the page targets, each with a relay socket of its own (token included)."""
        token = query.get(TOKEN_PARAM)
        return page_targets(running_session(session_id, token), token)


@blp.route("/<session_id>/json", strict_slashes=False)
class Json(MethodView):
    @blp.arguments(TokenQuerySchema, location="query")
    @blp.response(200, TargetSchema(many=True))
    @responds(blp, "cdpJson", 401, 404, 502, common=(413, 503), d401=TOKEN_401, d404=TOKEN_404)
    @blp.doc(**NO_KEY)
    def get(self, query: dict, session_id: str):
        """Chromium's alias of `/json/list`."""
        token = query.get(TOKEN_PARAM)
        return page_targets(running_session(session_id, token), token)


def protocol_answer() -> Response:
    known = store().cdp_protocol.get()
    if known is None:
        abort(404, message="No browser of this deployment has described its protocol yet; it is known once a "
                           "session has run.")
    return Response(known["protocol"], 200, mimetype="application/json")


@blp.route("/<session_id>/json/protocol", strict_slashes=False)
class JsonProtocol(MethodView):
    @blp.arguments(TokenQuerySchema, location="query")
    @blp.alt_response(200, description="Chromium's protocol description, as its `/json/protocol` gives it.")
    @responds(blp, "cdpProtocol", 401, 404, common=(413, 503), d401=TOKEN_401, d404=TOKEN_404)
    @blp.doc(**NO_KEY)
    def get(self, query: dict, session_id: str):
        """Like Chromium's `/json/protocol`."""
        running_session(session_id, query.get(TOKEN_PARAM))
        return protocol_answer()


#: chrome-remote-interface given a ws:// URL asks http://host:port/json/protocol, whatever the URL's path.
public_protocol = Blueprint("cdp_protocol", __name__, description="Chromium's public protocol description.")


@public_protocol.route("/json/protocol", strict_slashes=False)
class PublicProtocol(MethodView):
    @public_protocol.alt_response(200, description="Chromium's protocol description, as its `/json/protocol` gives it.")
    @responds(public_protocol, "cdpPublicProtocol", 404, common=(503,),
              d404="No browser of this deployment has run yet, so its protocol is not known.")
    @public_protocol.doc(**NO_KEY)
    def get(self):
        """Chromium's `/json/protocol` (the newest worker's browser's), for CDP clients that fetch it before connecting."""
        return protocol_answer()
