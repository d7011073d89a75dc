"""The Sessions API as API.md states it: status codes, fields, and bad input that changes nothing."""
from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest

from tests.support.api import ISO_Z
from tests.support.browsing import playwright_driver



def test_create_answers_201_with_a_running_session(api, session_factory, broker):
    session = session_factory(api)
    assert session["status"] == "running"
    assert re.fullmatch(r"ses_[0-9a-f]{32}", session["id"])
    assert re.fullmatch(rf"ws://127\.0\.0\.1:{broker.port}/ws/session/{session['id']}\?token=[A-Za-z0-9_-]{{43}}",
                        session["cdpUrl"])
    assert ISO_Z.match(session["createdAt"]) and ISO_Z.match(session["expiresAt"])
    assert session["contextId"] is None and session["proxyId"] is None
    assert session["stoppedAt"] is None and session["stopReason"] is None
    assert set(session) == {"id", "cdpUrl", "status", "contextId", "proxyId", "createdAt", "expiresAt",
                            "stoppedAt", "stopReason", "snapshotError", "navigationError", "idleTimeout",
                            "downloadError", "liveViewUrl", "liveViewReadOnlyUrl", "worker", "browserOptions", "launch",
                            "recording", "recordingUrl", "movable", "moving", "checkpointInterval",
                            "checkpointedAt", "restoredFrom"}
    assert re.fullmatch(rf"http://127\.0\.0\.1:{broker.port}/live/{session['id']}\?token=[A-Za-z0-9_-]{{43}}",
                        session["liveViewUrl"])


def test_timeout_sets_expires_at(api, session_factory):
    session = session_factory(api, timeout=120)
    created = time.mktime(time.strptime(session["createdAt"], "%Y-%m-%dT%H:%M:%SZ"))
    expires = time.mktime(time.strptime(session["expiresAt"], "%Y-%m-%dT%H:%M:%SZ"))
    assert 118 <= expires - created <= 125


def test_get_and_list_newest_first_with_status_filter(api, session_factory):
    first = session_factory(api)
    second = session_factory(api)
    assert api.get(f"/v1/sessions/{first['id']}").json()["id"] == first["id"]
    listed = [s["id"] for s in api.get("/v1/sessions").json()]
    assert listed.index(second["id"]) < listed.index(first["id"])
    api.stop_session(first["id"])
    running = {s["id"] for s in api.get("/v1/sessions", params={"status": "running"}).json()}
    stopped = {s["id"] for s in api.get("/v1/sessions", params={"status": "stopped"}).json()}
    assert second["id"] in running and first["id"] not in running
    assert first["id"] in stopped


def test_delete_stops_and_is_idempotent(api, session_factory):
    session = session_factory(api)
    stopped = api.stop_session(session["id"])
    assert stopped["stopReason"] == "deleted" and ISO_Z.match(stopped["stoppedAt"])
    assert api.delete(f"/v1/sessions/{session['id']}").status_code == 204
    assert api.get(f"/v1/sessions/{session['id']}").json()["status"] == "stopped"


@pytest.mark.parametrize("path", ["/v1/sessions/ses_00000000000000000000000000000000", "/v1/sessions/nope"])
def test_unknown_session_is_404(api, path):
    for method in ("GET", "DELETE"):
        answer = api.request(method, path)
        assert answer.status_code == 404
        assert answer.json()["code"] == 404 and answer.json()["message"]


BAD_BODIES = [
    ({"timeout": "60"}, "timeout"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": 86401}, "timeout"),
    ({"timeout": 1.5}, "timeout"),
    ({"url": "ftp://example.com/"}, "url"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"url": 42}, "url"),
    ({"contextId": 7}, "contextId"),
    ({"idleTimeout": 0}, "idleTimeout"),
    ({"idleTimeout": "5"}, "idleTimeout"),
    ({"color": "blue"}, "color"),
]


