"""Talking to a worker's gateway the way an attacker on the private network would: a raw socket."""
from __future__ import annotations

import base64
import os
import socket

from core.gateway_auth import HEADER, GatewayKey
from tests.support.processes import SECRET_KEY

#: What the suite's web processes and workers compute credentials with.
SUITE_KEY = GatewayKey(SECRET_KEY)


def gateway_status(address: str, session_id: str, credential: str | None) -> int:
    """The HTTP status the gateway (or Chromium behind it) answers a WebSocket upgrade for ``session_id`` with."""
    host, port = address.rsplit(":", 1)
    lines = [f"GET /session/{session_id} HTTP/1.1", f"Host: {address}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}", "Sec-WebSocket-Version: 13"]
    if credential is not None:
        lines.append(f"{HEADER}: {credential}")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(1024)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])
