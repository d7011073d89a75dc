"""The watched tab's screencast and its pacing: which frames of Chromium's a live viewer gets, and when.

``Page.startScreencast`` runs on one tab at a time (the watched one, attached as a flat session). Each frame is
acknowledged once it has gone to the viewer: Chromium sends the next only after the ack, so a slow viewer gets
fewer frames, not a queue. A page repainting faster than BROKER_LIVE_VIEW_MAX_FPS (BROKER_LIVE_VIEW_BUSY_FPS while
a CDP client works the session and the person only watches) has its screencast paused between frames.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent
import websocket
from gevent.event import Event
from gevent.lock import Semaphore

from core.cdp import CdpConnection, CdpError
from proxy.live_socket import ViewerGone

log = logging.getLogger(__name__)

#: Largest frame Chromium sends; a larger viewport is scaled down to fit.
MAX_FRAME = {"maxWidth": 1920, "maxHeight": 1080}
#: Seconds a restarted screencast has to send its first frame before it is started again.
RESTART_CHECK = 1.0
#: Restarts a navigation that brought no frame gets, RESTART_CHECK apart.
NUDGES = 5
#: Seconds after the person's last input during which the view gets BROKER_LIVE_VIEW_MAX_FPS even with a CDP client
#: connected: someone clicking or typing wants to see the answer at once.
INPUT_GRACE = 2.0


class Screencast:
    def __init__(self, session_id: str, cdp: CdpConnection, quality: int, max_fps: float, busy_fps: float) -> None:
        """``busy_fps`` applies while ``automated`` (a CDP client is connected) and the person is only watching."""
        self.session_id = session_id
        self.cdp = cdp
        self.quality = quality
        self.frame_interval = _interval(max_fps)
        self.busy_interval = max(_interval(busy_fps), self.frame_interval)
        #: Whether a CDP client works the session; the live view refreshes it.
        self.automated = False
        #: When the person last sent input (``time.monotonic``).
        self.last_input = float("-inf")
        #: The watched tab, and the flat CDP session attached to it.
        self.target_id: str | None = None
        self.target_session: str | None = None
        #: The viewport of the last frame, in CSS pixels: input coordinates are scaled to it.
        self.viewport = (0.0, 0.0)
        self._frame: dict | None = None
        #: Frames the watched tab has sent so far: a navigation that brings none within RESTART_CHECK is nudged.
        self._frames_seen = 0
        self._frame_ready = Event()
        self._switch_lock = Semaphore()

    def watch(self, target_id: str, is_open: Callable[[str], bool]) -> None:
        """Moves the screencast to ``target_id`` (if it is still open): attach, start, then stop the old one."""
        with self._switch_lock:
            if target_id == self.target_id or not is_open(target_id):
                return
            previous = self.target_session
            attached = self.cdp.attach(target_id)
            self.target_id, self.target_session = target_id, attached
            self.cdp.call("Page.startScreencast", self._params, attached)
            if previous is not None:
                self.cdp.send("Page.stopScreencast", None, previous)
                self.cdp.send("Target.detachFromTarget", {"sessionId": previous})

    def forget(self) -> None:
        """The watched tab closed: nothing is watched until the next ``watch``."""
        self.target_id = self.target_session = None

    def navigated(self) -> None:
        """The watched tab moved to another URL: make sure its frames keep coming."""
        gevent.spawn_later(RESTART_CHECK, self._nudge, self.target_session, self._frames_seen)

    def on_frame(self, target_session: str | None, frame: dict) -> None:
        """A ``Page.screencastFrame``: the newest is kept for ``run``; one it replaces is acknowledged unsent."""
        if target_session != self.target_session:
            self.cdp.send("Page.screencastFrameAck", {"sessionId": frame["sessionId"]}, target_session)
            return
        self._frames_seen += 1
        dropped = self._frame
        self._frame = {**frame, "targetSession": target_session}
        if dropped is not None:
            self.cdp.send("Page.screencastFrameAck", {"sessionId": dropped["sessionId"]}, dropped["targetSession"])
        self._frame_ready.set()

    def pace(self) -> float:
        """Seconds between frames: fewer while a CDP client works the session and the person only watches."""
        if self.automated and time.monotonic() - self.last_input > INPUT_GRACE:
            return self.busy_interval
        return self.frame_interval

    def run(self, send: Callable[[dict], None]) -> None:
        """Sends the newest frame to the viewer through ``send``, then acknowledges it; returns once the viewer
        is gone (``send`` raised ViewerGone).

        At most one frame per ``pace()``. A page that keeps repainting would still cost its browser
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
                self._start(restarted)
                continue
            self._frame_ready.clear()
            frame, self._frame = self._frame, None
            if frame is None:
                continue
            now, interval = time.monotonic(), self.pace()
            if restarted is None and now - last_sent < interval:
                self.cdp.send("Page.stopScreencast", None, frame["targetSession"])
                gevent.sleep(last_sent + interval - now)
                restarted = frame["targetSession"]
                self._start(restarted)
                continue
            restarted = None
            metadata = frame.get("metadata", {})
            self.viewport = (float(metadata.get("deviceWidth", 0)), float(metadata.get("deviceHeight", 0)))
            try:
                send({"type": "frame", "data": frame["data"], "width": self.viewport[0], "height": self.viewport[1],
                      "timestamp": metadata.get("timestamp")})
            except ViewerGone:
                return
            last_sent = time.monotonic()
            self.cdp.send("Page.screencastFrameAck", {"sessionId": frame["sessionId"]}, frame["targetSession"])

    def _nudge(self, target_session: str | None, frames_before: int, tries: int = NUDGES) -> None:
        """A navigation can swap the tab's renderer under a running screencast, which then sends nothing more
        (seen on Chromium 156 as a view stuck on the old page): no frame since it, the screencast is made again
        (a restart sends the page at once, unless it too met a swap: then again, a few times)."""
        if target_session is None or target_session != self.target_session or self._frames_seen != frames_before:
            return
        try:
            self.cdp.send("Page.stopScreencast", None, target_session)
            self._start(target_session)
        except (websocket.WebSocketException, OSError):
            return
        if tries > 1:
            gevent.spawn_later(RESTART_CHECK, self._nudge, target_session, frames_before, tries - 1)

    def _start(self, target_session: str) -> None:
        """Restarts a paused screencast, unless the view moved to another tab meanwhile."""
        with self._switch_lock:
            if target_session != self.target_session:
                return
            try:
                self.cdp.call("Page.startScreencast", self._params, target_session)
            except CdpError as error:
                log.info("session %s: live view could not restart its screencast (%s)", self.session_id, error)

    @property
    def _params(self) -> dict:
        return {"format": "jpeg", "quality": self.quality, **MAX_FRAME}


def _interval(fps: float) -> float:
    """Seconds between frames at ``fps``; 0 (no cap) for 0."""
    return 1 / fps if fps > 0 else 0.0
