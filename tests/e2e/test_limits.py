"""Request limits: bodies over BROKER_MAX_BODY_BYTES answered 413 unread; session creates per key per minute."""
from __future__ import annotations

import json
import socket

import pytest

from tests.support.api import Api
from tests.support.keys import make_key
from tests.support.processes import end_process
from tests.support.sockets import read_answer

EIGHTY_MB = 80 * 1024 * 1024


@pytest.mark.parametrize("path", ["/v1/sessions", "/v1/proxies", "/v1/contexts"])
def test_declared_body_over_the_limit_is_413_before_any_of_it_is_sent(broker, api, path):
    """The answer arrives while the client has sent only headers: nothing of the 80 MB was waited for or read."""
    before = broker.footprint()
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as sock:
        sock.sendall((f"POST {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {broker.api_key}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {EIGHTY_MB}\r\n\r\n{{").encode())
        status, headers, raw = read_answer(sock)
    body = json.loads(raw)
    assert status == 413 and body["code"] == 413 and str(EIGHTY_MB) in body["message"]
    assert headers["connection"] == "close"
    assert broker.footprint() == before


def test_chunked_body_is_cut_off_at_the_limit(broker, api):
    sent = 0

    def chunks():
        nonlocal sent
        piece = b'{"url": "http://127.0.0.1/' + b"a" * (1024 * 1024)
        while sent < EIGHTY_MB:
            sent += len(piece)
            yield piece

    before = broker.footprint()
    answer = api.post("/v1/sessions", data=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and answer.json()["code"] == 413
    assert broker.footprint() == before


def test_body_just_under_the_limit_is_read(api):
    """The limit refuses size, not content: a large body within it gets the ordinary validation answer."""
    padding = "x" * (8 * 1024 * 1024 - 100)
    answer = api.post("/v1/contexts", data=json.dumps({"name": padding}), headers={"Content-Type": "application/json"})
    assert answer.status_code == 422 and "name" in answer.json()["errors"]["json"]


def test_cookie_put_of_the_most_cookies_of_the_largest_size_fits(api, session_factory):
    """BROKER_COOKIE_MAX_COUNT cookies at BROKER_COOKIE_MAX_BYTES, longest domain and path: under the body limit."""
    session = session_factory(api)
    label = "d" * 63
    cookies = [{"name": f"c{i:04d}", "value": "v" * (4096 - 5),
                "domain": f".{i:04d}{label[4:]}.{label}.{label}.{label[:55]}.test", "path": "/" + "p" * 1023}
               for i in range(1000)]
    body = json.dumps({"cookies": cookies, "mode": "replace"})
    assert 5_000_000 < len(body) < 8 * 1024 * 1024 and len(cookies[0]["domain"]) == 253
    answer = api.put(f"/v1/sessions/{session['id']}/cookies", data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text[:500]
    assert answer.json()["count"] == 1000


def test_session_creates_per_key_per_minute_are_capped(broker):
    web, url = broker.start_another_web(BROKER_SESSION_CREATES_PER_MINUTE="2")
    key = make_key(broker, scopes="sessions:read,sessions:write", project="rate")
    other = make_key(broker, scopes="sessions:read,sessions:write", project="rate")
    busy, calm = Api(url, key), Api(url, other)
    try:
        assert busy.post("/v1/sessions", json={"timeout": 0}).status_code == 422
        busy.create_session()
        busy.create_session()
        before = broker.footprint()
        refused = busy.post("/v1/sessions", json={})
        assert refused.status_code == 429 and "2 sessions a minute" in refused.json()["message"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert broker.footprint() == before
        calm.create_session()
    finally:
        owner = Api(broker.url, key)
        for session_id in owner.session_ids():
            owner.stop_session(session_id)
        end_process(web)
