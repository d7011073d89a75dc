"""Every secret the suite's tests used, kept in one place so one check can grep every captured log for all of them.

The test client (tests.support.api.Api) files what passes through it: the API
key it sends, keys handed over by ``POST /v1/keys``, proxy passwords it sends,
each session's connect token and the gateway credential the web process
computes for that session, and every credential in a ``liveViewUrl``. A test
that uses a secret some other way files it with :func:`remember`. The suite's
processes' logs are checked against the whole ledger once every deployment
has stopped (tests/conftest.py, ``brokers``), and by the secrets audit.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from core.gateway_auth import GatewayKey

#: What each secret is, by the secret (a secret filed twice keeps its first description).
USED: dict[str, str] = {}
#: Shorter values are ids or flags, not secrets (a secret here is at least 16 characters).
MIN_LENGTH = 16
_gateway_keys: list[GatewayKey] = []


def remember(what: str, secret: str | None) -> None:
    if secret and len(secret) >= MIN_LENGTH:
        USED.setdefault(secret, what)


def use_deployment_secret(secret_key: str) -> None:
    """BROKER_SECRET_KEY of the suite's deployments: filed, and used to compute each session's gateway credential."""
    remember("BROKER_SECRET_KEY", secret_key)
    _gateway_keys[:] = [GatewayKey(secret_key)]


def remember_answer(body: object) -> None:
    """The secrets an API answer hands over: a new key, a session's connect token, its gateway and live-view credentials."""
    for item in body if isinstance(body, list) else [body]:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("key"), str):
            remember("API key made by the API", item["key"])
        if str(item.get("id", "")).startswith("ses_"):
            _remember_session(item)


def _remember_session(session: dict) -> None:
    for name, value in parse_qsl(urlsplit(session.get("cdpUrl") or "").query):
        remember(f"connect token ({name})", value)
    for link in ("liveViewUrl", "liveViewReadOnlyUrl"):
        for name, value in parse_qsl(urlsplit(session.get(link) or "").query):
            remember(f"live-view credential ({link} {name})", value)
    for key in _gateway_keys:
        remember("gateway credential", key.credential(session["id"]))


def remember_request(body: object) -> None:
    if isinstance(body, dict) and isinstance(body.get("password"), str):
        remember("proxy password", body["password"])


#: Logs of the tests' own upstream proxies, which must see the passwords they check.
NOT_OURS = ("upstream-",)


def broker_logs(folder: Path) -> dict[str, str]:
    """Every log the suite's processes (web, workers, Redis) wrote into ``folder``, by file name."""
    return {path.name: path.read_text(errors="replace") for path in sorted(folder.glob("*.log"))
            if not path.name.startswith(NOT_OURS)}


def found_in_logs(folder: Path) -> dict[str, list[str]]:
    """Each used secret found in the suite's logs in ``folder``: its description → the files it is in."""
    logs = broker_logs(folder)
    found: dict[str, list[str]] = {}
    for secret, what in USED.items():
        files = [name for name, text in logs.items() if secret in text]
        if files:
            found[what] = files
    return found
