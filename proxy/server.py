"""The gevent server of the web process: any WSGI app (the API) and the CDP relay on one port.

A WebSocket upgrade to ``/ws/session/<id>?token=…`` for a running session whose
connect token matches (core.tokens) is taken over by the relay before it reaches
the WSGI app, and one to ``/live/<id>/socket?token=…`` whose live-view
credential matches by the live view (proxy.live_view); every other request,
including a refused upgrade, is the app's, so refusals are ordinary JSON errors
sent before any upgrade. The access log and
gevent's error lines have ``token=`` values redacted. The caller monkey-patches
(``web.py``) before importing this.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
import signal
import socket
import time
from collections.abc import Callable
from urllib.parse import parse_qs

import gevent
import websocket
from gevent.pywsgi import WSGIHandler, WSGIServer
from redis.exceptions import RedisError
from wsproto.utilities import RemoteProtocolError

from core.browser_link import BrowserLinks
from core.cdp import CdpConnection
from core import test_hooks
from core.config import Config
from core.environ import CLIENT_SOCKET
from core.logs import session_fields
from core.states import Status
from core.store import Store
from core.store.base import STORAGE_RETRY_AFTER
from core.store.events import SERVICE_RESTART
from core.tokens import LIVE_EXPIRES_FIELD, LIVE_HASH_FIELD, live_view_access, matches, redact, token_in_query
from proxy.handshake import HandshakeError, accept_upgrade, connect_browser
from proxy.live_socket import ViewerSocket
from proxy.live_view import CALL_TIMEOUT, LiveView
from proxy.registry import MOVING_REASON, RelayRegistry, follow_stop_announcements, renew_client_leases
from proxy.relay import GOING_AWAY, RelayConnection, detach

log = logging.getLogger("proxy.server")
#: gevent's access log and error lines, through logging (so in the process's format, tokens redacted).
ACCESS_LOG = logging.getLogger("proxy.access")
#: The browser-level socket, or a page target's (``/devtools/page/<id>``, as /json/list gives it).
SESSION_SOCKET = re.compile(r"^/ws/session/(ses_[0-9a-f]+)(?:/devtools/page/([0-9A-Za-z]+))?$")
LIVE_SOCKET = re.compile(r"^/live/(ses_[0-9a-f]+)/socket$")
SHUTDOWN_GRACE = 10.0


def upgrade_target(environ: dict) -> tuple[str, str | None] | None:
    """The session id (and page target id, if any) of a WebSocket upgrade to a CDP socket, else None."""
    if environ.get("REQUEST_METHOD") != "GET" or "websocket" not in environ.get("HTTP_UPGRADE", "").lower():
        return None
    match = SESSION_SOCKET.match(environ.get("PATH_INFO", ""))
    return (match.group(1), match.group(2)) if match else None


def live_view_target(environ: dict) -> str | None:
    """The session id of a WebSocket upgrade to a live view's socket, else None."""
    if environ.get("REQUEST_METHOD") != "GET" or "websocket" not in environ.get("HTTP_UPGRADE", "").lower():
        return None
    match = LIVE_SOCKET.match(environ.get("PATH_INFO", ""))
    return match.group(1) if match else None


def read_only_in_query(query_string: str) -> bool:
    """``&readOnly=1`` turns any live view into watching only."""
    return (parse_qs(query_string or "").get("readOnly") or [""])[0].lower() in ("1", "true")


