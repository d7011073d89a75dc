"""Marshmallow schemas for the Sessions resource: what a create may carry and what a session shows."""
from __future__ import annotations

import re
import zoneinfo
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from app.extensions import config
from app.fields import ID_PATTERNS, PatternString, StrictBoolean, StrictInteger, UnixSeconds, id_field
from core.browser_options import RESOURCE_TYPES
from core.states import VISIBLE_STATUSES, StopReason
from core.cookies import SAME_SITE_VALUES

DEFAULT_TIMEOUT = 900
MAX_TIMEOUT = 86400


#: What the first navigation takes: http:// or https:// and then no space or control character (spelled out:
#: regex engines disagree on what ``\S`` excludes). A URL Chromium cannot navigate to is not refused: the
#: session starts and its ``navigationError`` says why.
FIRST_URL = r"^https?://[^\x00-\x20\x7f]+$"
ISO_TIMESTAMP = {"format": "date-time"}


#: Chromium's own bounds for a viewport are far wider; beyond these a page is no longer a screen.
MAX_VIEWPORT = 10000
MIN_SCALE = 0.1
MAX_SCALE = 10
#: A BCP 47 language tag as Chromium's locale override and Accept-Language take it: ``fr``, ``fr-FR``, ``zh-Hant-TW``.
LOCALE = r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$"
#: Printable ASCII: what an HTTP header value may carry (no CR or LF, so no header of one's own smuggled in).
USER_AGENT = r"^[\x20-\x7e]+$"
MAX_USER_AGENT = 1024
#: An HTTP header name (RFC 9110's token) and value.
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
HEADER_VALUE = r"^[\x20-\x7e\t]*$"
MAX_HEADERS = 50
MAX_HEADER_VALUE = 8192
#: IANA time zone names, as this host's tz database knows them (each taken by Chromium 156, checked).
TIMEZONES = sorted(zoneinfo.available_timezones() - {"Factory", "localtime", "posixrules"})
MAX_EXTENSIONS = 10


class StrictNumber(fields.Float):
    """A JSON number: not a string of digits, not ``true`` (which Python counts as 1)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class ViewportSchema(Schema):
    """The page's size in CSS pixels, as a screen of that size would give it (``innerWidth``, ``innerHeight``)."""

    width = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_VIEWPORT))
    height = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_VIEWPORT))
    deviceScaleFactor = StrictNumber(
        load_default=1, validate=validate.Range(min=MIN_SCALE, max=MAX_SCALE),
        metadata={"description": "`devicePixelRatio`; screenshots are this many device pixels per CSS pixel."},
    )
    mobile = StrictBoolean(load_default=False, metadata={"description": "Emulate a phone: the meta viewport, "
                                                                          "overlay scrollbars, `Sec-CH-UA-Mobile: ?1`."})


class GeolocationSchema(Schema):
    latitude = StrictNumber(required=True, validate=validate.Range(min=-90, max=90))
    longitude = StrictNumber(required=True, validate=validate.Range(min=-180, max=180))
    accuracy = StrictNumber(load_default=100, validate=validate.Range(min=0),
                            metadata={"description": "Metres (default 100)."})


