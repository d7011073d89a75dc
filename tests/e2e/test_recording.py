"""Recordings (issue 28): a recorded session's pages replay in a real browser, the pages cannot find the recorder, and
a lost worker keeps what it wrote.

One deployment (Redis database 57, no warm browsers) and a page server of the module's own: a form
whose page script hunts for the recorder, and the page the form leads to, which greets the typed name.
"""
from __future__ import annotations

import gzip
import json
import signal
import time
from html import escape

import pytest
import requests

from tests.support.api import Api
from tests.support.browsing import playwright_driver
from tests.support.pages import html_site
from tests.support.processes import Broker, wait_until
from tests.support.viewer import CHROMIUM, own_temp, person_flags

TYPED = "Ada Lovelace typed this"
#: What a page's own script can try: find the recorder by any global name, reach its binding, remove it.
HUNT = """<script>
const found = Object.getOwnPropertyNames(window).filter((k) => /rrweb|bbRecord|^__bb/i.test(k));
if (typeof rrweb !== 'undefined') found.push('rrweb');
if (typeof __bbRecorderEmit !== 'undefined') found.push('binding');
try { delete window.rrweb; delete window.__bbRecorderEmit; } catch (e) {}
document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('found').textContent = found.length ? found.join(',') : 'nothing';
  setTimeout(() => { document.getElementById('after').textContent = 'changed after the hunt'; }, 300);
});
</script>"""
FORM = f"""<!doctype html><title>form</title>{HUNT}
<p id=found></p><p id=after></p>
<form action="/second"><input id=name name=name autocomplete=off><button id=go>Go</button></form>"""


def _page(path: str, query: dict[str, str]) -> str:
    if path == "/second":
        return f"<!doctype html><title>second</title><h1 id=hello>Hello, {escape(query.get('name', ''))}</h1>"
    return FORM


@pytest.fixture(scope="module")
def site():
    with html_site(_page) as base:
        yield base


@pytest.fixture(scope="module")
def recorded(deploy) -> Broker:
    # No warm browsers: a worker killed (or stopped) while launching one leaves that browser behind, with no PID
    # file yet for its next life to end it by; this module kills its worker on purpose.
    broker = deploy(57, BROKER_WARM_BROWSERS="0")
    broker.start_worker("recorder")
    return broker


@pytest.fixture
def rec_api(recorded) -> Api:
    return Api(recorded.url, recorded.api_key)


def fill_and_follow(cdp_url: str, site: str) -> str:
    """A user's Playwright script: types into the form, clicks through to the second page; what the hunt found."""
    browser = playwright_driver().chromium.connect_over_cdp(cdp_url)
    try:
        page = browser.contexts[0].pages[0]
        page.goto(f"{site}/form")
        page.wait_for_function("() => document.getElementById('after').textContent !== ''")
        found = page.inner_text("#found")
        page.type("#name", TYPED, delay=20)
        page.click("#go")
        page.wait_for_selector("#hello")
        time.sleep(0.5)
        return found
    finally:
        browser.close()


def recording_of(api: Api, session_id: str) -> list[dict]:
    answer = api.get(f"/v1/sessions/{session_id}/recording")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Encoding"] == "gzip" and answer.headers["Content-Type"] == "application/json"
    return answer.json()


