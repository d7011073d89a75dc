"""A browser's cookies over CDP, in the API's cookie shape.

One module for "read every cookie and normalise it" and "write cookies", so the
web process (a session's cookie export / inject) and the worker (saving a
context's cookies at stop) agree on one shape. It speaks only the browser-level
``Storage`` domain: those calls act on the default browser context — the one a
client's first page uses — and need no page attached, so they never disturb
clients driving the browser at the same time.

Chromium (checked on 156) reads a CDP cookie's ``domain`` the way a cookie
export writes it: ``.example.com`` is a domain cookie (sent to subdomains too),
``example.com`` a host-only one. So an export injected back gives the same
cookies, and no ``url`` is ever needed.
"""
from __future__ import annotations

from collections.abc import Iterable

from core.cdp import CdpConnection, CdpError

GET_COOKIES = "Storage.getCookies"
SET_COOKIES = "Storage.setCookies"
CLEAR_COOKIES = "Storage.clearCookies"

SAME_SITE_VALUES = ("Strict", "Lax", "None")
#: What Chromium applies to a cookie that names no SameSite ("Lax by default"); exports show it.
DEFAULT_SAME_SITE = "Lax"
#: Fields of a CDP ``Network.Cookie`` that ``Network.CookieParam`` accepts back unchanged.
RESTORABLE_FIELDS = (
    "name", "value", "domain", "path", "secure", "httpOnly", "sameSite", "expires",
    "priority", "sourceScheme", "sourcePort", "partitionKey",
)


def to_api(cookie: dict) -> dict:
    """A CDP ``Network.Cookie`` as the API shows it; ``expires`` is whole Unix seconds, None for a session cookie."""
    session = cookie.get("session", False) or cookie.get("expires", -1) < 0
    return {
        "name": cookie["name"],
        "value": cookie["value"],
        "domain": cookie["domain"],
        "path": cookie["path"],
        "secure": cookie.get("secure", False),
        "httpOnly": cookie.get("httpOnly", False),
        "sameSite": cookie.get("sameSite", DEFAULT_SAME_SITE),
        "expires": None if session else int(cookie["expires"]),
    }


def to_cdp(cookie: dict) -> dict:
    """An API cookie (already validated) as a CDP ``Network.CookieParam``; absent options stay the browser's default."""
    param = {
        "name": cookie["name"],
        "value": cookie["value"],
        "domain": cookie["domain"],
        "path": cookie.get("path", "/"),
        "secure": cookie.get("secure", False),
        "httpOnly": cookie.get("httpOnly", False),
    }
    if cookie.get("sameSite"):
        param["sameSite"] = cookie["sameSite"]
    if cookie.get("expires") is not None:
        param["expires"] = cookie["expires"]
    return param


def restorable(cookie: dict) -> dict:
    """A CDP cookie as the ``CookieParam`` that recreates it exactly (partition, source scheme and port included)."""
    param = {k: cookie[k] for k in RESTORABLE_FIELDS if k in cookie}
    if cookie.get("session") or param.get("expires", -1) < 0:
        param.pop("expires", None)
    return param


def bare_domain(domain: str) -> str:
    return domain.lstrip(".").lower()


def matches_domain(cookie_domain: str, wanted: str) -> bool:
    """``example.com`` and ``.example.com`` both match example.com and its subdomains, never ``badexample.com``."""
    have, want = bare_domain(cookie_domain), bare_domain(wanted)
    return have == want or have.endswith("." + want)


def sort_key(cookie: dict) -> tuple[str, str, str, str]:
    return bare_domain(cookie["domain"]), cookie["domain"], cookie["path"], cookie["name"]


def read_cookies(conn: CdpConnection, domain: str | None = None) -> list[dict]:
    """Every cookie of the default browser context, httpOnly ones included, in a stable order."""
    cookies = [to_api(c) for c in conn.call(GET_COOKIES)["cookies"]]
    if domain:
        cookies = [c for c in cookies if matches_domain(c["domain"], domain)]
    return sorted(cookies, key=sort_key)


def merge_cookies(conn: CdpConnection, cookies: Iterable[dict]) -> None:
    """Set each cookie; one with the same name, domain and path is overwritten, the rest are kept.

    Chromium checks every cookie of a ``Storage.setCookies`` call before it sets
    any, so a refused call (``CdpError``) changes nothing. A cookie whose
    ``expires`` is in the past deletes its namesake, as a ``Set-Cookie`` would.
    """
    conn.call(SET_COOKIES, {"cookies": [to_cdp(c) for c in cookies]})


def replace_cookies(conn: CdpConnection, cookies: Iterable[dict]) -> None:
    """Clear every cookie, then set these; if Chromium refuses them, the cookies from before are put back."""
    params = [to_cdp(c) for c in cookies]
    before = conn.call(GET_COOKIES)["cookies"]
    conn.call(CLEAR_COOKIES)
    try:
        conn.call(SET_COOKIES, {"cookies": params})
    except CdpError:
        conn.call(SET_COOKIES, {"cookies": [restorable(c) for c in before]})
        raise
