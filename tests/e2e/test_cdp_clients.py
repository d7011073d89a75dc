"""A session's cdpUrl driven the way users do: Puppeteer, Playwright, raw CDP, through the relay."""
from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct

import psutil
import pytest
import websocket

from tests.support.browsing import playwright_driver, puppeteer_drive
from tests.support.cdp import RawCdp
from tests.support.processes import gone, wait_until

BIG = 24 * 1024 * 1024


def test_puppeteer_connects_and_disconnect_keeps_browser(any_api, session_factory, pages):
    session = session_factory(any_api)
    first = puppeteer_drive(session["cdpUrl"], f"{pages.base}/page?title=first")
    assert first["title"] == "first" and first["heading"] == "first"
    assert first["webdriver"] is False
    assert "Chrome/" in first["version"]
    assert any_api.get(f"/v1/sessions/{session['id']}").json()["status"] == "running"
    second = puppeteer_drive(session["cdpUrl"], f"{pages.base}/page?title=second")
    assert second["title"] == "second"


def test_playwright_connect_over_cdp(any_api, session_factory, pages):
    session = session_factory(any_api)
    p = playwright_driver()
    browser = p.chromium.connect_over_cdp(session["cdpUrl"])
    page = browser.contexts[0].pages[0]
    page.goto(f"{pages.base}/page?title=playwright")
    assert page.inner_text("h1") == "playwright"
    browser.close()
    assert any_api.get(f"/v1/sessions/{session['id']}").json()["status"] == "running"
    cdp = RawCdp(session["cdpUrl"])
    assert cdp.call("Browser.getVersion")["product"].startswith("Chrome/")
    cdp.close()


