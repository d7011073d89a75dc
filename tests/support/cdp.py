"""The worker's own CDP client, with what tests need on top: raw frames, and tabs opened as a user's script would."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import websocket

from core.cdp import CdpConnection

LOAD_TIMEOUT = 30


class RawCdp(CdpConnection):
    def __init__(self, url: str, timeout: float = 60) -> None:
        super().__init__(url, timeout=timeout)

    @property
    def ws(self) -> websocket.WebSocket:
        """The socket itself, for tests that read close frames and pings."""
        return self._ws

    def evaluate(self, expression: str, session_id: str, await_promise: bool = False) -> object:
        return self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                              "awaitPromise": await_promise}, session_id)["result"].get("value")

    def attach_first_page(self) -> str:
        """The flat CDP session of the browser's first tab (the one every browser starts with)."""
        target = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        return self.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})["sessionId"]

    def attach_new_page(self, url: str = "about:blank") -> str:
        return self.open_tab(url)[1]

    def open_tab(self, url: str = "about:blank") -> tuple[str, str]:
        """A new tab: its target id and the flat CDP session attached to it."""
        target = self.call("Target.createTarget", {"url": url})["targetId"]
        return target, self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]


@contextmanager
def new_tab(session: dict) -> Iterator[tuple[RawCdp, str]]:
    """A fresh tab at about:blank in the session's browser, over its cdpUrl, closed afterwards."""
    with RawCdp(session["cdpUrl"], timeout=LOAD_TIMEOUT) as cdp:
        target, page = cdp.open_tab()
        yield cdp, page
        cdp.call("Target.closeTarget", {"targetId": target})


@dataclass
class Load:
    error: str | None
    status: int | None = None
    title: str = ""
    text: str = ""


def navigate(cdp: RawCdp, page: str, url: str) -> str | None:
    """Navigate and wait for the load event; the network error, if the navigation failed."""
    cdp.call("Page.enable", session_id=page)
    navigated = cdp.call("Page.navigate", {"url": url}, session_id=page)
    if navigated.get("errorText"):
        return navigated["errorText"]
    assert cdp.wait_event("Page.loadEventFired", page, LOAD_TIMEOUT) is not None
    return None


def load(session: dict, url: str) -> Load:
    """Load ``url`` in a new tab: its HTTP status, title and text, or the network error."""
    with new_tab(session) as (cdp, page):
        error = navigate(cdp, page, url)
        if error:
            return Load(error)
        shown = cdp.evaluate("({status: performance.getEntriesByType('navigation')[0].responseStatus,"
                             " title: document.title, text: document.body ? document.body.innerText : ''})", page)
        return Load(None, shown["status"], shown["title"], shown["text"])


def evaluate(session: dict, expression: str) -> object:
    """An awaited expression in a fresh tab at about:blank."""
    with new_tab(session) as (cdp, page):
        return cdp.evaluate(expression, page, await_promise=True)


def page_view(session: dict, url: str) -> tuple[str, str]:
    """What a new tab loading ``url`` sends in its Cookie header (the page echoes it) and sees in document.cookie."""
    with new_tab(session) as (cdp, page):
        assert navigate(cdp, page, url) is None
        return cdp.evaluate("document.getElementById('c').textContent", page), cdp.evaluate("document.cookie", page)
