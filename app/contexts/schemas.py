"""Marshmallow schemas for Contexts: persisted browser state reused across sessions."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.fields import ID_PATTERNS
from app.sessions.schemas import ExportedCookieSchema

MAX_NAME_LENGTH = 200


class ContextCreateSchema(Schema):
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=MAX_NAME_LENGTH))


class ContextSchema(Schema):
    id = fields.String(required=True, metadata={"pattern": ID_PATTERNS["ctx"]})
    name = fields.String(required=True, allow_none=True)
    createdAt = fields.String(required=True, metadata={"format": "date-time"})
    updatedAt = fields.String(required=True, metadata={"format": "date-time"})
    cookieCount = fields.Integer(required=True, metadata={"description": "Cookies synced at the last save."})
    snapshotBytes = fields.Integer(required=True, metadata={"description": "Size of the snapshot in force (0: none yet)."})
    lastSessionId = fields.String(required=True, allow_none=True, metadata={"pattern": ID_PATTERNS["ses"]})


class ContextCookiesSchema(Schema):
    contextId = fields.String(required=True, metadata={"pattern": ID_PATTERNS["ctx"]})
    exportedAt = fields.String(required=True, metadata={"format": "date-time"})
    count = fields.Integer(required=True)
    cookies = fields.List(fields.Nested(ExportedCookieSchema), required=True)
