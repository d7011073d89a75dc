"""A Redis outage or restart never ends a worker nor orphans a browser (issue 25 item 3).

The deployment has a Redis of its own, SIGKILLed while stops and creates are in flight: one launch (acks_late)
is held in its first navigation so its message is unacknowledged for sure, another create has just answered,
a DELETE has just answered and its stop runs. Redis then comes back within a second, with its data or empty.
Before the fix kombu's restore of the unacknowledged launch raised AttributeError on the closed transport, the
worker shut down ("Unrecoverable error"), and its exit, whose every store call failed, left Chromium running
with no worker. A worker that did reconnect could stay deaf to cold launches for good: the word to take them again,
sent while its consumer was still reconnecting, reached no one.
"""
from __future__ import annotations

import contextlib
import secrets
import signal
import threading
import time

import pytest
import requests

from core.session_machine import SessionMachine
from tests.support.api import Api
from tests.support.cdp import evaluate
from tests.support.pages import PageServer
from tests.support.processes import Broker, Redis, end_process, wait_until

WORKER = "w"
NODE = f"{WORKER}@test"


@pytest.fixture(scope="module")
def pages():
    """The module's own: it holds navigations (``/hold``) while Redis is killed."""
    server = PageServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def deployment(brokers, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("redis-restart")
    redis = Redis(workdir, persist=True)
    broker = Broker(redis, workdir, "bb_" + secrets.token_urlsafe(24), BROKER_POOL_SIZE="6", BROKER_CREATE_WAIT="20",
                    BROKER_LAUNCHER="selenium")  # a ChromeDriver whose Redis went away must not be left behind
    brokers.append(broker)
    broker.start_web(wait=False)
    broker.start_worker(WORKER)
    yield broker, redis
    if redis.proc.poll() is not None:
        redis.start()
    broker.stop()
    redis.stop()


def create_with_retries(api: Api, timeout: float = 90) -> tuple[dict, float]:
    """The first create that answers 201 (503s while the deployment recovers), and when it answered."""
    deadline = time.monotonic() + timeout
    while True:
        answer = api.post("/v1/sessions", json={}, timeout=60)
        if answer.status_code == 201:
            return answer.json(), time.monotonic()
        assert answer.status_code == 503 and time.monotonic() < deadline, (answer.status_code, answer.text[:300])
        time.sleep(0.2)


RESTORE = "unacknowledged message"


def kill_redis_mid_flight(broker: Broker, redis: Redis, api: Api, pages: PageServer) -> tuple[list[dict], dict, int]:
    """Two running sessions; then a held launch, a create and a DELETE of one of the two in flight, and Redis
    SIGKILLed the moment the DELETE answers. The sessions that were running at the kill, the one deleted, and how
    many restores of unacknowledged messages the worker had logged before."""
    restores = broker.worker_log(WORKER).count(RESTORE)
    running = [api.create_session(), api.create_session()]
    pages.hold()
    def hold() -> None:
        """A create whose launch is under way when Redis dies: its own answer is no part of what is tested."""
        with contextlib.suppress(requests.RequestException):
            api.post("/v1/sessions", json={"url": f"{pages.base}/hold"}, timeout=60)

    held = threading.Thread(target=hold, daemon=True)
    held.start()
    wait_until(lambda: "/hold" in pages.hits, 30, message="the held launch's first navigation")
    running.append(api.create_session())
    deleted = running.pop(0)
    assert api.delete(f"/v1/sessions/{deleted['id']}").status_code == 204
    end_process(redis.proc, signal.SIGKILL)
    time.sleep(0.5)
    return running, deleted, restores


def worker_survived(broker: Broker, restores: int) -> None:
    """Through the fault's very path: the consumer lost its connection holding the held launch unacknowledged."""
    # Celery's consumer reconnects with a backoff; a loaded clean-clone run took over 30 s.
    wait_until(lambda: broker.worker_log(WORKER).count(RESTORE) > restores, 90,
               message="the consumer's restore of the unacknowledged launch")
    assert broker.workers[NODE].poll() is None, "the worker exited"
    wait_until(lambda: NODE in broker.live_workers(), 30, message="the worker's heartbeat")
    assert "Unrecoverable error" not in broker.worker_log(WORKER)


def browsers_without_worker(broker: Broker) -> list:
    return [] if broker.workers[NODE].poll() is None else broker.browser_processes()


def no_chromedriver_left(broker: Broker) -> bool:
    return not [p for p in broker.browser_processes() if p.name() == "chromedriver"]


def test_a_restart_with_its_data_keeps_every_running_session_usable(deployment, pages):
    broker, redis = deployment
    api = Api(broker.url, broker.api_key)
    running, deleted, restores = kill_redis_mid_flight(broker, redis, api, pages)
    try:
        redis.start()
    finally:
        pages.release()
    worker_survived(broker, restores)
    assert not browsers_without_worker(broker)
    fresh, _ = create_with_retries(api)
    for session in running:
        assert api.get(f"/v1/sessions/{session['id']}").json()["status"] == "running"
        assert evaluate(session, "1 + 1") == 2, session["id"]
    assert evaluate(fresh, "2 + 2") == 4
    api.wait_status(deleted["id"], "stopped", timeout=60)
    wait_until(lambda: deleted["id"] not in broker.session_profiles(), 30, message="the deleted session's browser")
    wait_until(lambda: no_chromedriver_left(broker), 30, message="no ChromeDriver left")
    for session in [*running, fresh]:
        api.stop_session(session["id"], timeout=60)


def test_a_restart_without_its_data_keeps_the_worker_and_ends_what_it_cannot_serve(deployment, pages):
    broker, redis = deployment
    api = Api(broker.url, broker.api_key)
    running, deleted, restores = kill_redis_mid_flight(broker, redis, api, pages)
    try:
        redis.start(empty=True)
    finally:
        pages.release()
    worker_survived(broker, restores)
    assert not browsers_without_worker(broker)
    fresh, _ = create_with_retries(api)
    assert evaluate(fresh, "2 + 2") == 4
    # The sessions the store forgot are ended; nothing else of theirs stays.
    before = {s["id"] for s in [*running, deleted]}
    wait_until(lambda: not before & set(broker.session_profiles()), 30, message="the forgotten sessions' browsers")
    wait_until(lambda: no_chromedriver_left(broker), 30, message="no ChromeDriver left")
    for session in running:
        assert api.get(f"/v1/sessions/{session['id']}").status_code == 404
    api.stop_session(fresh["id"], timeout=60)


def test_a_worker_stopped_while_redis_is_down_ends_every_browser(deployment):
    """The worker's exit needs no Redis: every store call of its stops fails, and every browser ends anyway."""
    broker, redis = deployment
    api = Api(broker.url, broker.api_key)
    sessions = [create_with_retries(api)[0] for _ in range(2)]
    wait_until(lambda: broker.browser_counts(NODE).get("running", 0) >= 2, 30, message="two running browsers")
    end_process(redis.proc, signal.SIGKILL)
    broker.stop_worker(NODE)
    wait_until(lambda: not broker.browser_processes(), 30, message="every browser of the stopped worker to end")
    assert not broker.leftovers(), broker.leftovers()
    redis.start()
    broker.start_worker(WORKER)
    for session in sessions:
        # Its worker went away without Redis: the reapers end it as worker_lost once Redis is back.
        wait_until(lambda: api.get(f"/v1/sessions/{session['id']}").json()["status"] == "stopped", 60,
                   message="the sessions of the stopped worker to end")
    # The stopped worker's last heartbeat may still count for a moment: ready once the new one's does.
    wait_until(lambda: requests.get(f"{broker.url}/readyz", timeout=10).status_code == 200, 30, message="readiness")


def test_a_worker_that_reconnects_takes_cold_launches_again(brokers, tmp_path_factory):
    """A full pool stops the worker taking launches. A slot that frees after Redis came back, before the worker's
    consumer has reconnected (it tries at once, then 2 s and 4 s later), has the word to take launches again
    (add_consumer, a message to the worker's control queue) go out while no consumer listens: before the fix it
    reached no one, and the worker never took a cold launch again. The slot here is a session its worker finds
    declared lost meanwhile (its record stopped), whose browser it ends at its next heartbeat."""
    workdir = tmp_path_factory.mktemp("redis-restart-full")
    redis = Redis(workdir, persist=True)
    broker = Broker(redis, workdir, "bb_" + secrets.token_urlsafe(24), BROKER_POOL_SIZE="2", BROKER_WARM_BROWSERS="0",
                    BROKER_CREATE_WAIT="15")
    brokers.append(broker)
    try:
        broker.start_web(wait=False)
        broker.start_worker(WORKER)
        api = Api(broker.url, broker.api_key)
        kept, lost = api.create_session(), api.create_session()
        end_process(redis.proc, signal.SIGKILL)
        time.sleep(2.5)  # the consumer's tries at once and 2 s later fail; its next comes 4 s after that
        redis.start()
        assert SessionMachine(broker.store()).lose(lost["id"])
        wait_until(lambda: lost["id"] not in broker.session_profiles(), 10, message="the lost session's browser")
        fresh, _ = create_with_retries(api, timeout=40)
        assert evaluate(fresh, "2 + 2") == 4 and evaluate(kept, "1 + 1") == 2
        assert broker.workers[NODE].poll() is None
    finally:
        if redis.proc.poll() is not None:
            redis.start()
        broker.stop()
        redis.stop()
