"""API keys: POST/GET /v1/keys, GET/DELETE /v1/keys/:id, for a key with keys:admin, within its own project."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint, abort

from app.auth import current_key, current_project, require_scope
from app.docs import links_to, responds
from app.extensions import store
from app.keys import service
from app.keys.schemas import CreatedKeySchema, KeyCreateSchema, KeySchema
from app.paging import paginated

blp = Blueprint("keys", __name__, url_prefix="/v1/keys", description="API keys of the caller's project.")


@blp.route("")
class Keys(MethodView):
    @require_scope("keys:admin")
    @blp.response(200, KeySchema(many=True))
    @paginated(blp)
    @responds(blp, "listKeys", 422)
    def get(self, pagination_parameters):
        """The project's keys, newest first; never the keys themselves."""
        records, pagination_parameters.item_count = store().api_keys.page(
            current_project(), pagination_parameters.first_item, pagination_parameters.page_size)
        return [service.public(r) for r in records]

    @require_scope("keys:admin")
    @blp.arguments(KeyCreateSchema)
    @blp.response(201, CreatedKeySchema)
    @responds(blp, "createKey", 400, 422,
              d403="The key lacks keys:admin, asks for scopes it does not hold itself, or would outlive it (an "
                   "`expiresAt` after the caller's own, or none when the caller's key expires); nothing is created.")
    @blp.doc(**links_to(201, ("getKey", "GetKey"), ("revokeKey", "RevokeKey"), parameter="key_id"))
    def post(self, body: dict):
        """Create a key in the caller's project; the answer is the only time the key is shown."""
        caller = current_key()
        beyond = sorted(set(body["scopes"]) - set(caller["scopes"]))
        if beyond:
            abort(403, message=f"A key cannot grant scopes it lacks: {', '.join(beyond)}.")
        if service.outlives(body["expiresAt"], caller):
            abort(403, message=f"A key cannot outlive the key that creates it: this key expires at "
                               f"{caller['expiresAt']}, so expiresAt must be given and no later than that.")
        api_key, record = service.create(store(), name=body["name"], project=current_project(),
                                         scopes=body["scopes"], expires_epoch=body["expiresAt"])
        return {**service.public(record), "key": api_key}


@blp.route("/<key_id:key_id>")
class KeyById(MethodView):
    @require_scope("keys:admin")
    @blp.response(200, KeySchema)
    @responds(blp, "getKey", 404)
    def get(self, key_id: str):
        """One key; never the key itself."""
        return service.public(_owned(key_id))

    @require_scope("keys:admin")
    @blp.response(204)
    @responds(blp, "revokeKey", 404)
    def delete(self, key_id: str):
        """Revoke the key: its next request, on any web process, answers 401."""
        _owned(key_id)
        if service.revoke(store(), key_id) is None:
            abort(404, message=f"No API key {key_id}.")


def _owned(key_id: str) -> dict:
    record = service.get_owned(store(), current_project(), key_id)
    if record is None:
        abort(404, message=f"No API key {key_id}.")
    return record
