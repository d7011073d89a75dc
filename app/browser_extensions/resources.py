"""Extensions: POST/GET/GET one/DELETE /v1/extensions."""
from __future__ import annotations

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from app.auth import current_project, require_scope
from app.browser_extensions import service
from app.browser_extensions.schemas import UPLOAD_FORM, ExtensionSchema
from app.docs import links_to, responds
from app.extensions import config, store
from app.paging import paginated
from core.extension_files import MAX_BYTES
from core.snapshots import SnapshotStore, open_snapshot_store

blp = Blueprint("extensions", __name__, url_prefix="/v1/extensions",
                description="Browser extensions a create can load (`extensionIds`).")


def blobs() -> SnapshotStore:
    """The snapshot store, where every worker finds the extensions it loads."""
    if "broker.extension_blobs" not in current_app.extensions:
        current_app.extensions["broker.extension_blobs"] = open_snapshot_store(config())
    return current_app.extensions["broker.extension_blobs"]


@blp.route("")
class Extensions(MethodView):
    @require_scope("sessions:read")
    @blp.response(200, ExtensionSchema(many=True))
    @paginated(blp)
    @responds(blp, "listExtensions", 422)
    def get(self, pagination_parameters):
        """List the project's extensions, newest first, a page at a time."""
        records, pagination_parameters.item_count = store().extensions.page(
            current_project(), pagination_parameters.first_item, pagination_parameters.page_size)
        return [service.public(r) for r in records]

    @require_scope("sessions:write")
    @blp.response(201, ExtensionSchema)
    @responds(blp, "createExtension", 422,
              d413="The body is over BROKER_MAX_BODY_BYTES; refused before it is read.",
              d422="Not multipart/form-data with a `file` part, or not an extension Chromium would load: a zip or "
                   ".crx with a manifest v3, of at most 5 MiB; nothing was stored.")
    @blp.doc(requestBody={"required": True, "content": {"multipart/form-data": {"schema": UPLOAD_FORM}}})
    @blp.doc(**links_to(201, ("getExtension", "GetExtension"), ("deleteExtension", "DeleteExtension"),
                        parameter="extension_id"))
    def post(self):
        """Upload an extension (multipart part `file`: a zip of the unpacked extension, or a .crx).

        Checked at once: manifest v3 (at the top of the zip, or in the one folder it holds), no path
        outside the extension, at most 5 MiB (20 MiB unpacked). Kept in
        the snapshot store, so a session on any worker can load it (`extensionIds` at create).
        """
        upload = request.files.get("file") if request.mimetype == "multipart/form-data" else None
        if upload is None:
            abort(422, message="Send the extension as multipart/form-data, in a part named file.",
                  errors={"files": {"file": ["Missing data for required field."]}})
        data = upload.stream.read(MAX_BYTES + 1)
        return service.public(service.create(store(), blobs(), current_project(), upload.filename or None, data))


@blp.route("/<ext_id:extension_id>")
class ExtensionById(MethodView):
    @require_scope("sessions:read")
    @blp.response(200, ExtensionSchema)
    @responds(blp, "getExtension", 404)
    def get(self, extension_id: str):
        """One extension."""
        return service.public(service.get_visible(store(), current_project(), extension_id))

    @require_scope("sessions:write")
    @blp.response(204)
    @responds(blp, "deleteExtension", 404)
    def delete(self, extension_id: str):
        """Delete the extension; running sessions keep what they loaded, later creates naming it answer 404."""
        service.delete(store(), blobs(), current_project(), extension_id)
