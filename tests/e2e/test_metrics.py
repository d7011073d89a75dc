"""``GET /metrics`` and the structured logs, against a real deployment: its figures move by exactly what the test did.

Two deployments of their own: ``observed`` (Redis database 40) with /metrics
open and JSON logs, and ``guarded`` (database 41, a web process only) whose
/metrics needs a bearer key.
"""
from __future__ import annotations

import json
import secrets

import pytest
import requests

from tests.support import secrets as ledger
from tests.support.api import Api
from tests.support.cdp import RawCdp
from tests.support.metrics import moved, scrape
from tests.support.processes import Broker, wait_until

WORKER = "observed"


@pytest.fixture(scope="module")
def observed(deploy) -> Broker:
    """One worker of two slots, no warm browser (every create launches, so each is one cold launch), JSON logs."""
    broker = deploy(40, BROKER_LAUNCHER="direct", BROKER_POOL_SIZE="2", BROKER_WARM_BROWSERS="0",
                    BROKER_LOG_FORMAT="json")
    broker.start_worker(WORKER)
    return broker


@pytest.fixture(scope="module")
def guarded(deploy) -> tuple[Broker, str]:
    key = "metrics-" + secrets.token_urlsafe(24)
    ledger.remember("BROKER_METRICS_KEY", key)
    return deploy(41, BROKER_METRICS_KEY=key), key


def test_metrics_counters_move_by_the_sessions_the_test_made(observed, pages):
    api = Api(observed.url, observed.api_key)
    before = scrape(observed.url)
    context = api.post("/v1/contexts", json={}).json()["id"]
    first = api.create_session(contextId=context, url=f"{pages.base}/page?title=one")
    busy = api.post("/v1/sessions", json={"contextId": context})
    assert busy.status_code == 409, busy.text
    plain = api.create_session()

    # A CDP client through the relay: counted while connected, its bytes counted after.
    with RawCdp(plain["cdpUrl"]) as cdp:
        assert cdp.call("Browser.getVersion")["product"]
        during = scrape(observed.url)
        assert during[("broker_relay_clients", ())] == 1
        assert during[("broker_sessions", (("status", "running"),))] == 2
    api.stop_session(first["id"])  # its context is saved
    second = api.create_session(contextId=context)  # and restored
    for session in (plain, second):
        api.stop_session(session["id"])

    wait_until(lambda: scrape(observed.url)[("broker_relay_clients", ())] == 0, 10, message="the relay to let go")
    after = scrape(observed.url)
    assert moved(before, after, "broker_session_creates_total", code="201") == 3
    assert moved(before, after, "broker_session_creates_total", code="409") == 1
    assert moved(before, after, "broker_session_create_seconds_count") == 4
    assert moved(before, after, "broker_session_create_seconds_bucket", le="+Inf") == 4
    assert moved(before, after, "broker_sessions_entered_total", status="running") == 3
    assert moved(before, after, "broker_sessions_entered_total", status="stopped") == 3
    assert moved(before, after, "broker_session_stops_total", reason="deleted") == 3
    assert after[("broker_sessions", (("status", "running"),))] == 0
    assert after[("broker_launch_queue_depth", ())] == 0
    for direction in ("to_browser", "to_client"):
        assert moved(before, after, "broker_relay_bytes_total", direction=direction) > 0
    assert moved(before, after, "broker_snapshot_seconds_count", operation="save") == 2
    assert moved(before, after, "broker_snapshot_seconds_count", operation="restore") == 1
    assert moved(before, after, "broker_snapshot_bytes_sum", operation="save") > 0
    # The worker's own figures, written to Redis by the worker and exported here.
    nodename = f"{WORKER}@test"
    assert after[("broker_worker_slots", (("use", "slots"), ("worker", nodename)))] == 2
    assert 0 <= after[("broker_worker_heartbeat_age_seconds", (("worker", nodename),))] < 5


def test_every_session_event_is_one_json_line_naming_the_session_its_project_and_worker(observed, workdir):
    api = Api(observed.url, observed.api_key)
    session = api.create_session()
    with RawCdp(session["cdpUrl"]) as cdp:
        cdp.call("Browser.getVersion")
    api.stop_session(session["id"])
    worker_log = workdir / f"worker-{WORKER}.log"
    web_log = workdir / f"web-{observed.port}.log"

    def events(path) -> list[dict]:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.startswith("{")]
        return [e for e in map(json.loads, lines) if e.get("session") == session["id"]]

    wait_until(lambda: any("stopped" in e["message"] for e in events(worker_log)), 10, message="the stop's log line")
    seen = events(web_log) + events(worker_log)
    # Every line about the session names its project and worker, the pool's (which knows only the id) too.
    assert {(e["project"], e["worker"]) for e in seen} == {("default", f"{WORKER}@test")}
    messages = [e["message"] for e in seen]
    for said in ("create answered 201", "launch taken", ": running", "browser up", "CDP client", "stop requested",
                 "browser ended", "stopped (deleted)"):
        assert any(said in m for m in messages), (said, messages)
    # Lines that are not about a session (Celery's own) are JSON too, naming the worker that wrote them.
    celery_lines = [json.loads(line) for line in worker_log.read_text().splitlines()
                    if line.startswith("{") and '"celery' in line]
    assert celery_lines and all(e["worker"] == f"{WORKER}@test" for e in celery_lines[-5:])


def test_metrics_behind_a_key_refuse_a_missing_or_wrong_bearer_and_open_to_the_right_one(guarded):
    broker, key = guarded
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": key}):
        answer = requests.get(f"{broker.url}/metrics", headers=headers, timeout=10)
        assert answer.status_code == 401
        assert answer.json()["code"] == 401 and "WWW-Authenticate" in answer.headers
    figures = scrape(broker.url, Authorization=f"Bearer {key}")
    assert ("broker_launch_queue_depth", ()) in figures
