"""What the files calls answer: a downloads listing and a stored upload."""
from __future__ import annotations

from marshmallow import Schema, fields, validate


class DownloadSchema(Schema):
    name = fields.String(required=True)
    size = fields.Integer(required=True, metadata={"description": "Bytes (so far, while in progress)."})
    state = fields.String(required=True, validate=validate.OneOf(["complete", "in_progress"]))
    mimeType = fields.String(required=True)
    modifiedAt = fields.String(required=True, metadata={"description": "ISO-8601 UTC: when the file last changed."})


class DownloadListSchema(Schema):
    sessionId = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "The session's status: running, or stopped "
                                                                  "(then the files archived at the stop)."})
    count = fields.Integer(required=True)
    bytes = fields.Integer(required=True)
    downloadError = fields.String(allow_none=True, metadata={
        "description": "Set when a download was cancelled for the session's size cap (BROKER_DOWNLOAD_MAX_BYTES)."})
    downloads = fields.List(fields.Nested(DownloadSchema), required=True)


class UploadSchema(Schema):
    path = fields.String(required=True, metadata={
        "description": "The file's path on the browser's side: give it to Puppeteer's `uploadFile`, "
                       "`DOM.setFileInputFiles` or Selenium's `send_keys`."})
    name = fields.String(required=True, metadata={"description": "The stored name (`name (1).ext` if taken)."})
    size = fields.Integer(required=True)


#: The upload's body, as the OpenAPI document states it.
UPLOAD_FORM = {"type": "object", "required": ["file"],
               "properties": {"file": {"type": "string", "format": "binary"}}}
