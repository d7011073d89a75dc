"""API keys: 401 without or with an unknown key, 403 without the scope, other projects' sessions are 404."""
from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from tests.support.api import Api
from tests.support.keys import make_key
from tests.support.processes import ROOT


def cli_key(broker, *, scopes: str, project: str) -> str:
    """Through the operator's command, as the README says."""
    out = subprocess.run(
        [sys.executable, "-m", "app", "keys", "create", "--name", "t", "--scopes", scopes, "--project", project],
        cwd=ROOT, env=broker.env, capture_output=True, text=True, check=True,
    )
    return out.stdout.strip()


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "bb_not-a-real-key"}])
def test_missing_or_unknown_key_is_401(broker, headers):
    for method, path in [("GET", "/v1/sessions"), ("POST", "/v1/sessions"), ("DELETE", f"/v1/sessions/ses_{'0' * 32}")]:
        answer = Api(broker.url, None).request(method, path, headers=headers, json={})
        assert answer.status_code == 401
        assert answer.json()["code"] == 401 and answer.json()["message"]


#: Requests that routing alone would answer 404, 405 or 400: without a valid key, each is a 401 first.
BEFORE_ROUTING = [
    ("GET", "/v1/sessions/ses_doesnotexist"), ("DELETE", "/v1/sessions/ses_doesnotexist"),
    ("GET", "/v1/sessions/ses_doesnotexist/cookies"), ("GET", "/v1/proxies/prx_1"), ("GET", "/v1/keys/key_"),
    ("GET", "/v1/nothing-here"), ("POST", "/v1/nothing/here"), ("GET", "/v1"), ("GET", "/v1/"),
    ("PATCH", "/v1/sessions"), ("PUT", "/v1/contexts"), ("OPTIONS", "/v1/sessions"),
]


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "bb_not-a-real-key"}])
def test_every_v1_request_without_a_valid_key_is_401_before_routing(broker, headers):
    """An unknown path, a malformed id, a wrong method or a body that is not JSON tells nothing without a key."""
    anonymous = Api(broker.url, None)
    for method, path in BEFORE_ROUTING:
        answer = anonymous.request(method, path, headers=headers)
        assert answer.status_code == 401, (method, path, answer.status_code)
        assert answer.json()["code"] == 401 and answer.json()["status"] and answer.json()["message"], (method, path)
    not_json = anonymous.request("POST", "/v1/sessions", data="{not json", headers={**headers, "Content-Type": "text/plain"})
    assert not_json.status_code == 401 and not_json.json()["code"] == 401


def test_with_a_valid_key_routing_answers_as_before(api):
    for method, path in BEFORE_ROUTING:
        answer = api.request(method, path)
        expected = {"PATCH": 405, "PUT": 405, "OPTIONS": 200}.get(method, 404)
        assert answer.status_code == expected, (method, path, answer.status_code)
        if expected != 200:
            assert answer.json()["code"] == expected
    assert api.post("/v1/sessions", data="{not json", headers={"Content-Type": "text/plain"}).status_code == 400


def test_a_key_with_sessions_read_only_sees_sessions_but_gets_nothing_that_drives_them(broker, session_factory):
    """No connect token and no live view that takes input; the read-only live view it keeps, and it opens."""
    writer = Api(broker.url, make_key(broker, scopes="sessions:read,sessions:write", project="read-only-view"))
    reader = Api(broker.url, make_key(broker, scopes="sessions:read", project="read-only-view"))
    session = session_factory(writer)
    connect_token = session["cdpUrl"].split("token=")[1]
    control_token = session["liveViewUrl"].split("token=")[1]
    one = reader.get(f"/v1/sessions/{session['id']}")
    listed = reader.get("/v1/sessions")
    running = reader.get("/v1/sessions", params={"status": "running"})
    for answer in (one, listed, running):
        assert answer.status_code == 200, answer.text
        assert connect_token not in answer.text and control_token not in answer.text
    for shown in (one.json(), *listed.json(), *running.json()):
        assert shown["id"] == session["id"] and shown["status"] == "running"
        assert shown["cdpUrl"] is None and shown["liveViewUrl"] is None
        assert shown["liveViewReadOnlyUrl"] == session["liveViewReadOnlyUrl"]
    assert requests.get(one.json()["liveViewReadOnlyUrl"], timeout=10).status_code == 200
    # The key that may drive it still gets everything.
    mine = writer.get(f"/v1/sessions/{session['id']}").json()
    assert mine["cdpUrl"] == session["cdpUrl"] and mine["liveViewUrl"] == session["liveViewUrl"]


def test_key_without_scope_is_403_and_starts_nothing(broker, api):
    reader = Api(broker.url, make_key(broker, scopes="sessions:read", project="default"))
    before = broker.footprint()
    answer = reader.post("/v1/sessions", json={})
    assert answer.status_code == 403 and "sessions:write" in answer.json()["message"]
    assert reader.get("/v1/sessions").status_code == 200
    assert broker.footprint() == before


def test_key_is_shown_once_and_stored_as_hash(broker):
    key = cli_key(broker, scopes="sessions:read", project="p")
    store = broker.store()
    assert not store.redis.keys(f"*{key}*")
    assert store.api_keys.get(key)["scopes"] == ["sessions:read"]


def test_unknown_scope_is_refused_by_the_cli(broker):
    result = subprocess.run(
        [sys.executable, "-m", "app", "keys", "create", "--name", "t", "--scopes", "sessions:fly"],
        cwd=ROOT, env=broker.env, capture_output=True, text=True,
    )
    assert result.returncode != 0 and "scopes must be among" in result.stderr


def test_other_projects_sessions_are_404(broker, api, session_factory):
    other = Api(broker.url, make_key(broker, scopes="sessions:read,sessions:write", project="other"))
    mine = session_factory(api)
    assert other.get(f"/v1/sessions/{mine['id']}").status_code == 404
    assert other.delete(f"/v1/sessions/{mine['id']}").status_code == 404
    assert mine["id"] not in {s["id"] for s in other.get("/v1/sessions").json()}
    assert api.get(f"/v1/sessions/{mine['id']}").json()["status"] == "running"


def test_project_session_limit_answers_429(broker, session_factory):
    subprocess.run([sys.executable, "-m", "app", "projects", "set", "--project", "limited", "--max-sessions", "1"],
                   cwd=ROOT, env=broker.env, check=True, capture_output=True)
    limited = Api(broker.url, make_key(broker, scopes="sessions:read,sessions:write", project="limited"))
    first = session_factory(limited)
    refused = limited.post("/v1/sessions", json={})
    assert refused.status_code == 429 and "1 sessions at once" in refused.json()["message"]
    assert refused.headers["Retry-After"]
    assert [s["id"] for s in limited.get("/v1/sessions").json()] == [first["id"]]
    limited.stop_session(first["id"])
    session_factory(limited)
