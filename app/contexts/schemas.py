"""Marshmallow schemas for Contexts: persisted browser state reused across sessions."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.sessions.schemas import CookieSchema

MAX_NAME_LENGTH = 200


class ContextCreateSchema(Schema):
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=MAX_NAME_LENGTH))


class ContextSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(allow_none=True)
    createdAt = fields.String(required=True)
    updatedAt = fields.String(required=True)
    cookieCount = fields.Integer(required=True, metadata={"description": "Cookies synced at the last save."})
    snapshotBytes = fields.Integer(required=True, metadata={"description": "Size of the snapshot in force (0: none yet)."})
    lastSessionId = fields.String(allow_none=True)


class ContextCookiesSchema(Schema):
    contextId = fields.String(required=True)
    exportedAt = fields.String(required=True)
    count = fields.Integer(required=True)
    cookies = fields.List(fields.Nested(CookieSchema), required=True)
