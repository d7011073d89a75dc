"""A session's live view: the web process watches the browser over CDP and relays frames to a viewer page.

The viewer page never speaks CDP: its credential (core.tokens.LiveViewTokens)
opens this one view of one session, so it cannot be turned into a connect
token. The web process holds the CDP connection (through core.browser_link, so
a browser on another host is reached through its worker's gateway), runs
``Page.startScreencast`` on the watched tab, acknowledges each frame once it
has gone to the viewer (Chromium paces itself by the acks, so a slow viewer
gets fewer frames, not a queue; a page repainting faster than
BROKER_LIVE_VIEW_MAX_FPS has its screencast paused between frames), follows
new and closed tabs, and turns the viewer's input messages into
``Input.dispatch*Event`` calls, scaled from the viewer's picture to the page's
viewport. A read-only view drops input.

Everything runs on greenlets of the web process: a few messages a second per
viewer, unlike the relay's byte splice, which has OS threads of its own.
"""
from __future__ import annotations

import itertools
import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import websocket
from gevent.event import AsyncResult, Event
from gevent.lock import Semaphore
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection, BytesMessage, CloseConnection, Ping, Request, TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError

from core.browser_link import BrowserRoute

log = logging.getLogger(__name__)

CALL_TIMEOUT = 10.0
#: Largest frame Chromium sends; a larger viewport is scaled down to fit.
MAX_FRAME = {"maxWidth": 1920, "maxHeight": 1080}
RECEIVE_SIZE = 64 * 1024
MOUSE_EVENTS = {"mousePressed", "mouseReleased", "mouseMoved"}
MOUSE_BUTTONS = {"none", "left", "middle", "right"}
KEY_EVENTS = {"keyDown", "keyUp"}
#: Keys whose press types a character although their ``key`` is a name.
TYPED_BY_NAME = {"Enter": "\r"}
MAX_TEXT = 16
#: Seconds a restarted screencast has to send its first frame before it is started again.
RESTART_CHECK = 1.0
#: Restarts a navigation that brought no frame gets, RESTART_CHECK apart.
NUDGES = 5
#: Seconds after the person's last input during which the view gets BROKER_LIVE_VIEW_MAX_FPS even with a CDP client
#: connected: someone clicking or typing wants to see the answer at once.
INPUT_GRACE = 2.0
#: Seconds between two asks whether the view may go on (the session stopped, its link revoked).
VALIDITY_CHECK = 1.0
EXPIRED = "This live-view link expired; the session's next answer carries a fresh one."


class ViewerGone(Exception):
    pass


class ViewerSocket:
    """The viewer page's WebSocket, server side: JSON text messages each way."""

    def __init__(self, sock: socket.socket, ws: WSConnection) -> None:
        self.sock = sock
        self.ws = ws
        self._send_lock = Semaphore()

    @classmethod
    def accept(cls, sock: socket.socket, environ: dict) -> ViewerSocket:
        """Answers the already-parsed upgrade with 101; raises ``ValueError`` if it was not one."""
        ws = WSConnection(ConnectionType.SERVER)
        headers = [(key[5:].replace("_", "-").lower(), value) for key, value in environ.items() if key.startswith("HTTP_")]
        ws.initiate_upgrade_connection(headers, environ.get("PATH_INFO", "/"))
        if not any(isinstance(event, Request) for event in ws.events()):
            raise ValueError("not a WebSocket upgrade request")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(ws.send(AcceptConnection()))
        return cls(sock, ws)

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


class BrowserCdp:
    """A browser-level CDP connection driven by events: one reader greenlet, calls answered by id."""

    def __init__(self, route: BrowserRoute) -> None:
        self._ws = websocket.create_connection(
            route.url, timeout=CALL_TIMEOUT, header=route.header_lines(), skip_utf8_validation=True,
            suppress_origin=True, enable_multithread=True,
        )
        self._ws.settimeout(None)
        self._ids = itertools.count(1)
        self._waiting: dict[int, AsyncResult] = {}

    def send(self, method: str, params: dict | None = None, session_id: str | None = None) -> int:
        """Sends without waiting: input and acks keep their order, and nobody waits on their answers."""
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        self._ws.send(json.dumps(message))
        return message_id

    def call(self, method: str, params: dict | None = None, session_id: str | None = None) -> dict:
        result = AsyncResult()
        message_id = next(self._ids)
        self._waiting[message_id] = result
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        try:
            self._ws.send(json.dumps(message))
            reply = result.get(timeout=CALL_TIMEOUT)
        finally:
            self._waiting.pop(message_id, None)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def read(self, on_event: Callable[[dict], None]) -> None:
        """Runs until the browser closes the connection (the session stopped, or its browser died)."""
        while True:
            try:
                raw = self._ws.recv()
            except (websocket.WebSocketException, OSError):
                return
            if not raw:
                return
            message = json.loads(raw)
            if "id" in message:
                waiting = self._waiting.get(message["id"])
                if waiting is not None:
                    waiting.set(message)
            elif "method" in message:
                on_event(message)

    def close(self) -> None:
        try:
            self._ws.close(timeout=1)
        except (websocket.WebSocketException, OSError):
            pass