def test_a_recorded_session_replays_in_a_real_browser_with_the_typed_text(rec_api, session_factory, site):
    session = session_factory(rec_api, recording=True)
    assert session["recording"] is True and session["recordingUrl"].startswith(f"{rec_api.base}/replay/{session['id']}?token=")
    assert fill_and_follow(session["cdpUrl"], site) == "nothing", "the page's own script found the recorder"
    rec_api.stop_session(session["id"])

    events = recording_of(rec_api, session["id"])
    text = json.dumps(events)
    assert TYPED in text and "changed after the hunt" in text, "typing and the DOM change after the hunt recorded"
    assert [e["type"] for e in events].count(2) >= 2, "a full snapshot for each page"
    assert len({e["tabId"] for e in events}) == 1
    assert typed_as_input(events, TYPED)

    answer = requests.get(session["recordingUrl"], timeout=30)
    assert answer.status_code == 200 and "script-src 'self'" in answer.headers["Content-Security-Policy"]
    assert requests.get(session["recordingUrl"] + "x", timeout=30).status_code == 404
    with own_temp() as env, playwright_driver().chromium.launch(executable_path=CHROMIUM, args=person_flags(),
                                                                env=env) as person:
        page = person.new_page()
        page.goto(session["recordingUrl"])
        page.wait_for_function("() => window.bbReplay && window.bbReplay.player", timeout=30_000)
        frame = "document.querySelector('.replayer-wrapper iframe').contentDocument"
        page.evaluate("() => window.bbReplay.player.goto(0, true)")
        page.wait_for_function(f"() => {frame}.getElementById('name')?.value === {json.dumps(TYPED)}",
                               polling="raf", timeout=20_000)
        page.wait_for_function(f"() => ({frame}.getElementById('hello')?.textContent || '').includes({json.dumps(TYPED)})",
                               timeout=20_000)
        dashboard = person.new_page()
        dashboard.goto(f"{rec_api.base}/dashboard")
        dashboard.fill("#key", rec_api.http.headers["X-API-Key"])
        dashboard.click("#login button[type=submit]")
        replay = dashboard.locator(f"#sessions tr[data-id='{session['id']}'] a", has_text="replay")
        assert replay.get_attribute("href") == session["recordingUrl"], "the dashboard links the replay"


def full_snapshots(events: list[dict]) -> list[str]:
    return [json.dumps(event["data"]) for event in events if event["type"] == 2]


def recorded_while(rec_api: Api, session_factory, act) -> list[dict]:
    """The recording of a session whose Playwright client does ``act(browser)`` and then stops the session."""
    session = session_factory(rec_api, recording=True)
    browser = playwright_driver().chromium.connect_over_cdp(session["cdpUrl"])
    try:
        act(browser)
        rec_api.stop_session(session["id"])
    finally:
        browser.close()
    return recording_of(rec_api, session["id"])


def typed_as_input(events: list[dict], text: str) -> bool:
    """Whether ``text`` was recorded as the user's input (an incremental event, source 5), not only in a snapshot."""
    return any(e["type"] == 3 and e["data"].get("source") == 5 and e["data"].get("text") == text for e in events)


def test_a_page_stopped_right_after_its_load_has_its_full_snapshot(rec_api, session_factory, site):
    """A page's recording waits for its first input or a quiet moment; a stop ends the browser first, and no page
    hears of it: the worker starts each page's recording before the browser ends, so the snapshot is there, with
    what the page's script changed and what a script set without typing."""
    def act(browser) -> None:
        page = browser.contexts[0].pages[0]
        page.goto(f"{site}/form")
        page.evaluate("() => { document.getElementById('name').value = 'set without typing'; }")

    (snapshot,) = full_snapshots(recorded_while(rec_api, session_factory, act))
    assert '"id": "name"' in snapshot and "set without typing" in snapshot and "nothing" in snapshot, snapshot[:2000]


def test_a_tab_closed_right_after_its_load_has_its_full_snapshot(rec_api, session_factory, site):
    """A tab the script closes before any input or quiet moment: the recorder snapshots as the tab goes
    (``pagehide``, which reaches the worker for a closed tab), not at the stop, when the tab is gone."""
    def act(browser) -> None:
        tab = browser.contexts[0].new_page()
        tab.goto(f"{site}/form")
        tab.evaluate("() => { document.getElementById('name').value = 'closed at once'; }")
        tab.close()

    snapshots = full_snapshots(recorded_while(rec_api, session_factory, act))
    assert any("closed at once" in snapshot for snapshot in snapshots), [s[:300] for s in snapshots]


def test_text_typed_right_after_the_load_is_recorded(rec_api, session_factory, site):
    """The first key starts the page's recording before the page hears it: the snapshot is taken as the page was,
    and every key after it is recorded as the user's input."""
    def act(browser) -> None:
        page = browser.contexts[0].pages[0]
        page.goto(f"{site}/form")
        page.type("#name", TYPED)

    events = recorded_while(rec_api, session_factory, act)
    assert len(full_snapshots(events)) == 1
    assert typed_as_input(events, TYPED)


