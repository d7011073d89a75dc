"""The cdpUrl's connect token: the credential that opens a session's CDP socket, apart from its id."""
from __future__ import annotations

import json
import socket
from urllib.parse import parse_qs, urlsplit

import pytest

from core.ids import sha256_hex
from tests.support.browsing import playwright_driver, puppeteer_drive
from tests.support.cdp import RawCdp
from tests.support.processes import wait_until
from tests.support.sockets import raw_upgrade


def token_of(session: dict) -> str:
    return parse_qs(urlsplit(session["cdpUrl"]).query)["token"][0]


def test_cdp_url_carries_a_256_bit_token_kept_only_as_its_hash(broker, api, session_factory):
    session = session_factory(api)
    token = token_of(session)
    assert len(token) == 43 and set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    record = broker.store().sessions.get(session["id"])
    assert record["connectTokenHash"] == sha256_hex(token)
    redis = broker.store().redis
    assert not [key for key in redis.keys("*") if redis.type(key) == "string" and token in (redis.get(key) or "")]
    assert api.get(f"/v1/sessions/{session['id']}").json()["cdpUrl"] == session["cdpUrl"]
    listed = next(s for s in api.get("/v1/sessions").json() if s["id"] == session["id"])
    assert listed["cdpUrl"] == session["cdpUrl"]
    assert "connectTokenHash" not in session and "connectSalt" not in session


def test_each_client_kind_connects_with_the_token(broker, api, session_factory, pages):
    """puppeteer.connect, Playwright over ws:// and http://, and a plain WebSocket on the seed's URL shape."""
    session = session_factory(api)
    assert puppeteer_drive(session["cdpUrl"], f"{pages.base}/page?title=tok")["title"] == "tok"
    http_form = session["cdpUrl"].replace("ws://", "http://", 1)
    p = playwright_driver()
    for endpoint in (session["cdpUrl"], http_form):
        browser = p.chromium.connect_over_cdp(endpoint)
        page = browser.contexts[0].new_page()
        page.goto(f"{pages.base}/page?title=pw")
        assert page.inner_text("h1") == "pw"
        page.close()
        browser.close()
    assert session["cdpUrl"].startswith(f"ws://127.0.0.1:{broker.port}/ws/session/{session['id']}?token=")
    cdp = RawCdp(session["cdpUrl"])
    assert cdp.call("Browser.getVersion")["product"].startswith("Chrome/")
    cdp.close()


def test_socket_is_refused_before_the_upgrade_without_the_right_token(broker, api, session_factory):
    mine, other = session_factory(api), session_factory(api)
    path = f"/ws/session/{mine['id']}"
    cases = [(path, 401), (f"{path}?token=", 401), (f"{path}?token=wrong", 404),
             (f"{path}?token={token_of(other)}", 404), (f"{path}?token={token_of(mine)[:-1]}", 404),
             (f"/ws/session/ses_{'0' * 32}?token={token_of(mine)}", 404)]
    bodies = set()
    for target, status in cases:
        code, headers, body = raw_upgrade(broker.port, target)
        assert code == status, (target, code, body)
        assert headers["content-type"] == "application/json" and "upgrade" not in headers
        answer = json.loads(body)
        assert answer["code"] == status and set(answer) == {"code", "status", "message"}
        assert mine["id"].encode() not in body and other["id"].encode() not in body and token_of(mine).encode() not in body
        bodies.add((code, body))
    # Every 404 reads the same: unknown id, wrong token and another session's token are not told apart.
    assert len({body for code, body in bodies if code == 404}) == 1
    assert raw_upgrade(broker.port, f"{path}?token={token_of(mine)}")[0] == 101


def test_json_version_needs_the_token_and_hands_it_back(api, session_factory):
    session = session_factory(api)
    path = f"/ws/session/{session['id']}/json/version"
    assert api.get(path).status_code == 401
    assert api.get(path, params={"token": "wrong"}).status_code == 404
    version = api.get(path, params={"token": token_of(session)}).json()
    assert version["webSocketDebuggerUrl"] == session["cdpUrl"]


def test_token_is_dead_once_the_session_stops(broker, api, session_factory):
    session = session_factory(api)
    api.stop_session(session["id"])
    assert broker.store().sessions.get(session["id"])["connectTokenHash"] is None
    assert raw_upgrade(broker.port, urlsplit(session["cdpUrl"])._replace(scheme="", netloc="").geturl())[0] == 404
    path = f"/ws/session/{session['id']}/json/version"
    assert api.get(path, params={"token": token_of(session)}).status_code == 404


def test_access_log_redacts_the_token(broker, api, session_factory):
    session = session_factory(api)
    token = token_of(session)
    cdp = RawCdp(session["cdpUrl"])
    cdp.call("Browser.getVersion")
    cdp.close()
    api.get(f"/ws/session/{session['id']}/json/version", params={"token": token})
    api.get(f"/ws/session/{session['id']}", params={"token": "guessed-" + token[:8]})
    log = (broker.workdir / f"web-{broker.port}.log").read_text(errors="replace")
    assert f"/ws/session/{session['id']}?token=[redacted]" in log
    assert token not in log and token[:8] not in log


@pytest.mark.parametrize("line", ["GET /ws/session/ses_1?token=SECRET HTTP/9.9", "BREW /x?token=SECRET HTTP/1.1"])
def test_malformed_request_lines_are_logged_without_the_token(broker, line):
    web_log = broker.workdir / f"web-{broker.port}.log"
    redacted = web_log.read_text(errors="replace").count("token=[redacted]")
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as sock:
        sock.sendall(f"{line}\r\nHost: x\r\n\r\n".encode())
        sock.recv(4096)
    # The line is logged after the answer: wait for it (read at once, the log could not yet hold any secret).
    wait_until(lambda: web_log.read_text(errors="replace").count("token=[redacted]") > redacted, 10,
               message="the malformed request's log line")
    assert "SECRET" not in web_log.read_text(errors="replace")
