"""Per-session forwarders: the local proxy Chromium is pointed at, which adds the upstream's credentials.

Chromium's ``--proxy-server`` cannot carry a user name or password, so a browser
whose session has a proxy talks to its own forwarder on 127.0.0.1 instead, and
the forwarder chains to the upstream with the credentials:

- ``CONNECT host:port`` (https, wss, anything tunnelled): one tunnel through the
  upstream, opened by python-socks: HTTP CONNECT with Basic auth to an http(s)
  upstream, the SOCKS5 user/password handshake to a socks5 one.
- a plain ``http://`` request: forwarded as is, with ``Proxy-Authorization``
  added, to an http(s) upstream; through a tunnel to a socks5 one. One request
  per connection (``Connection: close`` both ways), so a reused connection can
  never carry a request to the wrong origin.

An upstream that refuses the credentials, is down or does not answer within
``BROKER_PROXY_CONNECT_TIMEOUT`` gets the browser a ``502`` from the forwarder,
which Chromium shows as ``net::ERR_TUNNEL_CONNECTION_FAILED`` (https) or as a
502 error page (http): a failed load, never a hang.

Every forwarder of a worker runs on one asyncio loop in one daemon thread: no
child process to leak, and stopping a forwarder closes its port and every
connection it had before ``stop`` returns.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from python_socks import ProxyType
from python_socks.async_.asyncio.v2 import Proxy

from core.crypto import SecretBox
from core.logs import about_session
from core.proxy_address import split_host_port
from core.upstream import Upstream
from core.store import Store
from tasks.chromium import proxy_flags

log = logging.getLogger(__name__)

LISTEN_HOST = "127.0.0.1"
#: Longest request or response head read; Chromium's own limit for response headers is 256 KiB.
MAX_HEAD_BYTES = 256 * 1024
#: A browser may open a connection to its proxy ahead of need and keep it idle this long before the request.
IDLE_CLIENT_TIMEOUT = 300.0
#: How long a worker thread waits for the loop to open or close a forwarder; the loop never blocks, so this is slack.
CONTROL_TIMEOUT = 10.0
CHUNK = 64 * 1024
#: Headers for one hop only: never passed on (framing headers stay: bodies are relayed byte for byte).
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate", "te", "trailer", "upgrade",
}


class ProxyUnavailable(RuntimeError):
    """The session names a proxy the worker cannot use (deleted meanwhile, or its password unreadable)."""


class UpstreamFailed(Exception):
    """The upstream proxy could not be reached or refused us; the text is safe to show and log (no secrets)."""


class _Stream(Protocol):
    """One side of a relay: the browser's connection, a direct one to the upstream, or a python-socks tunnel."""

    async def read(self, max_bytes: int = CHUNK) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def read(self, max_bytes: int = CHUNK) -> bytes:
        return await self.reader.read(max_bytes)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()


@dataclass
class _Head:
    """The start line and header lines of an HTTP/1.x message, exactly as received."""

    start: str
    headers: list[tuple[str, str]]

    @classmethod
    def parse(cls, raw: bytes) -> _Head:
        lines = raw.decode("latin-1").split("\r\n")
        headers = []
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise ValueError("malformed header line")
            headers.append((name, value.strip()))
        return cls(lines[0], headers)

    def without_hop_by_hop(self, *extra: tuple[str, str]) -> bytes:
        """Headers meant for this hop only are dropped; the message closes its connection when done."""
        kept = [(n, v) for n, v in self.headers if n.lower() not in HOP_BY_HOP]
        lines = [self.start, *(f"{n}: {v}" for n, v in [*kept, *extra, ("Connection", "close")]), "", ""]
        return "\r\n".join(lines).encode("latin-1")


async def _read_head(stream: _Stream) -> tuple[bytes, bytes]:
    """The message head (through the blank line) and whatever arrived after it."""
    data = b""
    while (end := data.find(b"\r\n\r\n")) < 0:
        if len(data) > MAX_HEAD_BYTES:
            raise ValueError("message head too large")
        chunk = await stream.read()
        if not chunk:
            raise ConnectionError("closed before the end of the message head")
        data += chunk
    return data[: end + 4], data[end + 4:]