class BrowserOptionsSchema(Schema):
    """What every target of the session gets (the first tab, tabs and popups a page opens, contexts a client
    creates), before any of the page's own scripts run, until a client sets its own. Each one given replaces the
    project's default for it (PUT /v1/session-defaults)."""

    viewport = fields.Nested(ViewportSchema,
                             metadata={"description": "Default: Chromium's 800×600 at scale 1."})
    userAgent = PatternString(
        USER_AGENT, "Must be printable ASCII.", validate=validate.Length(max=MAX_USER_AGENT),
        metadata={"description": "`navigator.userAgent` and the User-Agent header (client hints are left out). "
                                 "Default: Chromium's own with `HeadlessChrome` replaced by `Chrome`, client hints "
                                 "to match (unless the deployment keeps Chromium's: BROKER_HEADLESS_USER_AGENT)."},
    )
    locale = PatternString(
        LOCALE, "Must be a language tag like en-US or fr.", validate=validate.Length(max=35),
        metadata={"description": "`navigator.language(s)`, `Accept-Language` and `Intl`'s default locale."},
    )
    timezoneId = fields.String(validate=validate.OneOf(
        TIMEZONES, error="Must be an IANA time zone name, like Europe/Paris."),
                               metadata={"description": "An IANA time zone, like Europe/Paris."})
    geolocation = fields.Nested(GeolocationSchema,
                                metadata={"description": "Where `navigator.geolocation` says the browser is; the "
                                                         "permission is granted to every site."})
    extraHTTPHeaders = fields.Dict(
        keys=PatternString(HEADER_NAME, "Must be an HTTP header name."),
        values=PatternString(HEADER_VALUE, "Must be printable ASCII (no line breaks).",
                             validate=validate.Length(max=MAX_HEADER_VALUE)),
        metadata={"description": "Sent with every request of every page. Answers show their names only "
                                 "(`browserOptions.extraHTTPHeaderNames`): values often carry credentials.",
                  "maxProperties": MAX_HEADERS},
    )
    blockResources = fields.List(
        fields.String(validate=validate.OneOf(list(RESOURCE_TYPES))),
        validate=validate.Length(max=len(RESOURCE_TYPES)),
        metadata={"description": "Resource types never requested (for jobs that only read pages).",
                  "uniqueItems": True},
    )
    extensionIds = fields.List(
        PatternString(ID_PATTERNS["ext"], "Must be an id like ext_ and 32 hex digits."),
        validate=validate.Length(max=MAX_EXTENSIONS),
        metadata={"description": "Extensions of the project (POST /v1/extensions) to load. Needs a launch of its "
                                 "own: the session never takes a warm browser.", "uniqueItems": True},
    )

    @validates_schema
    def no_repeats(self, data: dict, **_: Any) -> None:
        """BROWSER_OPTION_RULES, in Python."""
        errors = {name: ["Each item at most once."] for name in ("blockResources", "extensionIds")
                  if data.get(name) and len(set(data[name])) != len(data[name])}
        if len(data.get("extraHTTPHeaders") or {}) > MAX_HEADERS:
            errors["extraHTTPHeaders"] = [f"At most {MAX_HEADERS} headers."]
        if errors:
            raise ValidationError(errors)


def state_header_names(components: dict[str, dict]) -> None:
    """Into the OpenAPI document, what a field's own metadata cannot carry there: the extra headers' names, as
    ``patternProperties`` (which generators of test data follow, where some ignore ``propertyNames``), in every
    schema that takes browser options."""
    for name in ("SessionCreate", "SessionDefaults"):
        headers = components[name]["properties"]["extraHTTPHeaders"]
        headers["patternProperties"] = {HEADER_NAME: headers.pop("additionalProperties")}
        headers["additionalProperties"] = False


#: ``checkpoints_move``, as JSON Schema: no checkpoints, or a session that may move.
CHECKPOINT_RULES = {"anyOf": [{"properties": {"checkpointInterval": {"enum": [0, None]}}},
                              {"properties": {"movable": {"enum": [True, None]}}}]}


class SessionCreateSchema(BrowserOptionsSchema):
    contextId = id_field("ctx", "Context to restore now and save at stop.")
    proxyId = id_field("prx", "Proxy every request goes through.")
    url = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(FIRST_URL, error="Must be an http:// or https:// URL without spaces."),
        metadata={"description": "The first page navigates here before the answer; if that fails the session "
                                 "still starts, with `navigationError` set."},
    )
    timeout = StrictInteger(
        load_default=DEFAULT_TIMEOUT,
        validate=validate.Range(min=1, max=MAX_TIMEOUT),
        metadata={"description": "Seconds the session may live."},
    )
    idleTimeout = StrictInteger(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_TIMEOUT),
        metadata={"description": "Stop after this many seconds with no CDP client connected."},
    )
    recording = StrictBoolean(
        load_default=None, allow_none=True,
        metadata={"description": "Record every page of the session (rrweb, in a world the pages cannot see) for "
                                 "`GET …/recording` and the replay page; default: the project's "
                                 "(PUT /v1/session-defaults), else BROKER_RECORDING."},
    )
    movable = StrictBoolean(
        load_default=None, allow_none=True,
        metadata={"description": "May move to another worker when its own stops (a deploy, a restart), keeping its "
                                 "id, `cdpUrl` and live-view links; default BROKER_MOVABLE."},
    )
    checkpointInterval = StrictInteger(
        load_default=None, allow_none=True, validate=validate.Range(min=0, max=MAX_TIMEOUT),
        metadata={"description": "Seconds between checkpoints (the profile, tabs and cookies saved if they changed): "
                                 "if its worker is lost, the session is relaunched from the last one on another "
                                 "worker. 0: none. Only for movable sessions (with `movable` left out it makes the "
                                 "session movable; with `movable: false` it is a 422); default "
                                 "BROKER_CHECKPOINT_INTERVAL for movable sessions."},
    )

    @validates_schema
    def checkpoints_move(self, data: dict, **_: Any) -> None:
        """CHECKPOINT_RULES: a checkpoint is only ever used by a move; asking for both none and some is a mistake,
        said at once."""
        if data.get("checkpointInterval") and data.get("movable") is False:
            raise ValidationError({"checkpointInterval": ["Needs a movable session (`movable` is false)."]})


class SessionListQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf([s.value for s in VISIBLE_STATUSES]))


class SessionSchema(Schema):
    id = fields.String(required=True, metadata={"pattern": ID_PATTERNS["ses"]})
    cdpUrl = fields.String(
        required=True, allow_none=True,
        metadata={"pattern": r"^wss?://[^?]+/ws/session/ses_[0-9a-f]{32}\?token=[A-Za-z0-9_-]{43}$",
                  "description": "The CDP WebSocket for `puppeteer.connect({browserWSEndpoint})` or "
                                 "`connectOverCDP(url)`. Its `token` is the session's connect credential (256 "
                                 "random bits, stored only as a hash, dead once the session stops): the session id "
                                 "alone opens nothing. Treat the whole URL as a secret. Null for a key without "
                                 "sessions:write: driving a browser takes that scope."},
    )
    status = fields.String(required=True, metadata={"enum": [s.value for s in VISIBLE_STATUSES]})
    liveViewUrl = fields.String(
        required=True, allow_none=True,
        metadata={"pattern": r"^https?://[^?]+/live/ses_[0-9a-f]{32}\?token=[A-Za-z0-9_-]{43}$",
                  "description": "A page that shows the session's current tab live and lets a person click, scroll "
                                 "and type into it; needs no API key. Its `token` is a live-view credential (not "
                                 "the connect token: it opens this viewer only), valid for at least half of "
                                 "BROKER_LIVE_VIEW_TTL, revocable (DELETE …/live-view), dead once the session stops. "
                                 "Null unless running, and for a key without sessions:write (it gets "
                                 "`liveViewReadOnlyUrl` only). Append `&readOnly=1` to watch without input."},
    )
    liveViewReadOnlyUrl = fields.String(
        required=True, allow_none=True,
        metadata={"pattern": r"^https?://[^?]+/live/ses_[0-9a-f]{32}\?token=[A-Za-z0-9_-]{43}&readOnly=1$",
                  "description": "The same page for watching only: its credential never carries input, so it can "
                                 "be shared with someone who should not control the browser. Null unless running; "
                                 "a key with sessions:read alone gets it too."},
    )
    worker = fields.String(
        required=True, allow_none=True,
        metadata={"description": "The worker's queue that runs (or ran) the browser; null until one took the launch."},
    )
    contextId = fields.String(required=True, allow_none=True, metadata={"pattern": ID_PATTERNS["ctx"]})
    proxyId = fields.String(required=True, allow_none=True, metadata={"pattern": ID_PATTERNS["prx"]})
    createdAt = fields.String(required=True, metadata=ISO_TIMESTAMP)
    expiresAt = fields.String(required=True, allow_none=True, metadata=ISO_TIMESTAMP)
    idleTimeout = fields.Integer(required=True, allow_none=True)
    stoppedAt = fields.String(required=True, allow_none=True, metadata=ISO_TIMESTAMP)
    stopReason = fields.String(required=True, allow_none=True, metadata={"enum": [r.value for r in StopReason]})
    snapshotError = fields.String(
        required=True, allow_none=True,
        metadata={"description": "Why the context snapshot of this session's stop was not saved."},
    )
    navigationError = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "Why the first navigation (`url`) failed: a network error or an HTTP status; null if it loaded."},
    )
    browserOptions = fields.Nested(
        "ShownBrowserOptionsSchema", required=True, allow_none=True,
        metadata={"description": "The options the session's browser got: the create's own over the project's "
                                 "defaults. Null for a session created before options existed."},
    )
    launch = fields.String(
        required=True, allow_none=True, metadata={"enum": ["warm", "cold"], "description": (
            "`warm`: a browser launched ahead of need served the create; `cold`: one was launched for it (a "
            "context, a proxy or extensions need their own launch, or no warm browser was free). Null until "
            "running.")},
    )
    recording = fields.Boolean(required=True, dump_default=False,
                               metadata={"description": "Whether the session is recorded."})
    movable = fields.Boolean(required=True, dump_default=False,
                             metadata={"description": "Whether the session moves to another worker when its own "
                                                      "stops, instead of ending as `shutdown`."})
    moving = fields.Boolean(
        required=True, dump_default=False,
        metadata={"description": "Saved by a worker that stopped (or checkpointed by one lost) and not yet running "
                                 "on the next: still `running`; a CDP connect meanwhile waits for it "
                                 "(BROKER_MOVE_WAIT)."})
    checkpointInterval = fields.Integer(
        required=True, dump_default=0,
        metadata={"description": "Seconds between checkpoints; 0: none (a lost worker's session ends as `worker_lost`)."})
    checkpointedAt = fields.String(
        required=True, allow_none=True, dump_default=None,
        metadata={**ISO_TIMESTAMP, "description": "When its last checkpoint on its current worker was saved; null "
                                                  "before the first (or with none)."})
    restoredFrom = fields.String(
        required=True, allow_none=True, dump_default=None,
        metadata={**ISO_TIMESTAMP, "description": "Set once its worker was lost and it was relaunched from a "
                                                  "checkpoint: when that checkpoint was saved (what the browser did "
                                                  "after it was lost). Null otherwise."})
    recordingUrl = fields.String(
        required=True, allow_none=True, dump_default=None,
        metadata={"pattern": r"^https?://[^?]+/replay/ses_[0-9a-f]{32}\?token=[A-Za-z0-9_-]{43}$",
                  "description": "A page that replays the recording (read-only, no API key): its `token` opens this "
                                 "replay only, as long as the recording is kept. Null unless recorded."},
    )
    downloadError = fields.String(
        required=True, allow_none=True, dump_default=None,
        metadata={"description": "Set when a download was cancelled because the session's downloads reached "
                                 "BROKER_DOWNLOAD_MAX_BYTES; null otherwise."},
    )