def test_a_document_written_into_the_first_blank_tab_is_recorded(rec_api, session_factory):
    """A tab's first about:blank gets the recorder only once a script writes a document into it (setContent)."""
    def act(browser) -> None:
        page = browser.contexts[0].pages[0]
        page.set_content(FORM.replace(HUNT, ""))
        page.type("#name", TYPED)

    events = recorded_while(rec_api, session_factory, act)
    assert len(full_snapshots(events)) == 1
    assert typed_as_input(events, TYPED)


def test_an_unrecorded_session_has_no_recording(rec_api, session_factory):
    session = session_factory(rec_api)
    assert session["recording"] is False and session["recordingUrl"] is None
    answer = rec_api.get(f"/v1/sessions/{session['id']}/recording")
    assert answer.status_code == 404 and answer.json()["code"] == 404


def test_a_project_default_records_a_create_that_says_nothing(rec_api, session_factory, site):
    assert rec_api.put("/v1/session-defaults", json={"recording": True}).json()["recording"] is True
    try:
        session = session_factory(rec_api, url=f"{site}/form")
    finally:
        assert rec_api.put("/v1/session-defaults", json={}).status_code == 200
    assert session["recording"] is True and session["recordingUrl"]
    rec_api.stop_session(session["id"])
    assert [e["type"] for e in recording_of(rec_api, session["id"])].count(2) >= 1, "the form page's snapshot"


def test_a_deleted_recording_is_gone_and_its_link_dead(rec_api, session_factory, site):
    session = session_factory(rec_api, recording=True, url=f"{site}/form")
    assert rec_api.delete(f"/v1/sessions/{session['id']}/recording").status_code == 409, "running: not yet"
    rec_api.stop_session(session["id"])
    assert recording_of(rec_api, session["id"])
    assert rec_api.delete(f"/v1/sessions/{session['id']}/recording").status_code == 204
    assert rec_api.get(f"/v1/sessions/{session['id']}/recording").status_code == 404
    assert rec_api.get(f"/v1/sessions/{session['id']}").json()["recordingUrl"] is None
    assert requests.get(session["recordingUrl"], timeout=30).status_code == 404
    assert rec_api.delete(f"/v1/sessions/{session['id']}/recording").status_code == 404


def test_bad_recording_input_gets_422_and_starts_nothing(rec_api):
    before = rec_api.session_ids()
    answer = rec_api.post("/v1/sessions", json={"recording": "yes"})
    assert answer.status_code == 422 and "recording" in answer.json()["errors"]["json"]
    assert rec_api.session_ids() == before


def test_a_lost_worker_keeps_the_chunks_written_before(recorded, rec_api, site):
    """Last in the module: it SIGKILLs the module's worker, then starts it again to end what it left."""
    session = rec_api.create_session(recording=True)
    browser = playwright_driver().chromium.connect_over_cdp(session["cdpUrl"])
    page = browser.contexts[0].pages[0]
    page.goto(f"{site}/form")
    page.type("#name", TYPED, delay=10)
    wait_until(lambda: TYPED in json.dumps(recording_of(rec_api, session["id"])), 20,
               message="the typed text in a chunk written while the session runs")
    before = recording_of(rec_api, session["id"])
    recorded.stop_worker("recorder@test", signal.SIGKILL)
    browser.close()
    recorded.start_worker("recorder")
    # The killed life's heartbeat still counts for a few seconds: the new one is up once it says so.
    wait_until(lambda: recorded.worker_log("recorder").count("recorder@test ready.") == 2, 60,
               message="the worker's new life, which ends what the killed one left")
    assert rec_api.wait_status(session["id"], "stopped", timeout=60)["stopReason"] == "worker_lost"
    after = recording_of(rec_api, session["id"])
    assert after[:len(before)] == before and TYPED in json.dumps(after)
    raw = requests.get(f"{rec_api.base}/v1/sessions/{session['id']}/recording", stream=True, timeout=30,
                       headers=dict(rec_api.http.headers))
    assert json.loads(gzip.decompress(raw.raw.read())) == after, "one gzip stream, whatever the chunks"
