"""The live view and the dashboard, opened by a person's browser (Playwright's own headless Chromium).

The deployment reaches its browsers only through the worker's gateway
(BROKER_GATEWAY_ALWAYS), as a web process on another host would, and its
live-view links last 60 s: longer than any test here keeps a view open on a busy
machine (at 20 s a CI run's view ended mid-test). The expiry test's links come
from a second web process whose links last SHORT_TTL.
While a CDP client is connected, a viewer gets at most BUSY_FPS frames a second.
Redis database 30.
"""
from __future__ import annotations

import json
import time

import pytest
import requests
import websocket
from playwright.sync_api import Page

from tests.support.api import Api
from tests.support.browsing import playwright_driver
from tests.support.processes import Broker, end_process, wait_until
from tests.support.viewer import ANIMATE, CHROMIUM, near, own_temp, person_flags, pixels, wait_frames

LINK_TTL = 60
SHORT_TTL = 6
BUSY_FPS = 2
RED, BLUE, WHITE = (220, 30, 40), (30, 60, 220), (255, 255, 255)
NOT_AVAILABLE = "This live view is not available"


@pytest.fixture(scope="module")
def deployment(deploy) -> Broker:
    broker = deploy(30, BROKER_LAUNCHER="direct", BROKER_POOL_SIZE="3", BROKER_WARM_BROWSERS="0",
                    BROKER_GATEWAY_ALWAYS="1", BROKER_LIVE_VIEW_TTL=str(LINK_TTL),
                    BROKER_LIVE_VIEW_MAX_FPS="10", BROKER_LIVE_VIEW_BUSY_FPS=str(BUSY_FPS))
    broker.start_worker("live")
    return broker


@pytest.fixture
def live_api(deployment) -> Api:
    api = Api(deployment.url, deployment.api_key)
    yield api
    for session in api.get("/v1/sessions", params={"status": "running"}).json():
        api.stop_session(session["id"])


@pytest.fixture(scope="module")
def playwright():
    return playwright_driver()


@pytest.fixture(scope="module")
def person(playwright):
    """The person's browser: not a session, launched by the test itself."""
    with own_temp() as env:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=person_flags(), env=env)
        yield browser
        browser.close()


def session_page(playwright, session: dict) -> tuple:
    """The session's first tab, driven over CDP as a user's script drives it (beside the live view)."""
    client = playwright.chromium.connect_over_cdp(session["cdpUrl"])
    return client, client.contexts[0].pages[0]


def open_view(person, url: str) -> Page:
    view = person.new_page(viewport={"width": 1000, "height": 700})
    answer = view.goto(url)
    assert answer.status == 200
    wait_frames(view)
    return view


def at(view: Page, fx: float, fy: float) -> tuple[float, float]:
    """Where on the viewer's screen a point of the session's page is, as fractions of its viewport."""
    box = view.locator("#screen").bounding_box()
    return box["x"] + box["width"] * fx, box["y"] + box["height"] * fy


def colours(person, view: Page, points: list[tuple[float, float]]) -> list[tuple[int, int, int]]:
    """A screenshot of the viewer's picture, and its colours at fractions of it."""
    box = view.locator("#screen").bounding_box()
    shot = view.locator("#screen").screenshot()
    return pixels(person, shot, [(int(box["width"] * fx), int(box["height"] * fy)) for fx, fy in points])


def wait_colour(person, view: Page, point: tuple[float, float], colour: tuple[int, int, int], timeout: float = 20) -> None:
    wait_until(lambda: near(colours(person, view, [point])[0], colour), timeout, interval=0.2,
               message=f"the live view to show {colour} at {point}")


def test_the_live_view_shows_the_page_and_its_clicks_typing_and_navigation_reach_it(live_api, playwright, person, pages):
    session = live_api.create_session(url=f"{pages.base}/live")
    client, page = session_page(playwright, session)
    view = open_view(person, session["liveViewUrl"])
    assert [near(c, e) for c, e in zip(colours(person, view, [(0.1, 0.1), (0.75, 0.25)]), (BLUE, RED))] == [True, True]

    view.mouse.click(*at(view, 0.25, 0.25))
    page.wait_for_function("() => window.clicks === 1")
    view.mouse.click(*at(view, 0.25, 0.75))
    view.keyboard.type("hello live")
    page.wait_for_function("() => document.getElementById('t').value === 'hello live'")

    page.goto(f"{pages.base}/?title=moved")
    view.wait_for_function("() => document.getElementById('address').textContent.endsWith('/?title=moved')")
    wait_colour(person, view, (0.75, 0.5), WHITE)
    client.close()


