"""The WebSocket handshakes of the web process, both done by wsproto on plain sockets.

Accepting: gevent's handler has already parsed the request when the relay (a CDP client's upgrade) or the live
view (a viewer's) takes the socket over, so the upgrade is answered from the WSGI environ. Connecting: the relay's
own leg to a browser, whose bytes it then splices unchanged (proxy/relay.py).
"""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request

from core.browser_link import BrowserRoute

HANDSHAKE_TIMEOUT = 10.0


class HandshakeError(RuntimeError):
    pass


def tune(sock: socket.socket) -> None:
    """Every WebSocket here carries small messages that someone waits for: no Nagle delay."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def accept_upgrade(sock: socket.socket, environ: dict) -> WSConnection:
    """Answers the already-parsed upgrade request with 101: the server side of the connection, open.

    Raises ``HandshakeError`` if it was not an upgrade, wsproto's ``RemoteProtocolError`` if it was an invalid one.
    """
    ws = WSConnection(ConnectionType.SERVER)
    headers = [(key[5:].replace("_", "-").lower(), value) for key, value in environ.items() if key.startswith("HTTP_")]
    ws.initiate_upgrade_connection(headers, environ.get("PATH_INFO", "/"))
    if not any(isinstance(event, Request) for event in ws.events()):
        raise HandshakeError("not a WebSocket upgrade request")
    tune(sock)
    sock.sendall(ws.send(AcceptConnection()))
    return ws


def connect_browser(route: BrowserRoute) -> socket.socket:
    """Open the browser-level CDP socket, as ``puppeteer.connect`` would: on loopback, or through the worker's gateway.

    Either way the answer to the upgrade is Chromium's own; the gateway only
    checks the credential in ``route.headers`` first.
    """
    parts = urlsplit(route.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=HANDSHAKE_TIMEOUT)
    try:
        tune(sock)
        ws = WSConnection(ConnectionType.CLIENT)
        request = Request(host=f"{parts.hostname}:{parts.port}", target=parts.path, extra_headers=list(route.headers))
        sock.sendall(ws.send(request))
        while True:
            data = sock.recv(4096)
            if not data:
                raise HandshakeError("the browser closed the connection during the handshake")
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    sock.settimeout(None)
                    return sock
                if isinstance(event, RejectConnection):
                    raise HandshakeError(f"the browser refused the WebSocket ({event.status_code})")
    except BaseException:
        sock.close()
        raise
