"""The client→browser leg's one change to CDP traffic: a client's download behaviour always names the session's folder.

Chromium creates whatever ``downloadPath`` a ``Browser.setDownloadBehavior`` (or
the older ``Page.setDownloadBehavior``) names and writes there as the browser's
user, so a client could otherwise send a session's files to ``/tmp/anything`` on
the worker, beyond the API's reach and outliving the session. Clients reach a
browser only through the relay, so this leg is where the rule holds for every
client, Puppeteer, Playwright (which sets a behaviour of its own on
``connect_over_cdp``) and raw CDP alike. tasks/downloads.py covers contexts where
no client sets anything.

Each client frame is read whole and unmasked (client frames are masked, RFC
6455 §5.3: XOR with a 4-byte key). That is the cost of the rule: ~3.5 µs per
small CDP command on a quiet machine (a round trip is ~600 µs), ~13 ms per MB of a
large client frame (Playwright's ``set_input_files`` sends file bytes that way);
frames from the browser (screenshots, PDFs) are not touched. A text message is parsed as JSON only if its bytes could be
such a call: they contain ``DownloadBehavior``, or a ``\\u`` escape that could
spell it. A matching call reaches Chromium with
``downloadPath`` set to the session's folder and ``allowAndName`` turned into
``allow`` (files keep their own names, so the API lists what the page offered);
``deny`` and ``default`` pass unchanged (``default`` is the profile's folder,
also the session's). A call wrapped in ``Target.sendMessageToTarget`` is unwrapped
and rewritten the same way. ``Target.exposeDevToolsProtocol``, which would give a
page's JavaScript a CDP channel of its own around the relay, is refused (renamed,
so Chromium answers the call with "method not found"). Every other frame passes byte for byte; a fragmented text
message is passed on as one frame.
"""
from __future__ import annotations

import json
import re
import struct

OP_CONTINUATION, OP_TEXT = 0x0, 0x1
SET_DOWNLOAD_BEHAVIOR = frozenset({"Browser.setDownloadBehavior", "Page.setDownloadBehavior"})
SEND_TO_TARGET = "Target.sendMessageToTarget"
#: Gives a page's own JavaScript a CDP channel to the browser that never passes the relay: refused.
EXPOSE_PROTOCOL = "Target.exposeDevToolsProtocol"
#: What a refused method is renamed to: Chromium answers the call's id with "method not found".
REFUSED_SUFFIX = ".refusedByBrowserBroker"
#: Bytes one of the calls above must contain, or a ``\\u`` escape that could spell them: one scan of the payload.
MARKERS = re.compile(rb"DownloadBehavior|exposeDevToolsProtocol|\\u")


#: ``XOR_TABLES[k]`` maps every byte to itself XOR ``k``, for ``bytes.translate``.
XOR_TABLES = [bytes(b ^ k for b in range(256)) for k in range(256)]


#: Payloads from this size up are unmasked by strided translation, smaller ones as one big integer.
STRIDED_FROM = 64 * 1024


