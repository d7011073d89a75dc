"""The one CDP client of every process: commands and their answers, events, and flat sessions.

The worker uses it for its own calls (readiness, the first navigation, warm browsers' checks, download
guards, cookies), the web process for cookies, ``/json/list`` and the live view (proxy/live_view.py).
Users' own traffic never passes here: it goes through the relay's byte splice (proxy/relay.py).

It is websocket-client's blocking socket plus ``threading`` primitives and nothing else, so one class
serves plain threads in the worker and greenlets in the web process, where gevent's monkey-patching
(web.py) makes the same socket, lock and condition cooperative.

Using it::

    with CdpConnection(ws_url, timeout=10, header=route.header_lines()) as cdp:
        cdp.call("Browser.getVersion")                   # the result; CdpError if the browser answers an error
        page = cdp.attach(target_id)                     # a flat session: its sessionId
        cdp.call("Page.enable", session_id=page)         # a command to that target
        cdp.send("Page.navigate", {"url": url}, page)    # sent, answer not awaited (one session runs its
                                                         # commands in order, so later calls see it done)
        cdp.wait_event("Page.loadEventFired", page, 10)  # the event (even one that came during a call), or None

Events go to the callbacks of ``subscribe(callback, *methods)`` (all methods when none are named); an event
no subscriber takes is kept (the last KEPT_EVENTS) for ``wait_event``. A callback runs on the thread that
read the event, between two reads: it may ``send`` but not ``call`` (that would wait for an answer only it
could read; it raises instead), so work that needs answers goes to a thread or greenlet of its own.

Every new target, attached before its page runs (how a setting reaches each new tab)::

    def attached(event: dict) -> None:
        target = event["params"]["sessionId"]
        cdp.send("Emulation.setTimezoneOverride", {"timezoneId": "Europe/Paris"}, target)
        cdp.send("Runtime.runIfWaitingForDebugger", None, target)

    cdp.subscribe(attached, "Target.attachedToTarget")
    cdp.auto_attach(wait_for_debugger=True)              # browser-wide: new pages (and those already open)
    threading.Thread(target=cdp.listen, daemon=True).start()

Nobody reads for the connection by itself: whoever waits reads. ``call`` reads until its answer,
``wait_event`` until its event, ``listen`` until its time is up or the connection ends (for a connection
whose events matter between calls). When several threads wait at once, one reads and hands the others
what is theirs, so calls from many threads or greenlets may share a connection another one ``listen``s on.
No reader thread of its own: the worker's many one-call connections cost none, and a connection nobody
waits on reads nothing (tests read its socket raw, for close frames and pings). A callback that raises is
logged; the reading goes on.

Errors: ``CdpError`` is the browser's own error answer. The transport's are websocket-client's:
``WebSocketTimeoutException`` (no answer within the timeout), ``WebSocketConnectionClosedException``
(the connection ended; every waiter hears it), ``WebSocketBadStatusException`` or ``OSError`` at connect.
"""
from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import websocket

log = logging.getLogger(__name__)

#: Events nobody subscribed to that a connection keeps for ``wait_event``; older ones are dropped.
KEPT_EVENTS = 1000
#: Seconds ``close`` waits for the browser's answer to its close frame.
CLOSE_TIMEOUT = 3.0

T = TypeVar("T")
EventCallback = Callable[[dict], None]


class CdpError(RuntimeError):
    """The browser answered a command with an error."""


