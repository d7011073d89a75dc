"""A project's ``recording`` default (PUT /v1/session-defaults) through ``create_app().test_client()``: stored,
shown and validated; a create's own ``recording`` wins over it, and BROKER_RECORDING decides when neither says. The
creates give up at once (no worker: BROKER_CREATE_WAIT is short), and the record they wrote says what was chosen.
tests/e2e/test_recording.py records a session by a project default with a real worker and browser."""
from __future__ import annotations


import pytest

from app import create_app
from core.states import SessionRecord
from core.store.projects import DEFAULT_PROJECT
from tests.support.settings import config_with

KEY = "bb_bootstrap-for-the-session-defaults-tests"
HEADERS = {"X-API-Key": KEY}


def client_for(store, recording: bool):
    config = config_with(REDIS_URL=store.config.redis_url, BROKER_ENV="development", BROKER_SECRET_KEY="", BROKER_BOOTSTRAP_API_KEY=KEY, BROKER_RECORDING=recording, BROKER_CREATE_WAIT=0.2, BROKER_LAUNCH_TIMEOUT=0.2)
    return create_app(config, store).test_client()


@pytest.fixture
def client(store):
    return client_for(store, recording=False)


def test_recording_default_is_stored_shown_and_cleared(client):
    assert client.get("/v1/session-defaults", headers=HEADERS).json["recording"] is None
    put = client.put("/v1/session-defaults", headers=HEADERS, json={"recording": True, "locale": "de-DE"})
    assert put.status_code == 200 and put.json["recording"] is True and put.json["locale"] == "de-DE"
    assert client.get("/v1/session-defaults", headers=HEADERS).json == put.json
    assert client.put("/v1/session-defaults", headers=HEADERS, json={"recording": False}).json["recording"] is False
    assert client.put("/v1/session-defaults", headers=HEADERS, json={}).json["recording"] is None


@pytest.mark.parametrize("value", ["yes", 1, "true", []])
def test_a_recording_default_that_is_not_a_boolean_is_refused(client, value):
    answer = client.put("/v1/session-defaults", headers=HEADERS, json={"recording": value})
    assert answer.status_code == 422
    assert "recording" in answer.json["errors"]["json"]
    assert client.get("/v1/session-defaults", headers=HEADERS).json["recording"] is None


def recorded(store, client, monkeypatch, **create) -> bool:
    """Whether the session a create wrote (and gave up on: no worker here) was to be recorded: the record as the
    create hands it to the store (an abandoned session is listed nowhere)."""
    written = []
    write = store.sessions.create
    monkeypatch.setattr(store.sessions, "create", lambda record, **kw: (written.append(record), write(record, **kw)))
    client.post("/v1/sessions", headers=HEADERS, json=create)
    [record] = written
    assert record["project"] == DEFAULT_PROJECT
    assert set(record) <= set(SessionRecord.__annotations__), "every field a create writes is in core.states' type"
    return record["recording"]


@pytest.mark.parametrize(("deployment", "project", "create", "expected"), [
    (False, None, None, False),
    (True, None, None, True),
    (False, True, None, True),
    (True, False, None, False),
    (False, True, False, False),
    (True, False, True, True),
], ids=["deployment off", "deployment on", "project on", "project off", "create off wins", "create on wins"])
def test_the_create_then_the_project_then_the_deployment_decides(store, monkeypatch, deployment, project, create,
                                                                 expected):
    client = client_for(store, recording=deployment)
    if project is not None:
        assert client.put("/v1/session-defaults", headers=HEADERS, json={"recording": project}).status_code == 200
    assert recorded(store, client, monkeypatch, **({} if create is None else {"recording": create})) is expected
