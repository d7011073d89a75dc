"""A session's event log (issue 28): what a team debugging a failed browser job reads after the fact, or tails live.

One deployment (Redis database 56) and a page server of the module's own: a page that logs a console error and
makes a fetch that fails, and a second page; Playwright drives them through the cdpUrl as a user's script does.
"""
from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from tests.support.api import Api
from tests.support.browsing import playwright_driver
from tests.support.keys import make_key
from tests.support.pages import html_site
from tests.support.processes import Broker, wait_until

#: Broken fetch target: a loopback port nothing listens on (the deployment's egress allows loopback).
FAILING_PAGE = """<!doctype html><title>failing</title><h1>failing</h1><script>
console.error('the job broke: %s', 'no widget');
fetch('http://127.0.0.1:9/nothing-here').catch(() => { document.title = 'fetched'; });
</script>"""


def _page(path: str, _query: dict[str, str]) -> str:
    return FAILING_PAGE if path.startswith("/failing") else "<!doctype html><title>next</title><h1>next</h1>"


@pytest.fixture(scope="module")
def site():
    with html_site(_page) as base:
        yield base


@pytest.fixture(scope="module")
def logged(deploy) -> Broker:
    broker = deploy(56)
    broker.start_worker("logged")
    return broker


@pytest.fixture
def log_api(logged) -> Api:
    return Api(logged.url, logged.api_key)


def events(api: Api, session_id: str, **query: str) -> list[dict]:
    answer = api.get(f"/v1/sessions/{session_id}/events", params=query)
    assert answer.status_code == 200, answer.text
    return answer.json()["events"]


def wait_for(api: Api, session_id: str, found, timeout: float = 20) -> list[dict]:
    """The log once ``found(log)`` holds."""
    seen: list[dict] = []

    def look() -> bool:
        seen[:] = events(api, session_id, limit="1000")
        return bool(found(seen))

    wait_until(look, timeout, message=f"events of {session_id}: {seen}")
    return seen


def test_the_log_lists_navigations_a_console_error_and_a_failed_fetch_in_order(log_api, session_factory, site):
    session = session_factory(log_api)
    browser = playwright_driver().chromium.connect_over_cdp(session["cdpUrl"])
    try:
        page = browser.contexts[0].pages[0]
        page.goto(f"{site}/failing")
        page.wait_for_function("document.title === 'fetched'")
        page.goto(f"{site}/next")
    finally:
        browser.close()
    log = wait_for(log_api, session["id"], lambda log: any(e["type"] == "client_disconnected" for e in log)
                   and any(e["type"] == "navigation" and e["url"].endswith("/next") for e in log))
    kinds = [e["type"] for e in log]
    assert kinds[0] == "created"
    failing = next(i for i, e in enumerate(log) if e["type"] == "navigation" and e["url"] == f"{site}/failing")
    console = next(i for i, e in enumerate(log) if e["type"] == "console")
    failed = next(i for i, e in enumerate(log) if e["type"] == "request_failed")
    following = next(i for i, e in enumerate(log) if e["type"] == "navigation" and e["url"] == f"{site}/next")
    assert failing < console < failed < following, kinds
    assert log[failing]["status"] == 200 and log[following]["status"] == 200
    assert log[console]["level"] == "error" and log[console]["text"] == "the job broke: %s no widget"
    assert log[failed]["url"] == "http://127.0.0.1:9/nothing-here" and log[failed]["resourceType"] == "Fetch"
    assert log[failed].get("error") or log[failed].get("status", 0) >= 400
    tab = log[failing]["tabId"]
    assert log[console]["tabId"] == tab == log[following]["tabId"]
    connected = next(e for e in log if e["type"] == "client_connected")
    assert connected["address"] == "127.0.0.1" and connected.get("userAgent"), connected
    ids = [e["id"] for e in log]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))), "oldest first, newest last"

    log_api.stop_session(session["id"])
    log = wait_for(log_api, session["id"], lambda log: log[-1]["type"] == "stopped")
    stopping = next(e for e in log if e["type"] == "stopping")
    assert stopping["reason"] == log[-1]["reason"] == "deleted"
    assert [e["type"] for e in log].count("stopped") == 1


