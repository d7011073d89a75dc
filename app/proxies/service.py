"""Saving, showing, deleting and checking upstream proxies.

The password is encrypted before the record is built and is never part of
what ``public`` returns; a check decrypts it only for the one connection it makes.
"""
from __future__ import annotations

import logging
import socket
import ssl
import time

from flask_smorest import abort
from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError
from python_socks.sync.v2 import Proxy

from app.auth import owned
from core.config import Config
from core.crypto import SecretBox
from core.egress import EgressPolicy, EgressRefused
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


def check(store: Store, box: SecretBox, config: Config, egress: EgressPolicy, project: str, proxy_id: str,
          target: str | None) -> dict:
    """Open one tunnel through the proxy to ``target`` and close it: reachability, credentials and latency at once.

    The web process dials on the tenant's say here, so the egress policy decides first: the
    target is resolved and judged before anything is dialled, the proxy is dialled only at an
    address the policy permits, and the proxy is asked for the judged address of the target, not
    its name again. A refused one is a 403 (the deployment forbids it) and nothing is dialled.
    """
    upstream = Upstream.from_record(get_visible(store, project, proxy_id), box)
    target = target or config.network.proxy_check_target
    host, port = split_host_port(target)
    started = time.perf_counter()
    error: str | None = None
    try:
        judged = egress.resolve(host, port)[0][1]
    except EgressRefused as refused:
        abort(403, message=f"The check target is refused by this deployment's egress policy: {refused}.")
    except OSError as problem:
        judged, error = None, f"The check target {host} does not resolve ({problem.strerror or problem})."
    if judged is not None:
        username, password = upstream.credentials()
        proxy = Proxy(
            upstream.proxy_type, upstream.address.host, upstream.address.port, username, password,
            rdns=True, proxy_ssl=upstream.tls_context(), forward=_JudgedDial(egress),
        )
        try:
            proxy.connect(judged, port, timeout=config.network.proxy_connect_timeout).close()
        except EgressRefused as refused:
            abort(403, message=f"The proxy's address is refused by this deployment's egress policy: {refused}.")
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


class _JudgedDial:
    """python-socks's ``forward`` hook, dialling the proxy itself through the egress policy (never the name again)."""

    def __init__(self, egress: EgressPolicy) -> None:
        self.egress = egress

    def connect(self, dest_host: str, dest_port: int, timeout: float | None = None) -> _Stream:
        try:
            return _Stream(self.egress.connect(dest_host, dest_port, timeout or 10.0))
        except EgressRefused:
            raise
        except OSError as problem:
            raise ProxyConnectionError(problem.errno, f"Could not connect to proxy {dest_host}:{dest_port} "
                                                      f"[{problem.strerror or problem}]") from problem


class _Stream:
    """The stream python-socks's connectors speak over: a blocking socket, TLS once asked (an https:// proxy)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, max_bytes: int = 65536) -> bytes:
        return self.sock.recv(max_bytes)

    def read_exactly(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            packet = self.sock.recv(n - len(data))
            if not packet:
                raise ProxyError("The proxy closed the connection mid-answer.")
            data.extend(packet)
        return bytes(data)

    def start_tls(self, hostname: str, ssl_context: ssl.SSLContext) -> _Stream:
        return _Stream(ssl_context.wrap_socket(self.sock, server_hostname=hostname))

    def close(self) -> None:
        self.sock.close()
