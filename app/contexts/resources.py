"""Contexts: POST/GET/GET one/DELETE /v1/contexts and GET /v1/contexts/:id/cookies."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from app.auth import current_project, require_scope
from app.contexts import service
from app.contexts.schemas import ContextCookiesSchema, ContextCreateSchema, ContextSchema
from app.docs import links_to, responds
from app.extensions import config, store
from app.paging import paginated
from app.sessions.schemas import CookieQuerySchema

blp = Blueprint("contexts", __name__, url_prefix="/v1/contexts", description="Browser state kept across sessions.")


@blp.route("")
class Contexts(MethodView):
    @require_scope("contexts:read")
    @blp.response(200, ContextSchema(many=True))
    @paginated(blp)
    @responds(blp, "listContexts", 422)
    def get(self, pagination_parameters):
        """The project's contexts, newest first, a page at a time."""
        records, pagination_parameters.item_count = store().contexts.page(
            current_project(), pagination_parameters.first_item, pagination_parameters.page_size)
        return records

    @require_scope("contexts:write")
    @blp.arguments(ContextCreateSchema, required=False)
    @blp.response(201, ContextSchema)
    @responds(blp, "createContext", 400, 422)
    @blp.doc(**links_to(201, ("getContext", "GetContext"), ("deleteContext", "DeleteContext"),
                        ("exportContextCookies", "ExportContextCookies"), parameter="context_id"))
    def post(self, body: dict):
        """Create an empty context; a session with its id fills it at stop. The body (a name) is optional."""
        return service.create(store(), current_project(), body["name"])


@blp.route("/<ctx_id:context_id>")
class ContextById(MethodView):
    @require_scope("contexts:read")
    @blp.response(200, ContextSchema)
    @responds(blp, "getContext", 404)
    def get(self, context_id: str):
        """One context."""
        return service.get_owned(store(), current_project(), context_id)

    @require_scope("contexts:write")
    @blp.response(204)
    @responds(blp, "deleteContext", 404, 409, d409="A running session uses the context.")
    def delete(self, context_id: str):
        """Delete the context, its snapshots and its cookies."""
        service.delete(store(), config(), current_project(), context_id)


@blp.route("/<ctx_id:context_id>/cookies")
class ContextCookies(MethodView):
    @require_scope("contexts:read")
    @blp.arguments(CookieQuerySchema, location="query")
    @blp.response(200, ContextCookiesSchema)
    @responds(blp, "exportContextCookies", 404, 422)
    def get(self, query: dict, context_id: str):
        """The cookies synced at the context's last save."""
        return service.cookies(store(), current_project(), context_id, query.get("domain"))