def test_pages_follow_the_cursor(log_api, session_factory, site):
    session = session_factory(log_api, url=f"{site}/next")
    first = log_api.get(f"/v1/sessions/{session['id']}/events", params={"limit": "1"}).json()
    assert first["hasMore"] is True and [e["type"] for e in first["events"]] == ["created"]
    rest = events(log_api, session["id"], since=first["next"])
    assert rest and rest[0]["type"] == "navigation" and rest[0]["url"] == f"{site}/next"
    assert events(log_api, session["id"], since=rest[-1]["id"]) == []


def test_the_stream_delivers_an_event_while_the_session_runs_and_ends_after_its_stop(log_api, session_factory, site):
    session = session_factory(log_api)
    heard: list[dict] = []
    opened = threading.Event()

    def tail() -> None:
        with requests.get(f"{log_api.base}/v1/sessions/{session['id']}/events/stream", stream=True, timeout=60,
                          headers=dict(log_api.http.headers)) as answer:
            assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/event-stream")
            opened.set()
            for line in answer.iter_lines(decode_unicode=True):
                if line.startswith("data: "):
                    heard.append(json.loads(line[6:]))

    reader = threading.Thread(target=tail, daemon=True)
    reader.start()
    assert opened.wait(10)
    browser = playwright_driver().chromium.connect_over_cdp(session["cdpUrl"])
    try:
        browser.contexts[0].pages[0].goto(f"{site}/next")
        wait_until(lambda: any(e["type"] == "navigation" for e in heard), 15, message=f"a navigation in {heard}")
    finally:
        browser.close()
    assert reader.is_alive(), "the stream stays open while the session runs"
    log_api.stop_session(session["id"])
    reader.join(15)
    assert not reader.is_alive(), "the stream ends once the session has stopped"
    assert heard[0]["type"] == "created" and heard[-1]["type"] == "stopped"


def test_the_stream_resumes_after_last_event_id(log_api, session_factory, site):
    session = session_factory(log_api, url=f"{site}/next")
    log_api.stop_session(session["id"])
    created = events(log_api, session["id"])[0]
    answer = requests.get(f"{log_api.base}/v1/sessions/{session['id']}/events/stream", timeout=30,
                          headers={**log_api.http.headers, "Last-Event-ID": created["id"]})
    ids = [line[4:] for line in answer.text.splitlines() if line.startswith("id: ")]
    assert ids and created["id"] not in ids
    assert answer.text.rstrip().endswith('"stopped"}') or '"type": "stopped"' in answer.text


def test_another_projects_key_gets_404(logged, log_api, session_factory):
    session = session_factory(log_api)
    other = Api(logged.url, make_key(logged, scopes="sessions:read,sessions:write", project="elsewhere"))
    for path in ("events", "events/stream", "recording"):
        answer = other.get(f"/v1/sessions/{session['id']}/{path}")
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["code"] == 404
    assert other.delete(f"/v1/sessions/{session['id']}/recording").status_code == 404


@pytest.mark.parametrize("query", [{"since": "abc"}, {"since": "1-2-3"}, {"since": ""}, {"limit": "0"},
                                   {"limit": "100000"}, {"limit": "ten"}])
def test_bad_inputs_get_json_errors_and_change_nothing(log_api, session_factory, query):
    session = session_factory(log_api)
    # The worker's writer thread logs "created" beside the create's answer, not before it.
    before = wait_for(log_api, session["id"], lambda log: any(e["type"] == "created" for e in log))
    for path in ("events", "events/stream"):
        if path.endswith("stream") and "limit" in query:
            continue
        answer = log_api.get(f"/v1/sessions/{session['id']}/{path}", params=query)
        assert answer.status_code == 422, (path, query, answer.text)
        assert answer.headers["Content-Type"] == "application/json" and answer.json()["code"] == 422
    assert events(log_api, session["id"]) == before
    time.sleep(0.2)
    assert log_api.get(f"/v1/sessions/{session['id']}").json()["status"] == "running"
