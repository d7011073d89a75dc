"""Sessions under faults: timeouts, a full pool, lost and stopped workers, a Redis outage, redelivered tasks."""
from __future__ import annotations

import secrets
import signal
import socket
import struct
import threading
import time

import psutil
import pytest
import requests
import websocket
from celery import Celery

from core.dispatch import LAUNCH_QUEUE, LAUNCH_TASK, STOP_TASK
from core.session_machine import SessionMachine
from core.states import Status, StopReason
from core.store import Store, keys
from tests.support.api import Api
from tests.support.cdp import RawCdp
from tests.support.processes import Broker, Redis, end_process, wait_until
from tests.support.browsing import visit

POOL = 2
WAIT = 6
#: BROKER_STOP_NEVER_SENT_AFTER (10 s by default), shortened: a stop that is never sent is finished this soon.
STOP_NEVER_SENT_AFTER = 3


@pytest.fixture(scope="module")
def life(brokers, tmp_path_factory):
    """A deployment of its own: pool of 2, a 6 s create wait, a Redis that keeps its data across a restart. No warm
    browser: none is under test here, and a spare in the pool's second slot would hold a stray launch message in the
    queue (test_redelivered_tasks_do_no_harm) and relaunch after every take and every worker start."""
    workdir = tmp_path_factory.mktemp("life")
    redis = Redis(workdir, persist=True)
    broker = Broker(redis, workdir, "bb_" + secrets.token_urlsafe(24),
                    BROKER_POOL_SIZE=str(POOL), BROKER_CREATE_WAIT=str(WAIT), BROKER_RETRY_AFTER="3",
                    BROKER_STOP_NEVER_SENT_AFTER=str(STOP_NEVER_SENT_AFTER), BROKER_WARM_BROWSERS="0")
    brokers.append(broker)
    broker.start_web(wait=False)
    broker.start_worker("a")
    yield broker
    broker.stop()
    redis.stop()


@pytest.fixture
def api(life) -> Api:
    api = Api(life.url, life.api_key)
    yield api
    if life.web.poll() is not None:
        life.start_web()
    for session in api.get("/v1/sessions", params={"status": "running"}).json():
        api.delete(f"/v1/sessions/{session['id']}")
    for session in api.get("/v1/sessions").json():
        if session["status"] != "stopped":
            api.wait_status(session["id"], "stopped")


def running(api: Api) -> list[str]:
    return [s["id"] for s in api.get("/v1/sessions", params={"status": "running"}).json()]


def abandoned(broker: Broker) -> int:
    """Creates given up so far (the record stays, abandoned, until its TTL)."""
    store = broker.store()
    ids = {key.split(":")[2] for key in store.redis.scan_iter(keys.session("ses_*"))}
    return sum(1 for session_id in ids if (store.sessions.get(session_id) or {}).get("status") == Status.ABANDONED)


def idle_due(store: Store, session_id: str) -> float | None:
    """When the idle check next looks at the session (None once it has been taken)."""
    return store.redis.zscore(keys.SESSION_IDLE, session_id)


