"""The worker's authenticated door to its own browsers, for a web process on another host.

Chromium's debugging port stays on 127.0.0.1 (``--headless=new`` cannot bind
anything else). The gateway listens on an address other hosts can reach
(BROKER_GATEWAY_BIND / BROKER_GATEWAY_PORT, advertised as BROKER_WORKER_HOST)
and takes one WebSocket upgrade per connection::

    GET /session/<session id>[/devtools/…] HTTP/1.1
    X-Broker-Gateway-Credential: <HMAC of the session id, core/gateway_auth.py>

or, for a session's files, one plain HTTP request (tasks/file_door.py)::

    GET|PUT /session/<session id>/files/…
    X-Broker-Gateway-Credential: <HMAC of the session id for "files">

A missing or wrong credential (one made for another session included) is
answered 403, and a session whose browser this worker does not hold 404,
before a single byte goes to Chromium. An admitted request is passed on to
Chromium's loopback socket with the credential removed and ``Host`` set to
what Chromium accepts, and from then on the gateway splices bytes both ways,
as the relay does: Chromium answers the upgrade itself, frames pass unchanged
through a fixed-size kernel pipe per direction (``splice``: they never enter
Python), and a slow reader holds back the reading side (backpressure end to end).

Plain OS threads (two per connection): the worker is not a gevent process, and
a blocked thread woken straight by the kernel is the cheapest hop measured
(proxy/relay.py).
"""
from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import h11

from core.browser_link import FILES_PATH, GATEWAY_PREFIX
from core.config import Config
from core.gateway_auth import CDP, FILES, HEADER, GatewayKey
from core.logs import about_session
from tasks.running_browser import RunningBrowser
from tasks.file_door import FileDoor

log = logging.getLogger(__name__)

#: Bytes in flight per direction inside the gateway (a pipe's capacity; Linux allows up to 1 MiB unprivileged).
PIPE_SIZE = 256 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
SPLICE_F_MOVE = getattr(os, "SPLICE_F_MOVE", 1)
#: A request head larger than this is refused; a CDP upgrade is a few hundred bytes.
MAX_HEAD_BYTES = 16 * 1024
HANDSHAKE_TIMEOUT = 10.0
BACKLOG = 128
LOOPBACK = "127.0.0.1"
#: Headers not passed to Chromium: the credential is for the gateway, Host is set to what Chromium accepts.
DROPPED = {HEADER.lower().encode(), b"host"}


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def advertised_host(config: Config) -> str:
    """BROKER_WORKER_HOST, with ``auto`` meaning this host's address as its own name resolves (a container's IP).

    A name that does not resolve (a container named by 12 hex digits that are all decimal, one in ~280: glibc takes
    it for a malformed number and never reads /etc/hosts) falls back to the address this host reaches Redis from,
    which is the one its peers reach it on."""
    if config.gateway.worker_host == "auto":
        try:
            address = socket.gethostbyname(socket.gethostname())
        except OSError as error:
            address = _address_towards(config.redis_url)
            log.warning("BROKER_WORKER_HOST=auto: this host's name %r does not resolve (%s); advertising %s, the "
                        "address it reaches Redis from", socket.gethostname(), error, address)
        if address.startswith("127."):
            log.warning("BROKER_WORKER_HOST=auto resolved to %s, which no other host can reach; set this host's "
                        "private address instead", address)
        return address
    return config.gateway.worker_host


def _address_towards(url: str) -> str:
    """The local address a packet to ``url``'s host leaves from (a UDP connect sends nothing)."""
    parsed = urlsplit(url)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((parsed.hostname or "127.0.0.1", parsed.port or 6379))
        return probe.getsockname()[0]


