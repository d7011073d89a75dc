"""Warm browsers: fresh for every session, refilled, replaced when broken, routed to, ended with their worker.

Nothing here is timed: "answered at once" is proved by order (a warm create
answers while cold launches are still held open by the test), never by a clock.
"""
from __future__ import annotations

import ast
import html
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import psutil
import pytest
import requests
from celery import Celery

from core.cdp import CdpConnection
from core.dispatch import worker_queue
from tasks.warm import LAUNCH_NICENESS, OFFER_SETTLE
from tests.support.api import Api
from tests.support.browsing import playwright_driver, visit
from tests.support.cdp import load
from tests.support.processes import ROOT, Broker, end_process, free_port, gone, run_processes, wait_until
from tests.support.upstreams import HttpUpstream

WAIT = 60


def offers(broker: Broker, nodename: str) -> set[str]:
    """Keys of the worker's warm browsers on offer in Redis: a plain create now would take one of them."""
    return broker.store().warm.offered_by(nodename)


def wait_offers(broker: Broker, nodename: str, count: int) -> set[str]:
    """Exactly ``count`` on offer: once the creates of the last BROKER_WARM_WINDOW no longer raise the keeper's target
    (tasks/warm_demand.py), that is the floor, BROKER_WARM_BROWSERS."""
    wait_until(lambda: len(offers(broker, nodename)) == count, WAIT, message=f"{count} warm browsers on {nodename}")
    return offers(broker, nodename)


def wait_an_offer(broker: Broker, nodename: str) -> set[str]:
    """At least one on offer, for a test that needs a plain create to be served warm, not a count of spares."""
    wait_until(lambda: offers(broker, nodename), WAIT, message=f"a warm browser on {nodename}")
    return offers(broker, nodename)


def warm_processes(broker: Broker, nodename: str, key: str) -> list[psutil.Process]:
    """A warm browser's processes, from the PID file its pool wrote (ChromeDriver's too, under Selenium)."""
    record = json.loads((broker.worker_profiles(nodename) / f"{key}.pids").read_text())
    found = []
    for entry in record["processes"]:
        try:
            found.append(psutil.Process(entry["pid"]))
        except psutil.NoSuchProcess:
            continue
    return found


def thread_niceness(procs: list[psutil.Process]) -> set[int]:
    """The niceness of every thread of these processes (Linux keeps one per thread, not per process)."""
    found = set()
    for proc in procs:
        for stat in Path(f"/proc/{proc.pid}/task").glob("*/stat"):
            try:
                found.add(int(stat.read_text().rsplit(")", 1)[1].split()[16]))
            except (OSError, IndexError, ValueError):
                continue  # the thread ended meanwhile
    return found


def group_of(leader: psutil.Process) -> list[psutil.Process]:
    """The launcher's process group: its leader and every descendant still in it (renderers started since too).
    A renderer may end between the listing and the question (a closed page's): it is in no group any more."""
    found = [leader]
    for proc in leader.children(recursive=True):
        try:
            if os.getpgid(proc.pid) == leader.pid:
                found.append(proc)
        except ProcessLookupError:
            continue
    return found


def browser_main(procs: list[psutil.Process]) -> psutil.Process:
    """Chromium's browser process: the one with a profile and no ``--type``."""
    return next(p for p in procs if "chromium" in p.name() and not any(a.startswith("--type=") for a in p.cmdline()))


def alive(procs: list[psutil.Process]) -> bool:
    return not all(gone(p) for p in procs)


def served_warm(broker: Broker, session: dict) -> bool:
    """A warm browser keeps its own profile folder (``warm_…``); a cold one's is named after the session."""
    return broker.session_profiles()[session["id"]].name.startswith("warm_")


def page_tabs(cdp_url: str) -> list[str]:
    with CdpConnection(cdp_url) as cdp:
        return [t["url"] for t in cdp.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]


def only_worker(broker: Broker) -> str:
    (nodename,) = broker.workers
    return nodename


