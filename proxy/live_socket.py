"""The live viewer page's WebSocket, server side: JSON text messages each way, on the web process's greenlets.

The upgrade is answered as the relay answers a CDP client's (proxy/handshake.py); after it, wsproto frames
the messages. The viewer page never speaks CDP: it sends input and tab switches, and gets frames and tabs.
"""
from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

from gevent.lock import Semaphore
from wsproto import WSConnection
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError

from proxy.handshake import accept_upgrade

RECEIVE_SIZE = 64 * 1024


class ViewerGone(Exception):
    pass


class ViewerSocket:
    def __init__(self, sock: socket.socket, ws: WSConnection) -> None:
        self.sock = sock
        self.ws = ws
        #: Frames, tabs and the answers to pings go out from different greenlets.
        self._send_lock = Semaphore()

    @classmethod
    def accept(cls, sock: socket.socket, environ: dict) -> ViewerSocket:
        """Answers the already-parsed upgrade with 101; raises as ``accept_upgrade`` does if it was not a valid one."""
        return cls(sock, accept_upgrade(sock, environ))

    def send(self, message: dict) -> None:
        self._write(TextMessage(json.dumps(message, separators=(",", ":"))))

    def close(self, reason: str) -> None:
        try:
            self._write(CloseConnection(CloseReason.NORMAL_CLOSURE, reason[:120]))
        except (ViewerGone, LocalProtocolError):
            pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _write(self, event: Any) -> None:
        with self._send_lock:
            try:
                self.sock.sendall(self.ws.send(event))
            except OSError as error:
                raise ViewerGone(str(error)) from error

    def messages(self) -> Iterator[dict]:
        """The viewer's JSON messages until it closes; anything that is not a JSON object is skipped."""
        text: list[str] = []
        while True:
            try:
                data = self.sock.recv(RECEIVE_SIZE)
            except OSError:
                return
            if not data:
                return
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, CloseConnection):
                    try:
                        self._write(event.response())
                    except (ViewerGone, LocalProtocolError):
                        pass
                    return
                if isinstance(event, Ping):
                    self._write(event.response())
                elif isinstance(event, TextMessage):
                    text.append(event.data)
                    if event.message_finished:
                        message = _parse("".join(text))
                        text.clear()
                        if message is not None:
                            yield message
                elif isinstance(event, BytesMessage):
                    continue


def _parse(text: str) -> dict | None:
    try:
        message = json.loads(text)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None
