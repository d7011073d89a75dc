"""A raw CDP client for tests that need to see frames and close codes exactly."""
from __future__ import annotations

import itertools
import json

import websocket


class RawCdp:
    def __init__(self, url: str, timeout: float = 60) -> None:
        self.ws = websocket.create_connection(url, timeout=timeout, skip_utf8_validation=True, suppress_origin=True)
        self._ids = itertools.count(1)

    def call(self, method: str, params: dict | None = None, session_id: str | None = None) -> dict:
        message_id = next(self._ids)
        message = {"id": message_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == message_id:
                assert "error" not in reply, reply
                return reply["result"]

    def evaluate(self, expression: str, session_id: str) -> object:
        return self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session_id)["result"]["value"]

    def attach_new_page(self, url: str = "about:blank") -> str:
        target = self.call("Target.createTarget", {"url": url})["targetId"]
        return self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def close(self) -> None:
        self.ws.close()
