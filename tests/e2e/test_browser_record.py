"""A session record that tells the truth about its browser: closed or crashed browsers, failed first pages, paged lists."""
from __future__ import annotations

import signal

import psutil
import pytest

from tests.support.cdp import RawCdp, navigate
from tests.support.processes import free_port, wait_until

#: Noticed within the worker's housekeeping round plus the stop flow; generous for a loaded machine.
NOTICE_BOUND = 20


def browser_main_process(broker, session_id: str) -> psutil.Process:
    """The session's Chromium browser process: the one on its profile dir with no --type.

    The profile dir is named after the session, or after the warm browser the session took.
    """
    profile = f"--user-data-dir={broker.session_profiles()[session_id]}"
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if profile in cmdline and not any(arg.startswith("--type=") for arg in cmdline):
            return proc
    raise AssertionError(f"no browser process for {session_id}")


def close_over_cdp(cdp_url: str) -> None:
    """What ``browser.close()`` in Puppeteer sends."""
    with RawCdp(cdp_url) as cdp:
        cdp._ws.send('{"id": 1, "method": "Browser.close"}')


def set_cookie_through_page(cdp_url: str, pages, name: str) -> None:
    with RawCdp(cdp_url) as cdp:
        assert navigate(cdp, cdp.attach_new_page(), f"{pages.base}/set-cookie?name={name}&value=v1&persistent=1") is None


def test_a_browser_closed_over_cdp_stops_its_session_as_browser_closed(any_api, session_factory):
    session = session_factory(any_api)
    close_over_cdp(session["cdpUrl"])
    stopped = any_api.wait_status(session["id"], "stopped", timeout=NOTICE_BOUND)
    assert stopped["stopReason"] == "browser_closed"
    assert stopped["stoppedAt"]


def test_a_killed_browser_stops_its_session_and_frees_its_slot(any_api, any_broker, session_factory):
    session = session_factory(any_api)
    profile = any_broker.session_profiles()[session["id"]]
    browser_main_process(any_broker, session["id"]).send_signal(signal.SIGKILL)
    stopped = any_api.wait_status(session["id"], "stopped", timeout=NOTICE_BOUND)
    assert stopped["stopReason"] == "browser_closed"
    wait_until(lambda: not profile.exists() and session["id"] not in any_broker.session_profiles(), 20,
               message="the dead browser's profile to be removed")


def test_a_relay_client_is_told_when_the_browser_closes_by_itself(api, session_factory):
    session = session_factory(api)
    watcher = RawCdp(session["cdpUrl"])
    close_over_cdp(session["cdpUrl"])
    api.wait_status(session["id"], "stopped", timeout=NOTICE_BOUND)
    watcher.ws.settimeout(10)
    opcode, _ = watcher.ws.recv_data(control_frame=True)
    assert opcode == 0x8
    watcher.close()


def test_a_context_is_saved_with_its_cookies_when_the_browser_closes_cleanly(api, pages, session_factory):
    context = api.post("/v1/contexts", json={}).json()
    session = session_factory(api, contextId=context["id"])
    set_cookie_through_page(session["cdpUrl"], pages, "kept")
    close_over_cdp(session["cdpUrl"])
    stopped = api.wait_status(session["id"], "stopped", timeout=NOTICE_BOUND)
    assert stopped["stopReason"] == "browser_closed" and stopped["snapshotError"] is None
    names = [c["name"] for c in api.get(f"/v1/contexts/{context['id']}/cookies").json()["cookies"]]
    assert names == ["kept"]
    again = session_factory(api, contextId=context["id"])
    exported = api.get(f"/v1/sessions/{again['id']}/cookies").json()["cookies"]
    assert [c["name"] for c in exported] == ["kept"]


