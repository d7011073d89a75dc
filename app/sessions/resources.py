"""Sessions: POST/GET/GET one/DELETE /v1/sessions, and GET/PUT /v1/sessions/:id/cookies."""
from __future__ import annotations

import logging
import time

from flask import Response, g, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from app import limits
from app.auth import current_project, holds, require_scope
from app.docs import links_to, responds
from app.extensions import config, connect_tokens, live_view_tokens, machine, store
from app.metrics import CREATED
from app.paging import paginated
from app.sessions import cookies, events, recording, service
from app.sessions.log_schemas import EventPageSchema, EventQuerySchema, StreamQuerySchema
from core.environ import client_gone
from core.logs import session_fields
from core.states import StopReason
from app.sessions.schemas import (
    CookieQuerySchema, CookiesWriteSchema, CookiesWrittenSchema, SessionCookiesSchema,
    SessionCreateSchema, SessionListQuerySchema, SessionSchema,
)

log = logging.getLogger(__name__)
blp = Blueprint("sessions", __name__, url_prefix="/v1/sessions", description="Running browsers.")
NOT_RUNNING = "The session is not running (stopping or stopped)."


def _public(record: dict) -> dict:
    """Every answer that shows a session: a key without sessions:write sees it, but gets nothing that drives it."""
    return service.public(record, config(), connect_tokens(), live_view_tokens(), store(), drive=holds("sessions:write"))


@blp.route("")
class Sessions(MethodView):
    @require_scope("sessions:read")
    @blp.arguments(SessionListQuerySchema, location="query")
    @blp.response(200, SessionSchema(many=True))
    @paginated(blp)
    @responds(blp, "listSessions", 422)
    def get(self, query: dict, pagination_parameters):
        """List the project's sessions, newest first, a page at a time."""
        records, total = store().sessions.page(current_project(), query.get("status"),
                                               pagination_parameters.first_item, pagination_parameters.page_size)
        pagination_parameters.item_count = total
        return [_public(r) for r in records]

    @require_scope("sessions:write")
    @blp.arguments(SessionCreateSchema, required=False)
    @blp.response(201, SessionSchema)
    @responds(blp, "createSession", 400, 404, 409, 422, 429,
              d404="No such context, proxy or extension in the project; no browser was started.",
              d409="The context is in use by a running session, or its snapshot cannot be restored.",
              d429="The project's session cap (projects set --max-sessions) or the key's creates per minute "
                   "(BROKER_SESSION_CREATES_PER_MINUTE).",
              d503="No browser slot came free in time (BROKER_CREATE_WAIT), or storage (Redis) unreachable.")
    @blp.doc(**links_to(201, ("getSession", "GetSession"), ("stopSession", "StopSession"), parameter="session_id"))
    def post(self, body: dict):
        """Start a browser; answers once it takes CDP connections. Every field of the body is optional, and so is the body.

        The answer's `cdpUrl` carries the session's connect token (`?token=…`): it is
        the credential that opens the browser, so keep it as you keep the API key.
        """
        limits.count_session_create()
        record = service.create(machine(), config(), connect_tokens(), live_view_tokens(), current_project(), body,
                                lambda: client_gone(request.environ))
        g.setdefault(CREATED, record)
        return _public(record)


@blp.route("/<ses_id:session_id>")
class SessionById(MethodView):
    @require_scope("sessions:read")
    @blp.response(200, SessionSchema)
    @responds(blp, "getSession", 404)
    def get(self, session_id: str):
        """One session; a stopped one stays readable for BROKER_SESSION_RETENTION."""
        return _public(service.get_visible(store(), current_project(), session_id))

    @require_scope("sessions:write")
    @blp.response(204)
    @responds(blp, "stopSession", 404)
    def delete(self, session_id: str):
        """Stop the session; its browser closes and its clients are disconnected. Stopping a stopping or stopped session is also 204."""
        record = service.get_visible(store(), current_project(), session_id)
        if machine().stop(session_id, StopReason.DELETED) is not None:
            log.info("session %s: stop requested", session_id, extra=session_fields(record))


@blp.route("/<ses_id:session_id>/live-view")
class SessionLiveView(MethodView):
    @require_scope("sessions:write")
    @blp.response(204)
    @responds(blp, "revokeLiveView", 404, 409, d409=NOT_RUNNING)
    def delete(self, session_id: str):
        """Revoke the session's live-view links (`liveViewUrl`, `liveViewReadOnlyUrl`); open viewers close within a second.

        The session's next answer carries new links. Links also die when they expire
        (BROKER_LIVE_VIEW_TTL) and when the session stops.
        """
        service.get_visible(store(), current_project(), session_id)
        if store().sessions.update_running(session_id, live_view_tokens().issue(session_id, time.time())) is None:
            abort(409, message=NOT_RUNNING)