class CdpConnection:
    def __init__(self, ws_url: str, timeout: float = 10.0, header: list[str] | None = None) -> None:
        """``timeout``: for connecting and for each call's answer. ``header``: extra upgrade headers
        (``Name: value``), e.g. a worker gateway's credential."""
        self.timeout = timeout
        self._ws = websocket.create_connection(
            ws_url, timeout=timeout, skip_utf8_validation=True, suppress_origin=True, enable_multithread=True,
            header=header or [],
        )
        self._ids = itertools.count(1)
        #: Guards everything below; readers and waiters meet on it.
        self._state = threading.Condition()
        #: The thread (or greenlet) reading now, if any: the others wait for it to hand them their message.
        self._reader: int | None = None
        #: Answers awaited by ``call``, by id: None until the answer comes.
        self._answers: dict[int, dict | None] = {}
        self._kept: deque[dict] = deque(maxlen=KEPT_EVENTS)
        self._subscribers: list[tuple[EventCallback, frozenset[str]]] = []
        #: Why the connection ended, once it has: every later wait raises it.
        self._ended: str | None = None

    def __enter__(self) -> CdpConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands --------------------------------------------------------------------
    def send(self, method: str, params: dict | None = None, session_id: str | None = None) -> int:
        """Sends without waiting for the answer (which is dropped when it comes); the command's id."""
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        self._ws.send(json.dumps(message))
        return message_id

    def call(self, method: str, params: dict | None = None, session_id: str | None = None,
             timeout: float | None = None) -> dict[str, Any]:
        """The command's result, within ``timeout`` (the connection's by default)."""
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        with self._state:
            self._answers[message_id] = None
        try:
            self._ws.send(json.dumps(message))
            answer = self._wait(lambda: self._answers[message_id], self.timeout if timeout is None else timeout)
        finally:
            with self._state:
                self._answers.pop(message_id, None)
        if answer is None:
            raise websocket.WebSocketTimeoutException(f"{method}: no answer in time")
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    # -- flat sessions ---------------------------------------------------------------
    def attach(self, target_id: str) -> str:
        """Attaches to a target as a flat session: its ``sessionId``, for ``call``/``send``/``wait_event``."""
        return self.call("Target.attachToTarget", {"targetId": target_id, "flatten": True})["sessionId"]

    def auto_attach(self, session_id: str | None = None, wait_for_debugger: bool = False,
                    filter: list[dict] | None = None) -> None:
        """Attaches to targets as they appear, each announced by a ``Target.attachedToTarget`` event whose
        ``params.sessionId`` is its flat session. Browser-wide without ``session_id``; with one, that target's
        own children (its iframes, workers). ``wait_for_debugger``: each new target waits, before its page
        runs, for a ``Runtime.runIfWaitingForDebugger`` sent to its session. ``filter``: CDP's TargetFilter."""
        params: dict[str, Any] = {"autoAttach": True, "waitForDebuggerOnStart": wait_for_debugger, "flatten": True}
        if filter is not None:
            params["filter"] = filter
        self.call("Target.setAutoAttach", params, session_id)

    # -- events ----------------------------------------------------------------------
    def subscribe(self, callback: EventCallback, *methods: str) -> None:
        """``callback(event)`` for each event of ``methods`` (of all, when none are named) read from now on."""
        with self._state:
            self._subscribers.append((callback, frozenset(methods)))

    def wait_event(self, method: str, session_id: str | None, timeout: float) -> dict | None:
        """The first such event kept or arriving within ``timeout``; None when none came.

        ``session_id`` None means the browser's own events, not any target's.
        """
        def kept() -> dict | None:
            for event in self._kept:
                if event["method"] == method and event.get("sessionId") == session_id:
                    self._kept.remove(event)
                    return event
            return None

        return self._wait(kept, timeout)

    def listen(self, timeout: float | None = None) -> bool:
        """Reads for ``timeout`` seconds (None: until the connection ends), handing events to the subscribers;
        False once the connection has ended."""
        try:
            self._wait(lambda: None, timeout)
        except (websocket.WebSocketException, OSError):
            return False
        return True

    # -- the end ---------------------------------------------------------------------
    def close(self) -> None:
        """The closing handshake (never raising: a connection already gone is closed); a connection another
        thread is reading is aborted instead, as one socket cannot have two readers."""
        me = threading.get_ident()
        with self._state:
            reader = self._reader
            if reader in (None, me):
                # The handshake reads the browser's answer: nobody else may start reading meanwhile.
                self._reader = me
        if reader not in (None, me):
            self.abort()
            return
        try:
            self._ws.close(timeout=CLOSE_TIMEOUT)
        finally:
            self._end("the connection was closed")
            with self._state:
                self._reader = reader

    def abort(self) -> None:
        """Drops the connection without the closing handshake, which a hung browser would never answer; a thread
        blocked reading it wakes up."""
        self._end("the connection was aborted")
        self._ws.abort()
        self._ws.shutdown()

    # -- reading ---------------------------------------------------------------------
    def _wait(self, ready: Callable[[], T | None], timeout: float | None) -> T | None:
        """``ready()``'s first value that is not None, reading (or waiting for the thread that reads) meanwhile;
        None once ``timeout`` is over."""
        deadline = None if timeout is None else time.monotonic() + timeout
        me = threading.get_ident()
        while True:
            with self._state:
                while True:
                    found = ready()
                    if found is not None:
                        return found
                    if self._ended is not None:
                        raise websocket.WebSocketConnectionClosedException(self._ended)
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return None
                    if self._reader is None:
                        break
                    if self._reader == me:
                        raise RuntimeError("a CDP event callback cannot wait on its own connection: send, "
                                           "or call from another thread")
                    self._state.wait(remaining)
                self._reader = me
            try:
                self._read_one(remaining)
            finally:
                with self._state:
                    self._reader = None
                    self._state.notify_all()

    def _read_one(self, timeout: float | None) -> None:
        """One message, handed where it belongs: an awaited answer to its caller, an event to its subscribers
        (called here, while this thread is still the reader, so they see events in order) or kept."""
        self._ws.settimeout(timeout)
        try:
            raw = self._ws.recv()
        except websocket.WebSocketTimeoutException:
            return
        except (websocket.WebSocketException, OSError) as error:
            self._end(str(error) or type(error).__name__)
            raise
        if not raw:
            self._end("the browser closed the connection")
            raise websocket.WebSocketConnectionClosedException(self._ended)
        message = json.loads(raw)
        with self._state:
            if "id" in message:
                if message["id"] in self._answers:
                    self._answers[message["id"]] = message
                    self._state.notify_all()
                return
            if "method" not in message:
                return
            callbacks = [callback for callback, methods in self._subscribers
                         if not methods or message["method"] in methods]
            if not callbacks:
                self._kept.append(message)
        for callback in callbacks:
            try:
                callback(message)
            except Exception:
                log.exception("a CDP event callback failed on %s", message["method"])

    def _end(self, reason: str) -> None:
        with self._state:
            self._ended = self._ended or reason
            self._state.notify_all()


