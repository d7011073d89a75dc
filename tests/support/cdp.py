"""The worker's own CDP client, with what tests need on top: raw frames, page helpers."""
from __future__ import annotations

import websocket

from core.cdp import CdpConnection


class RawCdp(CdpConnection):
    def __init__(self, url: str, timeout: float = 60) -> None:
        super().__init__(url, timeout=timeout)

    @property
    def ws(self) -> websocket.WebSocket:
        """The socket itself, for tests that read close frames and pings."""
        return self._ws

    def evaluate(self, expression: str, session_id: str) -> object:
        return self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session_id)["result"]["value"]

    def attach_new_page(self, url: str = "about:blank") -> str:
        target = self.call("Target.createTarget", {"url": url})["targetId"]
        return self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