@pytest.mark.parametrize("body,field", BAD_BODIES)
def test_invalid_create_body_is_422_and_starts_nothing(broker, api, body, field):
    before = broker.footprint()
    answer = api.post("/v1/sessions", json=body)
    assert answer.status_code == 422, answer.text
    payload = answer.json()
    assert payload["code"] == 422 and payload["status"] == "Unprocessable Entity" and payload["message"]
    assert field in payload["errors"]["json"]
    assert broker.footprint() == before


@pytest.mark.parametrize(
    "data,content_type",
    [("{not json", "application/json"), ("url=http://x", "application/x-www-form-urlencoded"), ("[1,", "application/json")],
)
def test_malformed_body_is_400_and_starts_nothing(broker, api, data, content_type):
    before = broker.footprint()
    answer = api.post("/v1/sessions", data=data, headers={"Content-Type": content_type})
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == 400 and answer.json()["message"]
    assert broker.footprint() == before


def test_json_that_is_not_an_object_is_422(broker, api):
    before = broker.footprint()
    assert api.post("/v1/sessions", json=[1, 2]).status_code == 422
    assert broker.footprint() == before


def test_unknown_status_filter_is_422(api):
    answer = api.get("/v1/sessions", params={"status": "exploded"})
    assert answer.status_code == 422
    assert "status" in answer.json()["errors"]["query"]


def test_openapi_document_and_docs(api):
    spec = api.get("/openapi.json").json()
    assert "/v1/sessions" in spec["paths"] and "/v1/sessions/{session_id}" in spec["paths"]
    assert spec["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    assert api.get("/docs").status_code == 200


def test_openapi_document_states_optional_bodies_every_status_and_links(api):
    spec = api.get("/openapi.json").json()
    create = spec["paths"]["/v1/sessions"]["post"]
    assert create["requestBody"]["required"] is False
    assert spec["paths"]["/v1/contexts"]["post"]["requestBody"]["required"] is False
    assert {"201", "400", "401", "403", "404", "409", "413", "422", "429", "503"} <= set(create["responses"])
    assert create["responses"]["201"]["links"]["StopSession"] == {
        "operationId": "stopSession", "parameters": {"session_id": "$response.body#/id"}}
    operations = [op for path in spec["paths"].values() for op in path.values() if isinstance(op, dict)]
    assert operations and not [op for op in operations if "default" in op["responses"]]
    assert "?token=" in spec["components"]["schemas"]["Session"]["properties"]["cdpUrl"]["pattern"]


@pytest.mark.parametrize("method,path,allowed", [
    ("PATCH", "/v1/sessions", {"GET", "POST"}),
    ("PUT", f"/v1/sessions/ses_{'0' * 32}", {"GET", "DELETE"}),
    ("DELETE", "/v1/keys", {"GET", "POST"}),
])
def test_unsupported_method_is_405_with_allow(api, method, path, allowed):
    answer = api.request(method, path, json={})
    assert answer.status_code == 405 and answer.json()["code"] == 405
    assert allowed <= {m.strip() for m in answer.headers["Allow"].split(",")}


def test_docs_render_with_nothing_fetched_from_off_the_machine(api, session_factory, broker):
    """A self-hosted service's docs must work on a network with no way out (Swagger UI is served locally)."""
    session = session_factory(api)
    elsewhere: list[str] = []

    def only_loopback(route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            return route.continue_()
        elsewhere.append(route.request.url)
        return route.abort()

    p = playwright_driver()
    browser = p.chromium.connect_over_cdp(session["cdpUrl"])
    page = browser.contexts[0].pages[0]
    page.route("**/*", only_loopback)
    page.goto(f"{broker.url}/docs")
    page.wait_for_selector(".opblock-summary-path[data-path=\"/v1/sessions\"]", timeout=15000)
    browser.close()
    assert elsewhere == []


def test_health_and_readiness(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["workers"] >= 1