def first_page_target(conn: CdpConnection) -> str:
    targets = conn.call("Target.getTargets")["targetInfos"]
    pages = [t for t in targets if t["type"] == "page"]
    if pages:
        return pages[0]["targetId"]
    return conn.call("Target.createTarget", {"url": "about:blank"})["targetId"]


#: The main document's HTTP status as the page itself saw it (Navigation Timing Level 2, Chromium 109+).
RESPONSE_STATUS = "performance.getEntriesByType('navigation')[0]?.responseStatus ?? 0"


def navigate_first_page(ws_url: str, url: str, timeout: float) -> str | None:
    """Navigate the browser's first tab and wait for its load event; what went wrong, else None.

    A network failure is Chromium's error text (``net::ERR_CONNECTION_REFUSED``);
    a page that loaded with an error status is ``HTTP 404``: both are failures
    a caller wants to know about, though the browser is up either way.
    """
    with CdpConnection(ws_url, timeout=timeout) as conn:
        session_id = conn.attach(first_page_target(conn))
        conn.call("Page.enable", session_id=session_id)
        try:
            result = conn.call("Page.navigate", {"url": url}, session_id=session_id)
        except CdpError as error:
            # A URL Chromium cannot parse ("Cannot navigate to invalid URL") is the caller's navigation error.
            return str(error)
        if result.get("errorText"):
            return result["errorText"]
        if conn.wait_event("Page.loadEventFired", session_id, timeout) is None:
            return "load event did not fire in time"
        status = conn.call("Runtime.evaluate", {"expression": RESPONSE_STATUS, "returnByValue": True},
                           session_id=session_id)["result"].get("value", 0)
        conn.call("Target.detachFromTarget", {"sessionId": session_id})
        return f"HTTP {status}" if status >= 400 else None
