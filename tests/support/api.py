"""A thin HTTP client for the broker, as a backend service would use it."""
from __future__ import annotations

import re
import time

import requests

from tests.support import secrets

#: How the API writes every timestamp: ISO-8601 UTC with a Z.
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class Api:
    def __init__(self, base: str, api_key: str | None) -> None:
        self.base = base
        self.http = requests.Session()
        if api_key:
            self.http.headers["X-API-Key"] = api_key
            secrets.remember("API key", api_key)

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        """Files each secret that passes (tests.support.secrets), for the check of every log."""
        kwargs.setdefault("timeout", 90)
        secrets.remember_request(kwargs.get("json"))
        answer = self.http.request(method, self.base + path, **kwargs)
        if answer.headers.get("Content-Type", "").startswith("application/json"):
            try:
                secrets.remember_answer(answer.json())
            except ValueError:
                pass
        return answer

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def create_session(self, **body) -> dict:
        answer = self.post("/v1/sessions", json=body)
        assert answer.status_code == 201, answer.text
        return answer.json()

    def stop_session(self, session_id: str, timeout: float = 30) -> dict:
        answer = self.delete(f"/v1/sessions/{session_id}")
        assert answer.status_code == 204, answer.text
        return self.wait_status(session_id, "stopped", timeout)

    def session_ids(self) -> set[str]:
        """The sessions of the key's project (the newest page), to show that a refused call started nothing."""
        return {s["id"] for s in self.get("/v1/sessions").json()}

    def wait_status(self, session_id: str, status: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            record = self.get(f"/v1/sessions/{session_id}").json()
            if record.get("status") == status or time.monotonic() > deadline:
                assert record.get("status") == status, record
                return record
            time.sleep(0.1)