def test_a_crashed_browser_keeps_the_previous_snapshot_and_says_why(broker, api, pages, session_factory):
    context = api.post("/v1/contexts", json={}).json()
    first = session_factory(api, contextId=context["id"])
    set_cookie_through_page(first["cdpUrl"], pages, "first")
    api.stop_session(first["id"])
    version = api.get(f"/v1/contexts/{context['id']}").json()["snapshotBytes"]

    crashing = session_factory(api, contextId=context["id"])
    set_cookie_through_page(crashing["cdpUrl"], pages, "lost")
    browser_main_process(broker, crashing["id"]).send_signal(signal.SIGKILL)
    stopped = api.wait_status(crashing["id"], "stopped", timeout=NOTICE_BOUND)
    assert stopped["stopReason"] == "browser_closed"
    assert "crashed" in stopped["snapshotError"]
    assert api.get(f"/v1/contexts/{context['id']}").json()["snapshotBytes"] == version
    names = [c["name"] for c in api.get(f"/v1/contexts/{context['id']}/cookies").json()["cookies"]]
    assert names == ["first"]


@pytest.mark.parametrize(("path", "expected"), [("/status?code=404", "HTTP 404"), ("/status?code=503", "HTTP 503")])
def test_a_first_page_that_answers_an_error_status_is_reported(api, pages, session_factory, path, expected):
    session = session_factory(api, url=pages.base + path)
    assert session["status"] == "running"
    assert session["navigationError"] == expected
    assert api.get(f"/v1/sessions/{session['id']}").json()["navigationError"] == expected


def test_a_first_page_that_cannot_be_reached_is_reported(api, session_factory):
    """Every load goes through the browser's forwarder, which answers an unreachable http:// origin with a 502
    (an https:// one fails the tunnel: net::ERR_TUNNEL_CONNECTION_FAILED)."""
    port = free_port()
    session = session_factory(api, url=f"http://127.0.0.1:{port}/")
    assert session["status"] == "running"
    assert session["navigationError"] == "HTTP 502"
    tunnelled = session_factory(api, url=f"https://127.0.0.1:{port}/")
    assert tunnelled["navigationError"] == "net::ERR_TUNNEL_CONNECTION_FAILED"


def test_a_first_page_that_loads_has_no_navigation_error(api, pages, session_factory):
    assert session_factory(api, url=pages.base + "/?title=fine")["navigationError"] is None


# -- paged lists ------------------------------------------------------------------
def test_session_lists_are_paged_newest_first_with_the_pagination_header(api, session_factory):
    created = [session_factory(api)["id"] for _ in range(3)]
    answer = api.get("/v1/sessions", params={"page_size": 2, "status": "running"})
    assert answer.status_code == 200
    assert [s["id"] for s in answer.json()] == created[::-1][:2]
    header = answer.headers["X-Pagination"]
    assert '"page": 1' in header and '"first_page": 1' in header
    second = api.get("/v1/sessions", params={"page_size": 2, "page": 2, "status": "running"}).json()
    assert created[0] in [s["id"] for s in second]


@pytest.mark.parametrize("path", ["/v1/sessions", "/v1/contexts", "/v1/proxies"])
@pytest.mark.parametrize("params", [{"page": 0}, {"page_size": 0}, {"page_size": 100000}, {"page": "x"}])
def test_a_bad_page_is_a_422_and_changes_nothing(api, path, params):
    before = api.get(path).json()
    answer = api.get(path, params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == 422 and answer.json()["message"]
    assert api.get(path).json() == before


@pytest.mark.parametrize("path", ["/v1/contexts", "/v1/proxies"])
def test_context_and_proxy_lists_are_paged(api, path):
    body = {"server": "http://127.0.0.1:9"} if path == "/v1/proxies" else {}
    made = [api.post(path, json=body).json()["id"] for _ in range(3)]
    page = api.get(path, params={"page_size": 2}).json()
    assert [r["id"] for r in page] == made[::-1][:2]
    for record_id in made:
        assert api.delete(f"{path}/{record_id}").status_code == 204


