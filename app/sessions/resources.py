"""Sessions: POST/GET/GET one/DELETE /v1/sessions, and GET/PUT /v1/sessions/:id/cookies."""
from __future__ import annotations

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from app import limits
from app.auth import current_project, require_scope
from app.extensions import config, connect_tokens, machine, store
from app.paging import paginated
from app.sessions import cookies, service
from core.environ import client_gone
from core.states import StopReason
from app.sessions.schemas import (
    CookieQuerySchema, CookiesWriteSchema, CookiesWrittenSchema, SessionCookiesSchema,
    SessionCreateSchema, SessionListQuerySchema, SessionSchema,
)

blp = Blueprint("sessions", __name__, url_prefix="/v1/sessions", description="Running browsers.")


@blp.route("")
class Sessions(MethodView):
    @require_scope("sessions:read")
    @blp.arguments(SessionListQuerySchema, location="query")
    @blp.response(200, SessionSchema(many=True))
    @paginated(blp)
    def get(self, query: dict, pagination_parameters):
        """List the project's sessions, newest first, a page at a time."""
        records, total = store().sessions.page(current_project(), query.get("status"),
                                               pagination_parameters.first_item, pagination_parameters.page_size)
        pagination_parameters.item_count = total
        return [service.public(r, config(), connect_tokens()) for r in records]

    @require_scope("sessions:write")
    @blp.arguments(SessionCreateSchema)
    @blp.response(201, SessionSchema)
    @blp.alt_response(503, description="No free browser slot in time; see Retry-After.")
    def post(self, body: dict):
        """Start a browser; answers once it takes CDP connections."""
        limits.count_session_create()
        record = service.create(machine(), config(), connect_tokens(), current_project(), body,
                                lambda: client_gone(request.environ))
        return service.public(record, config(), connect_tokens())


@blp.route("/<session_id>")
class SessionById(MethodView):
    @require_scope("sessions:read")
    @blp.response(200, SessionSchema)
    def get(self, session_id: str):
        """One session."""
        return service.public(service.get_visible(store(), current_project(), session_id), config(), connect_tokens())

    @require_scope("sessions:write")
    @blp.response(204)
    def delete(self, session_id: str):
        """Stop the session; its browser closes and its clients are disconnected."""
        service.get_visible(store(), current_project(), session_id)
        machine().stop(session_id, StopReason.DELETED)


@blp.route("/<session_id>/cookies")
class SessionCookies(MethodView):
    @require_scope("sessions:read")
    @blp.arguments(CookieQuerySchema, location="query")
    @blp.response(200, SessionCookiesSchema)
    @blp.alt_response(409, description="The session is not running.")
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
    @blp.alt_response(409, description="The session is not running.")
    def put(self, body: dict, session_id: str):
        """Set cookies in the running browser: merged with its own, or replacing them all.

        A ``domain`` with a leading dot (``.example.com``) makes a cookie for the site
        and its subdomains; without one, for that host only, as exports show them.
        An ``expires`` in the past deletes the cookie. Input the browser would refuse
        is a 422 and changes nothing. Chromium itself keeps at most 180 cookies per
        site and evicts the least recently used beyond that.
        """
        return cookies.inject(store(), current_project(), session_id, body["cookies"], body["mode"])
