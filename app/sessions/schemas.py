"""Marshmallow schemas for the Sessions resource: what a create may carry and what a session shows."""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from app.extensions import config
from core.states import VISIBLE_STATUSES, StopReason
from core.cookies import SAME_SITE_VALUES

DEFAULT_TIMEOUT = 900
MAX_TIMEOUT = 86400


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
    idleTimeout = fields.Integer(
        load_default=None,
        allow_none=True,
        strict=True,
        validate=validate.Range(min=1, max=MAX_TIMEOUT),
        metadata={"description": "Stop after this many seconds with no CDP client connected."},
    )


class SessionListQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf([s.value for s in VISIBLE_STATUSES]))


class SessionSchema(Schema):
    id = fields.String(required=True)
    cdpUrl = fields.String(required=True)
    status = fields.String(required=True, metadata={"enum": [s.value for s in VISIBLE_STATUSES]})
    contextId = fields.String(allow_none=True)
    proxyId = fields.String(allow_none=True)
    createdAt = fields.String(required=True)
    expiresAt = fields.String(allow_none=True)
    idleTimeout = fields.Integer(allow_none=True)
    stoppedAt = fields.String(allow_none=True)
    stopReason = fields.String(allow_none=True, metadata={"enum": [r.value for r in StopReason]})
    snapshotError = fields.String(
        allow_none=True, metadata={"description": "Why the context snapshot of this session's stop was not saved."}
    )
    navigationError = fields.String(
        allow_none=True,
        metadata={"description": "Why the first navigation (`url`) failed: a network error or an HTTP status; null if it loaded."},
    )


# -- session cookies ------------------------------------------------------
# The rules below are Chromium's own (checked on 156): a cookie it would refuse
# is a 422 with the field named, before anything is sent to the browser.
COOKIE_MODES = ("merge", "replace")
#: A host name or IPv4 address, lower or upper case; a leading dot makes a domain cookie.
COOKIE_DOMAIN = re.compile(r"^\.?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$")
COOKIE_NAME_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f;=]")
COOKIE_VALUE_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f;]")
MAX_DOMAIN_LENGTH = 253
MAX_PATH_LENGTH = 1024


class StrictBoolean(fields.Boolean):
    """Only JSON true or false: ``1`` or ``"yes"`` for ``secure`` is a mistake worth a 422, not a guess."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class UnixSeconds(fields.Float):
    """A JSON number of seconds since 1970, never a string; dumped as given, so exports' whole seconds stay integers."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValidationError("Must be Unix seconds: a number, 0 or more.")
        return value

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> int | float | None:
        return value


def _cookie_text(forbidden: re.Pattern[str], problem: str) -> Callable[[str], None]:
    def check(text: str) -> None:
        if forbidden.search(text):
            raise ValidationError(problem)
        if text != text.strip(" "):
            raise ValidationError("Cannot start or end with a space.")

    return check


class CookieSchema(Schema):
    """A cookie as exports show it and injects take it."""

    name = fields.String(required=True, validate=_cookie_text(COOKIE_NAME_FORBIDDEN, "Cannot hold control characters, ';' or '='."))
    value = fields.String(required=True, validate=_cookie_text(COOKIE_VALUE_FORBIDDEN, "Cannot hold control characters or ';'."))
    domain = fields.String(
        required=True,
        validate=[validate.Length(max=MAX_DOMAIN_LENGTH),
                  validate.Regexp(COOKIE_DOMAIN, error="Must be a host name or IPv4 address, without scheme, port or path.")],
        metadata={"description": "`.example.com` also covers subdomains; `example.com` is that host only."},
    )
    path = fields.String(
        load_default="/",
        validate=[validate.Length(max=MAX_PATH_LENGTH), validate.Regexp(r"^/[^\x00-\x1f\x7f;]*$", error="Must start with '/'.")],
    )
    secure = StrictBoolean(load_default=False)
    httpOnly = StrictBoolean(load_default=False)
    sameSite = fields.String(
        validate=validate.OneOf(SAME_SITE_VALUES),
        metadata={"description": "Absent on inject: the browser's default, which exports show as Lax."},
    )
    expires = UnixSeconds(load_default=None, allow_none=True, metadata={"description": "Null: a session cookie."})

    @validates_schema
    def browser_would_take_it(self, cookie: dict, **_: Any) -> None:
        errors: dict[str, list[str]] = {}
        name, value = cookie.get("name"), cookie.get("value")
        if name is not None and value is not None:
            size = len(name.encode()) + len(value.encode())
            if size > config().cookie_max_bytes:
                errors.setdefault("value", []).append(f"Name plus value is {size} bytes; at most {config().cookie_max_bytes}.")
            if not name and not value:
                errors.setdefault("name", []).append("A cookie needs a name or a value.")
        if cookie.get("sameSite") == "None" and not cookie.get("secure"):
            errors.setdefault("sameSite", []).append("SameSite None needs secure: true; browsers drop it otherwise.")
        prefix = (name or "").lower()
        if prefix.startswith(("__secure-", "__host-")) and not cookie.get("secure"):
            errors.setdefault("secure", []).append("A __Secure- or __Host- cookie must be secure.")
        if prefix.startswith("__host-"):
            if cookie.get("path") != "/":
                errors.setdefault("path", []).append("A __Host- cookie must have path '/'.")
            if (cookie.get("domain") or "").startswith("."):
                errors.setdefault("domain", []).append("A __Host- cookie is host-only: no leading dot.")
        if errors:
            raise ValidationError(errors)


class CookiesWriteSchema(Schema):
    cookies = fields.List(fields.Nested(CookieSchema), required=True)
    mode = fields.String(
        load_default="merge",
        validate=validate.OneOf(COOKIE_MODES),
        metadata={"description": "merge: same name+domain+path is overwritten, the rest kept; replace: all cleared first."},
    )

    @pre_load
    def not_too_many(self, data: Any, **_: Any) -> Any:
        """Checked before the cookies themselves, so an oversized list is refused without validating every item."""
        if isinstance(data, dict) and isinstance(data.get("cookies"), list) and len(data["cookies"]) > config().cookie_max_count:
            raise ValidationError({"cookies": [f"At most {config().cookie_max_count} cookies per call; got {len(data['cookies'])}."]})
        return data


class CookieQuerySchema(Schema):
    domain = fields.String(
        validate=[validate.Length(max=MAX_DOMAIN_LENGTH), validate.Regexp(COOKIE_DOMAIN, error="Must be a host name, like .example.com.")],
        metadata={"description": "Only cookies of this domain and its subdomains; a leading dot changes nothing."},
    )


class SessionCookiesSchema(Schema):
    sessionId = fields.String(required=True)
    exportedAt = fields.String(required=True)
    count = fields.Integer(required=True)
    cookies = fields.List(fields.Nested(CookieSchema), required=True)


class CookiesWrittenSchema(Schema):
    sessionId = fields.String(required=True)
    count = fields.Integer(required=True)
    mode = fields.String(required=True, metadata={"enum": list(COOKIE_MODES)})
