"""A session's live view: the web process watches the browser over CDP and relays frames to a viewer page.

The viewer page never speaks CDP: its credential (core.tokens.LiveViewTokens)
opens this one view of one session, so it cannot be turned into a connect
token. The web process holds the CDP connection (core.cdp, reached through
core.browser_link, so a browser on another host is reached through its worker's
gateway), follows new and closed tabs, and ends the view when the session stops,
its link is revoked or expires, or either side goes. Beside this module:

- proxy/live_socket.py: the viewer's WebSocket (its upgrade answered as the relay's, proxy/handshake.py);
- proxy/live_screencast.py: the watched tab's screencast, its frames paced for the viewer;
- proxy/live_input.py: the viewer's input as ``Input.dispatch*Event`` calls, scaled from the viewer's
  picture to the page's viewport. A read-only view drops input.

Everything runs on greenlets of the web process: a few messages a second per
viewer, unlike the relay's byte splice, which has OS threads of its own.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent
import websocket

from core.cdp import CdpConnection, CdpError
from proxy.live_input import INPUT_TYPES, input_command
from proxy.live_screencast import Screencast
from proxy.live_socket import ViewerGone, ViewerSocket

log = logging.getLogger(__name__)

#: Seconds the browser has to answer each of the view's calls.
CALL_TIMEOUT = 10.0
#: Seconds between two asks whether the view may go on (the session stopped, its link revoked).
VALIDITY_CHECK = 1.0
EXPIRED = "This live-view link expired; the session's next answer carries a fresh one."
#: What can go wrong with the browser's side: its error answers, and its connection.
BROWSER_ERRORS = (CdpError, websocket.WebSocketException, OSError)


class LiveView:
    """One viewer watching one session: ``run`` returns when either side is gone, saying why to the viewer."""

    def __init__(self, session_id: str, viewer: ViewerSocket, cdp: CdpConnection, read_only: bool, quality: int,
                 max_fps: float, busy_fps: float, still_valid: Callable[[], str | None],
                 automated: Callable[[], bool], expires_at: float | None = None) -> None:
        """``busy_fps`` applies while ``automated`` (a CDP client is connected) and the person is only watching.

        ``expires_at``: when the credential that opened the view expires (Unix seconds); the view ends then.
        """
        self.session_id = session_id
        self.viewer = viewer
        self.cdp = cdp
        self.read_only = read_only
        self.screencast = Screencast(session_id, cdp, quality, max_fps, busy_fps)
        #: Says why the view must end (session stopped, link revoked), else None; asked every VALIDITY_CHECK.
        self.still_valid = still_valid
        self.expires_at = expires_at
        #: Whether a CDP client is on the session, asked every second (any web process may relay it: the store knows).
        self.automated = automated
        self.tabs: dict[str, dict] = {}

    # -- lifetime ------------------------------------------------------------------
    def run(self) -> None:
        self.cdp.subscribe(self._on_event)
        reader = gevent.spawn(self.cdp.listen)
        helpers = [gevent.spawn(self.screencast.run, self.viewer.send), gevent.spawn(self._check_validity), reader]
        inputs = gevent.spawn(self._read_viewer)
        try:
            self.screencast.automated = self.automated()
            self.cdp.call("Target.setDiscoverTargets", {"discover": True})
            pages = [t for t in self.cdp.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
            for target in pages:
                self.tabs[target["targetId"]] = _tab(target)
            if pages:
                self.watch(pages[0]["targetId"])
            self._send_tabs()
            gevent.wait([reader, inputs], count=1)
        except (*BROWSER_ERRORS, ViewerGone) as error:
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
            self.screencast.automated = self.automated()

    # -- the browser's side ----------------------------------------------------------
    def _on_event(self, event: dict) -> None:
        """Every event of the browser, on the greenlet reading the connection: it may send, never wait."""
        method, params = event["method"], event.get("params", {})
        watched = self.screencast.target_id
        if method == "Page.screencastFrame":
            self.screencast.on_frame(event.get("sessionId"), params)
        elif method in ("Target.targetCreated", "Target.targetInfoChanged"):
            info = params["targetInfo"]
            if info["type"] != "page":
                return
            new = info["targetId"] not in self.tabs
            moved = not new and info["targetId"] == watched and self.tabs[info["targetId"]]["url"] != info["url"]
            self.tabs[info["targetId"]] = _tab(info)
            if moved:
                self.screencast.navigated()
            if new and method == "Target.targetCreated" and watched is not None:
                # A tab a client opened is where its work goes next: the view follows it.
                gevent.spawn(self._watch_quietly, info["targetId"])
            else:
                self._send_tabs()
        elif method == "Target.targetDestroyed":
            if self.tabs.pop(params["targetId"], None) is None:
                return
            if params["targetId"] == watched:
                self.screencast.forget()
                if self.tabs:
                    gevent.spawn(self._watch_quietly, list(self.tabs)[-1])
            self._send_tabs()

    def watch(self, target_id: str) -> None:
        """Moves the view to an open tab."""
        self.screencast.watch(target_id, self.tabs.__contains__)

    def _watch_quietly(self, target_id: str) -> None:
        """A tab that closed while being attached to is no error: the next event picks another. The viewer hears
        the tabs either way, so a viewer's message is always answered."""
        try:
            self.watch(target_id)
        except BROWSER_ERRORS as error:
            log.debug("session %s: live view could not follow tab %s (%s)", self.session_id, target_id, error)
        self._send_tabs()

    def _send_tabs(self) -> None:
        try:
            self.viewer.send({"type": "tabs", "watched": self.screencast.target_id, "readOnly": self.read_only,
                              "tabs": [{"id": tid, **tab} for tid, tab in self.tabs.items()]})
        except ViewerGone:
            pass

    # -- the viewer's side -------------------------------------------------------------
    def _read_viewer(self) -> None:
        for message in self.viewer.messages():
            kind = message.get("type")
            if kind == "switch" and isinstance(message.get("targetId"), str):
                self._watch_quietly(message["targetId"])
            elif kind in INPUT_TYPES and not self.read_only and self.screencast.target_session is not None:
                self.screencast.last_input = time.monotonic()
                command = input_command(message, self.screencast.viewport)
                if command is not None:
                    self.cdp.send(*command, self.screencast.target_session)


def _tab(info: dict) -> dict:
    return {"url": info.get("url", ""), "title": info.get("title", "")}
