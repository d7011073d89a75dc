"""What an uploaded extension shows."""
from __future__ import annotations

from marshmallow import Schema, fields

from app.fields import ID_PATTERNS

UPLOAD_FORM = {"type": "object", "required": ["file"],
               "properties": {"file": {"type": "string", "format": "binary",
                                       "description": "A zip of the unpacked extension, or a .crx."}}}


class ExtensionSchema(Schema):
    id = fields.String(required=True, metadata={"pattern": ID_PATTERNS["ext"]})
    name = fields.String(required=True, metadata={"description": "The manifest's name."})
    version = fields.String(required=True, metadata={"description": "The manifest's version."})
    fileName = fields.String(required=True, allow_none=True, metadata={"description": "The uploaded file's name."})
    bytes = fields.Integer(required=True, metadata={"description": "Unpacked size."})
    files = fields.Integer(required=True)
    createdAt = fields.String(required=True, metadata={"format": "date-time"})
