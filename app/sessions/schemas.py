"""Marshmallow schemas for the Sessions resource: what a create may carry and what a session shows."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.store import VISIBLE_STATUSES

DEFAULT_TIMEOUT = 900
MAX_TIMEOUT = 86400
STOP_REASONS = ("deleted", "timeout", "worker_lost", "error")


class SessionCreateSchema(Schema):
    contextId = fields.String(load_default=None, allow_none=True, metadata={"description": "Context to restore now and save at stop."})
    proxyId = fields.String(load_default=None, allow_none=True, metadata={"description": "Proxy every request goes through."})
    url = fields.Url(
        load_default=None,
        allow_none=True,
        schemes={"http", "https"},
        require_tld=False,
        metadata={"description": "The first page navigates here before the answer."},
    )
    timeout = fields.Integer(
        load_default=DEFAULT_TIMEOUT,
        strict=True,
        validate=validate.Range(min=1, max=MAX_TIMEOUT),
        metadata={"description": "Seconds the session may live."},
    )


class SessionListQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(VISIBLE_STATUSES))


class SessionSchema(Schema):
    id = fields.String(required=True)
    cdpUrl = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": list(VISIBLE_STATUSES)})
    contextId = fields.String(allow_none=True)
    proxyId = fields.String(allow_none=True)
    createdAt = fields.String(required=True)
    expiresAt = fields.String(allow_none=True)
    stoppedAt = fields.String(allow_none=True)
    stopReason = fields.String(allow_none=True, metadata={"enum": list(STOP_REASONS)})