def _tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Moves bytes kernel to kernel (``splice`` through a pipe): they never enter Python, so a hop costs little CPU.

    Each ``splice`` into the socket blocks while the reader is slow, and the pipe
    holds at most PIPE_SIZE bytes: fixed memory and backpressure, as with ``sendall``.
    """
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, F_SETPIPE_SZ, PIPE_SIZE)
        src, dst = source.fileno(), sink.fileno()
        while size := os.splice(src, write_end, PIPE_SIZE, flags=SPLICE_F_MOVE):
            while size:
                size -= os.splice(read_end, dst, size, flags=SPLICE_F_MOVE)
    except OSError:
        pass
    finally:
        os.close(read_end)
        os.close(write_end)
    # Either side gone: end both, so the other pump's blocking call returns too.
    _shutdown(sink)
    _shutdown(source)


def _read_request(sock: socket.socket) -> tuple[h11.Request, bytes, h11.Connection]:
    """The request, any bytes the client sent after its head, and the parser (which a file upload reads on with)."""
    parser = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
    while True:
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError as error:
            raise Refused(400, f"malformed request ({error})") from None
        if event is h11.NEED_DATA:
            data = sock.recv(4096)
            if not data:
                raise Refused(400, "closed before the end of the request")
            parser.receive_data(data)
        elif isinstance(event, h11.Request):
            return event, parser.trailing_data[0], parser
        else:
            raise Refused(400, "not a request")


class Gateway:
    """One listening socket; a thread per connection for the handshake, then a second one for the other direction."""

    def __init__(self, config: Config, key: GatewayKey, browser_of: Callable[[str], RunningBrowser | None]) -> None:
        self.config = config
        self.key = key
        self.browser_of = browser_of
        self.host = advertised_host(config)
        self.files = FileDoor(config.files.upload_max_bytes)
        self._listener: socket.socket | None = None

    @property
    def address(self) -> str:
        """``host:port`` the web process connects to, stored with each session this worker runs."""
        if self._listener is None:
            raise RuntimeError("the gateway is not listening")
        return f"{self.host}:{self._listener.getsockname()[1]}"

    def start(self) -> None:
        bind = self.config.gateway.bind or socket.gethostbyname(self.host)
        listener = socket.create_server((bind, self.config.gateway.port), backlog=BACKLOG, reuse_port=False)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="gateway", daemon=True).start()
        log.info("gateway listening on %s:%s, advertised as %s", bind, listener.getsockname()[1], self.address)

    def stop(self) -> None:
        """No new connections; open ones end with their browsers."""
        if self._listener is not None:
            _shutdown(self._listener)
            self._listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, peer = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client, peer), name="gateway-conn", daemon=True).start()

    def _serve(self, client: socket.socket, peer: tuple) -> None:
        browser_sock = None
        try:
            client.settimeout(HANDSHAKE_TIMEOUT)
            _tune(client)
            browser, path, request, early, parser = self._admit(client, peer)
            if path.startswith(FILES_PATH):
                client.settimeout(HANDSHAKE_TIMEOUT * 3)
                self.files.serve(client, parser, request, path[len(FILES_PATH):], browser, self._session_of(request))
                client.close()
                return
            browser_sock = socket.create_connection((LOOPBACK, browser.port), timeout=HANDSHAKE_TIMEOUT)
            _tune(browser_sock)
            browser_sock.sendall(self._request_head(request, path, browser.port) + early)
        except Refused as refusal:
            self._refuse(client, refusal)
            return
        except OSError as error:
            log.warning("gateway: connection from %s failed before the splice: %s", peer[0], error)
            client.close()
            if browser_sock is not None:
                browser_sock.close()
            return
        client.settimeout(None)
        browser_sock.settimeout(None)
        upstream = threading.Thread(target=_pump, args=(client, browser_sock), name="gateway-up", daemon=True)
        upstream.start()
        _pump(browser_sock, client)
        upstream.join()
        client.close()
        browser_sock.close()

    @staticmethod
    def _session_of(request: h11.Request) -> str:
        return request.target.decode("latin-1")[len(GATEWAY_PREFIX):].partition("/")[0]

    def _admit(self, client: socket.socket, peer: tuple) -> tuple[RunningBrowser, str, h11.Request, bytes, h11.Connection]:
        """The browser and path an authenticated request is for; raises Refused with nothing sent to Chromium.

        A ``/files/…`` path needs the ``files`` credential, anything else the ``cdp`` one.
        """
        request, early, parser = _read_request(client)
        target = request.target.decode("latin-1")
        if not target.startswith(GATEWAY_PREFIX):
            raise Refused(404, "not a session socket")
        session_id, _, rest = target[len(GATEWAY_PREFIX):].partition("/")
        files = f"/{rest}".startswith(FILES_PATH)
        if request.method not in ((b"GET", b"PUT") if files else (b"GET",)):
            raise Refused(404, "not a session socket")
        presented = next((v.decode("latin-1") for n, v in request.headers if n == HEADER.lower().encode()), None)
        if not self.key.verify(session_id, presented, FILES if files else CDP):
            log.warning("gateway: refused %s for session %s: %s credential", peer[0], session_id,
                        "no" if presented is None else "wrong", extra=about_session(session_id))
            raise Refused(403, "wrong credential")
        browser = self.browser_of(session_id)
        if browser is None:
            log.info("gateway: session %s has no browser on this worker (asked by %s)", session_id, peer[0],
                     extra=about_session(session_id))
            raise Refused(404, "no such browser here")
        path = f"/{rest}" if rest.startswith("devtools/") or files else browser.browser_path
        log.info("gateway: session %s: admitted a connection from %s", session_id, peer[0],
                 extra=about_session(session_id))
        return browser, path, request, early, parser

    @staticmethod
    def _request_head(request: h11.Request, path: str, port: int) -> bytes:
        lines = [f"GET {path} HTTP/1.1".encode(), f"Host: {LOOPBACK}:{port}".encode()]
        lines += [name + b": " + value for name, value in request.headers if name not in DROPPED]
        return b"\r\n".join(lines) + b"\r\n\r\n"

    @staticmethod
    def _refuse(client: socket.socket, refusal: Refused) -> None:
        phrase = {400: "Bad Request", 403: "Forbidden", 404: "Not Found"}[refusal.status]
        try:
            client.sendall(f"HTTP/1.1 {refusal.status} {phrase}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        except OSError:
            pass
        client.close()