@pytest.fixture(scope="module")
def solo(deploy) -> Broker:
    """One worker, three slots, one warm browser (Redis database 10); the creates of the last 10 s, not 60, size the
    spares, so a test that counts them finds the floor again within seconds of the test before."""
    broker = deploy(10, BROKER_LAUNCHER="direct", BROKER_POOL_SIZE="3", BROKER_WARM_MAX="auto",
                    BROKER_WARM_BROWSERS="1", BROKER_WARM_WINDOW="10")
    broker.start_worker("solo")
    return broker


@pytest.fixture
def solo_api(solo) -> Api:
    api = Api(solo.url, solo.api_key)
    yield api
    for session in api.get("/v1/sessions", params={"status": "running"}).json():
        api.stop_session(session["id"])


# -- every browser --------------------------------------------------------------------
@pytest.fixture(scope="module", params=["selenium", "direct"])
def any_warm(request, deploy) -> Broker:
    """One warm browser, by either launcher: both must keep every promise."""
    broker = deploy(14 + ["selenium", "direct"].index(request.param), BROKER_LAUNCHER=request.param,
                    BROKER_WARM_BROWSERS="1")
    broker.start_worker()
    return broker


@pytest.fixture
def any_warm_api(any_warm) -> Api:
    return Api(any_warm.url, any_warm.api_key)


def test_every_browser_warm_or_cold_starts_with_one_blank_tab(any_warm, any_warm_api, session_factory):
    """No new-tab page and no omnibox popups, whichever launcher: a client's connect waits on nothing."""
    wait_an_offer(any_warm, only_worker(any_warm))
    context = any_warm_api.post("/v1/contexts", json={}).json()
    warm = session_factory(any_warm_api)
    cold = session_factory(any_warm_api, contextId=context["id"])
    assert served_warm(any_warm, warm) and not served_warm(any_warm, cold)
    for session in (warm, cold):
        assert page_tabs(session["cdpUrl"]) == ["about:blank"]
        p = playwright_driver()
        browser = p.chromium.connect_over_cdp(session["cdpUrl"])
        assert [page.url for c in browser.contexts for page in c.pages] == ["about:blank"]
        browser.close()
    any_warm_api.stop_session(cold["id"])
    assert any_warm_api.delete(f"/v1/contexts/{context['id']}").status_code == 204


def test_a_warm_session_has_a_fresh_profile(any_warm, any_warm_api, session_factory, pages):
    """Cookies, localStorage, IndexedDB and tabs of one warm session are absent from the next on the same worker."""
    nodename = only_worker(any_warm)
    wait_an_offer(any_warm, nodename)
    first = session_factory(any_warm_api)
    assert served_warm(any_warm, first)
    written = visit(first["cdpUrl"], f"{pages.base}/state", "state('first')")
    assert written == {"local": "first", "idb": "first", "cookie": "js_cookie=first"}
    with CdpConnection(first["cdpUrl"]) as cdp:
        cdp.call("Target.createTarget", {"url": f"{pages.base}/page?title=left-open"})
    any_warm_api.stop_session(first["id"])

    wait_an_offer(any_warm, nodename)
    second = session_factory(any_warm_api)
    assert served_warm(any_warm, second)
    assert any_warm_api.get(f"/v1/sessions/{second['id']}").json()["status"] == "running"
    assert page_tabs(second["cdpUrl"]) == ["about:blank"]
    assert visit(second["cdpUrl"], f"{pages.base}/state", "state()") == {"local": None, "idb": None, "cookie": ""}


def test_a_warm_browser_waits_niced_and_its_session_runs_at_normal_priority(any_warm, any_warm_api, session_factory,
                                                                             pages):
    """Every thread of every process, renderers started after the hand-over included: a spare must not slow the
    sessions beside it, and a session must not keep a spare's low priority."""
    nodename = only_worker(any_warm)
    (key,) = wait_offers(any_warm, nodename, 1)
    leader = next(p for p in warm_processes(any_warm, nodename, key) if os.getpgid(p.pid) == p.pid)
    assert thread_niceness(group_of(leader)) == {LAUNCH_NICENESS}
    session = session_factory(any_warm_api)
    assert any_warm.session_profiles()[session["id"]].name == key
    assert visit(session["cdpUrl"], f"{pages.base}/page?title=niceness") == "niceness"
    assert len(group_of(leader)) > 2
    assert thread_niceness(group_of(leader)) == {0}