@blp.route("/<ses_id:session_id>/cookies")
class SessionCookies(MethodView):
    @require_scope("sessions:read")
    @blp.arguments(CookieQuerySchema, location="query")
    @blp.response(200, SessionCookiesSchema)
    @responds(blp, "exportSessionCookies", 404, 409, 422, 502, d409=NOT_RUNNING)
    def get(self, query: dict, session_id: str):
        """Every cookie of the running browser, httpOnly ones included; ``domain`` narrows to a site.

        Cookies of the default browser context (the one a connecting client's first
        page uses). ``expires`` is whole Unix seconds, null for a session cookie; a
        cookie set without SameSite shows Lax, which is how Chromium treats it.
        """
        return cookies.export(store(), current_project(), session_id, query.get("domain"))

    @require_scope("sessions:write")
    @blp.arguments(CookiesWriteSchema)
    @blp.response(200, CookiesWrittenSchema)
    @responds(blp, "injectSessionCookies", 400, 404, 409, 422, 502, d409=NOT_RUNNING,
              d422="The body did not pass validation, or the browser refused a cookie; nothing changed.")
    def put(self, body: dict, session_id: str):
        """Set cookies in the running browser: merged with its own, or replacing them all.

        A ``domain`` with a leading dot (``.example.com``) makes a cookie for the site
        and its subdomains; without one, for that host only, as exports show them.
        An ``expires`` in the past deletes the cookie. Input the browser would refuse
        is a 422 and changes nothing. Chromium itself keeps at most 180 cookies per
        site and evicts the least recently used beyond that.
        """
        return cookies.inject(store(), current_project(), session_id, body["cookies"], body["mode"],
                              config().sessions.cookie_max_bytes)


@blp.route("/<ses_id:session_id>/events")
class SessionEvents(MethodView):
    @require_scope("sessions:read")
    @blp.arguments(EventQuerySchema, location="query")
    @blp.response(200, EventPageSchema)
    @responds(blp, "listSessionEvents", 404, 422)
    def get(self, query: dict, session_id: str):
        """The session's event log, oldest first: pass the answer's `next` as `since` for what came after.

        Every session has one, recorded or not: `created`, `navigation`, `console`, `page_error`,
        `request_failed`, `tab_opened`/`tab_closed`, `download_started`/`_finished`/`_cancelled`,
        `client_connected`/`_disconnected`, `live_view_opened`/`_closed`, `stopped`. Kept as long as
        the session's record (BROKER_SESSION_RETENTION).
        """
        return events.page(store(), current_project(), session_id, query["since"], query["limit"])


#: One Server-Sent Event of the stream, as OpenAPI tools read a text/event-stream answer.
SSE_EVENT = {"type": "object", "properties": {
    "id": {"type": "string", "description": "The event's cursor."},
    "event": {"type": "string", "description": "The event's type."},
    "data": {"type": "string", "description": "The event as JSON, as `GET …/events` lists it."},
    "retry": {"type": "integer"}}}


@blp.route("/<ses_id:session_id>/events/stream")
class SessionEventStream(MethodView):
    @require_scope("sessions:read")
    @blp.arguments(StreamQuerySchema, location="query")
    @responds(blp, "streamSessionEvents", 404, 422)
    @blp.doc(responses={"200": {"description": "Server-Sent Events: `id` the cursor, `event` the type, `data` the "
                                               "event as JSON; the stream ends after `stopped`.",
                                "content": {"text/event-stream": {"schema": SSE_EVENT}}}})
    def get(self, query: dict, session_id: str):
        """The same events as Server-Sent Events, as they happen, until the session stops; `since` or
        `Last-Event-ID` resumes after an event."""
        since = query["since"] or _cursor(request.headers.get("Last-Event-ID"))
        body = events.stream(store(), current_project(), session_id, since)
        return Response(body, 200, {"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
                        mimetype="text/event-stream", direct_passthrough=True)


def _cursor(header: str | None) -> str | None:
    """A `Last-Event-ID` that is no event id is ignored (the stream starts from the first)."""
    return header if header and events.CURSOR.fullmatch(header) else None


@blp.route("/<ses_id:session_id>/recording")
class SessionRecording(MethodView):
    @require_scope("sessions:read")
    @responds(blp, "getSessionRecording", 404, 503, d404="No such session in the project, or it was not recorded "
                                                        "(or its recording was deleted, or its retention ran out).")
    @blp.doc(responses={"200": {"description": "One JSON array of rrweb events (each with `tabId`), sent gzipped "
                                               "(`Content-Encoding: gzip`) as it is read.",
                                "content": {"application/json": {"schema": {"type": "array", "items": {}}}}}})
    def get(self, session_id: str):
        """The session's recording: rrweb events, oldest first, each naming its tab (`tabId`).

        While the session runs: the chunks written so far (one every 5 s).
        After the stop: all of it, for BROKER_DOWNLOAD_RETENTION. `recordingUrl` replays it in a page.
        """
        body = recording.read(current_project(), session_id)
        return Response(body, 200, {"Content-Encoding": "gzip", "Cache-Control": "no-store"},
                        mimetype="application/json", direct_passthrough=True)

    @require_scope("sessions:write")
    @blp.response(204)
    @responds(blp, "deleteSessionRecording", 404, 409, d409="The session has not stopped yet.")
    def delete(self, session_id: str):
        """Delete the recording of a stopped session now; its `recordingUrl` stops working."""
        recording.delete(current_project(), session_id)
