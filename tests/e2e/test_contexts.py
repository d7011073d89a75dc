"""Contexts: the API, and browser state saved at stop and restored at the next launch."""
from __future__ import annotations

import concurrent.futures
import re

import pytest

from tests.support.api import Api
from tests.support.browsing import visit
from tests.support.keys import make_key


@pytest.fixture
def context(api):
    created = api.post("/v1/contexts", json={"name": "shop login"})
    assert created.status_code == 201, created.text
    yield created.json()
    api.delete(f"/v1/contexts/{created.json()['id']}")


def test_create_get_list_delete(api):
    created = api.post("/v1/contexts", json={}).json()
    assert re.fullmatch(r"ctx_[0-9a-f]{32}", created["id"])
    assert set(created) == {"id", "name", "createdAt", "updatedAt", "cookieCount", "snapshotBytes", "lastSessionId"}
    assert created["cookieCount"] == 0 and created["snapshotBytes"] == 0 and created["lastSessionId"] is None
    assert api.get(f"/v1/contexts/{created['id']}").json() == created
    assert api.get("/v1/contexts").json()[0]["id"] == created["id"]
    assert api.delete(f"/v1/contexts/{created['id']}").status_code == 204
    assert api.get(f"/v1/contexts/{created['id']}").status_code == 404
    assert api.get(f"/v1/contexts/{created['id']}/cookies").status_code == 404
    assert api.delete(f"/v1/contexts/{created['id']}").status_code == 404


@pytest.mark.parametrize("body", [{"name": 5}, {"name": ""}, {"name": "x" * 201}, {"color": "red"}])
def test_invalid_context_body_is_422_and_creates_nothing(api, body):
    before = api.get("/v1/contexts").json()
    answer = api.post("/v1/contexts", json=body)
    assert answer.status_code == 422 and answer.json()["errors"]["json"]
    assert api.get("/v1/contexts").json() == before


def test_context_scopes_and_tenants(broker, api, context):
    reader = Api(broker.url, make_key(broker, scopes="contexts:read", project="default"))
    assert reader.post("/v1/contexts", json={}).status_code == 403
    assert reader.delete(f"/v1/contexts/{context['id']}").status_code == 403
    assert reader.get(f"/v1/contexts/{context['id']}").status_code == 200
    sessions_only = Api(broker.url, make_key(broker, scopes="sessions:read", project="default"))
    assert sessions_only.get("/v1/contexts").status_code == 403
    stranger = Api(broker.url, make_key(broker, scopes="contexts:read,contexts:write,sessions:write", project="other"))
    assert stranger.get(f"/v1/contexts/{context['id']}").status_code == 404
    assert stranger.delete(f"/v1/contexts/{context['id']}").status_code == 404
    assert stranger.post("/v1/sessions", json={"contextId": context["id"]}).status_code == 404
    assert context["id"] not in {c["id"] for c in stranger.get("/v1/contexts").json()}


def test_unknown_context_on_create_is_404_and_starts_nothing(broker, api):
    before = broker.footprint()
    answer = api.post("/v1/sessions", json={"contextId": "ctx_" + "0" * 32})
    assert answer.status_code == 404 and "ctx_" in answer.json()["message"]
    assert broker.footprint() == before


def test_state_survives_into_the_next_session_and_only_there(api, session_factory, pages, context):
    first = session_factory(api, contextId=context["id"])
    assert first["contextId"] == context["id"]
    visit(first["cdpUrl"], f"{pages.base}/set-cookie?name=auth&value=secret&httponly=1&persistent=1")
    visit(first["cdpUrl"], f"{pages.base}/set-cookie?name=visit&value=1")
    written = visit(first["cdpUrl"], f"{pages.base}/state", "state('kept-42')")
    assert written["local"] == "kept-42" and written["idb"] == "kept-42"
    stopped = api.stop_session(first["id"])
    assert stopped["snapshotError"] is None

    saved = api.get(f"/v1/contexts/{context['id']}").json()
    assert saved["lastSessionId"] == first["id"] and saved["snapshotBytes"] > 0 and saved["cookieCount"] == 3
    exported = api.get(f"/v1/contexts/{context['id']}/cookies").json()
    assert exported["contextId"] == context["id"] and exported["count"] == 3
    auth = next(c for c in exported["cookies"] if c["name"] == "auth")
    assert auth["value"] == "secret" and auth["httpOnly"] is True and auth["domain"] == "127.0.0.1"
    assert api.get(f"/v1/contexts/{context['id']}/cookies", params={"domain": "127.0.0.1"}).json()["count"] == 3
    assert api.get(f"/v1/contexts/{context['id']}/cookies", params={"domain": ".example.com"}).json()["count"] == 0

    second = session_factory(api, contextId=context["id"])
    sent = visit(second["cdpUrl"], f"{pages.base}/echo-cookies")
    assert "auth=secret" in sent and "js_cookie=kept-42" in sent
    restored = visit(second["cdpUrl"], f"{pages.base}/state", "state()")
    assert restored["local"] == "kept-42" and restored["idb"] == "kept-42"
    assert "auth" not in restored["cookie"]

    other = session_factory(api)
    assert visit(other["cdpUrl"], f"{pages.base}/echo-cookies").strip() == ""
    fresh = visit(other["cdpUrl"], f"{pages.base}/state", "state()")
    assert fresh["local"] is None and fresh["idb"] is None


def test_a_context_backs_one_running_session(api, session_factory, context):
    first = session_factory(api, contextId=context["id"])
    second = api.post("/v1/sessions", json={"contextId": context["id"]})
    assert second.status_code == 409 and first["id"] in second.json()["message"]
    assert api.delete(f"/v1/contexts/{context['id']}").status_code == 409
    api.stop_session(first["id"])
    third = session_factory(api, contextId=context["id"])
    assert third["status"] == "running"


def test_concurrent_creates_on_one_context_have_one_winner(api, session_factory, context):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: Api(api.base, api.http.headers["X-API-Key"]).post(
            "/v1/sessions", json={"contextId": context["id"]}), range(2)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201, 409], [a.text for a in answers]
    winner = next(a.json() for a in answers if a.status_code == 201)
    api.stop_session(winner["id"])


def test_delete_removes_snapshot_and_cookies(broker, api, session_factory, pages):
    context = api.post("/v1/contexts", json={}).json()
    session = session_factory(api, contextId=context["id"])
    visit(session["cdpUrl"], f"{pages.base}/set-cookie?name=a&value=b&persistent=1")
    api.stop_session(session["id"])
    snapshot_dir = broker.state_dir / "snapshots" / context["id"]
    assert len(list(snapshot_dir.glob("*.tar.zst"))) == 1
    assert api.delete(f"/v1/contexts/{context['id']}").status_code == 204
    assert not snapshot_dir.exists()
    assert not broker.store().contexts.cookies(context["id"])
    assert api.post("/v1/sessions", json={"contextId": context["id"]}).status_code == 404


def test_only_the_newest_snapshots_are_kept(broker, api, session_factory):
    context = api.post("/v1/contexts", json={}).json()
    for _ in range(3):
        api.stop_session(session_factory(api, contextId=context["id"])["id"])
    assert len(list((broker.state_dir / "snapshots" / context["id"]).glob("*.tar.zst"))) == 2
    api.delete(f"/v1/contexts/{context['id']}")