class BrokerHandler(WSGIHandler):
    """gevent's handler, except that it hands CDP upgrades to the relay."""

    def handle(self) -> None:
        # gevent writes a response's headers and body separately: without this, a kept-alive
        # client waits ~40 ms for Nagle and delayed ACKs on every answer.
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()

    def run_application(self) -> None:
        """The app's routes, or a socket of the relay or the live view; a Redis outage is a 503 here as in the app.

        Once a socket is open (101) its Redis calls are bookkeeping: an outage then is logged, never a second answer.
        """
        # Lets a long create notice that its caller hung up (core.environ.client_gone).
        self.environ[CLIENT_SOCKET] = self.socket
        try:
            self._route()
        except RedisError as error:
            if self.status and self.status.startswith("101"):
                log.warning("storage (Redis) unavailable while closing a socket: %s", error)
                return
            self._json_error(503, "Service Unavailable", f"Storage (Redis) unavailable: {error}",
                             [("Retry-After", STORAGE_RETRY_AFTER)])

    def _route(self) -> None:
        viewed = live_view_target(self.environ)
        if viewed is not None:
            return self._live_view(viewed)
        session_id, page = upgrade_target(self.environ) or (None, None)
        record = self.server.store.sessions.get(session_id) if session_id else None
        token = token_in_query(self.environ.get("QUERY_STRING", ""))
        if record is None or record["status"] != Status.RUNNING or not matches(record, token):
            return super().run_application()
        if record.get("moving"):  # to another worker (API.md, Moving): the client waits for it, BROKER_MOVE_WAIT at most
            record = self.server.store.moves.wait_settled(session_id, self.server.config.web.move_wait)
            if record is None or record["status"] != Status.RUNNING or not matches(record, token):
                return super().run_application()
            if record.get("moving"):
                return self._json_error(503, "Service Unavailable", "The session is moving to another worker and "
                                        "is not running there yet; try again.", [("Retry-After", "5")])
        try:
            browser = connect_browser(self.server.links.route(record, page=page))
        except (OSError, HandshakeError) as error:
            log.warning("session %s: cannot reach its browser: %s", session_id, error, extra=session_fields(record))
            return self._json_error(502, "Bad Gateway", "The session's browser cannot be reached.")
        sessions = self.server.store.sessions
        client_id = secrets.token_hex(8)
        # The client counts before it hears 101: a client that has its socket is never idle.
        sessions.client_connected(session_id, client_id, self.server.config.web.client_lease)
        try:
            accept_upgrade(self.socket, self.environ)
        except (RemoteProtocolError, HandshakeError) as error:
            browser.close()
            sessions.client_disconnected(session_id, client_id, record.get("idleTimeout"))
            return self._json_error(400, "Bad Request", f"Invalid WebSocket handshake: {error}")
        self.close_connection = True
        self.status = self._orig_status = "101 Switching Protocols"
        conn = RelayConnection(session_id, client_id, detach(self.socket), detach(browser),
                               self.server.config.web.relay_ping_interval, record.get("downloadsPath"))
        if self.server.hooks.client_register_delay:
            gevent.sleep(self.server.hooks.client_register_delay)
        self.server.registry.add(conn)
        self._closed_meanwhile(conn, session_id)
        log.info("session %s: CDP client %s connected", session_id, client_id, extra=session_fields(record))
        sessions_log = self.server.store.session_events
        try:
            sessions_log.add(session_id, "client_connected", client=client_id, address=self.client_address[0],
                             userAgent=self.environ.get("HTTP_USER_AGENT"))
            conn.run()
        finally:
            self.server.registry.remove(conn)
            sessions.client_disconnected(session_id, client_id, record.get("idleTimeout"))
            sessions_log.add(session_id, "client_disconnected", client=client_id,
                             bytesToBrowser=conn.bytes_to_browser, bytesToClient=conn.bytes_to_client)
            log.info("session %s: CDP client %s disconnected (%d bytes to the browser, %d to the client)", session_id,
                     client_id, conn.bytes_to_browser, conn.bytes_to_client, extra=session_fields(record))

    def _closed_meanwhile(self, conn: RelayConnection, session_id: str) -> None:
        """A stop or move announced between the record's read and the client's registration closed every client
        but this one: the record read again tells it why, as the announcement would have."""
        current = self.server.store.sessions.get(session_id)
        if current is None or current["status"] != Status.RUNNING:
            conn.close(GOING_AWAY, f"session stopped: {(current or {}).get('stopReason') or 'unknown'}")
        elif current.get("moving"):
            conn.close(SERVICE_RESTART, MOVING_REASON)

    def _live_view(self, session_id: str) -> None:
        """Serves one viewer until it leaves, the session stops or its link is revoked; refusals are the app's."""
        store = self.server.store
        record = store.sessions.get(session_id)
        query = self.environ.get("QUERY_STRING", "")
        access = live_view_access(record, token_in_query(query), time.time())
        if access is None or record["status"] != Status.RUNNING:
            return super().run_application()
        try:
            route = self.server.links.route(record)
            cdp = CdpConnection(route.url, timeout=CALL_TIMEOUT, header=route.header_lines())
        except (OSError, websocket.WebSocketException) as error:
            log.warning("session %s: live view cannot reach its browser: %s", session_id, error,
                        extra=session_fields(record))
            return self._json_error(502, "Bad Gateway", "The session's browser cannot be reached.")
        try:
            viewer = ViewerSocket.accept(self.socket, self.environ)
        except (HandshakeError, RemoteProtocolError) as error:
            cdp.close()
            return self._json_error(400, "Bad Request", f"Invalid WebSocket handshake: {error}")
        self.close_connection = True
        self.status = self._orig_status = "101 Switching Protocols"
        read_only = access == "watch" or read_only_in_query(query)

        def why_not_any_more() -> str | None:
            current = store.sessions.get(session_id)
            if current is None or current["status"] != Status.RUNNING:
                reason = (current or {}).get("stopReason")
                return f"The session has ended ({reason})." if reason else "The session has ended."
            if current.get(LIVE_HASH_FIELD) != record.get(LIVE_HASH_FIELD):
                return "This live-view link was revoked."
            return None

        log.info("session %s: live view opened%s", session_id, " (read-only)" if read_only else "",
                 extra=session_fields(record))
        store.session_events.add(session_id, "live_view_opened", readOnly=read_only, address=self.client_address[0])

        def automated() -> bool:
            return store.sessions.connected_clients(session_id) > 0

        config = self.server.config
        # The view ends when the credential that opened it expires, as the link itself does.
        LiveView(session_id, viewer, cdp, read_only, config.live_view.quality, config.live_view.max_fps,
                 config.live_view.busy_fps, why_not_any_more, automated,
                 expires_at=record.get(LIVE_EXPIRES_FIELD)).run()
        log.info("session %s: live view closed", session_id, extra=session_fields(record))
        store.session_events.add(session_id, "live_view_closed", readOnly=read_only)

    def format_request(self) -> str:
        """The access log line, with the connect token of a CDP URL redacted."""
        return redact(super().format_request())

    def log_error(self, msg: str, *args: object) -> None:
        """gevent's lines about malformed requests quote the request line: redacted too."""
        try:
            message = msg % args if args else msg
        except (TypeError, ValueError):
            message = f"{msg!r} {args!r}"
        super().log_error(redact(message))

    def _json_error(self, code: int, status: str, message: str, headers: list[tuple[str, str]] | None = None) -> None:
        body = json.dumps({"code": code, "status": status, "message": message}).encode()
        self.start_response(f"{code} {status}", [("Content-Type", "application/json"),
                                                 ("Content-Length", str(len(body))), *(headers or [])])
        self.write(body)


