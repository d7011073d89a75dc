"""Saving, showing, deleting and checking upstream proxies.

The password is encrypted before the record is built and is never part of
what ``public`` returns; a check decrypts it only for the one connection it makes.
"""
from __future__ import annotations

import logging
import ssl
import time

from flask_smorest import abort
from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError
from python_socks.sync.v2 import Proxy

from app.auth import owned
from core.config import Config
from core.crypto import SecretBox
from core.proxy_address import split_host_port
from core.upstream import Upstream
from core.ids import new_id, now_ms, utcnow_iso
from core.store import Store

log = logging.getLogger(__name__)

PUBLIC_FIELDS = ("id", "server", "username", "name", "createdAt")


def public(record: dict) -> dict:
    return {name: record.get(name) for name in PUBLIC_FIELDS}


def create(store: Store, box: SecretBox, project: str, body: dict) -> dict:
    password = body["password"]
    record = {
        "id": new_id("prx"),
        "project": project,
        "server": body["server"],
        "username": body["username"],
        "name": body["name"],
        "passwordCiphertext": box.encrypt(password) if password is not None else None,
        "createdAt": utcnow_iso(),
        "createdMs": now_ms(),
    }
    store.proxies.create(record)
    log.info("proxy %s: saved (%s)", record["id"], record["server"])
    return record


def get_visible(store: Store, project: str, proxy_id: str) -> dict:
    """Another project's proxy is as unknown as a made-up id."""
    return owned(store.proxies.get(proxy_id), project, "proxy", proxy_id)


def delete(store: Store, project: str, proxy_id: str) -> None:
    get_visible(store, project, proxy_id)
    users = store.proxies.delete(proxy_id)
    if users is None:
        abort(404, message=f"No proxy {proxy_id}.")
    if users:
        abort(409, message=f"Proxy {proxy_id} is used by {len(users)} running session(s); stop them first.")
    log.info("proxy %s: deleted", proxy_id)


def check(store: Store, box: SecretBox, config: Config, project: str, proxy_id: str, target: str | None) -> dict:
    """Open one tunnel through the proxy to ``target`` and close it: reachability, credentials and latency at once."""
    upstream = Upstream.from_record(get_visible(store, project, proxy_id), box)
    target = target or config.proxy_check_target
    host, port = split_host_port(target)
    username, password = upstream.credentials()
    proxy = Proxy(
        upstream.proxy_type, upstream.address.host, upstream.address.port, username, password,
        rdns=True, proxy_ssl=upstream.tls_context(),
    )
    started = time.perf_counter()
    error: str | None = None
    try:
        proxy.connect(host, port, timeout=config.proxy_connect_timeout).close()
    except (ProxyError, ProxyTimeoutError, ProxyConnectionError, ssl.SSLError, OSError) as problem:
        error = str(problem) or type(problem).__name__
    latency = round((time.perf_counter() - started) * 1000, 1)
    log.info("proxy %s: check to %s %s", proxy_id, target, "failed" if error else f"took {latency} ms")
    return {
        "id": proxy_id,
        "target": target,
        "reachable": error is None,
        "latencyMs": None if error else latency,
        "error": error,
        "checkedAt": utcnow_iso(),
    }