class ShownBrowserOptionsSchema(Schema):
    """A session's browser options as answers show them; null where none was set."""

    viewport = fields.Nested(ViewportSchema, required=True, allow_none=True)
    userAgent = fields.String(required=True, allow_none=True, metadata={
        "description": "As the create or defaults gave it; null: the deployment's default."})
    locale = fields.String(required=True, allow_none=True)
    timezoneId = fields.String(required=True, allow_none=True)
    geolocation = fields.Nested(GeolocationSchema, required=True, allow_none=True)
    extraHTTPHeaderNames = fields.List(fields.String(), required=True,
                                       metadata={"description": "The extra headers' names; values are never shown."})
    blockResources = fields.List(fields.String(metadata={"enum": list(RESOURCE_TYPES)}), required=True,
                                 allow_none=True)
    extensionIds = fields.List(fields.String(metadata={"pattern": ID_PATTERNS["ext"]}), required=True,
                               allow_none=True)


# -- session cookies ------------------------------------------------------
# The rules below are Chromium's own (checked on 156): a cookie it would refuse
# is a 422 with the field named, before anything is sent to the browser. Each
# rule is in the OpenAPI document too: per field as patterns and lengths, across
# fields as the Cookie schema's ``allOf`` (COOKIE_RULES). The one rule JSON
# Schema cannot state, UTF-8 bytes of name plus value, is checked once the
# session is found (app.sessions.cookies) and described in the schema's text.
COOKIE_MODES = ("merge", "replace")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
#: A host name whose last label starts with a letter (Chromium reads a name ending in a number as an IPv4
#: address, and refuses it if it is not one), or a dotted-quad IPv4 address; a leading dot makes a domain cookie.
COOKIE_DOMAIN = rf"^\.?(?:(?:{_LABEL}\.)*[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?|{_OCTET}(?:\.{_OCTET}){{3}})$"
#: No control characters, ';' or '=', and no space at either end; may be empty.
COOKIE_NAME = r"^(?:[^\x00-\x1f\x7f;= ](?:[^\x00-\x1f\x7f;=]*[^\x00-\x1f\x7f;= ])?)?$"
#: No control characters or ';', and no space at either end; may be empty.
COOKIE_VALUE = r"^(?:[^\x00-\x1f\x7f; ](?:[^\x00-\x1f\x7f;]*[^\x00-\x1f\x7f; ])?)?$"
#: Printable ASCII that Chromium keeps as it is: it percent-escapes space, " # < > ? ^ ` { | } and anything
#: not ASCII, and counts its 1024-byte limit after that. Send such a path percent-encoded.
COOKIE_PATH = r"^/[\x21\x24-\x3a\x3d\x40-\x5d\x5f\x61-\x7a\x7e]*$"
MAX_DOMAIN_LENGTH = 253
MAX_PATH_LENGTH = 1024
#: Chromium's cookie name prefixes (any case): all need secure; __Host- also path "/" and a host-only domain;
#: __Http- and __Host-Http- also httpOnly. A nameless cookie's value may not look like one of them.
SECURE_PREFIXES = ("__secure-", "__host-", "__http-")
HOST_PREFIXES = ("__host-",)
HTTP_PREFIXES = ("__http-", "__host-http-")