def browser_processes(profile_root_part: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if profile_root_part in " ".join(proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def test_session_with_a_timeout_stops_by_itself(api):
    session = api.create_session(timeout=3)
    stopped = api.wait_status(session["id"], "stopped", timeout=30)
    assert stopped["stopReason"] == "timeout"


def test_a_queued_create_gets_the_slot_a_delete_frees(life, api):
    first, _ = api.create_session(), api.create_session()
    answers = []
    waiting = threading.Thread(target=lambda: answers.append(Api(life.url, life.api_key).post("/v1/sessions", json={})))
    waiting.start()
    wait_until(lambda: life.waiting_launches() == 1, 30, message="the third create's launch to wait in the queue")
    assert not answers, "the third create should wait in line while both slots are taken"
    api.delete(f"/v1/sessions/{first['id']}")
    waiting.join(60)
    assert answers[0].status_code == 201, answers[0].text


def test_a_create_past_the_wait_is_503_and_no_browser_starts_later(life, api):
    held = [api.create_session(), api.create_session()]
    answer = api.post("/v1/sessions", json={})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "3"
    assert answer.json()["message"]
    api.stop_session(held[0]["id"])
    later = api.create_session()
    # The queue is first in, first out: the worker met the given-up launch before this one.
    assert sorted(running(api)) == sorted([held[1]["id"], later["id"]])
    assert sorted(life.session_profiles()) == sorted([held[1]["id"], later["id"]])


def test_a_caller_that_hangs_up_loses_its_place(life, api):
    held = [api.create_session(), api.create_session()]
    given_up = abandoned(life)
    raw = socket.create_connection(("127.0.0.1", life.port))
    raw.sendall(f"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nX-API-Key: {life.api_key}\r\n"
                "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".encode())
    wait_until(lambda: life.waiting_launches() == 1, 30, message="the create's launch to wait in the queue")
    raw.close()
    wait_until(lambda: abandoned(life) > given_up, 30, message="the web process to give up the create")
    api.stop_session(held[0]["id"])
    later = api.create_session()
    assert sorted(running(api)) == sorted([held[1]["id"], later["id"]])
    assert sorted(life.session_profiles()) == sorted([held[1]["id"], later["id"]])


def test_sigkilled_worker_sessions_end_as_worker_lost_and_context_keeps_last_snapshot(life, api, pages):
    context = api.post("/v1/contexts", json={}).json()
    saved = api.create_session(contextId=context["id"])
    visit(saved["cdpUrl"], f"{pages.base}/state", "state('saved')")
    api.stop_session(saved["id"])
    with_context = api.create_session(contextId=context["id"])
    visit(with_context["cdpUrl"], f"{pages.base}/state", "state('unsaved')")
    plain = api.create_session()
    earlier_life = life.profile_dirs()
    life.workers["a@test"].send_signal(signal.SIGKILL)
    life.workers["a@test"].wait(10)
    sessions_browsers = life.session_profiles().values()
    assert len(sessions_browsers) == 2 and all(browser_processes(str(p)) for p in sessions_browsers), \
        "Chromium outlives a SIGKILLed worker"

    life.start_worker("b")
    for session in (with_context, plain):
        assert api.wait_status(session["id"], "stopped", timeout=60)["stopReason"] == "worker_lost"
    again = api.create_session(contextId=context["id"])
    assert visit(again["cdpUrl"], f"{pages.base}/state", "state()")["local"] == "saved"
    api.stop_session(again["id"])

    life.start_worker("a")
    wait_until(lambda: not any(browser_processes(str(profile)) for profile in earlier_life), 20,
               message="the restarted worker to end what its earlier life left")
    assert not any(profile.exists() for profile in earlier_life)


def test_sigterm_stops_sessions_through_the_normal_flow(life, api, pages):
    for nodename in list(life.workers):
        life.stop_worker(nodename)
    life.start_worker("c")
    context = api.post("/v1/contexts", json={}).json()
    session = api.create_session(contextId=context["id"])
    visit(session["cdpUrl"], f"{pages.base}/state", "state('graceful')")
    life.stop_worker("c@test")
    stopped = api.get(f"/v1/sessions/{session['id']}").json()
    assert stopped["status"] == "stopped" and stopped["snapshotError"] is None
    assert stopped["stopReason"] == "shutdown"
    life.start_worker("a")
    again = api.create_session(contextId=context["id"])
    assert visit(again["cdpUrl"], f"{pages.base}/state", "state()")["local"] == "graceful"


def test_redis_outage_is_a_quick_503_and_everything_recovers(life, api):
    session = api.create_session()
    life.redis.stop()
    started = time.monotonic()
    answer = api.get(f"/v1/sessions/{session['id']}", timeout=30)
    assert answer.status_code == 503 and "Redis" in answer.json()["message"]
    assert time.monotonic() - started < 15
    ready = requests.get(f"{life.url}/readyz", timeout=30)
    assert ready.status_code == 503 and "unreachable" in ready.json()["redis"]
    life.redis.start()
    wait_until(lambda: api.get(f"/v1/sessions/{session['id']}").status_code == 200, 30, message="API recovery")
    wait_until(lambda: requests.get(f"{life.url}/readyz", timeout=5).status_code == 200, 30, message="readiness")
    api.stop_session(session["id"], timeout=60)
    api.stop_session(api.create_session()["id"])


def test_a_web_process_started_during_a_redis_outage_serves_and_recovers(life, api):
    """The web process connects its task sender at start (core.dispatch.Dispatcher.connect), once: with Redis down
    it starts anyway, answers a quick 503, and creates once Redis is back. (Without BROKER_BOOTSTRAP_API_KEY:
    storing that key needs Redis, so a web process given one waits for Redis by failing its start.)"""
    life.redis.stop()
    try:
        started = time.monotonic()
        web, url = life.start_another_web(BROKER_BOOTSTRAP_API_KEY="")
        assert time.monotonic() - started < 20
        other = Api(url, life.api_key)
        answer = other.post("/v1/sessions", json={}, timeout=30)
        assert answer.status_code == 503 and "Redis" in answer.json()["message"]
    finally:
        life.redis.start()
    try:
        wait_until(lambda: requests.get(f"{url}/readyz", timeout=5).status_code == 200, 30, message="readiness")
        other.stop_session(other.create_session()["id"])
    finally:
        end_process(web)


def test_a_stop_whose_task_was_never_sent_is_finished_by_the_worker(life, api):
    """The web process died (or Redis failed) between a DELETE's move and its send: the record says stopping and
    no stop task comes. The worker holding the browser stops it itself, through the normal flow."""
    session = api.create_session()
    profile = life.session_profiles()[session["id"]]
    assert browser_processes(str(profile))
    SessionMachine(life.store()).stop(session["id"], StopReason.DELETED)  # the move alone: no dispatcher, no task
    assert api.get(f"/v1/sessions/{session['id']}").json()["status"] == "stopping"
    stopped = api.wait_status(session["id"], "stopped", STOP_NEVER_SENT_AFTER + 30)
    assert stopped["stopReason"] == "deleted"
    assert not browser_processes(str(profile)) and not profile.exists()
    assert "no stop task came; stopping it here" in life.worker_log("a")
    assert api.delete(f"/v1/sessions/{session['id']}").status_code == 204
    assert api.get(f"/v1/sessions/{session['id']}").json() == stopped


def test_redelivered_tasks_do_no_harm(life, api, pages):
    celery = Celery(broker=life.redis_url)
    context = api.post("/v1/contexts", json={}).json()
    session = api.create_session(contextId=context["id"])
    record = life.store().sessions.get(session["id"])
    again = celery.send_task(LAUNCH_TASK, args=[session["id"]], queue=LAUNCH_QUEUE)
    wait_until(lambda: life.task_done(again.id), 30, message="the redelivered launch to run")
    assert life.store().sessions.get(session["id"]) == record
    assert list(life.session_profiles()) == [session["id"]]
    assert api.delete(f"/v1/sessions/{session['id']}").status_code == 204
    stopped = api.wait_status(session["id"], "stopped")
    again = celery.send_task(STOP_TASK, args=[session["id"], "deleted"], queue=record["worker"])
    wait_until(lambda: life.task_done(again.id), 30, message="the redelivered stop to run")
    assert api.get(f"/v1/sessions/{session['id']}").json() == stopped
    assert len(life.store().contexts.get(context["id"])["snapshotVersions"]) == 1
    celery.close()


def test_sigterm_to_the_web_process_closes_cdp_clients_cleanly(life, api):
    session = api.create_session()
    cdp = RawCdp(session["cdpUrl"])
    cdp.call("Browser.getVersion")
    life.web.send_signal(signal.SIGTERM)
    cdp.ws.settimeout(15)
    # The raw frame: recv_data_frame would answer the close itself, into a socket the relay may have closed.
    frame = cdp.ws.recv_frame()
    assert frame.opcode == websocket.ABNF.OPCODE_CLOSE
    assert struct.unpack(">H", frame.data[:2])[0] == 1001 and b"server restarting" in frame.data[2:]
    life.web.wait(30)
    life.start_web()
    again = RawCdp(session["cdpUrl"])
    assert again.call("Browser.getVersion")["product"]
    again.close()
    api.stop_session(session["id"])


def test_idle_timeout_counts_only_time_without_a_cdp_client(life, api):
    session = api.create_session(idleTimeout=2)
    assert session["idleTimeout"] == 2
    cdp = RawCdp(session["cdpUrl"])
    store = life.store()
    first_due = idle_due(store, session["id"])
    assert first_due is not None, "taken before the client connected: over idleTimeout from the create's 201 to it"

    def put_back() -> bool:
        """The idle check has been past the session and left it scheduled later. Absent from the schedule for a moment
        is no verdict: the check takes a due session off before it counts the clients and puts a connected one back
        after (a CI run read the schedule twice inside that moment); a session it took is stopped, which is."""
        due = idle_due(store, session["id"])
        record = store.sessions.get(session["id"])
        assert record["status"] == "running", f"stopped ({record.get('stopReason')}) with a CDP client connected"
        return due is not None and due > first_due

    wait_until(put_back, 30, message="the idle check to reach the session and put it back")
    assert cdp.call("Browser.getVersion")["product"]
    assert api.get(f"/v1/sessions/{session['id']}").json()["status"] == "running"
    cdp.close()
    stopped = api.wait_status(session["id"], "stopped", timeout=30)
    assert stopped["stopReason"] == "timeout"
