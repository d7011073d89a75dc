"""The client→browser leg's rules for CDP traffic: what a client may not make the session's browser do.

Clients reach a browser only through the relay, so this leg is where a rule holds
for every client, Puppeteer, Playwright and raw CDP alike. The rules:

- **Downloads name the session's folder.** Chromium creates whatever
  ``downloadPath`` a ``Browser.setDownloadBehavior`` (or the older
  ``Page.setDownloadBehavior``) names and writes there as the browser's user, so
  a client could otherwise send a session's files to ``/tmp/anything`` on the
  worker, beyond the API's reach and outliving the session. A matching call
  reaches Chromium with ``downloadPath`` set to the session's folder and
  ``allowAndName`` turned into ``allow`` (files keep their own names, so the API
  lists what the page offered); ``deny`` and ``default`` pass unchanged
  (``default`` is the profile's folder, also the session's). tasks/downloads.py
  covers contexts where no client sets anything.
- **Refused outright:** ``Target.exposeDevToolsProtocol`` (a page's JavaScript
  would get a CDP channel of its own around the relay), every ``Tethering.*``
  method (``Tethering.bind`` opens a listening port on the worker), and
  ``Target.createBrowserContext`` with ``proxyServer`` or ``proxyBypassList`` (a
  context's traffic would go around the session's egress forwarder).

Every rule applies inside ``Target.sendMessageToTarget`` too (the older, non-flat
sessions: the inner call is a JSON string that Chromium parses the same way).

**Frames are read as Chromium reads them, and what cannot be read is refused.**
Chromium's WebSocket server (net/server/web_socket_encoder.cc) treats a
continuation frame like a text frame and joins fragments until one has FIN, so a
lone continuation frame is a whole message to it, and so it is here; it fails
the connection on binary or reserved opcodes and on reserved bits (compression is
never negotiated on either leg). Its JSON parser (crdtp/json.cc) is more lenient
than Python's: it takes ``\\f`` and ``\\v`` as whitespace (``{...}\\f`` ran a
download call unrewritten while this leg passed on what ``json.loads`` refused),
a ``\\v`` escape, ints written as ``1.0``. It decodes ``\\u`` escapes in keys and
values and refuses overlong UTF-8, so a method name is in a payload either as
its bytes or with a ``\\u`` escape: a text message is read only if its bytes
contain a marker of a guarded method or a ``\\u``. Such a message must read
*strictly*: valid UTF-8, JSON with no duplicate key (Chromium and Python need not
keep the same one) and no NaN/Infinity, an object whose ``id`` is a 32-bit int
and whose ``method`` is a string; same for a wrapped inner message. Anything else
is refused, never passed on as it came.

**Refusing** a text message: it is not sent to Chromium; the client gets, between
two of Chromium's frames, ``{"id": <its id, or 0 if unreadable>, "error": {"code":
-32600, "message": "refused by Browser Broker: <why>"}}`` (with its
``sessionId`` when it named one, so Puppeteer and Playwright route the answer to
the caller). The replies wait in :attr:`DownloadRewriter.replies`; the relay
(proxy/relay.py) writes them. Renaming the method instead, so that Chromium
answers "method not found", needs a message that could be re-encoded, which an
unreadable one is not; closing the socket would end a client's whole session
for one bad call. A **binary** or reserved-opcode frame, or one with reserved
bits, cannot be answered by id (CDP over this socket is text; Chromium would
drop the connection anyway): :attr:`DownloadRewriter.close_with` is set and the
relay closes the client with 1003 (1002 for reserved bits); nothing from that
frame on reaches Chromium.

Cost: each client frame is read whole and unmasked (client frames are masked,
RFC 6455 §5.3: XOR with a 4-byte key). A frame with no marker is passed on byte
for byte, unparsed, and costs what it did before these rules: a 164-byte
``Runtime.evaluate`` 2.8–3.0 µs per frame before, 2.9–3.1 µs after (timeit,
best of 5×200 000, old and new module side by side on the 2-core dev machine,
three rounds; the markers start with rarer letters, so the wider scan is no
slower); a rewritten download call 8.1–8.5 → 10.3–10.9 µs (the strict hooks). A
round trip is ~600 µs. A large client frame costs ~13 ms per MB (Playwright's
``set_input_files`` sends file bytes that way); frames from the browser
(screenshots, PDFs) are not touched. A fragmented text message is passed on as
one frame.
"""
from __future__ import annotations

