"""Proxies: POST/GET/GET one/DELETE /v1/proxies and POST /v1/proxies/:id/check."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from app.auth import current_project, require_scope
from app.docs import links_to, responds
from app.extensions import config, egress, secret_box, store
from app.paging import paginated
from app.proxies import service
from app.proxies.schemas import ProxyCheckResultSchema, ProxyCheckSchema, ProxyCreateSchema, ProxySchema

blp = Blueprint("proxies", __name__, url_prefix="/v1/proxies", description="Upstream proxies sessions route through.")


@blp.route("")
class Proxies(MethodView):
    @require_scope("proxies:read")
    @blp.response(200, ProxySchema(many=True))
    @paginated(blp)
    @responds(blp, "listProxies", 422)
    def get(self, pagination_parameters):
        """List the project's proxies, newest first, a page at a time."""
        records, pagination_parameters.item_count = store().proxies.page(
            current_project(), pagination_parameters.first_item, pagination_parameters.page_size)
        return [service.public(r) for r in records]

    @require_scope("proxies:write")
    @blp.arguments(ProxyCreateSchema)
    @blp.response(201, ProxySchema)
    @responds(blp, "createProxy", 400, 422)
    @blp.doc(**links_to(201, ("getProxy", "GetProxy"), ("deleteProxy", "DeleteProxy"), ("checkProxy", "CheckProxy"),
                        parameter="proxy_id"))
    def post(self, body: dict):
        """Save a proxy; its password is stored encrypted and never shown again."""
        return service.public(service.create(store(), secret_box(), current_project(), body))


@blp.route("/<prx_id:proxy_id>")
class ProxyById(MethodView):
    @require_scope("proxies:read")
    @blp.response(200, ProxySchema)
    @responds(blp, "getProxy", 404)
    def get(self, proxy_id: str):
        """One proxy."""
        return service.public(service.get_visible(store(), current_project(), proxy_id))

    @require_scope("proxies:write")
    @blp.response(204)
    @responds(blp, "deleteProxy", 404, 409, d409="A running session uses the proxy.")
    def delete(self, proxy_id: str):
        """Delete the proxy and its stored credentials."""
        service.delete(store(), current_project(), proxy_id)


@blp.route("/<prx_id:proxy_id>/check")
class ProxyCheck(MethodView):
    @require_scope("proxies:write")
    @blp.arguments(ProxyCheckSchema, required=False)
    @blp.response(200, ProxyCheckResultSchema)
    @responds(blp, "checkProxy", 400, 404, 422,
              d403="The key lacks proxies:write, or the deployment's egress policy (BROKER_EGRESS_ALLOW) refuses the "
                   "proxy's address or the target; nothing was dialled.")
    def post(self, body: dict, proxy_id: str):
        """Open one tunnel through the proxy: whether it answers, accepts the credentials, and how fast.

        The web process dials only what the deployment's egress policy permits (public addresses,
        and what BROKER_EGRESS_ALLOW opens), both the proxy's own address and the target.
        """
        return service.check(store(), secret_box(), config(), egress(), current_project(), proxy_id, body["target"])