def test_a_warm_browser_serves_a_create_with_options_applied_over_cdp(any_warm, any_warm_api, session_factory, pages):
    """The spare was launched without them; the hand-over applies them (tasks/browser_options.py) before the create
    answers, so the first tab's first request carries them. tests/e2e/test_browser_options.py checks each option on
    cold launches."""
    wait_an_offer(any_warm, only_worker(any_warm))
    tag = secrets.token_hex(4)
    session = session_factory(any_warm_api, viewport={"width": 1024, "height": 700, "deviceScaleFactor": 2,
                                                      "mobile": False},
                              userAgent=f"WarmAgent/{tag}", extraHTTPHeaders={"X-Warm": tag}, blockResources=["image"])
    assert session["launch"] == "warm" and served_warm(any_warm, session)
    browser = playwright_driver().chromium.connect_over_cdp(session["cdpUrl"])
    try:
        page = browser.contexts[0].pages[0]
        page.goto(f"{pages.base}/with-image?tag={tag}")
        seen = page.evaluate("() => [innerWidth, innerHeight, devicePixelRatio, navigator.userAgent]")
    finally:
        browser.close()
    assert seen == [1024, 700, 2, f"WarmAgent/{tag}"]
    [heard] = pages.headers_of(f"/with-image?tag={tag}")
    assert {name.lower(): value for name, value in heard.items()}["x-warm"] == tag
    assert not pages.headers_of(f"/pixel.png?{tag}"), "the blocked image was requested"


# -- refill and health ------------------------------------------------------------------
def test_warm_browsers_are_refilled_after_a_take(solo, solo_api):
    (taken,) = wait_offers(solo, "solo@test", 1)
    session = solo_api.create_session()
    assert solo.session_profiles()[session["id"]].name == taken
    (refill,) = wait_offers(solo, "solo@test", 1)
    assert refill != taken
    solo_api.stop_session(session["id"])
    assert not (solo.worker_profiles("solo@test") / taken).exists()


def test_a_crashed_warm_browser_is_replaced_and_never_handed_out(solo, solo_api):
    (crashed,) = wait_offers(solo, "solo@test", 1)
    procs = warm_processes(solo, "solo@test", crashed)
    browser_main(procs).kill()
    session = solo_api.create_session()
    assert solo.session_profiles()[session["id"]].name != crashed
    assert page_tabs(session["cdpUrl"]) == ["about:blank"]
    wait_until(lambda: not alive(procs), WAIT, message="the crashed warm browser's processes to be ended")
    wait_until(lambda: offers(solo, "solo@test") - {crashed}, WAIT, message="a replacement warm browser")
    # The crashed one is ended on a thread of its own, which the replacement's launch does not wait for.
    wait_until(lambda: not (solo.worker_profiles("solo@test") / crashed).exists(), WAIT,
               message="the crashed warm browser's profile folder to be removed")


def test_an_unresponsive_warm_browser_is_ended_and_never_handed_out(solo, solo_api):
    (stuck,) = wait_offers(solo, "solo@test", 1)
    procs = warm_processes(solo, "solo@test", stuck)
    main = browser_main(procs)
    main.suspend()
    try:
        session = solo_api.create_session()
        assert solo.session_profiles()[session["id"]].name != stuck
        assert page_tabs(session["cdpUrl"]) == ["about:blank"]
        wait_until(lambda: not alive([main]), WAIT, message="the unresponsive warm browser to be ended")
    finally:
        if alive([main]):
            main.resume()
    wait_until(lambda: offers(solo, "solo@test") - {stuck}, WAIT, message="a replacement warm browser")