def _not_prefixed(*prefixes: str) -> str:
    """A pattern for names that start with none of ``prefixes`` (any case), without lookaheads, which not every
    JSON Schema tool supports: such a name ends, or differs, somewhere inside each prefix it begins like."""
    def letter(c: str) -> str:
        # Bare "-" and "_": escaping them outside a class is an error in ECMAScript's unicode mode.
        return f"[{c.lower()}{c.upper()}]" if c.isalpha() else c if c in "-_" else re.escape(c)

    branches = []
    heads = sorted({p[:i] for p in prefixes for i in range(len(p))}, key=lambda h: (len(h), h))
    for head in heads:
        nexts = sorted({p[len(head)] for p in prefixes if p.startswith(head)})
        excluded = "".join(re.escape(x) for c in nexts for x in sorted({c.lower(), c.upper()}))
        branches.append("".join(letter(c) for c in head) + f"(?:$|[^{excluded}])")
    return "^(?:" + "|".join(branches) + ")"


#: The cross-field rules of ``browser_would_take_it``, as JSON Schema.
COOKIE_RULES = {
    "allOf": [
        {"anyOf": [{"properties": {"name": {"minLength": 1}}},
                   {"properties": {"value": {"minLength": 1, "allOf": [
                       {"pattern": "^[^=]*$"}, {"pattern": _not_prefixed(*SECURE_PREFIXES)}]}}}]},
        {"anyOf": [{"properties": {"sameSite": {"enum": ["Strict", "Lax"]}}},
                   {"required": ["secure"], "properties": {"secure": {"enum": [True]}}}]},
        {"anyOf": [{"properties": {"name": {"pattern": _not_prefixed(*SECURE_PREFIXES)}}},
                   {"required": ["secure"], "properties": {"secure": {"enum": [True]}}}]},
        {"anyOf": [{"properties": {"name": {"pattern": _not_prefixed(*HOST_PREFIXES)}}},
                   {"properties": {"path": {"enum": ["/"]}, "domain": {"pattern": "^[^.]"}}}]},
        {"anyOf": [{"properties": {"name": {"pattern": _not_prefixed(*HTTP_PREFIXES)}}},
                   {"required": ["httpOnly"], "properties": {"httpOnly": {"enum": [True]}}}]},
    ],
}


