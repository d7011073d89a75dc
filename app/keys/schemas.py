"""Marshmallow schemas for API keys. Only the create answer has the key itself, once."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.fields import Timestamp
from core.store import ALL_SCOPES

MAX_NAME_LENGTH = 200


class KeyCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=MAX_NAME_LENGTH))
    scopes = fields.List(
        fields.String(validate=validate.OneOf(ALL_SCOPES)), required=True, validate=validate.Length(min=1),
        metadata={"description": "At most the scopes of the key that creates it."},
    )
    expiresAt = Timestamp(
        load_default=None, allow_none=True,
        metadata={"description": "When the key stops working; null or absent: never. A moment already past "
                                 "makes a key that is already expired."},
    )


class KeySchema(Schema):
    id = fields.String(required=True, metadata={"pattern": r"^key_[0-9a-f]{32}$"})
    name = fields.String(required=True)
    scopes = fields.List(fields.String(metadata={"enum": list(ALL_SCOPES)}), required=True)
    createdAt = fields.String(required=True, metadata={"format": "date-time"})
    lastUsedAt = fields.String(
        required=True, allow_none=True,
        metadata={"format": "date-time", "description": "Updated at most once a minute; null: never used."},
    )
    expiresAt = fields.String(required=True, allow_none=True, metadata={"format": "date-time"})


class CreatedKeySchema(KeySchema):
    key = fields.String(required=True, metadata={"description": "The key itself, shown this once: only its hash is stored."})
