"""Per-browser forwarders: the only way a session's browser reaches the network.

Every browser, warm or not, with or without a saved proxy, is launched with
``--proxy-server`` naming a forwarder of its own on 127.0.0.1 and
``--proxy-bypass-list=<-loopback>``, so loopback goes through it too. Chromium
then opens no connection of its own to anything but that port (WebRTC is kept
off non-proxied UDP, QUIC is off), and the forwarder decides, at connect time,
where each connection may go:

- **direct** (no saved proxy): the destination is resolved once through the
  egress policy (core/egress.py) and the connection dialled to an address it
  permitted. Loopback (every other browser's debugger, ChromeDriver, the other
  forwarders, the web process, Redis), private, link-local and CGNAT ranges and
  the host's own addresses are refused unless ``BROKER_EGRESS_ALLOW`` opens them.
- **upstream** (a saved proxy): every connection goes through the upstream,
  itself an address the egress policy must permit, with its credentials added:
  ``CONNECT host:port`` as one tunnel opened by python-socks (HTTP CONNECT with
  Basic auth, or the SOCKS5 handshake); a plain ``http://`` request forwarded
  with ``Proxy-Authorization`` to an http(s) upstream, through a tunnel to a
  socks5 one.

A plain ``http://`` request is one request per connection (``Connection:
close`` both ways), so a reused connection can never carry a request to the
wrong origin. A refused destination gets a ``403`` naming the policy; one that
cannot be reached, or an upstream that refuses the credentials, is down or does
not answer within ``BROKER_PROXY_CONNECT_TIMEOUT``, a ``502``. Chromium shows
either as ``net::ERR_TUNNEL_CONNECTION_FAILED`` (https, wss) or as the error
page itself (http): a failed load, never a hang.

A client cannot point a browser context at another proxy (the relay refuses
``Target.createBrowserContext`` with ``proxyServer``, proxy/download_rewrite.py),
and another browser cannot reach this forwarder: its own traffic goes to its own
forwarder, which refuses loopback. Every forwarder of a worker runs on one
asyncio loop in one daemon thread: no child process to leak, and stopping a
forwarder closes its port and every connection it had before ``stop`` returns.
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
from core.egress import EgressPolicy, EgressRefused
from core.logs import about_session
from core.proxy_address import split_host_port
from core.upstream import Upstream
from core.store import Store
from tasks.chromium_flags import proxy_flags

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
    """One browser's forwarder: a listening socket on 127.0.0.1 and the connections it serves.

    ``upstream`` None is direct mode: each destination is judged by ``policy``.
    """

    def __init__(self, session_id: str, upstream: Upstream | None, policy: EgressPolicy, connect_timeout: float) -> None:
        self.session_id = session_id
        self.upstream = upstream
        self.policy = policy
        self.connect_timeout = connect_timeout
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()
        self._proxy: Proxy | None = None
        self._upstream_host = ""
        self._closing = False

    async def open(self) -> None:
        if self.upstream is not None:
            self._proxy = await self._upstream_proxy(self.upstream)
        self._server = await asyncio.start_server(self._accept, LISTEN_HOST, 0, limit=MAX_HEAD_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _upstream_proxy(self, upstream: Upstream) -> Proxy:
        """The upstream's address must be one a session may reach; a plain upstream is dialled at the judged address.

        A TLS upstream keeps its name, which its certificate is checked against.
        """
        address = upstream.address
        try:
            _, judged = (await asyncio.get_running_loop().run_in_executor(
                None, self.policy.resolve, address.host, address.port))[0]
        except EgressRefused as error:
            raise ProxyUnavailable(f"the proxy's address is refused: {error}") from None
        except OSError as error:
            raise ProxyUnavailable(f"the proxy's address does not resolve ({error})") from None
        self._upstream_host = address.host if upstream.tls_context() else judged
        username, password = upstream.credentials()
        return Proxy(upstream.proxy_type, self._upstream_host, address.port, username, password,
                     rdns=True, proxy_ssl=upstream.tls_context())

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
        except EgressRefused as refused:
            log.info("session %s: forwarder refused %s", self.session_id, refused, extra=about_session(self.session_id))
            await self._answer(client, 403, "Forbidden", f"Browser Broker: {refused}.")
        except UpstreamFailed as problem:
            if self.upstream is None:
                await self._answer(client, 502, "Bad Gateway", f"Browser Broker: {problem}.")
            else:
                log.info("session %s: upstream proxy %s: %s", self.session_id, self.upstream.address.url, problem,
                         extra=about_session(self.session_id))
                await self._answer(client, 502, "Bad Gateway",
                                   f"The session's proxy {self.upstream.address.url} {problem}.")
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
        if self.upstream is not None and self.upstream.proxy_type == ProxyType.HTTP:
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
            if status == "407" and self.upstream is not None:
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
        assert self.upstream is not None
        address = self.upstream.address
        tls = self.upstream.tls_context()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self._upstream_host, address.port, ssl=tls,
                                        server_hostname=address.host if tls else None, limit=MAX_HEAD_BYTES),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise UpstreamFailed(f"did not answer within {self.connect_timeout:g} s") from None
        except OSError as error:
            raise UpstreamFailed(f"cannot be reached ({error.strerror or error})") from None
        return _Connection(reader, writer)

    async def _tunnel(self, host: str, port: int) -> _Stream:
        if self._proxy is None:
            return await self._dial_direct(host, port)
        try:
            stream = await self._proxy.connect(host, port, timeout=self.connect_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            raise UpstreamFailed(_describe(error)) from None
        return stream


    async def _dial_direct(self, host: str, port: int) -> _Stream:
        """The destination resolved once and judged; each permitted address tried in turn, never the name again."""
        loop = asyncio.get_running_loop()
        try:
            addresses = await loop.run_in_executor(None, self.policy.resolve, host, port)
        except EgressRefused:
            raise
        except OSError as error:
            raise UpstreamFailed(f"{host} does not resolve ({error.strerror or error})") from None
        last: Exception | None = None
        for _, address in addresses:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(address, port, limit=MAX_HEAD_BYTES), self.connect_timeout)
                return _Connection(reader, writer)
            except asyncio.TimeoutError:
                last = TimeoutError(f"no answer within {self.connect_timeout:g} s")
            except OSError as error:
                last = error
        reason = getattr(last, "strerror", None) or last
        raise UpstreamFailed(f"{host} port {port} cannot be reached ({reason})")


def _describe(error: Exception) -> str:
    """python-socks' messages name the proxy's address and its answer, never the credentials."""
    code = getattr(error, "error_code", None)
    if code == 407:
        return "refused the credentials (407 Proxy Authentication Required)"
    text = str(error) or type(error).__name__
    return f"failed: {text}"


class Forwarders:
    """All forwarders of one worker, keyed like the pool's browsers (a session id, or a warm browser's key)."""

    def __init__(self, policy: EgressPolicy, connect_timeout: float) -> None:
        self.policy = policy
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

    def start(self, key: str, upstream: Upstream | None = None) -> list[str]:
        """A new forwarder for the browser about to launch under ``key``: the Chromium flags that send its every
        connection there. A second start replaces the first; ProxyUnavailable if the upstream's address is refused."""
        self.stop(key)
        forwarder = _Forwarder(key, upstream, self.policy, self.connect_timeout)
        self._call(forwarder.open)
        with self._lock:
            self._running[key] = forwarder
        log.info("%s: forwarder on %s:%s, %s", key, LISTEN_HOST, forwarder.port,
                 f"through {upstream.address.url}" if upstream else "direct", extra=about_session(key))
        return proxy_flags(f"http://{LISTEN_HOST}:{forwarder.port}")

    def rekey(self, old: str, new: str) -> None:
        """A warm browser's forwarder follows it to the session that took it."""
        with self._lock:
            forwarder = self._running.pop(old, None)
            if forwarder is not None:
                forwarder.session_id = new
                self._running[new] = forwarder

    def port(self, key: str) -> int | None:
        with self._lock:
            forwarder = self._running.get(key)
        return forwarder.port if forwarder else None

    def stop(self, key: str) -> bool:
        """Close the browser's forwarder, its port and its connections; False if it had none. Never raises."""
        with self._lock:
            forwarder = self._running.pop(key, None)
        if forwarder is None:
            return False
        try:
            self._call(forwarder.close)
        except Exception:
            log.exception("%s: forwarder did not close cleanly", key, extra=about_session(key))
        log.info("%s: forwarder on port %s closed", key, forwarder.port, extra=about_session(key))
        return True

    def stop_all(self) -> None:
        with self._lock:
            keys = list(self._running)
        for key in keys:
            self.stop(key)

    def route(self, session: dict, store: Store, box: SecretBox) -> list[str]:
        """Flags for the session's own browser: through its saved proxy if it names one, else direct under the policy."""
        proxy_id = session.get("proxyId")
        if not proxy_id:
            return self.start(session["id"])
        record = store.proxies.get(proxy_id)
        if record is None or record["project"] != session["project"]:
            raise ProxyUnavailable(f"proxy {proxy_id} no longer exists")
        try:
            upstream = Upstream.from_record(record, box)
        except Exception as error:
            raise ProxyUnavailable(f"proxy {proxy_id} cannot be used: {error}") from None
        return self.start(session["id"], upstream)
