"""Saved proxies for tests, created through the API and deleted when the test is done."""
from __future__ import annotations

from tests.support.api import Api


class ProxyFactory:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.created: list[str] = []

    def __call__(self, server: str, password: str | None = None, username: str | None = None, **body: str) -> dict:
        """Fields left None are not sent."""
        fields = {"server": server, "username": username, "password": password, **body}
        answer = self.api.post("/v1/proxies", json={k: v for k, v in fields.items() if v is not None})
        assert answer.status_code == 201, answer.text
        self.created.append(answer.json()["id"])
        return answer.json()

    def delete_all(self) -> None:
        for proxy_id in self.created:
            self.api.delete(f"/v1/proxies/{proxy_id}")