def _unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte key, with no per-byte Python loop.

    A small payload is one big-integer XOR (a few µs); a large one four strided
    ``bytes.translate`` calls, since every fourth byte shares a key byte (measured
    ~1.5× faster than the big integer for 8 MB).
    """
    size = len(payload)
    if size < STRIDED_FROM:
        key = (mask * (size // 4 + 1))[:size]
        return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(size, "little")
    out = bytearray(size)
    for i in range(4):
        out[i::4] = payload[i::4].translate(XOR_TABLES[mask[i]])
    return bytes(out)


def _frame_end(data: bytes | memoryview, start: int) -> int | None:
    """Where the frame that begins at ``start`` ends, or None if ``data`` does not hold all of it yet."""
    available = len(data) - start
    if available < 2:
        return None
    second = data[start + 1]
    size, header = second & 0x7F, 2
    if size == 126:
        if available < 4:
            return None
        size, header = int.from_bytes(data[start + 2:start + 4], "big"), 4
    elif size == 127:
        if available < 10:
            return None
        size, header = int.from_bytes(data[start + 2:start + 10], "big"), 10
    end = start + header + (4 if second & 0x80 else 0) + size
    return end if end <= len(data) else None


def _frame(fin_opcode: int, payload: bytes, mask: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", fin_opcode, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", fin_opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", fin_opcode, 0x80 | 127, size)
    return head + mask + _unmask(payload, mask)


class DownloadRewriter:
    """Fed the client's bytes as they arrive; returns the bytes to send to the browser.

    A read usually holds whole frames: those are parsed where they lie and sent on
    as the same buffer when nothing changes (no copy); only a frame split across
    reads is kept until the rest comes.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        #: The start of a frame whose end has not come yet (grown in place: a large frame comes in many reads).
        self._pending = bytearray()
        #: A fragmented text message being gathered: its unmasked payload so far.
        self._fragments: bytearray | None = None

    def feed(self, data: bytes | memoryview) -> bytes | memoryview:
        if self._pending:
            self._pending += data
            data, self._pending = self._pending, bytearray()
        pieces: list[bytes | memoryview] = []
        pos, size = 0, len(data)
        while pos < size and (end := _frame_end(data, pos)) is not None:
            pieces.append(self._forward(data, pos, end))
            pos = end
        if pos < size:
            self._pending = data if pos == 0 and isinstance(data, bytearray) else bytearray(data[pos:])
        if len(pieces) == 1 and pos == size:
            return pieces[0]
        return b"".join(pieces)

    def _forward(self, data: bytes | memoryview, start: int, end: int) -> bytes | memoryview:
        """What to send for the frame at ``data[start:end]``."""
        fin_opcode, second = data[start], data[start + 1]
        opcode, fin = fin_opcode & 0x0F, fin_opcode & 0x80
        if opcode != OP_TEXT and (opcode != OP_CONTINUATION or self._fragments is None):
            return data[start:end]
        short = second & 0x7F
        offset = start + 2 + (2 if short == 126 else 8 if short == 127 else 0)
        mask = bytes(data[offset:offset + 4]) if second & 0x80 else b"\0\0\0\0"
        payload = _unmask(data[offset + (4 if second & 0x80 else 0):end], mask)
        if opcode == OP_TEXT and fin and self._fragments is None:
            rewritten = self._rewrite(payload)
            return data[start:end] if rewritten is None else _frame(0x80 | OP_TEXT, rewritten, mask)
        self._fragments = (self._fragments or bytearray()) + payload
        if not fin:
            return b""
        whole, self._fragments = bytes(self._fragments), None
        return _frame(0x80 | OP_TEXT, self._rewrite(whole) or whole, mask)

    def _rewrite(self, payload: bytes) -> bytes | None:
        """The payload to send instead, or None to send the frame as it came."""
        if MARKERS.search(payload) is None:
            return None
        try:
            message = json.loads(payload)
        except ValueError:
            return None
        return json.dumps(message).encode() if self._point_at_folder(message) else None

    def _point_at_folder(self, message: object) -> bool:
        """Rewrites ``message`` in place; whether it was such a call.

        A call can also travel inside ``Target.sendMessageToTarget`` (the older,
        non-flat sessions: the inner call is a JSON string), so that is opened too.
        """
        if not isinstance(message, dict):
            return False
        method, params = message.get("method"), message.get("params")
        if method == SEND_TO_TARGET and isinstance(params, dict) and isinstance(params.get("message"), str):
            try:
                inner = json.loads(params["message"])
            except ValueError:
                return False
            if not self._point_at_folder(inner):
                return False
            message["params"] = {**params, "message": json.dumps(inner)}
            return True
        if method == EXPOSE_PROTOCOL:
            message["method"] = EXPOSE_PROTOCOL + REFUSED_SUFFIX
            return True
        if method not in SET_DOWNLOAD_BEHAVIOR:
            return False
        params = dict(params) if isinstance(params, dict) else {}
        if params.get("behavior") in ("allow", "allowAndName"):
            params["behavior"] = "allow"
            params["downloadPath"] = self.folder
        elif "downloadPath" in params:
            params["downloadPath"] = self.folder
        message["params"] = params
        return True
