"""Marshmallow schemas for the Proxies resource. No schema that dumps has a password field."""
from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from core.proxy_address import ProxyAddress, split_host_port

#: SOCKS5 (RFC 1929) carries at most 255 bytes of user name and of password.
MAX_CREDENTIAL_BYTES = 255
MAX_NAME_LENGTH = 200
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


class ProxyServer(fields.String):
    """``scheme://host:port``, loaded as its normalised form."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return ProxyAddress.parse(text).url
        except ValueError as problem:
            raise ValidationError(str(problem)) from None


def _credential(what: str, colon_allowed: bool) -> validate.Validator:
    def check(text: str) -> None:
        if CONTROL_CHARACTERS.search(text):
            raise ValidationError(f"The {what} cannot hold control characters.")
        if not colon_allowed and ":" in text:
            raise ValidationError(f"The {what} cannot hold ':' (HTTP Basic authentication splits on it).")
        if len(text.encode()) > MAX_CREDENTIAL_BYTES:
            raise ValidationError(f"The {what} can be at most {MAX_CREDENTIAL_BYTES} bytes (UTF-8).")

    return check


class ProxyCreateSchema(Schema):
    server = ProxyServer(
        required=True,
        metadata={"description": "http://, https:// or socks5:// host:port; credentials go in username and password."},
    )
    username = fields.String(
        load_default=None, allow_none=True, validate=[validate.Length(min=1), _credential("username", colon_allowed=False)]
    )
    password = fields.String(
        load_default=None, allow_none=True, load_only=True, validate=_credential("password", colon_allowed=True),
        metadata={"description": "Stored encrypted; never returned."},
    )
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=MAX_NAME_LENGTH))

    @validates_schema
    def password_needs_username(self, body: dict, **_: Any) -> None:
        if body.get("password") is not None and body.get("username") is None:
            raise ValidationError("A password needs a username.", "password")
        if str(body.get("server", "")).startswith(("http://", "https://")):
            for field in ("username", "password"):
                try:
                    (body.get(field) or "").encode("latin-1")
                except UnicodeEncodeError:
                    raise ValidationError(
                        f"An HTTP proxy takes Basic credentials in ISO-8859-1; this {field} has other characters.", field
                    ) from None


class ProxySchema(Schema):
    id = fields.String(required=True)
    server = fields.String(required=True)
    username = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    createdAt = fields.String(required=True)


def _host_port(text: str) -> None:
    try:
        split_host_port(text)
    except ValueError as problem:
        raise ValidationError(str(problem)) from None


class ProxyCheckSchema(Schema):
    target = fields.String(
        load_default=None,
        allow_none=True,
        validate=_host_port,
        metadata={"description": "What to reach through the proxy; the deployment's BROKER_PROXY_CHECK_TARGET if absent."},
    )


class ProxyCheckResultSchema(Schema):
    id = fields.String(required=True)
    target = fields.String(required=True)
    reachable = fields.Boolean(required=True)
    latencyMs = fields.Float(allow_none=True, metadata={"description": "Connect, handshake and tunnel set-up."})
    error = fields.String(allow_none=True)
    checkedAt = fields.String(required=True)
