"""One CDP client socket ↔ one browser socket.

Both legs are WebSockets whose handshakes wsproto does (proxy/handshake.py); after that the relay
splices bytes, unchanged, in both directions: a client's masked frames are valid
for Chromium as they stand, and Chromium's unmasked frames are valid for the
client. Nothing is decoded or buffered whole, so a 256 MiB frame passes in
fixed memory, and a slow reader holds back its writer (``sendall`` blocks the
thread that would read more). The browser→client leg follows frame boundaries
(:mod:`proxy.frames`) so the relay can put its own ping to an idle client, a
close frame with a code and reason, or the answer to a call the client→browser
leg refused (proxy/download_rewrite.py), between two of Chromium's frames.
"""
from __future__ import annotations

import functools
import logging
import os
import socket
import struct

import gevent
from gevent.monkey import get_original
from gevent.threadpool import ThreadPool
from wsproto.frame_protocol import CloseReason, FrameProtocol

from proxy.download_rewrite import DownloadRewriter
from proxy.frames import OPCODE_CLOSE, FrameTracker

log = logging.getLogger(__name__)

BUFFER_SIZE = 256 * 1024
CLOSE_GRACE = 2.0
#: CDP clients one web process relays at once (two OS threads each; more wait for a thread).
MAX_CLIENTS = 500
#: A pump woken by a message should run before the busy threads of the browsers sharing the host's
#: cores, not queue behind them: most of the relay's p95 on a loaded 2-core machine was that wait
#: (bench/speed.py: p95 1.45–2.4× direct at niceness 0, 0.6–0.8× at -10, same run and load). A pump
#: only copies bytes and blocks, so it cannot starve anything.
PUMP_NICENESS = -10
GOING_AWAY = CloseReason.GOING_AWAY
BROWSER_GONE = CloseReason.INTERNAL_ERROR


_os_socket = get_original("socket", "socket")
_native_thread_id = get_original("threading", "get_native_id")
#: The pumps are OS threads: a gevent lock (what ``threading.Lock`` is once patched) must not be shared by them.
_os_lock = get_original("_thread", "allocate_lock")


def _shutdown(sock: socket.socket, how: int = socket.SHUT_RDWR) -> None:
    try:
        sock.shutdown(how)
    except OSError:
        pass


