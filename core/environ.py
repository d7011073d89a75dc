"""What the web server leaves in a request's WSGI environ for the API to use."""
from __future__ import annotations

import select
import socket

#: The caller's socket, so a long create can notice that its caller hung up.
CLIENT_SOCKET = "broker.client_socket"


def client_gone(environ: dict) -> bool:
    """True once the caller closed its connection."""
    sock = environ.get(CLIENT_SOCKET)
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