class LiveView:
    """One viewer watching one session: ``run`` returns when either side is gone, saying why to the viewer."""

    def __init__(self, session_id: str, viewer: ViewerSocket, cdp: BrowserCdp, read_only: bool, quality: int,
                 max_fps: float, busy_fps: float, still_valid: Callable[[], str | None],
                 automated: Callable[[], bool], expires_at: float | None = None) -> None:
        """``busy_fps`` applies while ``automated`` (a CDP client is connected) and the person is only watching.

        ``expires_at``: when the credential that opened the view expires (Unix seconds); the view ends then.
        """
        self.session_id = session_id
        self.viewer = viewer
        self.cdp = cdp
        self.read_only = read_only
        self.quality = quality
        self.frame_interval = _interval(max_fps)
        self.busy_interval = max(_interval(busy_fps), self.frame_interval)
        #: Says why the view must end (session stopped, link revoked), else None; asked every VALIDITY_CHECK.
        self.still_valid = still_valid
        self.expires_at = expires_at
        #: Whether a CDP client is on the session, asked every second (any web process may relay it: the store knows).
        self.automated = automated
        self._automated = False
        self._last_input = float("-inf")
        self.tabs: dict[str, dict] = {}
        self.watched: str | None = None
        self.target_session: str | None = None
        #: The viewport of the last frame, in CSS pixels: input coordinates are scaled to it.
        self.viewport = (0.0, 0.0)
        self._frame: dict | None = None
        #: Frames the watched tab has sent so far: a navigation that brings none within RESTART_CHECK is nudged.
        self._frames_seen = 0
        self._frame_ready = Event()
        self._switch_lock = Semaphore()

    # -- lifetime ------------------------------------------------------------------
    def run(self) -> None:
        reader = gevent.spawn(self._read_browser)
        helpers = [gevent.spawn(self._send_frames), gevent.spawn(self._check_validity), reader]
        inputs = gevent.spawn(self._read_viewer)
        try:
            self._automated = self.automated()
            self.cdp.call("Target.setDiscoverTargets", {"discover": True})
            pages = [t for t in self.cdp.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
            for target in pages:
                self.tabs[target["targetId"]] = _tab(target)
            if pages:
                self.watch(pages[0]["targetId"])
            self._send_tabs()
            gevent.wait([reader, inputs], count=1)
        except (RuntimeError, gevent.Timeout, ViewerGone, websocket.WebSocketException, OSError) as error:
            log.info("session %s: live view could not start (%s)", self.session_id, error)
        finally:
            # The browser's side ends on a stop, a revocation (_check_validity) or the browser's exit.
            reason = self._why_ended() or ("The session's browser closed." if reader.ready() else None)
            if reason is not None and not inputs.ready():
                try:
                    self.viewer.send({"type": "ended", "message": reason})
                except ViewerGone:
                    pass
            self.viewer.close(reason or "The live view was closed.")
            gevent.killall([*helpers, inputs])
            self.cdp.close()

    def _why_ended(self) -> str | None:
        """Why the view must end now (session stopped, link revoked, link expired), else None."""
        reason = self.still_valid()
        if reason is None and self.expires_at is not None and time.time() >= self.expires_at:
            return EXPIRED
        return reason

    def _check_validity(self) -> None:
        """Every VALIDITY_CHECK, and at the credential's expiry to the moment: a link outlives neither."""
        while True:
            wait = VALIDITY_CHECK
            if self.expires_at is not None:
                wait = min(wait, max(self.expires_at - time.time(), 0.0))
            gevent.sleep(wait)
            if self._why_ended() is not None:
                self.cdp.close()
                return
            self._automated = self.automated()

    def _pace(self) -> float:
        """Seconds between frames: fewer while a CDP client works the session and the person only watches."""
        if self._automated and time.monotonic() - self._last_input > INPUT_GRACE:
            return self.busy_interval
        return self.frame_interval

    # -- the browser's side ----------------------------------------------------------
    def _read_browser(self) -> None:
        self.cdp.read(self._on_event)

    def _on_event(self, event: dict) -> None:
        method, params = event["method"], event.get("params", {})
        if method == "Page.screencastFrame":
            self._on_frame(event.get("sessionId"), params)
        elif method in ("Target.targetCreated", "Target.targetInfoChanged"):
            info = params["targetInfo"]
            if info["type"] != "page":
                return
            new = info["targetId"] not in self.tabs
            moved = not new and info["targetId"] == self.watched and self.tabs[info["targetId"]]["url"] != info["url"]
            self.tabs[info["targetId"]] = _tab(info)
            if moved:
                gevent.spawn_later(RESTART_CHECK, self._nudge, self.target_session, self._frames_seen)
            if new and method == "Target.targetCreated" and self.watched is not None:
                # A tab a client opened is where its work goes next: the view follows it.
                gevent.spawn(self._watch_quietly, info["targetId"])
            else:
                self._send_tabs()
        elif method == "Target.targetDestroyed":
            if self.tabs.pop(params["targetId"], None) is None:
                return
            if params["targetId"] == self.watched:
                self.watched = self.target_session = None
                if self.tabs:
                    gevent.spawn(self._watch_quietly, list(self.tabs)[-1])
            self._send_tabs()

    def _nudge(self, target_session: str | None, frames_before: int, tries: int = NUDGES) -> None:
        """A navigation can swap the tab's renderer under a running screencast, which then sends nothing more
        (seen on Chromium 156 as a view stuck on the old page): no frame since it, the screencast is made again
        (a restart sends the page at once, unless it too met a swap: then again, a few times)."""
        if target_session is None or target_session != self.target_session or self._frames_seen != frames_before:
            return
        try:
            self.cdp.send("Page.stopScreencast", None, target_session)
            self._start_screencast(target_session)
        except (websocket.WebSocketException, OSError):
            return
        if tries > 1:
            gevent.spawn_later(RESTART_CHECK, self._nudge, target_session, frames_before, tries - 1)

    def _on_frame(self, target_session: str | None, frame: dict) -> None:
        if target_session != self.target_session:
            self.cdp.send("Page.screencastFrameAck", {"sessionId": frame["sessionId"]}, target_session)
            return
        self._frames_seen += 1
        dropped = self._frame
        self._frame = {**frame, "targetSession": target_session}
        if dropped is not None:
            self.cdp.send("Page.screencastFrameAck", {"sessionId": dropped["sessionId"]}, dropped["targetSession"])
        self._frame_ready.set()

    def _send_frames(self) -> None:
        """Sends the newest frame, then acknowledges it: Chromium sends the next one only after the ack.

        At most one frame per ``_pace()``. A page that keeps repainting would still cost its browser
        a capture of every compositor frame while the screencast runs, acked or not (bench/live_view.py).
        So a frame that comes sooner than the interval after the last one sent is not sent: the screencast
        pauses until the interval is over, and its restart captures the page as it is then (that first
        frame is always sent). A page that paints now and then keeps its screencast running.
        """
        last_sent = 0.0
        restarted: str | None = None
        while True:
            if not self._frame_ready.wait(timeout=RESTART_CHECK if restarted else None):
                # A restart brings a frame at once; one that brought none (a navigation was swapping the
                # page's renderer) is made again, stop first: a start on a running screencast changes nothing.
                self.cdp.send("Page.stopScreencast", None, restarted)
                self._start_screencast(restarted)
                continue
            self._frame_ready.clear()
            frame, self._frame = self._frame, None
            if frame is None:
                continue
            now, interval = time.monotonic(), self._pace()
            if restarted is None and now - last_sent < interval:
                self.cdp.send("Page.stopScreencast", None, frame["targetSession"])
                gevent.sleep(last_sent + interval - now)
                restarted = frame["targetSession"]
                self._start_screencast(restarted)
                continue
            restarted = None
            metadata = frame.get("metadata", {})
            self.viewport = (float(metadata.get("deviceWidth", 0)), float(metadata.get("deviceHeight", 0)))
            try:
                self.viewer.send({"type": "frame", "data": frame["data"], "width": self.viewport[0],
                                  "height": self.viewport[1], "timestamp": metadata.get("timestamp")})
            except ViewerGone:
                return
            last_sent = time.monotonic()
            self.cdp.send("Page.screencastFrameAck", {"sessionId": frame["sessionId"]}, frame["targetSession"])

    def _start_screencast(self, target_session: str) -> None:
        """Restarts a paused screencast, unless the view moved to another tab meanwhile."""
        with self._switch_lock:
            if target_session != self.target_session:
                return
            try:
                self.cdp.call("Page.startScreencast", self._screencast, target_session)
            except RuntimeError as error:
                log.info("session %s: live view could not restart its screencast (%s)", self.session_id, error)

    @property
    def _screencast(self) -> dict:
        return {"format": "jpeg", "quality": self.quality, **MAX_FRAME}

    def watch(self, target_id: str) -> None:
        """Moves the screencast to ``target_id``: attach (flat session), start, then stop the old one."""
        with self._switch_lock:
            if target_id == self.watched or target_id not in self.tabs:
                return
            previous = self.target_session
            attached = self.cdp.call("Target.attachToTarget", {"targetId": target_id, "flatten": True})["sessionId"]
            self.watched, self.target_session = target_id, attached
            self.cdp.call("Page.startScreencast", self._screencast, attached)
            if previous is not None:
                self.cdp.send("Page.stopScreencast", None, previous)
                self.cdp.send("Target.detachFromTarget", {"sessionId": previous})

    def _watch_quietly(self, target_id: str) -> None:
        """A tab that closed while being attached to is no error: the next event picks another. The viewer hears
        the tabs either way, so a viewer's message is always answered."""
        try:
            self.watch(target_id)
        except (RuntimeError, gevent.Timeout, websocket.WebSocketException, OSError) as error:
            log.debug("session %s: live view could not follow tab %s (%s)", self.session_id, target_id, error)
        self._send_tabs()

    def _send_tabs(self) -> None:
        try:
            self.viewer.send({"type": "tabs", "watched": self.watched, "readOnly": self.read_only,
                              "tabs": [{"id": tid, **tab} for tid, tab in self.tabs.items()]})
        except ViewerGone:
            pass

    # -- the viewer's side -------------------------------------------------------------
    def _read_viewer(self) -> None:
        handlers = {"mouse": self._mouse, "wheel": self._wheel, "key": self._key}
        for message in self.viewer.messages():
            kind = message.get("type")
            if kind == "switch" and isinstance(message.get("targetId"), str):
                self._watch_quietly(message["targetId"])
            elif kind in handlers and not self.read_only and self.target_session is not None:
                self._last_input = time.monotonic()
                handlers[kind](message)

    def _point(self, message: dict) -> tuple[float, float] | None:
        """The viewer sends where on the picture (0..1 each way); the page wants CSS pixels of its viewport."""
        x, y = message.get("x"), message.get("y")
        if not _is_number(x) or not _is_number(y) or not all(self.viewport):
            return None
        width, height = self.viewport
        return min(max(x, 0.0), 1.0) * width, min(max(y, 0.0), 1.0) * height

    def _mouse(self, message: dict) -> None:
        point = self._point(message)
        action, button = message.get("action"), message.get("button", "none")
        if point is None or action not in MOUSE_EVENTS or button not in MOUSE_BUTTONS:
            return
        count = message.get("clickCount", 0)
        self.cdp.send("Input.dispatchMouseEvent", {
            "type": action, "x": point[0], "y": point[1], "button": button,
            "clickCount": count if isinstance(count, int) and 0 <= count <= 3 else 0,
            "modifiers": _modifiers(message),
        }, self.target_session)

    def _wheel(self, message: dict) -> None:
        point = self._point(message)
        dx, dy = message.get("deltaX", 0), message.get("deltaY", 0)
        if point is None or not _is_number(dx) or not _is_number(dy):
            return
        self.cdp.send("Input.dispatchMouseEvent", {
            "type": "mouseWheel", "x": point[0], "y": point[1], "deltaX": dx, "deltaY": dy,
            "modifiers": _modifiers(message),
        }, self.target_session)

    def _key(self, message: dict) -> None:
        action, key, code = message.get("action"), message.get("key"), message.get("code", "")
        key_code = message.get("keyCode", 0)
        if action not in KEY_EVENTS or not isinstance(key, str) or not isinstance(code, str) or not isinstance(key_code, int):
            return
        modifiers = _modifiers(message)
        # Ctrl/Alt/Meta combinations are shortcuts, not text.
        text = (key if len(key) == 1 else TYPED_BY_NAME.get(key, "")) if not modifiers & 0b0111 else ""
        params: dict[str, Any] = {"key": key[:MAX_TEXT], "code": code[:MAX_TEXT], "windowsVirtualKeyCode": key_code,
                                  "nativeVirtualKeyCode": key_code, "modifiers": modifiers}
        if action == "keyDown":
            params.update(type="keyDown" if text else "rawKeyDown", text=text, unmodifiedText=text)
        else:
            params["type"] = "keyUp"
        self.cdp.send("Input.dispatchKeyEvent", params, self.target_session)


def _tab(info: dict) -> dict:
    return {"url": info.get("url", ""), "title": info.get("title", "")}


def _interval(fps: float) -> float:
    """Seconds between frames at ``fps``; 0 (no cap) for 0."""
    return 1 / fps if fps > 0 else 0.0


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _modifiers(message: dict) -> int:
    """CDP's bit field: Alt 1, Ctrl 2, Meta 4, Shift 8."""
    value = message.get("modifiers", 0)
    return value & 0b1111 if isinstance(value, int) else 0