def test_worker_state_shows_free_warm_and_running_counts(solo, solo_api):
    """In ``inspect stats`` (what Flower shows on a worker's page) and, summed, in /readyz."""
    wait_offers(solo, "solo@test", 1)
    session = solo_api.create_session()
    # The spare holds one of its own slots (BROKER_WARM_MAX: as many as the pool's), not a session's.
    counts = {"slots": 3, "spareSlots": 3, "free": 2, "warm": 1, "running": 1, "launching": 0}
    seen: list[dict | None] = []

    def stats_show_them() -> bool:
        # The create raised the keeper's target for BROKER_WARM_WINDOW: a second spare may launch and end before
        # the worker is back at one spare beside the session.
        celery = Celery(broker=solo.redis_url)
        try:
            stats = celery.control.inspect(destination=["solo@test"], timeout=5).stats() or {}
        finally:
            celery.close()
        seen.append(stats.get("solo@test", {}).get("browsers"))
        return seen[-1] == counts

    try:
        wait_until(stats_show_them, WAIT, message=f"inspect stats to show {counts}")
    except TimeoutError as error:
        raise AssertionError(f"{error}; last seen: {seen[-1:]}") from None
    wait_until(lambda: solo_api.get("/readyz").json().get("browsers") == counts, WAIT,
               message="/readyz to show a heartbeat with these counts")
    solo_api.stop_session(session["id"])


def test_flower_shows_each_workers_browser_counts(solo, solo_api, workdir):
    """Flower's page of a worker lists them under "Other", read live from the worker."""
    wait_offers(solo, "solo@test", 1)
    port = free_port()
    flower = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks.celery_app", "flower", f"--port={port}", "--address=127.0.0.1",
         # Flower asks every worker at start, without naming one, so each of those asks lasts the whole timeout and
         # holds one of the few threads the worker page's own asks then queue behind: 20 s made the test take 21.
         "--inspect_timeout=6000"],
        cwd=ROOT, env=solo.env, stdout=open(workdir / f"flower-{port}.log", "ab"), stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthcheck"), WAIT, message="Flower")
        page = html.unescape(requests.get(f"http://127.0.0.1:{port}/worker/solo@test", timeout=WAIT).text)
    finally:
        # Killed: on SIGTERM Flower first waits out those start-up asks; it is the viewer here, not under test.
        end_process(flower, signal.SIGKILL)
    shown = re.search(r"<td>browsers</td>\s*<td[^>]*>(\{[^}]*\})</td>", page)
    assert shown, "no browser counts on the worker's page"
    counts = ast.literal_eval(shown.group(1))
    # At least the floor: a spare the keeper launched for a recent create may still be on offer beside it.
    assert counts["slots"] == 3 and counts["warm"] >= 1
    assert set(counts) == {"slots", "spareSlots", "free", "warm", "running", "launching"}


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


# -- who launches cold -------------------------------------------------------------------
def test_a_warm_create_answers_while_cold_launches_are_still_going(solo, solo_api, pages):
    """Two context creates are held in their first navigation; a plain create takes the warm browser meanwhile."""
    wait_offers(solo, "solo@test", 1)
    pages.hold()
    held_before = pages.hits.count("/hold")
    answers: list = []

    def create_held() -> None:
        context = solo_api.post("/v1/contexts", json={}).json()
        answers.append(solo_api.post("/v1/sessions", json={"contextId": context["id"], "url": f"{pages.base}/hold"}))

    cold = [threading.Thread(target=create_held) for _ in range(2)]
    for thread in cold:
        thread.start()
    try:
        wait_until(lambda: pages.hits.count("/hold") - held_before == 2, WAIT, message="both cold launches to navigate")
        warm = solo_api.create_session()
        assert served_warm(solo, warm)
        assert not answers, "the cold creates answered before the warm one"
    finally:
        pages.release()
        for thread in cold:
            thread.join(WAIT)
    assert [a.status_code for a in answers] == [201, 201]
    assert not any(served_warm(solo, a.json()) for a in answers)