class RelayConnection:
    """The two pumps run on OS threads over plain blocking sockets, not on greenlets.

    Measured on this 2-core machine (bench/sessions.py and a bare splice beside
    it): a greenlet splice costs 1.18–1.27× a direct ``Runtime.evaluate`` round
    trip, the same splice on two OS threads 1.06–1.13×, because each message then
    wakes its thread straight from the kernel instead of going through the hub's
    event loop. The browser→client thread writes Chromium's bytes, pings and the
    close frame to the client; the client→browser thread writes only the answers
    to calls it refused. Every write to the client holds ``_to_client`` (an OS
    lock) and a relay frame goes only where ``_tracker`` says Chromium's last
    frame ended. The refusing thread never waits for the lock (the other one may
    be blocked on a client that is itself blocked writing to us): it leaves its
    answers queued, and the browser→client thread writes them after its next
    write, once at a boundary. The pumps log nothing and touch no gevent object,
    as threads outside the hub must not.
    """

    def __init__(self, session_id: str, client_id: str, client: socket.socket, browser: socket.socket,
                 ping_interval: float, downloads: str | None = None) -> None:
        """``downloads``: the session's download folder on the browser's side; every download behaviour a client
        sets names it (proxy/download_rewrite.py, whose other rules hold with or without it)."""
        self.session_id = session_id
        self.rewriter = DownloadRewriter(downloads or None)
        #: Names this client in the session's lease set (core.store.sessions).
        self.client_id = client_id
        self.client = client
        self.browser = browser
        self.ping_interval = ping_interval
        self._frames = FrameProtocol(client=False, extensions=[])
        self._close: tuple[int, str] | None = None
        self._goodbye: tuple[int, str] | None = None
        #: Set once the client ended its side (its socket read end-of-stream): the close was its own.
        self._client_left = False
        #: Held by whichever pump writes to the client; ``_tracker`` (Chromium's frames so far) goes with it.
        self._to_client = _os_lock()
        self._tracker = FrameTracker()
        #: Bytes spliced each way so far; each is written by its own pump thread only, read by /metrics.
        self.bytes_to_browser = 0
        self.bytes_to_client = 0

    def close(self, code: int, reason: str) -> None:
        """Ends the browser leg; the relay then tells the client why, in a close frame."""
        self._close = (code, reason)
        _shutdown(self.browser)

    def run(self) -> None:
        pumps = pump_threads()
        downstream = pumps.spawn(self._browser_to_client)
        upstream = pumps.spawn(self._client_to_browser)
        try:
            downstream.get()
        finally:
            _shutdown(self.browser)
            try:
                upstream.get(timeout=CLOSE_GRACE)
            except gevent.Timeout:
                _shutdown(self.client)
                upstream.get()
            self.browser.close()
            self.client.close()
        if self._goodbye:
            log.info("session %s: relay closed a client (%s %s)", self.session_id, *self._goodbye)
        elif self._client_left:
            log.info("session %s: a client closed its connection", self.session_id)

    def _client_to_browser(self) -> None:
        prioritise_pump()
        buffer = bytearray(BUFFER_SIZE)
        view = memoryview(buffer)
        try:
            while True:
                size = self.client.recv_into(buffer)
                if not size:
                    self._client_left = True
                    break
                self.browser.sendall(self.rewriter.feed(view[:size]))
                self.bytes_to_browser += size
                if self.rewriter.replies and self._to_client.acquire(blocking=False):
                    try:
                        self._write_replies()
                    finally:
                        self._to_client.release()
                if self.rewriter.close_with:
                    self.close(*self.rewriter.close_with)
                    break
        except OSError:
            pass
        # The client is gone (or said goodbye): end the browser leg; the browser itself keeps running.
        _shutdown(self.browser)

    def _browser_to_client(self) -> None:
        prioritise_pump()
        buffer = bytearray(BUFFER_SIZE)
        view = memoryview(buffer)
        # The kernel ends a receive that waited a whole ping interval: no poll() before every message.
        self.browser.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, receive_timeout(self.ping_interval))
        try:
            while True:
                try:
                    size = self.browser.recv_into(buffer)
                except BlockingIOError:
                    # PaaS routers cut sockets idle for ~55 s, and CDP clients never ping.
                    with self._to_client:
                        if self._tracker.at_boundary:
                            self.client.sendall(self._frames.ping())
                        self._write_replies()
                    size = -1
                except OSError:
                    size = 0
                if not size:
                    break
                if size > 0:
                    chunk = view[:size]
                    with self._to_client:
                        self._tracker.feed(chunk)
                        self.client.sendall(chunk)
                        self._write_replies()
                    self.bytes_to_client += size
                # An answer queued while this thread held the lock: its writer did not wait, so write it now.
                while self.rewriter.replies and self._tracker.at_boundary:
                    with self._to_client:
                        self._write_replies()
        except OSError:
            return
        self._say_goodbye()

    def _write_replies(self) -> None:
        """The answers to refused calls, as server text frames; only at a frame boundary. Holding ``_to_client``."""
        replies = self.rewriter.replies
        while replies and self._tracker.at_boundary:
            self.client.sendall(self._frames.send_data(replies.popleft().decode()))

    def _say_goodbye(self) -> None:
        """A close frame saying why, unless the close was the client's own (nobody is left to tell)."""
        with self._to_client:
            if self._tracker.last_opcode == OPCODE_CLOSE or (self._client_left and self._close is None):
                return
            code, reason = self._close or (BROWSER_GONE, "the browser closed the connection")
            try:
                self._write_replies()
                if self._tracker.at_boundary:
                    self.client.sendall(self._frames.close(code, reason))
                _shutdown(self.client, socket.SHUT_WR)
            except OSError:
                pass
        self._goodbye = (code, reason)


def prioritise_pump() -> None:
    """Run this pump thread at ``PUMP_NICENESS`` if the process may (root or CAP_SYS_NICE); else as it is."""
    try:
        os.setpriority(os.PRIO_PROCESS, _native_thread_id(), PUMP_NICENESS)
    except OSError:
        pass


def receive_timeout(seconds: float) -> bytes:
    """``SO_RCVTIMEO``'s ``struct timeval``."""
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


def detach(sock: socket.socket) -> socket.socket:
    """The same connection as a plain blocking OS socket, for the pump threads."""
    plain = _os_socket(fileno=sock.detach())
    plain.setblocking(True)
    return plain


@functools.cache
def pump_threads() -> ThreadPool:
    return ThreadPool(maxsize=2 * MAX_CLIENTS)
