"""The web process: the Flask API and the CDP relay on one port, under gevent.

``python -m proxy.server`` (the Procfile's ``web``). A WebSocket upgrade to
``/ws/session/<id>`` for a running session is taken over by the relay before
it reaches Flask; every other request, including a refused upgrade, is Flask's,
so refusals are ordinary JSON errors sent before any upgrade.
"""
from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402

import gevent  # noqa: E402
from gevent.pywsgi import WSGIHandler, WSGIServer  # noqa: E402
from wsproto.utilities import RemoteProtocolError  # noqa: E402

from app import create_app  # noqa: E402
from app.config import Config, load  # noqa: E402
from app.sessions.service import CLIENT_SOCKET  # noqa: E402
from app.store import RUNNING, Store  # noqa: E402
from proxy.registry import RelayRegistry, follow_stop_announcements  # noqa: E402
from proxy.relay import HandshakeError, RelayConnection, accept_client, connect_browser, detach  # noqa: E402

log = logging.getLogger("proxy.server")
SESSION_SOCKET = re.compile(r"^/ws/session/(ses_[0-9a-f]+)$")
SHUTDOWN_GRACE = 10.0


def upgrade_target(environ: dict) -> str | None:
    """The session id of a WebSocket upgrade to a CDP socket, else None."""
    if environ.get("REQUEST_METHOD") != "GET" or "websocket" not in environ.get("HTTP_UPGRADE", "").lower():
        return None
    match = SESSION_SOCKET.match(environ.get("PATH_INFO", ""))
    return match.group(1) if match else None


class BrokerHandler(WSGIHandler):
    """gevent's handler, except that it hands CDP upgrades to the relay."""

    def handle(self) -> None:
        # gevent writes a response's headers and body separately: without this, a kept-alive
        # client waits ~40 ms for Nagle and delayed ACKs on every answer.
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()

    def run_application(self) -> None:
        # Lets a long create notice that its caller hung up (app.sessions.service.client_gone).
        self.environ[CLIENT_SOCKET] = self.socket
        session_id = upgrade_target(self.environ)
        record = self.server.store.get_session(session_id) if session_id else None
        if record is None or record["status"] != RUNNING:
            return super().run_application()
        try:
            browser = connect_browser(record["browserWsUrl"])
        except (OSError, HandshakeError) as error:
            log.warning("session %s: cannot reach its browser: %s", session_id, error)
            return self._json_error(502, "Bad Gateway", "The session's browser cannot be reached.")
        try:
            accept_client(self.socket, self.environ)
        except (RemoteProtocolError, HandshakeError) as error:
            browser.close()
            return self._json_error(400, "Bad Request", f"Invalid WebSocket handshake: {error}")
        self.close_connection = True
        self.status = self._orig_status = "101 Switching Protocols"
        conn = RelayConnection(session_id, detach(self.socket), detach(browser), self.server.config.relay_ping_interval)
        self.server.registry.add(conn)
        self.server.store.client_connected(session_id)
        try:
            conn.run()
        finally:
            self.server.registry.remove(conn)
            self.server.store.client_disconnected(session_id, record.get("idleTimeout"))

    def _json_error(self, code: int, status: str, message: str) -> None:
        body = json.dumps({"code": code, "status": status, "message": message}).encode()
        self.start_response(f"{code} {status}", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        self.write(body)


class BrokerServer(WSGIServer):
    def __init__(self, config: Config, store: Store, registry: RelayRegistry) -> None:
        super().__init__((config.bind, config.port), create_app(config, store), handler_class=BrokerHandler)
        self.config = config
        self.store = store
        self.registry = registry


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load()
    store = Store(config)
    registry = RelayRegistry()
    server = BrokerServer(config, store, registry)
    gevent.spawn(follow_stop_announcements, store, registry)

    def shut_down() -> None:
        log.info("SIGTERM: closing CDP clients and stopping")
        registry.close_all("server restarting", timeout=SHUTDOWN_GRACE)
        server.stop(timeout=SHUTDOWN_GRACE)

    gevent.signal_handler(signal.SIGTERM, shut_down)
    log.info("listening on %s:%s, public URL %s", config.bind, config.port, config.public_url)
    server.serve_forever()


if __name__ == "__main__":
    main()