def test_context_and_proxy_sessions_launch_cold_and_work(solo, solo_api, pages, workdir):
    wait_offers(solo, "solo@test", 1)
    context = solo_api.post("/v1/contexts", json={}).json()
    first = solo_api.create_session(contextId=context["id"])
    assert not served_warm(solo, first)
    visit(first["cdpUrl"], f"{pages.base}/state", "state('kept')")
    solo_api.stop_session(first["id"])
    again = solo_api.create_session(contextId=context["id"])
    assert not served_warm(solo, again)
    assert visit(again["cdpUrl"], f"{pages.base}/state", "state()")["local"] == "kept"
    solo_api.stop_session(again["id"])

    password = "pw-" + secrets.token_hex(16)
    upstream = HttpUpstream(workdir, f"warm-{secrets.token_hex(4)}", "broker-user", password).start()
    try:
        proxy = solo_api.post("/v1/proxies", json={"server": upstream.server, "username": "broker-user",
                                                    "password": password}).json()
        proxied = solo_api.create_session(proxyId=proxy["id"])
        assert not served_warm(solo, proxied)
        loaded = load(proxied, f"{pages.base}/page?title=via-proxy")
        assert loaded.error is None and loaded.title == "via-proxy"
        assert pages.base.removeprefix("http://") in upstream.targets()
        solo_api.stop_session(proxied["id"])
    finally:
        upstream.stop()
    # No cold create took a spare (served_warm above). Which spares are on offer now is the demand-sized keeper's
    # choice (tasks/warm_demand.py: these creates raised its target, and it may end and refill spares), not theirs.
    wait_until(lambda: offers(solo, "solo@test"), WAIT, message="a spare on offer after the cold sessions")


# -- routing between workers --------------------------------------------------------------
@pytest.fixture(scope="module")
def pair(deploy) -> Broker:
    """Two workers (Redis database 11): ``cold`` keeps no warm browser, ``warm`` keeps one."""
    broker = deploy(11, BROKER_LAUNCHER="direct", BROKER_POOL_SIZE="2")
    cold = broker.start_worker("cold", wait=False, BROKER_WARM_BROWSERS="0")
    broker.start_worker("warm", BROKER_WARM_BROWSERS="1")
    broker.wait_worker(cold)
    return broker


def test_a_create_reaches_the_worker_with_a_warm_browser(pair):
    api = Api(pair.url, pair.api_key)
    (key,) = wait_offers(pair, "warm@test", 1)
    session = api.create_session()
    assert pair.store().sessions.get(session["id"])["worker"] == worker_queue("warm@test")
    assert pair.session_profiles()[session["id"]].name == key
    api.stop_session(session["id"])


def test_a_create_that_took_a_dead_workers_offer_still_gets_a_browser(pair):
    """The worker dies with its warm browser on offer: the create falls back to a cold launch elsewhere."""
    api = Api(pair.url, pair.api_key)
    (key,) = wait_offers(pair, "warm@test", 1)
    orphans = warm_processes(pair, "warm@test", key)
    pair.stop_worker("warm@test", signal.SIGKILL)
    session = api.create_session()
    assert pair.store().sessions.get(session["id"])["worker"] == worker_queue("cold@test")
    assert page_tabs(session["cdpUrl"]) == ["about:blank"]
    api.stop_session(session["id"])
    pair.start_worker("warm", BROKER_WARM_BROWSERS="1")
    wait_until(lambda: not alive(orphans) and key not in offers(pair, "warm@test"), WAIT,
               message="the restarted worker to end its earlier life's warm browser")


# -- two warm browsers -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_warm(deploy) -> Broker:
    """One worker with three slots and two warm browsers (Redis database 13)."""
    broker = deploy(13, BROKER_LAUNCHER="direct", BROKER_POOL_SIZE="3", BROKER_WARM_BROWSERS="2")
    broker.start_worker("two")
    return broker


def logged(broker: Broker, key: str, words: str) -> datetime | None:
    """When the worker logged ``<key>: <words>…`` (the log's own timestamp), None if it has not."""
    for line in broker.worker_log("two").splitlines():
        if f"{key}: {words}" in line:
            return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return None


def held_back(broker: Broker) -> list[str]:
    return re.findall(r"(warm_\w+): started; offered in", broker.worker_log("two"))


def test_a_spare_started_beside_another_is_offered_once_settled_or_as_soon_as_one_is_taken(two_warm):
    api = Api(two_warm.url, two_warm.api_key)
    before = wait_offers(two_warm, "two@test", 2)
    api.stop_session(api.create_session()["id"])
    (settled,) = wait_offers(two_warm, "two@test", 2) - before
    held, offered = logged(two_warm, settled, "started; offered in"), logged(two_warm, settled, "warm browser ready")
    assert held and offered and (offered - held).total_seconds() >= OFFER_SETTLE

    wait_offers(two_warm, "two@test", 2)
    count = len(held_back(two_warm))
    first = api.create_session()
    wait_until(lambda: len(held_back(two_warm)) > count, WAIT, message="a replacement held back to settle")
    holding = held_back(two_warm)[-1]
    second = api.create_session()
    wait_until(lambda: logged(two_warm, holding, "warm browser ready"), WAIT, message="the held spare offered")
    assert logged(two_warm, holding, "a spare was taken while this one settled; offered now")
    assert offers(two_warm, "two@test") == {holding}
    for session in (first, second):
        api.stop_session(session["id"])


