"""API keys: 401 without or with an unknown key, 403 without the scope, other projects' sessions are 404."""
from __future__ import annotations

import subprocess
import sys

import pytest

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


def test_key_without_scope_is_403_and_starts_nothing(broker, api):
    reader = Api(broker.url, make_key(broker, scopes="sessions:read", project="default"))
    before = len(api.get("/v1/sessions").json())
    answer = reader.post("/v1/sessions", json={})
    assert answer.status_code == 403 and "sessions:write" in answer.json()["message"]
    assert reader.get("/v1/sessions").status_code == 200
    assert len(api.get("/v1/sessions").json()) == before


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
