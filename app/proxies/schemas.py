"""Marshmallow schemas for the Proxies resource. No schema that dumps has a password field."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.fields import ID_PATTERNS, PatternString
from core.proxy_address import SERVER_PATTERN, TARGET_PATTERN, ProxyAddress

#: Printable ASCII, 1 to 255 characters: SOCKS5 (RFC 1929) carries at most 255 bytes, and HTTP proxies
#: disagree on the charset of Basic credentials, so only ASCII means the same to every proxy.
USERNAME_PATTERN = r"^[\x20-\x39\x3b-\x7e]{1,255}$"
PASSWORD_PATTERN = r"^[\x20-\x7e]{0,255}$"
MAX_NAME_LENGTH = 200


class ProxyServer(PatternString):
    """``scheme://host:port``, loaded as its normalised form."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(SERVER_PATTERN, "Must be http://, https:// or socks5:// and host:port, nothing more; "
                                         "credentials go in username and password.", **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return ProxyAddress.parse(text).url
        except ValueError as problem:
            raise ValidationError(str(problem)) from None


#: password_needs_username as JSON Schema: no password (absent or null), or a username.
PROXY_CREATE_RULES = {
    "anyOf": [{"properties": {"password": {"enum": [None]}}},
              {"required": ["username"], "properties": {"username": {"type": "string"}}}],
}


class ProxyCreateSchema(Schema):
    server = ProxyServer(
        required=True,
        metadata={"description": "http://, https:// or socks5:// host:port; credentials go in username and password."},
    )
    username = PatternString(
        USERNAME_PATTERN, "Must be 1 to 255 printable ASCII characters, without ':' (Basic authentication splits on it).",
        load_default=None, allow_none=True,
    )
    password = PatternString(
        PASSWORD_PATTERN, "Must be at most 255 printable ASCII characters.",
        load_default=None, allow_none=True, load_only=True,
        metadata={"description": "Stored encrypted; never returned. Needs a username."},
    )
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=MAX_NAME_LENGTH))

    @validates_schema
    def password_needs_username(self, body: dict, **_: Any) -> None:
        if body.get("password") is not None and body.get("username") is None:
            raise ValidationError("A password needs a username.", "password")


class ProxySchema(Schema):
    id = fields.String(required=True, metadata={"pattern": ID_PATTERNS["prx"]})
    server = fields.String(required=True, metadata={"description": "Normalised: lower-case scheme and host."})
    username = fields.String(required=True, allow_none=True)
    name = fields.String(required=True, allow_none=True)
    createdAt = fields.String(required=True, metadata={"format": "date-time"})


class ProxyCheckSchema(Schema):
    target = PatternString(
        TARGET_PATTERN, "Must be host:port (a bracketed IPv6 host) with a port from 1 to 65535.",
        load_default=None,
        allow_none=True,
        metadata={"description": "What to reach through the proxy; the deployment's BROKER_PROXY_CHECK_TARGET if absent."},
    )


class ProxyCheckResultSchema(Schema):
    id = fields.String(required=True, metadata={"pattern": ID_PATTERNS["prx"]})
    target = fields.String(required=True)
    reachable = fields.Boolean(required=True)
    latencyMs = fields.Float(required=True, allow_none=True, metadata={"description": "Connect, handshake and tunnel set-up."})
    error = fields.String(required=True, allow_none=True)
    checkedAt = fields.String(required=True, metadata={"format": "date-time"})
