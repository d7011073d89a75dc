"""Frame boundaries in a server→client WebSocket byte stream, found without buffering payloads.

The relay forwards Chromium's bytes to the client unchanged; it only needs to
know where a frame ends so that it can put a ping or a close frame of its own
between two frames. Headers are 2–14 bytes (RFC 6455 §5.2); payloads are skipped
by counting, so a 256 MiB frame costs no memory.
"""
from __future__ import annotations

MAX_HEADER = 14
OPCODE_CLOSE = 0x8


def header_length(head: bytes) -> int | None:
    """Bytes the header takes, or None until the first two bytes are known."""
    if len(head) < 2:
        return None
    short = head[1] & 0x7F
    size = 2 + (2 if short == 126 else 8 if short == 127 else 0)
    return size + (4 if head[1] & 0x80 else 0)


def payload_length(head: bytes) -> int:
    short = head[1] & 0x7F
    if short == 126:
        return int.from_bytes(head[2:4], "big")
    if short == 127:
        return int.from_bytes(head[2:10], "big")
    return short


class FrameTracker:
    def __init__(self) -> None:
        self._partial = b""
        self._remaining = 0
        #: Opcode of the last frame whose header was read (a close frame means the peer said goodbye).
        self.last_opcode: int | None = None

    @property
    def at_boundary(self) -> bool:
        return not self._remaining and not self._partial

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self._remaining:
                step = min(self._remaining, end - pos)
                self._remaining -= step
                pos += step
                continue
            partial = self._partial
            head = partial + data[pos:pos + MAX_HEADER]
            size = header_length(head)
            if size is None or len(head) < size:
                self._partial = head
                return
            self._partial = b""
            self.last_opcode = head[0] & 0x0F
            self._remaining = payload_length(head)
            pos += size - len(partial)
