"""Contexts when things go wrong: a worker killed mid-save, refused and corrupt archives, the S3 backend."""
from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import boto3
import pytest

from tests.support.api import Api
from tests.support.processes import Broker, free_port, wait_until
from tests.support.browsing import visit

STATE = "state()"


@pytest.fixture(scope="module")
def faults_deployment(deploy) -> Broker:
    """Its own deployment (Redis database 2) with no worker of its own: each test starts the workers it needs. No
    warm browser: sessions with a context always launch cold, so a spare would only be launched at each worker start."""
    return deploy(2, BROKER_WARM_BROWSERS="0")


@pytest.fixture
def faults_broker(faults_deployment) -> Iterator[Broker]:
    """The deployment with no worker running, at the start of each test and after it, whatever the test left."""
    broker = faults_deployment
    assert not broker.workers, f"workers a previous test left running: {list(broker.workers)}"
    yield broker
    for nodename in list(broker.workers):
        broker.stop_worker(nodename)


def snapshots_of(broker: Broker, context_id: str) -> list[str]:
    return sorted(p.name for p in (broker.state_dir / "snapshots" / context_id).glob("*.tar.zst"))


def test_worker_killed_between_archive_write_and_pointer_move_keeps_old_snapshot(faults_broker, pages):
    broker, api = faults_broker, Api(faults_broker.url, faults_broker.api_key)
    steady = broker.start_worker("steady")
    context = api.post("/v1/contexts", json={}).json()
    first = api.create_session(contextId=context["id"])
    visit(first["cdpUrl"], f"{pages.base}/state", "state('one')")
    api.stop_session(first["id"])
    saved = snapshots_of(broker, context["id"])
    assert len(saved) == 1
    broker.stop_worker(steady)

    crashing = broker.start_worker("crashing", BROKER_TEST_KILL_AT="after-archive-write")
    second = api.create_session(contextId=context["id"])
    visit(second["cdpUrl"], f"{pages.base}/state", "state('two')")
    assert api.delete(f"/v1/sessions/{second['id']}").status_code == 204
    broker.workers[crashing].wait(60)
    assert broker.workers[crashing].returncode == -signal.SIGKILL
    assert len(snapshots_of(broker, context["id"])) == 2
    assert broker.store().contexts.get(context["id"])["snapshotVersion"] + ".tar.zst" == saved[0]

    broker.start_worker("steady")
    lost = api.wait_status(second["id"], "stopped", timeout=60)
    assert lost["stopReason"] == "worker_lost"
    third = api.create_session(contextId=context["id"])
    assert visit(third["cdpUrl"], f"{pages.base}/state", STATE)["local"] == "one"
    api.stop_session(third["id"])
    assert saved[0] in snapshots_of(broker, context["id"]) and len(snapshots_of(broker, context["id"])) == 2

    earlier_life = [p for p in broker.profile_dirs() if "crashing" in str(p)]
    broker.start_worker("crashing")
    assert earlier_life and not any(p.exists() for p in earlier_life)


def test_oversized_archive_is_refused_and_previous_snapshot_kept(faults_broker, pages):
    broker, api = faults_broker, Api(faults_broker.url, faults_broker.api_key)
    small = broker.start_worker("small", BROKER_SNAPSHOT_MAX_BYTES="2000")
    context = api.post("/v1/contexts", json={}).json()
    session = api.create_session(contextId=context["id"])
    visit(session["cdpUrl"], f"{pages.base}/set-cookie?name=kept&value=yes&persistent=1")
    stopped = api.stop_session(session["id"])
    assert stopped["stopReason"] == "deleted"
    assert "over the 2000 byte limit" in stopped["snapshotError"]
    record = api.get(f"/v1/contexts/{context['id']}").json()
    # Nothing of the refused save shows: not its cookies either (they change only with the snapshot they belong to).
    assert record["snapshotBytes"] == 0 and record["cookieCount"] == 0 and record["lastSessionId"] is None
    assert api.get(f"/v1/contexts/{context['id']}/cookies").json()["cookies"] == []
    assert snapshots_of(broker, context["id"]) == []


def test_corrupt_snapshot_fails_the_create_with_409_and_starts_nothing(broker, api, session_factory, pages):
    context = api.post("/v1/contexts", json={}).json()
    api.stop_session(session_factory(api, contextId=context["id"])["id"])
    (archive,) = (broker.state_dir / "snapshots" / context["id"]).glob("*.tar.zst")
    archive.write_bytes(b"not a zstd archive at all")
    before = broker.footprint()
    answer = api.post("/v1/sessions", json={"contextId": context["id"]})
    assert answer.status_code == 409 and "cannot be restored" in answer.json()["message"]
    # The refused create's record stays, stopped (the 409 names it): nothing else of it, and no browser.
    records, launches, profiles = broker.footprint()
    assert launches == before[1] and profiles == before[2]
    assert all(broker.store().sessions.get(key.rsplit(":", 1)[1])["status"] != "running" for key in records - before[0])
    assert api.delete(f"/v1/contexts/{context['id']}").status_code == 204


@pytest.fixture(scope="module")
def s3_server(workdir):
    port = free_port()
    log = open(workdir / "moto.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url, aws_access_key_id="test", aws_secret_access_key="test",
                          region_name="us-east-1")
    wait_until(lambda: _answers(client), 30, message="moto S3 server")
    client.create_bucket(Bucket="bb-snapshots")
    yield url, client
    proc.terminate()
    proc.wait(10)


def _answers(client) -> bool:
    try:
        client.list_buckets()
        return True
    except Exception:
        return False


def test_s3_backend_keeps_state_across_sessions(deploy, s3_server, pages):
    url, client = s3_server
    broker = deploy(3, BROKER_WARM_BROWSERS="0", BROKER_SNAPSHOT_URL="s3://bb-snapshots/broker",
                    BROKER_S3_ENDPOINT_URL=url,
                    AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1")
    broker.start_worker()
    api = Api(broker.url, broker.api_key)
    context = api.post("/v1/contexts", json={}).json()
    first = api.create_session(contextId=context["id"])
    visit(first["cdpUrl"], f"{pages.base}/set-cookie?name=auth&value=s3&httponly=1&persistent=1")
    visit(first["cdpUrl"], f"{pages.base}/state", "state('in-s3')")
    assert api.stop_session(first["id"])["snapshotError"] is None
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="bb-snapshots").get("Contents", [])]
    assert len(keys) == 1 and keys[0].startswith(f"broker/{context['id']}/")
    assert not (broker.state_dir / "snapshots").exists()

    second = api.create_session(contextId=context["id"])
    assert "auth=s3" in visit(second["cdpUrl"], f"{pages.base}/echo-cookies")
    assert visit(second["cdpUrl"], f"{pages.base}/state", STATE)["local"] == "in-s3"
    api.stop_session(second["id"])
    assert api.delete(f"/v1/contexts/{context['id']}").status_code == 204
    assert client.list_objects_v2(Bucket="bb-snapshots").get("KeyCount", 0) == 0