async def _pump(source: _Stream, sink: _Stream) -> None:
    while data := await source.read():
        await sink.write(data)


async def _relay(client: _Stream, upstream: _Stream, upload: asyncio.Future | None = None) -> None:
    """Both directions until either side closes (``upload``: the browser-to-upstream pump, if already running)."""
    tasks = [upload or asyncio.ensure_future(_pump(client, upstream)), asyncio.ensure_future(_pump(upstream, client))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Forwarder:
    """One session's forwarder: a listening socket on 127.0.0.1 and the connections it serves."""

    def __init__(self, session_id: str, upstream: Upstream, connect_timeout: float) -> None:
        self.session_id = session_id
        self.upstream = upstream
        self.connect_timeout = connect_timeout
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._proxy: Proxy | None = None
        self._closing = False

    async def open(self) -> None:
        username, password = self.upstream.credentials()
        self._proxy = Proxy(
            self.upstream.proxy_type, self.upstream.address.host, self.upstream.address.port, username, password,
            rdns=True, proxy_ssl=self.upstream.tls_context(),
        )
        self._server = await asyncio.start_server(self._accept, LISTEN_HOST, 0, limit=MAX_HEAD_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """The port first, so nothing new arrives, then every open connection, then wait for all to end."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Connection(reader, writer)
        if self._closing:
            await client.close()
            return
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            await self._serve(client)
        except UpstreamFailed as problem:
            log.info("session %s: upstream proxy %s: %s", self.session_id, self.upstream.address.url, problem,
                     extra=about_session(self.session_id))
            await self._answer(client, 502, "Bad Gateway", f"The session's proxy {self.upstream.address.url} {problem}.")
        except (ValueError, UnicodeError):
            await self._answer(client, 400, "Bad Request", "The forwarder could not read this request.")
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
            pass
        except asyncio.CancelledError:
            # Only ``close`` cancels a connection; ending quietly keeps asyncio's stream callback
            # (Python 3.11) from reporting the cancellation as an error.
            pass
        finally:
            await client.close()
            self._connections.discard(task)

    async def _answer(self, client: _Stream, status: int, reason: str, text: str) -> None:
        body = text.encode()
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        try:
            await client.write(head.encode() + body)
        except (ConnectionError, OSError):
            pass

    async def _serve(self, client: _Stream) -> None:
        raw, rest = await asyncio.wait_for(_read_head(client), IDLE_CLIENT_TIMEOUT)
        request = _Head.parse(raw)
        method, target, version = request.start.split(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError("not HTTP/1.x")
        if method == "CONNECT":
            host, port = split_host_port(target)
            upstream = await self._tunnel(host, port)
            try:
                await client.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if rest:
                    await upstream.write(rest)
                await _relay(client, upstream)
            finally:
                await upstream.close()
            return
        url = urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            raise ValueError("a proxy request must name an http:// URL")
        if self.upstream.proxy_type == ProxyType.HTTP:
            upstream = await self._dial_upstream()
            extra = self._authorization()
        else:
            upstream = await self._tunnel(url.hostname, url.port or 80)
            origin_form = url.path or "/"
            request.start = f"{method} {origin_form}{'?' + url.query if url.query else ''} {version}"
            extra = ()
        try:
            await upstream.write(request.without_hop_by_hop(*extra) + rest)
            await self._pass_response(client, upstream)
        finally:
            await upstream.close()

    async def _pass_response(self, client: _Stream, upstream: _Stream) -> None:
        """The response head is checked (a 407 means the upstream refused us) and told to close, then relayed."""
        upload = asyncio.ensure_future(_pump(client, upstream))
        try:
            try:
                raw, rest = await _read_head(upstream)
            except ConnectionError:
                raise UpstreamFailed("closed the connection without answering") from None
            response = _Head.parse(raw)
            status = response.start.split(" ", 2)[1] if response.start.count(" ") else ""
            if status == "407":
                raise UpstreamFailed("refused the credentials (407 Proxy Authentication Required)")
        except BaseException:
            upload.cancel()
            await asyncio.gather(upload, return_exceptions=True)
            raise
        await client.write((raw if status.startswith("1") else response.without_hop_by_hop()) + rest)
        await _relay(client, upstream, upload)

    def _authorization(self) -> tuple[tuple[str, str], ...]:
        username, password = self.upstream.credentials()
        if username is None:
            return ()
        token = base64.b64encode(f"{username}:{password}".encode("latin-1")).decode()
        return (("Proxy-Authorization", f"Basic {token}"),)

    async def _dial_upstream(self) -> _Stream:
        address = self.upstream.address
        tls = self.upstream.tls_context()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(address.host, address.port, ssl=tls, server_hostname=address.host if tls else None,
                                        limit=MAX_HEAD_BYTES),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise UpstreamFailed(f"did not answer within {self.connect_timeout:g} s") from None
        except OSError as error:
            raise UpstreamFailed(f"cannot be reached ({error.strerror or error})") from None
        return _Connection(reader, writer)

    async def _tunnel(self, host: str, port: int) -> _Stream:
        assert self._proxy is not None
        try:
            stream = await self._proxy.connect(host, port, timeout=self.connect_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            raise UpstreamFailed(_describe(error)) from None
        return stream


def _describe(error: Exception) -> str:
    """python-socks' messages name the proxy's address and its answer, never the credentials."""
    code = getattr(error, "error_code", None)
    if code == 407:
        return "refused the credentials (407 Proxy Authentication Required)"
    text = str(error) or type(error).__name__
    return f"failed: {text}"


class Forwarders:
    """All forwarders of one worker, keyed by session id, on one event loop thread."""

    def __init__(self, connect_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy-forwarders", daemon=True)
        self._thread.start()
        self._lock = threading.Lock()
        self._running: dict[str, _Forwarder] = {}

    def _call(self, make: Callable[[], Awaitable]) -> object:
        async def run() -> object:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(CONTROL_TIMEOUT)

    def start(self, session_id: str, upstream: Upstream) -> str:
        """A new forwarder for the session; its proxy URL for Chromium. A second start replaces the first."""
        self.stop(session_id)
        forwarder = _Forwarder(session_id, upstream, self.connect_timeout)
        self._call(forwarder.open)
        with self._lock:
            self._running[session_id] = forwarder
        log.info("session %s: forwarder on %s:%s to %s", session_id, LISTEN_HOST, forwarder.port, upstream.address.url,
                 extra=about_session(session_id))
        return f"http://{LISTEN_HOST}:{forwarder.port}"

    def port(self, session_id: str) -> int | None:
        with self._lock:
            forwarder = self._running.get(session_id)
        return forwarder.port if forwarder else None

    def stop(self, session_id: str) -> bool:
        """Close the session's forwarder, its port and its connections; False if it had none. Never raises."""
        with self._lock:
            forwarder = self._running.pop(session_id, None)
        if forwarder is None:
            return False
        try:
            self._call(forwarder.close)
        except Exception:
            log.exception("session %s: forwarder did not close cleanly", session_id, extra=about_session(session_id))
        log.info("session %s: forwarder on port %s closed", session_id, forwarder.port, extra=about_session(session_id))
        return True

    def stop_all(self) -> None:
        with self._lock:
            session_ids = list(self._running)
        for session_id in session_ids:
            self.stop(session_id)

    def route(self, session: dict, store: Store, box: SecretBox) -> list[str]:
        """Chromium flags sending the session's traffic through its proxy (a forwarder started now); [] without one."""
        proxy_id = session.get("proxyId")
        if not proxy_id:
            return []
        record = store.proxies.get(proxy_id)
        if record is None or record["project"] != session["project"]:
            raise ProxyUnavailable(f"proxy {proxy_id} no longer exists")
        try:
            upstream = Upstream.from_record(record, box)
        except Exception as error:
            raise ProxyUnavailable(f"proxy {proxy_id} cannot be used: {error}") from None
        return proxy_flags(self.start(session["id"], upstream))