def test_url_is_loaded_before_the_answer(any_api, session_factory, pages):
    url = f"{pages.base}/page?title=auto"
    session = session_factory(any_api, url=url)
    cdp = RawCdp(session["cdpUrl"])
    page_targets = [t for t in cdp.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
    assert [t["url"] for t in page_targets] == [url]
    assert page_targets[0]["title"] == "auto"
    cdp.close()


def test_two_sessions_are_separate_browsers(api, session_factory):
    a, b = session_factory(api), session_factory(api)
    cdp_a, cdp_b = RawCdp(a["cdpUrl"]), RawCdp(b["cdpUrl"])
    cookie = {"name": "only_a", "value": "1", "domain": "127.0.0.1", "path": "/"}
    cdp_a.call("Storage.setCookies", {"cookies": [cookie]})
    assert [c["name"] for c in cdp_a.call("Storage.getCookies")["cookies"]] == ["only_a"]
    assert cdp_b.call("Storage.getCookies")["cookies"] == []
    cdp_a.close(), cdp_b.close()


def test_frames_over_20_mb_pass_intact_both_ways(any_api, session_factory):
    session = session_factory(any_api)
    cdp = RawCdp(session["cdpUrl"])
    page = cdp.attach_new_page()
    text = cdp.evaluate(f"Array.from({{length: {BIG // 16}}}, (_, i) => String(i % 10007).padStart(16, '#')).join('')", page)
    expected = "".join(str(i % 10007).rjust(16, "#") for i in range(BIG // 16))
    assert hashlib.sha256(text.encode()).digest() == hashlib.sha256(expected.encode()).digest()
    literal = "z" * (21 * 1024 * 1024)
    assert cdp.evaluate(f"'{literal}'.length", page) == len(literal)
    cdp.close()


def test_full_page_screenshot_of_a_tall_page_arrives_intact(api, session_factory, pages):
    session = session_factory(api, url=f"{pages.base}/tall?height=4200")
    cdp = RawCdp(session["cdpUrl"])
    target = next(t for t in cdp.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
    page = cdp.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})["sessionId"]
    shot = cdp.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                               "clip": {"x": 0, "y": 0, "width": 1600, "height": 4200, "scale": 1}}, page)
    assert len(shot["data"]) > 20 * 1024 * 1024
    png = base64.b64decode(shot["data"], validate=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (1600, 4200)
    cdp.close()


def test_abrupt_client_drop_leaves_the_browser_usable(any_api, session_factory, pages):
    session = session_factory(any_api)
    dropped = RawCdp(session["cdpUrl"])
    page = dropped.attach_new_page(f"{pages.base}/page?title=kept")
    dropped.call("Runtime.evaluate", {"expression": "1+1"}, page)
    dropped.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    dropped.ws.sock.close()
    again = RawCdp(session["cdpUrl"])
    wait_until(lambda: "kept" in [t["title"] for t in again.call("Target.getTargets")["targetInfos"]], 10,
               message="the page opened before the drop")
    page = again.attach_new_page()
    assert again.evaluate("6*7", page) == 42
    again.close()


def test_a_clients_own_close_is_logged_as_the_clients(broker, api, session_factory):
    """A client that ends its socket without a close frame left by itself: the log must not blame the browser."""
    session = session_factory(api)
    client = RawCdp(session["cdpUrl"])
    client.call("Browser.getVersion")
    client.ws.sock.shutdown(socket.SHUT_WR)
    web_log = broker.workdir / f"web-{broker.port}.log"
    said = f"session {session['id']}: a client closed its connection"
    wait_until(lambda: said in web_log.read_text(errors="replace"), 10, message="the client's close in the web log")
    client.ws.sock.close()
    assert f"session {session['id']}: relay closed a client" not in web_log.read_text(errors="replace")


def test_several_clients_at_once(api, session_factory, pages):
    session = session_factory(api)
    clients = [RawCdp(session["cdpUrl"]) for _ in range(3)]
    sessions = [c.attach_new_page() for c in clients]
    for n, (client, page) in enumerate(zip(clients, sessions)):
        assert client.evaluate(f"{n} + 100", page) == n + 100
    assert puppeteer_drive(session["cdpUrl"], f"{pages.base}/page?title=beside")["title"] == "beside"
    for client in clients:
        client.close()


def test_a_client_that_connects_as_its_session_stops_still_hears_why(broker, api, session_factory):
    """The stop's announcement closes the clients registered at that moment; one upgraded just before (its record
    read while running) but registered after must hear the same reason, not a bare end of its browser."""
    proc, url = broker.start_another_web(BROKER_TEST_CLIENT_REGISTER_DELAY="3")
    try:
        session = session_factory(api)
        cdp = RawCdp(session["cdpUrl"].replace(broker.url.split("//")[1], url.split("//")[1]))
        assert api.delete(f"/v1/sessions/{session['id']}").status_code == 204
        cdp.ws.settimeout(15)
        frame = cdp.ws.recv_frame()
        assert frame.opcode == websocket.ABNF.OPCODE_CLOSE
        assert (struct.unpack(">H", frame.data[:2])[0], frame.data[2:]) == (1001, b"session stopped: deleted")
    finally:
        proc.terminate()
        proc.wait(15)


def test_stop_closes_connected_clients_with_a_reason(any_api, session_factory):
    session = session_factory(any_api)
    cdp = RawCdp(session["cdpUrl"])
    cdp.call("Browser.getVersion")
    assert any_api.delete(f"/v1/sessions/{session['id']}").status_code == 204
    cdp.ws.settimeout(15)
    # The raw frame: recv_data_frame would answer the close itself, into a socket the relay may have closed.
    frame = cdp.ws.recv_frame()
    assert frame.opcode == websocket.ABNF.OPCODE_CLOSE
    code = struct.unpack(">H", frame.data[:2])[0]
    assert code == 1001 and b"session stopped: deleted" in frame.data[2:]
    any_api.wait_status(session["id"], "stopped")
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        RawCdp(session["cdpUrl"])
    assert refused.value.status_code == 404


@pytest.mark.parametrize("query,status", [("", 401), ("?token=made-up", 404)])
def test_connecting_to_unknown_session_is_refused(broker, query, status):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        RawCdp(f"ws://127.0.0.1:{broker.port}/ws/session/ses_{'0' * 32}{query}")
    assert refused.value.status_code == status


def test_idle_client_gets_pings(api, session_factory):
    session = session_factory(api)
    cdp = RawCdp(session["cdpUrl"])
    cdp.ws.settimeout(10)
    frame = cdp.ws.recv_data_frame(control_frame=True)[1]
    assert frame.opcode == websocket.ABNF.OPCODE_PING
    assert cdp.call("Browser.getVersion")["product"]
    cdp.close()


def test_slow_reader_does_not_grow_relay_memory(broker, api, session_factory):
    """Backpressure: while a client reads nothing, the relay stops reading from Chromium."""
    session = session_factory(api)
    cdp = RawCdp(session["cdpUrl"])
    target, page = cdp.open_tab()
    web = psutil.Process(broker.web.pid)
    before = web.memory_info().rss
    expression = "'y'.repeat(30 * 1024 * 1024)"
    for n in range(4):
        cdp.ws.send(json.dumps({"id": 1000 + n, "method": "Runtime.evaluate", "params": {"expression": expression, "returnByValue": True}, "sessionId": page}))
    # The page runs evaluations in order: once a second client's answer is back, all four
    # results are in the browser's hands, waiting for the relay to read them.
    with RawCdp(session["cdpUrl"]) as second:
        same_page = second.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        assert second.evaluate("'after the four'", same_page) == "after the four"
    grown = web.memory_info().rss - before
    assert grown < 40 * 1024 * 1024, f"relay grew by {grown} bytes for 120 MB unread"
    answers = 0
    while answers < 4:
        if json.loads(cdp.ws.recv()).get("id", 0) >= 1000:
            answers += 1
    cdp.close()


def test_json_version_points_back_at_the_relay_token_included(api, session_factory):
    session = session_factory(api)
    token = session["cdpUrl"].split("?token=")[1]
    version = api.get(f"/ws/session/{session['id']}/json/version", params={"token": token}).json()
    assert version["webSocketDebuggerUrl"] == session["cdpUrl"]
    assert version["Browser"].startswith("Chrome/")
    assert api.get(f"/ws/session/{session['id']}", params={"token": token}).status_code == 426


def process_name(pid: int) -> str | None:
    """None once the process is gone."""
    try:
        return psutil.Process(pid).name()
    except psutil.NoSuchProcess:
        return None


def test_stopped_session_leaves_no_process_or_profile(any_broker, any_api):
    session = any_api.create_session()
    profile = any_broker.session_profiles()[session["id"]]
    # Each process's parent read in the same pass: a short-lived helper may exit, and its PID be reused, before a
    # second look (seen in CI).
    browser_procs = [p for p in psutil.process_iter(["cmdline", "ppid"])
                     if str(profile) in " ".join(p.info["cmdline"] or [])]
    assert browser_procs
    # ChromeDriver ends once its browser answers (the browser then belongs to PID 1): none may be left to end.
    parents = {p.info["ppid"] for p in browser_procs} - {p.pid for p in browser_procs}
    assert not [pid for pid in parents if process_name(pid) == "chromedriver"]
    tree = browser_procs
    any_api.stop_session(session["id"])
    wait_until(lambda: all(gone(p) for p in tree), 10,
               message="the session's Chromium and ChromeDriver to end")
    assert not profile.exists()
