"""A session's files: GET /v1/sessions/:id/downloads[/:name | .zip] and POST /v1/sessions/:id/uploads."""
from __future__ import annotations

from urllib.parse import quote

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from werkzeug.exceptions import default_exceptions

from app.auth import current_project, require_scope
from app.docs import responds
from app.extensions import api, config
from app.files.errors import DownloadNotFound, FilesError, FileTooLarge, InvalidUpload, WorkerFailed, WrongSessionState
from app.files.schemas import UPLOAD_FORM, DownloadListSchema, UploadSchema
from app.files.service import SessionFiles

blp = Blueprint("files", __name__, url_prefix="/v1/sessions", description="A session's downloads and uploads.")
D404 = "No such session (or download) in the project, or its downloads' retention (BROKER_DOWNLOAD_RETENTION) ran out."
D409 = "The session is stopping (its downloads are being archived): try again once it is stopped."


#: Each failure of the files service as an HTTP status: the only place the two meet.
STATUS_OF: dict[type[FilesError], int] = {DownloadNotFound: 404, WrongSessionState: 409, FileTooLarge: 413,
                                          InvalidUpload: 422, WorkerFailed: 502}


def files() -> SessionFiles:
    return current_app.extensions["broker.files"]


@blp.errorhandler(FilesError)
def answer_files_error(error: FilesError):
    """The API's JSON error shape (app/errors.py), as ``abort(status, message=…, errors=…)`` would give it."""
    http_error = default_exceptions[STATUS_OF[type(error)]]()
    http_error.data = {"message": error.message, **({"errors": error.fields} if error.fields else {})}
    return api.handle_http_exception(http_error)


def _binary(description: str, media: str = "*/*") -> dict:
    """A 200 whose body is bytes: a download's own type (``*/*``), or a zip."""
    return {"responses": {"200": {"description": description,
                                  "content": {media: {"schema": {"type": "string", "format": "binary"}}}}}}


@blp.route("/<ses_id:session_id>/downloads")
class Downloads(MethodView):
    @require_scope("sessions:read")
    @blp.response(200, DownloadListSchema)
    @responds(blp, "listDownloads", 404, 409, 502, d404=D404, d409=D409)
    def get(self, session_id: str):
        """The session's downloads: live from its browser's folder while it runs, as archived at the stop after.

        Each browser downloads only into its session's own folder, whatever a client asks
        (`Browser.setDownloadBehavior` is pointed there by the relay). Unfinished downloads
        show `state: in_progress`; the stop archives only complete ones.
        """
        return files().listing(current_project(), session_id)


@blp.route("/<ses_id:session_id>/downloads/<file_name:name>")
class DownloadByName(MethodView):
    @require_scope("sessions:read")
    @responds(blp, "getDownload", 404, 409, 502, d404=D404 + " A name that breaks the pattern is a 404 too.",
              d409=D409 + " Or the download is still in progress.")
    @blp.doc(**_binary("The file's bytes, streamed."))
    def get(self, session_id: str, name: str):
        """One download's bytes, streamed (the name as the listing gives it, URL-encoded)."""
        chunks, entry = files().open_one(current_project(), session_id, name)
        headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(entry['name'])}"}
        if entry.get("size") is not None:
            headers["Content-Length"] = str(entry["size"])
        return Response(chunks, 200, headers, mimetype=entry.get("mimeType") or "application/octet-stream",
                        direct_passthrough=True)


@blp.route("/<ses_id:session_id>/downloads.zip")
class DownloadsZip(MethodView):
    @require_scope("sessions:read")
    @responds(blp, "getDownloadsZip", 404, 409, 502, d404=D404, d409=D409)
    @blp.doc(**_binary("A zip of every complete download, built as it is sent.", "application/zip"))
    def get(self, session_id: str):
        """Every complete download in one zip, streamed."""
        chunks = files().zip_all(current_project(), session_id)
        headers = {"Content-Disposition": f"attachment; filename={session_id}-downloads.zip"}
        return Response(chunks, 200, headers, mimetype="application/zip", direct_passthrough=True)


@blp.route("/<ses_id:session_id>/uploads")
class Uploads(MethodView):
    @require_scope("sessions:write")
    @blp.response(201, UploadSchema)
    @responds(blp, "uploadFile", 404, 409, 422, 502,
              d409="The session is not running.",
              d413="The body is over BROKER_UPLOAD_MAX_BYTES (plus 1 MiB for the multipart framing), or the file "
                   "part is over BROKER_UPLOAD_MAX_BYTES; nothing was stored.",
              d422="Not multipart/form-data, no `file` part, or a bad file name; nothing was stored.")
    # Documented, not parsed by flask-smorest: parsing would read the whole body before the first byte goes on.
    @blp.doc(requestBody={"required": True, "content": {"multipart/form-data": {"schema": UPLOAD_FORM}}})
    def post(self, session_id: str):
        """Store a file (multipart part `file`) in the session's upload folder, streamed to its browser's worker.

        The answer's `path` is the file as the browser sees it, for Puppeteer's
        `elementHandle.uploadFile(path)`, CDP's `DOM.setFileInputFiles` or Selenium's
        `send_keys(path)`. The folder is deleted when the session stops.
        """
        return files().upload(current_project(), session_id, request.content_type or "", request.stream,
                              config().files.upload_max_bytes)
