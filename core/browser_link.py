"""How the web process reaches a session's browser: straight over loopback on its own host, else through the worker's gateway.

Chromium listens on 127.0.0.1 only (``--headless=new`` ignores
``--remote-debugging-address``), so a browser on another host is reachable only
through a process of ours on that host: the worker's gateway (tasks/gateway.py),
which admits a caller that presents the session's gateway credential
(core/gateway_auth.py). A browser on the web process's own host is reached over
loopback, one hop fewer: bench/hosts.py measures the difference.

"Same host" means same network namespace on the same boot: exactly the
processes that share a loopback interface (two containers on one machine do not).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from core import test_hooks
from core.config import Config
from core.gateway_auth import CDP, FILES, HEADER, GatewayKey

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
NET_NAMESPACE = "/proc/self/ns/net"
#: A gateway request's target: this prefix, the session id, then optionally a ``/devtools/…`` or ``/files/…`` path.
GATEWAY_PREFIX = "/session/"
#: After the session id in a gateway request: a session's file door (tasks/file_door.py), plain HTTP.
FILES_PATH = "/files/"


@functools.cache
def local_host_id() -> str:
    """Equal for two processes exactly when they share a loopback interface."""
    return f"{BOOT_ID.read_text().strip()}/{os.stat(NET_NAMESPACE).st_ino}"


@dataclass(frozen=True)
class BrowserRoute:
    """A WebSocket URL to open and the extra request headers to send with the upgrade."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()

    def header_lines(self) -> list[str]:
        """The headers as websocket-client takes them."""
        return [f"{name}: {value}" for name, value in self.headers]


class BrowserLinks:
    """Routes to sessions' browsers for one process; the credential is computed here, never stored or logged."""

    def __init__(self, config: Config, key: GatewayKey, hooks: test_hooks.Hooks | None = None) -> None:
        self.config = config
        self.key = key
        self.hooks = hooks or test_hooks.load()

    @classmethod
    def from_config(cls, config: Config) -> BrowserLinks:
        return cls(config, GatewayKey.from_config(config))

    def is_local(self, record: dict) -> bool:
        return record.get("hostId") == local_host_id()

    def route(self, record: dict, purpose: str = CDP, page: str | None = None) -> BrowserRoute:
        """The browser-level CDP socket of a running session's browser, or that of its page target ``page``."""
        gateway = record.get("gateway")
        path = f"/devtools/page/{page}" if page else ""
        if not gateway or (self.is_local(record) and not self.hooks.gateway_always):
            url = record["browserWsUrl"]
            return BrowserRoute(url[: url.index("/devtools/")] + path if page else url)
        session_id = record["id"]
        return BrowserRoute(f"ws://{gateway}{GATEWAY_PREFIX}{session_id}{path}",
                            ((HEADER, self.key.credential(session_id, purpose)),))

    def file_door(self, record: dict, rest: str) -> BrowserRoute:
        """``http://`` URL of the session's files on its worker (``rest``: ``downloads``, ``uploads/<name>``, …).

        Always through the gateway, even on one host: the files belong to the
        browser's user on the worker, and one way in keeps one set of checks.
        """
        session_id = record["id"]
        return BrowserRoute(f"http://{record['gateway']}{GATEWAY_PREFIX}{session_id}{FILES_PATH}{rest}",
                            ((HEADER, self.key.credential(session_id, FILES)),))
