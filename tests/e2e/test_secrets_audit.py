"""An audit of secrets: API keys, a proxy password, connect tokens, gateway credentials and BROKER_SECRET_KEY,
then looked for in every log line of the suite's processes and in every answer.

Each secret is used the way a user (or an attacker with a wrong copy) would: keys
make calls, are revoked and tried again; the password carries a page load and a
check through a real upstream that demands it, and a wrong one is checked too;
tokens open the CDP socket, the discovery endpoint, and are guessed at. Answers
may carry a secret only where it is handed to its owner: a key in the answer
that created it, a token inside its own session's cdpUrl.
"""
from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

import requests

from core.gateway_auth import GatewayKey
from tests.support import secrets as ledger
from tests.support.api import Api
from tests.support.cdp import RawCdp
from tests.support.processes import SECRET_KEY, free_port
from tests.support.upstreams import HttpUpstream
from tests.support.sockets import raw_upgrade

USER = "audit-user"


class Recorder(Api):
    """An Api that keeps every answer's status line, headers and body."""

    def __init__(self, base: str, api_key: str | None, answers: list[str]) -> None:
        super().__init__(base, api_key)
        self.answers = answers

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        answer = super().request(method, path, **kwargs)
        self.answers.append(f"{answer.status_code} {dict(answer.headers)} {answer.text}")
        return answer


def test_no_secret_in_any_log_line_or_answer_but_where_it_is_handed_over(broker, workdir, pages):
    answers: list[str] = []
    owner = Recorder(broker.url, broker.api_key, answers)

    # API keys: one made through the API (its create answer is where it is handed over), used, revoked, tried.
    created = owner.post("/v1/keys", json={"name": "audit", "scopes": ["sessions:read", "sessions:write",
                                                                      "proxies:read", "proxies:write"]})
    key_handed_over = answers.pop()
    minted = created.json()["key"]
    caller = Recorder(broker.url, minted, answers)
    assert caller.get("/v1/sessions").status_code == 200

    # A proxy password, used for real: an upstream that demands it carries a page load and a check.
    password = "pw-" + secrets.token_urlsafe(16)
    wrong_password = "pw-" + secrets.token_urlsafe(16)
    upstream = HttpUpstream(workdir, f"audit-{free_port()}", USER, password).start()
    try:
        proxy = caller.post("/v1/proxies", json={"server": upstream.server, "username": USER, "password": password}).json()
        wrong = caller.post("/v1/proxies", json={"server": upstream.server, "username": USER,
                                                 "password": wrong_password}).json()
        target = pages.base.removeprefix("http://")
        assert caller.post(f"/v1/proxies/{proxy['id']}/check", json={"target": target}).json()["reachable"]
        assert not caller.post(f"/v1/proxies/{wrong['id']}/check", json={"target": target}).json()["reachable"]

        # Connect tokens: a session through the proxy, driven over its cdpUrl, its discovery URL, guesses at it.
        session = caller.create_session(proxyId=proxy["id"], url=f"{pages.base}/page?title=audited")
        assert session["navigationError"] is None
        token = parse_qs(urlsplit(session["cdpUrl"]).query)["token"][0]
        cdp = RawCdp(session["cdpUrl"])
        assert cdp.call("Browser.getVersion")["product"]
        cdp.close()
        version = caller.get(f"/ws/session/{session['id']}/json/version", params={"token": token})
        assert version.json()["webSocketDebuggerUrl"] == session["cdpUrl"]
        for guess in (token[:-2], token.upper(), ""):
            assert raw_upgrade(broker.port, f"/ws/session/{session['id']}?token={guess}")[0] in (401, 404)
        caller.get("/v1/sessions"), caller.get(f"/v1/proxies/{proxy['id']}"), caller.get("/v1/proxies")
        owner.get("/v1/keys")
        caller.stop_session(session["id"])
        for proxy_id in (proxy["id"], wrong["id"]):
            caller.delete(f"/v1/proxies/{proxy_id}")
    finally:
        upstream.stop()
    owner.delete(f"/v1/keys/{created.json()['id']}")
    assert caller.get("/v1/sessions").status_code == 401

    # Every log line of the suite's processes (web, workers, Redis) so far, this run's included.
    logs = ledger.broker_logs(workdir)
    assert any(name.startswith("web-") for name in logs) and any(name.startswith("worker-") for name in logs)
    assert f"/ws/session/{session['id']}?token=[redacted]" in "".join(logs.values())
    # The owner sees the token inside the session's own cdpUrl (create, get, list, json/version): nowhere else.
    answers = [answer.replace(session["cdpUrl"], "<the session's cdpUrl>") for answer in answers]
    secrets_used = {"bootstrap API key": broker.api_key, "API key made by the API": minted,
                    "proxy password": password, "wrong proxy password": wrong_password,
                    "connect token": token, "BROKER_SECRET_KEY": SECRET_KEY,
                    "gateway credential": GatewayKey(SECRET_KEY).credential(session["id"])}
    for what, secret in secrets_used.items():
        assert not [name for name, text in logs.items() if secret in text], f"the {what} is in a log"
        assert not [answer for answer in answers if secret in answer], f"the {what} is in an answer"
    assert minted in key_handed_over
    # And every other secret the suite's tests have used so far (tests/support/secrets.py), live-view credentials too.
    assert all(secret in ledger.USED for secret in secrets_used.values())
    assert not ledger.found_in_logs(workdir)