class CookieSchema(Schema):
    """A cookie to inject. Name plus value may be at most BROKER_COOKIE_MAX_BYTES UTF-8 bytes (4096 by default,
    Chromium's limit), checked once the session is found."""

    name = PatternString(COOKIE_NAME, "Cannot hold control characters, ';' or '=', nor start or end with a space.",
                         required=True)
    value = PatternString(COOKIE_VALUE, "Cannot hold control characters or ';', nor start or end with a space.",
                          required=True)
    domain = PatternString(
        COOKIE_DOMAIN, "Must be a host name or IPv4 address, without scheme, port or path.",
        required=True, validate=validate.Length(max=MAX_DOMAIN_LENGTH),
        metadata={"description": "`.example.com` also covers subdomains; `example.com` is that host only."},
    )
    path = PatternString(COOKIE_PATH, "Must start with '/' and hold only printable ASCII but space, \" # ; < > ? ^ ` { | } "
                                      "(percent-encode those).",
                         load_default="/", validate=validate.Length(max=MAX_PATH_LENGTH))
    secure = StrictBoolean(load_default=False)
    httpOnly = StrictBoolean(load_default=False)
    sameSite = fields.String(
        validate=validate.OneOf(SAME_SITE_VALUES),
        metadata={"description": "Absent on inject: the browser's default, which exports show as Lax."},
    )
    expires = UnixSeconds(load_default=None, allow_none=True, metadata={"description": "Null: a session cookie."})

    @validates_schema
    def browser_would_take_it(self, cookie: dict, **_: Any) -> None:
        """COOKIE_RULES, in Python."""
        errors: dict[str, list[str]] = {}
        name, value = cookie.get("name"), cookie.get("value")
        if name == "" and value is not None:
            if value == "" or "=" in value or value.lower().startswith(SECURE_PREFIXES):
                errors.setdefault("value", []).append(
                    "A cookie without a name needs a value without '=' that does not start like a prefixed name.")
        if cookie.get("sameSite") == "None" and not cookie.get("secure"):
            errors.setdefault("sameSite", []).append("SameSite None needs secure: true; browsers drop it otherwise.")
        prefix = (name or "").lower()
        if prefix.startswith(SECURE_PREFIXES) and not cookie.get("secure"):
            errors.setdefault("secure", []).append("A __Secure-, __Host- or __Http- cookie must be secure.")
        if prefix.startswith(HOST_PREFIXES):
            if cookie.get("path") != "/":
                errors.setdefault("path", []).append("A __Host- cookie must have path '/'.")
            if (cookie.get("domain") or "").startswith("."):
                errors.setdefault("domain", []).append("A __Host- cookie is host-only: no leading dot.")
        if prefix.startswith(HTTP_PREFIXES) and not cookie.get("httpOnly"):
            errors.setdefault("httpOnly", []).append("A __Http- or __Host-Http- cookie must be httpOnly.")
        if errors:
            raise ValidationError(errors)


class ExportedCookieSchema(Schema):
    """A cookie as the browser holds it (exports and context cookies)."""

    name = fields.String(required=True)
    value = fields.String(required=True)
    domain = fields.String(required=True)
    path = fields.String(required=True)
    secure = fields.Boolean(required=True)
    httpOnly = fields.Boolean(required=True)
    sameSite = fields.String(required=True, metadata={"enum": list(SAME_SITE_VALUES)})
    expires = UnixSeconds(required=True, allow_none=True, metadata={"description": "Whole Unix seconds; null: a session cookie."})


def too_large(cookies: list[dict], max_bytes: int) -> dict | None:
    """Field errors for cookies whose name plus value pass ``max_bytes`` UTF-8 bytes, in the 422 shape; else None."""
    errors = {}
    for index, cookie in enumerate(cookies):
        size = len(cookie["name"].encode()) + len(cookie["value"].encode())
        if size > max_bytes:
            errors[index] = {"value": [f"Name plus value is {size} bytes; at most {max_bytes}."]}
    return {"json": {"cookies": errors}} if errors else None


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
        if isinstance(data, dict) and isinstance(data.get("cookies"), list) and len(data["cookies"]) > config().sessions.cookie_max_count:
            raise ValidationError({"cookies": [f"At most {config().sessions.cookie_max_count} cookies per call; got {len(data['cookies'])}."]})
        return data


class CookieQuerySchema(Schema):
    domain = PatternString(
        COOKIE_DOMAIN, "Must be a host name, like .example.com.", validate=validate.Length(max=MAX_DOMAIN_LENGTH),
        metadata={"description": "Only cookies of this domain and its subdomains; a leading dot changes nothing."},
    )


class SessionCookiesSchema(Schema):
    sessionId = fields.String(required=True, metadata={"pattern": ID_PATTERNS["ses"]})
    exportedAt = fields.String(required=True, metadata=ISO_TIMESTAMP)
    count = fields.Integer(required=True)
    cookies = fields.List(fields.Nested(ExportedCookieSchema), required=True)


class CookiesWrittenSchema(Schema):
    sessionId = fields.String(required=True, metadata={"pattern": ID_PATTERNS["ses"]})
    count = fields.Integer(required=True)
    mode = fields.String(required=True, metadata={"enum": list(COOKIE_MODES)})