class BrokerServer(WSGIServer):
    def __init__(self, config: Config, store: Store, registry: RelayRegistry, wsgi_app: Callable) -> None:
        super().__init__((config.web.bind, config.web.port), wsgi_app, handler_class=BrokerHandler,
                         log=ACCESS_LOG, error_log=ACCESS_LOG)
        self.config = config
        self.store = store
        self.registry = registry
        self.links = BrowserLinks.from_config(config)
        self.hooks = test_hooks.load()


def serve(config: Config, store: Store, wsgi_app: Callable, registry: RelayRegistry) -> None:
    """Serve until SIGTERM, then close every CDP client with a close frame before exiting.

    ``registry`` is made by the caller, so the app's /metrics can read it too (proxy.metrics).
    """
    server = BrokerServer(config, store, registry, wsgi_app)
    gevent.spawn(follow_stop_announcements, store, registry)
    gevent.spawn(renew_client_leases, store, registry, config.web.client_lease)

    def shut_down() -> None:
        log.info("SIGTERM: closing CDP clients and stopping")
        registry.close_all("server restarting", timeout=SHUTDOWN_GRACE)
        server.stop(timeout=SHUTDOWN_GRACE)

    gevent.signal_handler(signal.SIGTERM, shut_down)
    log.info("listening on %s:%s, public URL %s", config.web.bind, config.web.port, config.web.public_url)
    server.serve_forever()
