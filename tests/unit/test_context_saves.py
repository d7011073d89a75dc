"""A context's save commits its snapshot pointer, cookies and figures together, or nothing (issue 25, item 4)."""
from __future__ import annotations

import pytest

from core.ids import new_id
from core.session_machine import LOST_BEFORE_SAVE, SessionMachine
from core.store.contexts import SaveRefused
from tests.support.records import PROJECT, running_session

COOKIES = [{"name": "ck", "value": "v3", "domain": "example.com", "path": "/", "secure": False, "httpOnly": False,
            "sameSite": "Lax", "expires": None}]


@pytest.fixture
def machine(store) -> SessionMachine:
    return SessionMachine(store)


def new_context(store) -> dict:
    record = {"id": new_id("ctx"), "project": PROJECT, "name": None, "createdAt": "2026-01-01T00:00:00Z",
              "updatedAt": "2026-01-01T00:00:00Z", "cookieCount": 0, "snapshotBytes": 0, "lastSessionId": None,
              "snapshotVersion": None, "snapshotVersions": []}
    store.contexts.create(record)
    return record


def test_a_commit_changes_pointer_cookies_and_figures_together(store, machine):
    context = new_context(store)
    session_id = running_session(machine, contextId=context["id"])
    assert store.contexts.commit_save(context["id"], session_id, "v1", 1234, COOKIES, keep=2) == []
    record = store.contexts.get(context["id"])
    assert record["snapshotVersion"] == "v1" and record["snapshotVersions"] == ["v1"]
    assert record["snapshotBytes"] == 1234 and record["cookieCount"] == 1 and record["lastSessionId"] == session_id
    assert record["updatedAt"] != context["updatedAt"]
    assert store.contexts.cookies(context["id"]) == COOKIES


def test_a_lost_sessions_late_save_commits_nothing(store, machine):
    """Its worker was declared lost while still saving: the hold is gone, so the context stays as it was."""
    context = new_context(store)
    session_id = running_session(machine, contextId=context["id"])
    machine.lose(session_id)
    with pytest.raises(SaveRefused, match="worker_lost"):
        store.contexts.commit_save(context["id"], session_id, "v1", 1234, COOKIES, keep=2)
    assert store.contexts.get(context["id"]) == context
    assert store.contexts.cookies(context["id"]) == []


def test_a_save_into_a_deleted_context_commits_nothing(store, machine):
    context = new_context(store)
    session_id = running_session(machine, contextId=context["id"])
    store.contexts.delete(context["id"], PROJECT)
    with pytest.raises(SaveRefused, match="deleted"):
        store.contexts.commit_save(context["id"], session_id, "v1", 1234, COOKIES, keep=2)
    assert store.contexts.get(context["id"]) is None and store.contexts.cookies(context["id"]) == []


def test_a_lost_session_says_its_context_was_not_saved(store, machine):
    context = new_context(store)
    session_id = running_session(machine, contextId=context["id"])
    assert machine.lose(session_id)["snapshotError"] == LOST_BEFORE_SAVE


def test_a_session_lost_after_its_save_committed_reports_no_error(store, machine):
    context = new_context(store)
    session_id = running_session(machine, contextId=context["id"])
    store.contexts.commit_save(context["id"], session_id, "v1", 1234, COOKIES, keep=2)
    assert machine.lose(session_id).get("snapshotError") is None


def test_a_lost_session_without_a_context_has_no_snapshot_error(store, machine):
    assert machine.lose(running_session(machine)).get("snapshotError") is None