def frames_in(view: Page, seconds: float, meanwhile=lambda: None) -> int:
    """Frames the viewer showed over ``seconds``, calling ``meanwhile`` every 0.2 s."""
    start = view.evaluate("window.liveView.frames")
    for _ in range(int(seconds / 0.2)):
        meanwhile()
        view.wait_for_timeout(200)
    return view.evaluate("window.liveView.frames") - start


def test_the_view_gets_fewer_frames_while_a_cdp_client_works_the_session_unless_the_person_uses_it(
        live_api, playwright, person, pages):
    """Each frame costs the session's browser a capture, which slows the client's calls: with a client connected a
    person only watching gets BUSY_FPS; one moving the mouse over the view, or with no client on the session, more.
    Bounds, not timings: the fewer-frames side is a cap, the other side only has to clear it by far."""
    session = live_api.create_session(url=f"{pages.base}/?title=busy")
    client, page = session_page(playwright, session)
    page.evaluate(ANIMATE)
    view = open_view(person, session["liveViewUrl"])
    view.wait_for_timeout(1500)
    assert frames_in(view, 4) <= BUSY_FPS * 4 + 2

    moves = iter(range(10_000))
    assert frames_in(view, 3, lambda: view.mouse.move(*at(view, 0.2 + (next(moves) % 5) / 10, 0.5))) > BUSY_FPS * 3 + 2

    client.close()
    view.wait_for_timeout(1500)
    assert frames_in(view, 4) > BUSY_FPS * 4 + 2


def test_a_read_only_view_passes_no_input(live_api, playwright, person, pages):
    """Neither the watch-only link, with its readOnly=1 removed, nor a full link with readOnly=1 sends input."""
    session = live_api.create_session(url=f"{pages.base}/live")
    client, page = session_page(playwright, session)
    watch_only = session["liveViewReadOnlyUrl"].replace("&readOnly=1", "")
    for url in (watch_only, session["liveViewUrl"] + "&readOnly=1"):
        view = open_view(person, url)
        assert view.locator("#mode").text_content() == "read-only"
        view.mouse.click(*at(view, 0.25, 0.25))
        view.mouse.click(*at(view, 0.25, 0.75))
        view.keyboard.type("nope")
        # A message after the input that the server answers: it has handled the input before it.
        answered = view.evaluate("window.liveView.tabUpdates")
        view.locator(".tab.watched").click()
        view.wait_for_function("n => window.liveView.tabUpdates > n", arg=answered)
        view.close()
    control = open_view(person, session["liveViewUrl"])
    control.mouse.click(*at(control, 0.25, 0.25))
    page.wait_for_function("() => window.clicks >= 1")
    assert page.evaluate("[window.clicks, document.getElementById('t').value]") == [1, ""]
    client.close()


def test_the_view_follows_a_new_tab_and_switches_between_tabs(live_api, playwright, person, pages):
    session = live_api.create_session(url=f"{pages.base}/live")
    client, page = session_page(playwright, session)
    view = open_view(person, session["liveViewUrl"])
    second = client.contexts[0].new_page()
    second.goto(f"{pages.base}/?title=second")
    view.wait_for_function("() => document.getElementById('address').textContent.endsWith('/?title=second')")
    wait_colour(person, view, (0.75, 0.5), WHITE)
    assert view.locator(".tab").count() == 2
    view.locator(".tab", has_text="live").click()
    view.wait_for_function("() => document.getElementById('address').textContent.endsWith('/live')")
    wait_colour(person, view, (0.75, 0.25), RED)
    client.close()


def test_links_are_refused_when_foreign_revoked_or_used_as_a_connect_token(live_api, person):
    first, other = live_api.create_session(), live_api.create_session()
    token = first["liveViewUrl"].split("token=")[1]
    connect_token = first["cdpUrl"].split("token=")[1]
    foreign = other["liveViewUrl"].split("?")[0] + f"?token={token}"
    for url in (foreign, first["liveViewUrl"].replace(token, connect_token)):
        assert requests.get(url, timeout=10).status_code == 404
        view = person.new_page()
        view.goto(url)
        view.wait_for_function("() => window.liveView.ended")
        assert NOT_AVAILABLE in view.locator("#notice").text_content()
        view.close()
    # The live-view credential opens no CDP socket.
    as_cdp = first["cdpUrl"].replace(connect_token, token)
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(as_cdp, timeout=10)
    assert requests.get(as_cdp.replace("ws://", "http://").replace("?", "/json/version?"), timeout=10).status_code == 404

    view = open_view(person, first["liveViewUrl"])
    assert live_api.delete(f"/v1/sessions/{first['id']}/live-view").status_code == 204
    view.wait_for_function("() => window.liveView.ended")
    assert "revoked" in view.locator("#notice").text_content()
    assert requests.get(first["liveViewUrl"], timeout=10).status_code == 404
    renewed = live_api.get(f"/v1/sessions/{first['id']}").json()["liveViewUrl"]
    assert renewed != first["liveViewUrl"] and requests.get(renewed, timeout=10).status_code == 200
    # An expired link is refused too: test_an_open_view_and_its_link_end_when_the_link_expires waits out the TTL once for both.