import json
import re
import struct
from collections import deque

OP_CONTINUATION, OP_TEXT = 0x0, 0x1
#: Control frames pass as they are; Chromium answers a ping and reads a close itself.
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
#: RSV1-3: compression is never negotiated on either leg, so a frame with one set is not CDP text.
RESERVED_BITS = 0x70
SET_DOWNLOAD_BEHAVIOR = frozenset({"Browser.setDownloadBehavior", "Page.setDownloadBehavior"})
SEND_TO_TARGET = "Target.sendMessageToTarget"
#: Gives a page's own JavaScript a CDP channel to the browser that never passes the relay: refused.
EXPOSE_PROTOCOL = "Target.exposeDevToolsProtocol"
#: Refused with a proxy of its own: the context's traffic would leave around the session's egress forwarder.
CREATE_CONTEXT = "Target.createBrowserContext"
CONTEXT_PROXY_PARAMS = frozenset({"proxyServer", "proxyBypassList"})
#: Every method of the domain is refused: ``Tethering.bind`` listens on a port of the worker.
TETHERING = "Tethering."
#: Bytes one of the calls above must contain, or a ``\\u`` escape that could spell them: one scan of the payload.
MARKERS = re.compile(rb"DownloadBehavior|DevToolsProtocol|BrowserContext|Tethering|\\u")
#: JSON-RPC's "invalid request", the code of the error a refused call is answered with.
REFUSED_CODE = -32600
REFUSED_PREFIX = "refused by Browser Broker: "
#: WebSocket close codes (RFC 6455 §7.4.1) for frames that cannot be answered by id.
UNSUPPORTED_DATA, PROTOCOL_ERROR = 1003, 1002
#: ``Target.sendMessageToTarget`` inside itself, at most this deep (Chromium nests sessions a level or two).
MAX_WRAPPING = 8
INT32 = range(-(1 << 31), 1 << 31)
#: The id of a message that cannot be parsed, when it is the first key (Chromium's whitespace: \\v and \\f too).
_WS = r"[ \t\n\r\v\f]*"
LEADING_ID = re.compile(rf'{_WS}\{{{_WS}"id"{_WS}:{_WS}(-?[0-9]{{1,10}}){_WS}[,}}]')


#: ``XOR_TABLES[k]`` maps every byte to itself XOR ``k``, for ``bytes.translate``.
XOR_TABLES = [bytes(b ^ k for b in range(256)) for k in range(256)]


#: Payloads from this size up are unmasked by strided translation, smaller ones as one big integer.
STRIDED_FROM = 64 * 1024


class Refused(Exception):
    """A client message that must not reach Chromium; ``why`` goes back to the client."""

    def __init__(self, why: str, call_id: int = 0, session_id: str | None = None) -> None:
        super().__init__(why)
        self.why, self.call_id, self.session_id = why, call_id, session_id

    def reply(self) -> bytes:
        answer: dict = {"id": self.call_id, "error": {"code": REFUSED_CODE, "message": REFUSED_PREFIX + self.why}}
        if self.session_id is not None:
            answer["sessionId"] = self.session_id
        return json.dumps(answer).encode()


