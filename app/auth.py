"""API keys: who is calling (their project) and whether the key holds the scope a call needs.

Every ``/v1`` request is authenticated before routing decides anything (``register``):
without a valid key, an unknown path, a malformed id or a wrong method is a 401 like any
other, so nothing about the API's shape or its ids is learnt without a key.
"""
from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, g, request
from flask_smorest import abort

from app.extensions import config, store
from app.keys.service import expired
from core.config import Config
from core.store import ALL_SCOPES, DEFAULT_PROJECT, Store

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
#: Paths under this prefix need a valid key, whatever route (or none) they match.
API_PREFIX = "/v1"


def authenticate() -> dict:
    """The caller's key record, kept in ``g`` for the request; 401 without a valid key."""
    if "api_key" in g:
        return g.api_key
    api_key = request.headers.get(API_KEY_HEADER)
    if not api_key:
        abort(401, message=f"Missing {API_KEY_HEADER} header.")
    # Read from Redis on every request, never cached: a revoke holds from the very next request.
    record = store().api_keys.get(api_key)
    if record is None and _is_bootstrap_key(api_key) and bootstrap_key_state(store(), config()) != "revoked":
        record = store().api_keys.get(api_key)
    if record is None:
        abort(401, message="Unknown or revoked API key.")
    if expired(record):
        abort(401, message=f"This API key expired at {record['expiresAt']}.")
    store().api_keys.touch(record["id"])
    g.api_key = record
    g.project = record["project"]
    return record


def bootstrap_key_state(store: Store, config: Config) -> str:
    """``none`` (BROKER_BOOTSTRAP_API_KEY unset), ``stored``, ``revoked`` (on purpose: a revoke sticks), or
    ``restored``: Redis had lost it (restarted empty, or failed over without its last writes) and it is stored again.

    Stored at the web process's start (create_app), and again when it is missing: at the first request that
    presents exactly that key (``authenticate``), and at each /readyz (app/health.py). On a miss rather than by a
    periodic check: nothing polls Redis for it, the first call after Redis lost it is served rather than refused
    for up to a period, a key no one presents costs nothing, and ``ensure`` keeps a revoke (its tombstone) in
    force. /readyz does it too so that readiness never reports an API that would refuse its own key.
    """
    key = config.bootstrap_api_key
    if not key:
        return "none"
    if store.api_keys.get(key) is not None:
        return "stored"
    if not store.api_keys.ensure(key, name="bootstrap", project=DEFAULT_PROJECT, scopes=ALL_SCOPES):
        return "revoked"
    log.warning("the bootstrap API key (BROKER_BOOTSTRAP_API_KEY) was missing from Redis (Redis lost its data?); "
                "stored again")
    return "restored"


def _is_bootstrap_key(api_key: str) -> bool:
    bootstrap = config().bootstrap_api_key
    return bool(bootstrap) and hmac.compare_digest(api_key.encode(), bootstrap.encode())


def _authenticate_api_calls() -> None:
    """Runs before any other hook and before a routing failure (404, 405) is raised."""
    if request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/"):
        authenticate()


def register(app: Flask) -> None:
    """Call before any other ``before_request`` hook is added (a malformed body without a key is a 401 too)."""
    app.before_request(_authenticate_api_calls)


def require_scope(scope: str) -> Callable:
    """Outermost decorator on a view, so a caller without a key learns that before any validation."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            record = authenticate()
            if scope not in record["scopes"]:
                abort(403, message=f"This API key lacks the {scope} scope.")
            return view(*args, **kwargs)

        return guarded

    return decorate


def current_project() -> str:
    return g.project


def current_key() -> dict:
    """The caller's key record (id, scopes, project); never the key itself."""
    return g.api_key


def holds(scope: str) -> bool:
    """Whether the caller's key holds ``scope`` (for answers that show more to a key with more)."""
    return scope in g.api_key["scopes"]


def owned(record: dict | None, project: str, noun: str, resource_id: str) -> dict:
    """The record if ``project`` owns it; another project's is as unknown as a made-up id (404)."""
    if record is None or record["project"] != project:
        abort(404, message=f"No {noun} {resource_id}.")
    return record