# -- slots, SIGTERM, restarts, off ------------------------------------------------------------
@pytest.fixture(scope="module")
def tight(deploy) -> Broker:
    """One worker with two slots and one warm browser that must take one of them (``BROKER_WARM_MAX=0``; Redis
    database 12)."""
    broker = deploy(12, BROKER_LAUNCHER="direct", BROKER_POOL_SIZE="2",
                    BROKER_WARM_BROWSERS="1", BROKER_WARM_MAX="0")
    broker.start_worker("tight")
    return broker


def test_refill_leaves_the_freed_slot_to_a_waiting_create(tight):
    """Both slots run sessions; a create waits in line; when one stops, the create launches in that slot."""
    api = Api(tight.url, tight.api_key)
    wait_offers(tight, "tight@test", 1)
    first = api.create_session()
    wait_offers(tight, "tight@test", 1)
    second = api.create_session()
    assert served_warm(tight, first) and served_warm(tight, second)
    answers: list = []
    waiting = threading.Thread(target=lambda: answers.append(api.post("/v1/sessions", json={})))
    waiting.start()
    wait_until(lambda: tight.store().sessions.waiting_for_launch() == 1, WAIT, message="the third create in line")
    api.stop_session(first["id"])
    waiting.join(WAIT)
    assert answers[0].status_code == 201, answers[0].text
    third = answers[0].json()
    assert tight.session_profiles()[third["id"]].name == third["id"], "a refill took the slot the create waited for"
    for session in (second, third):
        api.stop_session(session["id"])


def test_sigterm_and_restart_leave_no_warm_browser_behind(tight):
    (key,) = wait_offers(tight, "tight@test", 1)
    procs = warm_processes(tight, "tight@test", key)
    tight.stop_worker("tight@test")
    assert not alive(procs)
    assert not offers(tight, "tight@test")
    assert not tight.profile_dirs()

    tight.start_worker("tight")
    (key,) = wait_offers(tight, "tight@test", 1)
    procs = warm_processes(tight, "tight@test", key)
    tight.stop_worker("tight@test", signal.SIGKILL)
    assert alive(procs), "Chromium outlives a SIGKILLed worker until its next life"
    tight.start_worker("tight")
    profile = tight.worker_profiles("tight@test") / key
    # Right after the kill the old life's heartbeat still counts, so "started" does not yet mean "cleaned up".
    wait_until(lambda: not alive(procs) and not profile.exists() and key not in offers(tight, "tight@test"), WAIT,
               message="the restarted worker to end the warm browser left behind")


def test_with_warm_browsers_off_nothing_launches_ahead(tight):
    """``BROKER_WARM_BROWSERS=0``: as before warm browsers existed, a browser starts only for a create."""
    tight.stop_worker("tight@test")
    tight.start_worker("tight", BROKER_WARM_BROWSERS="0")
    api = Api(tight.url, tight.api_key)
    wait_until(lambda: tight.browser_counts("tight@test") == {"slots": 2, "spareSlots": 0, "free": 2, "warm": 0,
                                                              "running": 0, "launching": 0, "warmTarget": 0}, WAIT,
               message="a heartbeat")
    assert not tight.profile_dirs() and not offers(tight, "tight@test")
    # A browser of this deployment names its profile, under the deployment's profiles folder, on its command line.
    assert not [p for p in run_processes() if str(tight.profiles_dir) in " ".join(p.cmdline())]
    session = api.create_session()
    assert tight.session_profiles()[session["id"]].name == session["id"]
    assert page_tabs(session["cdpUrl"]) == ["about:blank"]
    assert api.get("/readyz").json()["browsers"]["warm"] == 0
    api.stop_session(session["id"])
    assert not tight.profile_dirs()
