"""Session defaults: GET and PUT /v1/session-defaults, the browser options a project's creates start from."""
from __future__ import annotations

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from app.auth import current_project, require_scope
from app.docs import responds
from app.extensions import secret_box, store
from app.session_defaults.schemas import SessionDefaultsSchema, ShownSessionDefaultsSchema
from app.sessions.browser_options import DEFAULTS, RECORDING
from core.browser_options import merged, sealed, shown

blp = Blueprint("session_defaults", __name__, url_prefix="/v1/session-defaults",
                description="What every create of the project starts from: browser options, recording.")


@blp.route("")
class SessionDefaults(MethodView):
    @require_scope("keys:admin")
    @blp.response(200, ShownSessionDefaultsSchema)
    @responds(blp, "getSessionDefaults")
    def get(self):
        """The project's defaults (extra headers by name only); null where none is set."""
        return _shown(store().projects.settings(current_project()).get(DEFAULTS) or {})

    @require_scope("keys:admin")
    @blp.arguments(SessionDefaultsSchema)
    @blp.response(200, ShownSessionDefaultsSchema)
    @responds(blp, "putSessionDefaults", 400, 404, 422, d404="An extension the project does not have.")
    def put(self, body: dict):
        """Replace the project's defaults: a create's own option wins over its default, field by field of the body
        (a create's `viewport` replaces the default viewport whole); `{}` clears them all."""
        if not request.get_data():
            abort(422, message="Send the defaults as a JSON object ({} clears them).",
                  errors={"json": {"_schema": ["A JSON object is required."]}})
        project = current_project()
        defaults = sealed(merged({}, body), secret_box())
        if body.get(RECORDING) is not None:
            defaults[RECORDING] = body[RECORDING]
        missing = store().extensions.missing(project, defaults.get("extensionIds") or [])
        if missing:
            abort(404, message=f"No extension {missing[0]} in this project.")
        store().projects.set_settings(project, **{DEFAULTS: defaults})
        return _shown(defaults)


def _shown(defaults: dict) -> dict:
    return {**shown(defaults), RECORDING: defaults.get(RECORDING)}