def _unmask(payload: bytes | memoryview, mask: bytes) -> bytes:
    """XOR with the 4-byte key, with no per-byte Python loop.

    A small payload is one big-integer XOR (a few µs); a large one four strided
    ``bytes.translate`` calls, since every fourth byte shares a key byte (measured
    ~1.5× faster than the big integer for 8 MB).
    """
    size = len(payload)
    if size < STRIDED_FROM:
        key = (mask * (size // 4 + 1))[:size]
        return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(size, "little")
    if isinstance(payload, memoryview):  # a frame that came whole in one read: a view has no ``translate``
        payload = payload.tobytes()
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


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise ValueError("a key appears twice in one object")
    return found


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def read_strictly(payload: bytes) -> dict:
    """``payload`` as one CDP call, read so that no other reader can see another call in it; else Refused."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("the message is not valid UTF-8") from None
    try:
        message = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        leading = LEADING_ID.match(text)
        call_id = int(leading.group(1)) if leading and int(leading.group(1)) in INT32 else 0
        raise Refused(f"the message is not strict JSON ({str(error)[:80]})", call_id) from None
    if not isinstance(message, dict):
        raise Refused("the message is not a JSON object")
    call_id, method = message.get("id"), message.get("method")
    if type(call_id) is not int or call_id not in INT32:
        raise Refused("the message has no integer id")
    session_id = message.get("sessionId") if isinstance(message.get("sessionId"), str) else None
    if not isinstance(method, str):
        raise Refused("the message has no string method", call_id, session_id)
    return message


class DownloadRewriter:
    """Fed the client's bytes as they arrive; returns the bytes to send to the browser.

    A read usually holds whole frames: those are parsed where they lie and sent on
    as the same buffer when nothing changes (no copy); only a frame split across
    reads is kept until the rest comes. Refused messages leave answers in
    :attr:`replies` (JSON texts for the client, in order; a deque, so the relay's
    other thread may take them); a frame that cannot be answered sets
    :attr:`close_with`, after which nothing more is passed on.
    """

    def __init__(self, folder: str | None) -> None:
        """``folder``: the session's download folder; None if unknown (then no download may be allowed)."""
        self.folder = folder
        #: The start of a frame whose end has not come yet (grown in place: a large frame comes in many reads).
        self._pending = bytearray()
        #: A fragmented text message being gathered: its unmasked payload so far.
        self._fragments: bytearray | None = None
        #: Answers to refused calls, JSON text each, for the relay to write to the client.
        self.replies: deque[bytes] = deque()
        #: (code, reason) once the client must be closed; from then on nothing is passed on.
        self.close_with: tuple[int, str] | None = None

    def feed(self, data: bytes | memoryview) -> bytes | memoryview:
        if self.close_with:
            return b""
        if self._pending:
            self._pending += data
            data, self._pending = self._pending, bytearray()
        pieces: list[bytes | memoryview] = []
        pos, size = 0, len(data)
        while pos < size and (end := _frame_end(data, pos)) is not None:
            pieces.append(self._forward(data, pos, end))
            pos = end
            if self.close_with:
                return b"".join(pieces)
        if pos < size:
            self._pending = data if pos == 0 and isinstance(data, bytearray) else bytearray(data[pos:])
        if len(pieces) == 1 and pos == size:
            return pieces[0]
        return b"".join(pieces)

    def _close(self, code: int, reason: str) -> bytes:
        self.close_with = (code, REFUSED_PREFIX + reason)
        self._pending, self._fragments = bytearray(), None
        return b""

    def _forward(self, data: bytes | memoryview, start: int, end: int) -> bytes | memoryview:
        """What to send for the frame at ``data[start:end]``."""
        if data[start] != 0x80 | OP_TEXT or self._fragments is not None:  # all but a whole text message
            return self._forward_other(data, start, end)
        mask, payload = self._payload(data, start, end)
        try:
            rewritten = self._rewrite(payload)
        except Refused as refusal:
            self.replies.append(refusal.reply())
            return b""
        return data[start:end] if rewritten is None else _frame(0x80 | OP_TEXT, rewritten, mask)

    @staticmethod
    def _payload(data: bytes | memoryview, start: int, end: int) -> tuple[bytes, bytes]:
        """The frame's mask key and unmasked payload."""
        second = data[start + 1]
        short = second & 0x7F
        offset = start + 2 + (2 if short == 126 else 8 if short == 127 else 0)
        if not second & 0x80:
            return b"\0\0\0\0", bytes(data[offset:end])
        mask = bytes(data[offset:offset + 4])
        return mask, _unmask(data[offset + 4:end], mask)

    def _forward_other(self, data: bytes | memoryview, start: int, end: int) -> bytes | memoryview:
        """Control frames pass; fragments are gathered into one message (Chromium joins text and continuation
        frames alike until one has FIN, so a lone continuation frame with FIN is a whole message); the rest closes."""
        fin_opcode = data[start]
        opcode, fin = fin_opcode & 0x0F, fin_opcode & 0x80
        if fin_opcode & RESERVED_BITS:
            return self._close(PROTOCOL_ERROR, "a frame with reserved bits set (no extension was agreed)")
        if opcode in (OP_CLOSE, OP_PING, OP_PONG):
            return data[start:end]
        if opcode not in (OP_TEXT, OP_CONTINUATION):
            return self._close(UNSUPPORTED_DATA, f"a frame of opcode {opcode} (CDP here is JSON text)")
        mask, payload = self._payload(data, start, end)
        if fin and self._fragments is None:  # a lone continuation frame
            whole, as_it_came = payload, data[start:end]
        else:
            self._fragments = (self._fragments or bytearray()) + payload
            if not fin:
                return b""
            whole, as_it_came, self._fragments = bytes(self._fragments), None, None
        try:
            rewritten = self._rewrite(whole)
        except Refused as refusal:
            self.replies.append(refusal.reply())
            return b""
        if rewritten is None:
            return as_it_came if as_it_came is not None else _frame(0x80 | OP_TEXT, whole, mask)
        return _frame(0x80 | OP_TEXT, rewritten, mask)

    def _rewrite(self, payload: bytes) -> bytes | None:
        """The payload to send instead, or None to send the frame as it came; Refused if it must not go."""
        if MARKERS.search(payload) is None:
            return None
        message = read_strictly(payload)
        try:
            changed = self._apply(message, 0)
        except Refused as refusal:
            session_id = message.get("sessionId") if isinstance(message.get("sessionId"), str) else None
            raise Refused(refusal.why, message["id"], session_id) from None
        return json.dumps(message).encode() if changed else None

    def _apply(self, message: dict, depth: int) -> bool:
        """Rewrites a strictly read ``message`` in place; whether it changed. Refused if a rule forbids it."""
        method, params = message["method"], message.get("params")
        if method == SEND_TO_TARGET and isinstance(params, dict) and isinstance(params.get("message"), str):
            if depth >= MAX_WRAPPING:
                raise Refused(f"{SEND_TO_TARGET} wrapped more than {MAX_WRAPPING} deep")
            try:
                inner_bytes = params["message"].encode("utf-8")
            except UnicodeEncodeError:
                raise Refused(f"the message inside {SEND_TO_TARGET} is not valid Unicode") from None
            if MARKERS.search(inner_bytes) is None:
                return False
            try:
                inner = read_strictly(inner_bytes)
            except Refused as refusal:
                raise Refused(f"inside {SEND_TO_TARGET}: {refusal.why}") from None
            if not self._apply(inner, depth + 1):
                return False
            message["params"] = {**params, "message": json.dumps(inner)}
            return True
        if method == EXPOSE_PROTOCOL:
            raise Refused(f"{EXPOSE_PROTOCOL} would give a page a CDP channel around the relay")
        if method.startswith(TETHERING):
            raise Refused(f"{method} would open a port on the worker")
        if method == CREATE_CONTEXT and isinstance(params, dict) and CONTEXT_PROXY_PARAMS & params.keys():
            raise Refused(f"{CREATE_CONTEXT} with proxyServer or proxyBypassList would send the context's "
                          "traffic around the session's egress")
        if method not in SET_DOWNLOAD_BEHAVIOR:
            return False
        params = dict(params) if isinstance(params, dict) else {}
        if params.get("behavior") in ("allow", "allowAndName") or "downloadPath" in params:
            if self.folder is None:
                raise Refused(f"{method}: this session has no download folder")
            if params.get("behavior") in ("allow", "allowAndName"):
                params["behavior"] = "allow"
            params["downloadPath"] = self.folder
        message["params"] = params
        return True