def test_an_open_view_and_its_link_end_when_the_link_expires(deployment, live_api):
    """Nothing renews the link meanwhile (no answer shows the session): the viewer opened with it closes at its
    expiry, SHORT_TTL after the create, not whenever the person leaves. Then the link itself is refused, and the
    next answer showing the session hands out a fresh one that opens.

    The links come from a second web process of the deployment with BROKER_LIVE_VIEW_TTL=SHORT_TTL: a link's
    expiry is stored with its session, and the view, served by that process, ends at it."""
    web, url = deployment.start_another_web(BROKER_LIVE_VIEW_TTL=str(SHORT_TTL))
    try:
        _open_view_until_its_link_expires(Api(url, deployment.api_key))
    finally:
        end_process(web)


def _open_view_until_its_link_expires(api: Api) -> None:
    issued = time.time()
    session = api.create_session()
    answered = time.time()
    socket_url = session["liveViewUrl"].replace("http://", "ws://").replace("?", "/socket?", 1)
    viewer = websocket.create_connection(socket_url, timeout=5)
    ended = None
    try:
        while ended is None and time.time() < issued + SHORT_TTL + 5:
            try:
                message = viewer.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if not message:
                break
            if json.loads(message).get("type") == "ended":
                ended = json.loads(message)["message"]
    except websocket.WebSocketConnectionClosedException:
        pass
    closed = time.time()
    viewer.close()
    assert ended is not None and "expired" in ended, ended
    assert issued + SHORT_TTL - 0.5 <= closed <= answered + SHORT_TTL + 2, (closed - issued, closed - answered)
    wait_until(lambda: requests.get(session["liveViewUrl"], timeout=10).status_code == 404, 5, interval=0.5,
               message="the expired live-view link to be refused")
    fresh = api.get(f"/v1/sessions/{session['id']}").json()["liveViewUrl"]
    assert fresh != session["liveViewUrl"] and requests.get(fresh, timeout=10).status_code == 200


def test_the_view_of_a_stopped_session_says_it_ended(live_api, person, pages):
    session = live_api.create_session(url=f"{pages.base}/live")
    view = open_view(person, session["liveViewUrl"])
    live_api.stop_session(session["id"])
    view.wait_for_function("() => window.liveView.ended")
    assert view.locator("#notice").text_content() == "The session has ended (deleted)."
    assert live_api.get(f"/v1/sessions/{session['id']}").json()["liveViewUrl"] is None
    again = person.new_page()
    assert again.goto(session["liveViewUrl"]).status == 404
    again.wait_for_function("() => window.liveView.ended")
    assert NOT_AVAILABLE in again.locator("#notice").text_content()


def test_the_dashboard_lists_the_projects_sessions_and_stops_one(deployment, live_api, person):
    kept, stopped = live_api.create_session(), live_api.create_session()
    context = live_api.post("/v1/contexts", json={"name": "dashboard-context"}).json()
    page = person.new_page()
    page.goto(f"{deployment.url}/dashboard")
    page.fill("#key", deployment.api_key)
    page.click("#login button[type=submit]")
    assert not page.locator("#login").is_visible()
    for session in (kept, stopped):
        row = page.locator(f"#sessions tr[data-id='{session['id']}']")
        row.locator(".status-running").wait_for()
        assert row.locator("a", has_text="open").get_attribute("href") == live_api.get(
            f"/v1/sessions/{session['id']}").json()["liveViewUrl"]
    page.locator("#contexts td", has_text="dashboard-context").wait_for()

    page.locator(f"#sessions tr[data-id='{stopped['id']}'] button.stop").click()
    live_api.wait_status(stopped["id"], "stopped")
    page.locator(f"#sessions tr[data-id='{stopped['id']}'] .status-stopped").wait_for()
    assert live_api.get(f"/v1/sessions/{kept['id']}").json()["status"] == "running"
    # The key stays in this tab only.
    assert page.evaluate("[sessionStorage.length, localStorage.length]") == [1, 0]
    elsewhere = person.new_context().new_page()
    elsewhere.goto(f"{deployment.url}/dashboard")
    assert elsewhere.locator("#login").is_visible() and not elsewhere.locator("#content").is_visible()
    assert live_api.delete(f"/v1/contexts/{context['id']}").status_code == 204
