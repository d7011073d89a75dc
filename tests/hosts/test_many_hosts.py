"""Web and workers on different hosts: three network namespaces, real processes, the Procfile's worker line.

Host ``web`` (198.18.0.1) runs Redis, an S3 server (moto), the web process and
the test pages; hosts ``w1`` and ``w2`` run one worker each, with their own
state folder and hostname. The test itself talks from the web host's network,
as a client next to the API would (only the test's thread moves there).

Without the right to create namespaces the module is skipped, saying why;
with CI=true it must run, so there it fails instead.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import secrets
import subprocess
import zipfile
import shutil
import struct
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import boto3
import pytest
import websocket

from tests.support.api import Api
from tests.support.cdp import RawCdp
from tests.support.browsing import BIG_FRAME, playwright_drive, puppeteer_drive, visit, wait_local_storage_on_disk
from tests.support.gateway import SUITE_KEY, gateway_status
from tests.support.hosts import BUCKET, GATEWAY_PORT, TTL, Deployment
from tests.support.metrics import figure, moved, scrape
from tests.support.netns import Network, why_unavailable
from tests.support.pages import PageServer, download_bytes
from tests.support.processes import ROOT, wait_until

#: A vanished worker's sessions must be stopped within this (core.config.Config.worker_lost_bound with TTL).
LOST_BOUND = 3 * TTL


def js(script: str, *args: str) -> dict:
    """A Node client of tests/js, started from the test's thread, so on the web host's network."""
    out = subprocess.run(["node", script, *args], cwd=ROOT / "tests" / "js", capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _must_run() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def hosts():
    """The deployment, torn down (processes, namespaces, links) however the module ends."""
    reason = why_unavailable()
    if reason:
        if _must_run():
            pytest.fail(f"CI=true but the multi-host tests cannot run: {reason}")
        pytest.skip(f"multi-host tests need network namespaces: {reason}")
    workdir = Path(tempfile.mkdtemp(prefix="bb-hosts-"))
    net = Network()
    deployment = Deployment(net, workdir, "bb_" + secrets.token_urlsafe(24))
    try:
        with net.inside(deployment.web_host):
            deployment.start_services()
            s3 = boto3.client("s3", endpoint_url=deployment.s3_url, aws_access_key_id="test",
                              aws_secret_access_key="test", region_name="us-east-1")
            wait_until(lambda: _answers(s3), 60, message="S3 server on the web host")
            s3.create_bucket(Bucket=BUCKET)
            deployment.start_web()  # it starts while the workers do
            deployment.start_workers(*deployment.worker_hosts)
            wait_until(lambda: _web_answers(deployment), 60, message="web process on the web host")
            deployment.pages = PageServer(deployment.web_host.address)
        yield deployment
    finally:
        try:
            if hasattr(deployment, "pages"):
                deployment.pages.close()
            deployment.stop()
            left = [p for host in deployment.worker_hosts for p in deployment.browsers_on(host)]
            for proc in left:
                proc.kill()
            deployment.remove_profiles()
            assert not left, f"browser processes outlived the deployment: {left}"
        finally:
            net.remove()
            assert not net.leftovers(), f"namespaces or links left: {net.leftovers()}"
            if not os.environ.get("BB_KEEP_HOSTS"):
                shutil.rmtree(workdir, ignore_errors=True)


def _answers(s3) -> bool:
    try:
        s3.list_buckets()
        return True
    except Exception:
        return False


def _web_answers(deployment: Deployment) -> bool:
    try:
        return Api(deployment.url, None).get("/healthz", timeout=2).ok
    except Exception:
        return False


@pytest.fixture
def on_web(hosts):
    """The test's thread on the web host's network for the test's length."""
    with hosts.net.inside(hosts.web_host):
        yield hosts


@pytest.fixture
def api(on_web) -> Api:
    api = Api(on_web.url, on_web.api_key)
    yield api
    for session in api.get("/v1/sessions", params={"status": "running", "page_size": 100}).json():
        api.delete(f"/v1/sessions/{session['id']}")
    for session in api.get("/v1/sessions", params={"page_size": 100}).json():
        if session["status"] != "stopped":
            api.wait_status(session["id"], "stopped", timeout=60)


def test_puppeteer_and_playwright_drive_sessions_on_both_workers_a_20_mb_frame_included(on_web, api):
    pages = on_web.pages
    for host in on_web.worker_hosts:
        session = on_web.create_on(api, host)
        record = on_web.store().sessions.get(session["id"])
        assert record["gateway"] == f"{host.address}:{GATEWAY_PORT}"
        driven = puppeteer_drive(session["cdpUrl"], f"{pages.base}/page?title=on-{host.name}")
        assert driven["title"] == f"on-{host.name}" and driven["heading"] == f"on-{host.name}"
        played = playwright_drive(session["cdpUrl"], f"{pages.base}/page?title=pw-{host.name}", big_frame=BIG_FRAME)
        assert played == {"heading": f"pw-{host.name}", "bigFrameIntact": True}
        assert f"gateway: session {session['id']}: admitted" in on_web.log(f"worker-{host.name}")
        api.stop_session(session["id"])


def test_cookie_export_and_inject_on_a_remote_session(on_web, api):
    session = on_web.create_on(api, on_web.worker_hosts[1])
    cookie = {"name": "remote", "value": "w2", "domain": on_web.web_host.address, "path": "/", "httpOnly": True}
    assert api.put(f"/v1/sessions/{session['id']}/cookies", json={"cookies": [cookie]}).status_code == 200
    exported = api.get(f"/v1/sessions/{session['id']}/cookies").json()
    assert [(c["name"], c["value"], c["httpOnly"]) for c in exported["cookies"]] == [("remote", "w2", True)]
    assert "remote=w2" in visit(session["cdpUrl"], f"{on_web.pages.base}/echo-cookies")


def test_context_saved_on_worker_1_is_restored_on_worker_2(on_web, api):
    w1, w2 = on_web.worker_hosts
    pages = on_web.pages
    context = api.post("/v1/contexts", json={}).json()
    first = on_web.create_on(api, w1, contextId=context["id"])
    visit(first["cdpUrl"], f"{pages.base}/set-cookie?name=auth&value=moved&httponly=1&persistent=1")
    visit(first["cdpUrl"], f"{pages.base}/state", "state('from-w1')")
    assert api.stop_session(first["id"])["snapshotError"] is None
    second = on_web.create_on(api, w2, contextId=context["id"])
    assert "auth=moved" in visit(second["cdpUrl"], f"{pages.base}/echo-cookies")
    assert visit(second["cdpUrl"], f"{pages.base}/state", "state()")["local"] == "from-w1"
    api.stop_session(second["id"])
    assert api.delete(f"/v1/contexts/{context['id']}").status_code == 204


def test_one_scrape_of_the_web_process_shows_the_figures_of_workers_on_other_hosts(on_web, api):
    """Workers' figures reach /metrics through Redis: no scraper needs to reach a worker host."""
    w1, w2 = on_web.worker_hosts
    before = scrape(on_web.url)
    context = api.post("/v1/contexts", json={}).json()
    first = on_web.create_on(api, w1, contextId=context["id"])
    api.stop_session(first["id"])  # saved on w1
    second = on_web.create_on(api, w2, contextId=context["id"])  # restored on w2
    api.stop_session(second["id"])
    assert api.delete(f"/v1/contexts/{context['id']}").status_code == 204
    after = scrape(on_web.url)
    assert moved(before, after, "broker_session_creates_total", code="201") == 2
    assert moved(before, after, "broker_session_stops_total", reason="deleted") == 2
    assert moved(before, after, "broker_snapshot_seconds_count", operation="save") == 2
    assert moved(before, after, "broker_snapshot_bytes_count", operation="restore") == 1
    for host in (w1, w2):
        name = on_web.worker_name(host)
        assert figure(after, "broker_worker_slots", worker=name, use="slots") > 0
        assert figure(after, "broker_worker_heartbeat_age_seconds", worker=name) < TTL


def test_files_and_discovery_on_a_remote_worker_and_downloads_read_from_s3_while_it_is_cut_off(on_web, api):
    """Issue 14 across hosts: downloads and uploads pass the worker's gateway; after the stop they come from S3 alone."""
    w1 = on_web.worker_hosts[0]
    pages = on_web.pages
    session = on_web.create_on(api, w1)
    name = "remote-report.pdf"
    link = f"{pages.base}/download?size=1024011&name={name}"
    assert js("files.mjs", "download", session["cdpUrl"], f"{pages.base}/page", link) == {"state": "completed"}
    data = secrets.token_bytes(300_000)
    stored = api.post(f"/v1/sessions/{session['id']}/uploads", files={"file": ("form.bin", data)}).json()
    read = js("files.mjs", "upload", session["cdpUrl"], f"{pages.base}/upload", stored["path"])
    assert hashlib.sha256(base64.b64decode(read["base64"])).hexdigest() == hashlib.sha256(data).hexdigest()
    assert js("cri.mjs", "cri", session["cdpUrl"]) == {"value": 42}
    live = api.get(f"/v1/sessions/{session['id']}/downloads").json()
    assert [(d["name"], d["size"], d["state"]) for d in live["downloads"]] == [(name, 1024011, "complete")]
    api.stop_session(session["id"])
    s3 = boto3.client("s3", endpoint_url=on_web.s3_url, aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="contexts/downloads/")["Contents"]]
    assert f"contexts/downloads/{session['id']}/{name}" in keys
    on_web.net.cut(w1)
    try:
        body = api.get(f"/v1/sessions/{session['id']}/downloads/{name}")
        zipped = api.get(f"/v1/sessions/{session['id']}/downloads.zip")
    finally:
        on_web.net.restore(w1)
    assert body.status_code == 200 and body.content == download_bytes(1024011)
    assert zipfile.ZipFile(io.BytesIO(zipped.content)).read(name) == download_bytes(1024011)


def test_eight_sessions_spread_over_both_workers(on_web, api):
    sessions: list[dict] = []
    threads = [threading.Thread(target=lambda: sessions.append(api.create_session())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(sessions) == 8
    workers = [on_web.worker_of(s) for s in sessions]
    assert {w: workers.count(w) for w in workers} == {on_web.worker_name(h): 4 for h in on_web.worker_hosts}
    for session in sessions:
        cdp = RawCdp(session["cdpUrl"])
        assert cdp.call("Browser.getVersion")["product"].startswith("Chrome/")
        cdp.close()


def test_gateway_refuses_connections_without_or_with_a_wrong_credential(on_web, api):
    w1 = on_web.worker_hosts[0]
    session, other = on_web.create_on(api, w1), on_web.create_on(api, w1)
    address = f"{w1.address}:{GATEWAY_PORT}"
    assert gateway_status(address, session["id"], None) == 403
    assert gateway_status(address, session["id"], "f" * 64) == 403
    assert gateway_status(address, session["id"], SUITE_KEY.credential(other["id"])) == 403
    assert gateway_status(address, session["id"], SUITE_KEY.credential(session["id"])) == 101
    refused = on_web.log(f"worker-{w1.name}")
    assert f"refused {on_web.web_host.address} for session {session['id']}: no credential" in refused
    assert SUITE_KEY.credential(other["id"]) not in refused


def all_lost(api: Api, sessions: list[dict]) -> bool:
    records = [api.get(f"/v1/sessions/{s['id']}").json() for s in sessions]
    return all((r["status"], r["stopReason"]) == ("stopped", "worker_lost") for r in records)


def close_frame(cdp: RawCdp) -> tuple[int, bytes]:
    """The relay's close frame, read raw: the relay may hang up before a client's reply could be sent."""
    cdp.ws.settimeout(LOST_BOUND + 10)
    while True:
        frame = cdp.ws.recv_frame()
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack(">H", frame.data[:2])[0], frame.data[2:]


def test_cut_off_worker_is_lost_others_keep_serving_and_it_ends_those_browsers_when_back(on_web, api):
    w1, w2 = on_web.worker_hosts
    pages = on_web.pages
    context = api.post("/v1/contexts", json={}).json()
    saved = on_web.create_on(api, w2, contextId=context["id"])
    visit(saved["cdpUrl"], f"{pages.base}/state", "state('saved')")
    api.stop_session(saved["id"])
    on_w2 = [on_web.create_on(api, w2, contextId=context["id"]), on_web.create_on(api, w2)]
    visit(on_w2[0]["cdpUrl"], f"{pages.base}/state", "state('never saved')")
    client = RawCdp(on_w2[1]["cdpUrl"])
    assert client.call("Browser.getVersion")["product"]
    on_web.net.cut(w2)
    try:
        wait_until(lambda: all_lost(api, on_w2), LOST_BOUND, interval=0.5, message="worker 2's sessions: worker_lost")
        code, reason = close_frame(client)
        assert code == 1001 and b"worker_lost" in reason
        during = [api.create_session(contextId=context["id"]), api.create_session(), api.create_session()]
        assert {on_web.worker_of(s) for s in during} == {on_web.worker_name(w1)}
        assert visit(during[0]["cdpUrl"], f"{pages.base}/state", "state()")["local"] == "saved"
        assert on_web.browsers_on(w2), "the cut-off worker's browsers run on until it hears it was declared lost"
    finally:
        on_web.net.restore(w2)
    wait_until(lambda: not on_web.browsers_on(w2), 60, message="worker 2 to end the browsers of its lost sessions")
    assert "no longer this worker's (stopped)" in on_web.log(f"worker-{w2.name}")
    wait_until(lambda: on_web.worker_name(w2) in on_web.store().workers.live(), 30, message="worker 2 live again")
    # Its launch consumer reconnects on its own schedule (a BRPOP left unanswered by the cut is dropped first).
    assert on_web.worker_of(on_web.create_on(api, w2, attempts=3)) == on_web.worker_name(w2)


def test_only_worker_sigkilled_its_sessions_end_as_worker_lost_within_the_bound(on_web, api):
    w1, w2 = on_web.worker_hosts
    on_web.stop_worker(w2)
    sessions = [api.create_session() for _ in range(2)]
    on_web.kill_worker(w1)
    try:
        wait_until(lambda: all_lost(api, sessions), LOST_BOUND, interval=0.5, message="the sessions: worker_lost")
        assert on_web.browsers_on(w1), "a SIGKILLed worker's browsers are ended by its next life, not before"
    finally:
        on_web.start_workers(w1, w2)
    wait_until(lambda: not on_web.browsers_on(w1), 30, message="worker 1's next life to end the earlier one's browsers")


def test_a_sigkilled_workers_session_with_checkpoints_comes_back_on_the_other_host_from_s3(on_web, api):
    """Its checkpoint in the S3 store, the session runs again on worker 2 at the same cdpUrl, its state back."""
    w1, w2 = on_web.worker_hosts
    pages = on_web.pages
    session = on_web.create_on(api, w1, checkpointInterval=2)
    visit(session["cdpUrl"], f"{pages.base}/state", "state('checkpointed')")
    wait_local_storage_on_disk(on_web.worker_profiles(w1) / session["id"], "checkpointed")
    changed = time.time()
    visit(session["cdpUrl"], f"{pages.base}/state", "document.cookie = 'tick=1; path=/'")  # a change to save

    def checkpointed() -> bool:
        at = api.get(f"/v1/sessions/{session['id']}").json()["checkpointedAt"]
        return bool(at) and datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() > changed

    wait_until(checkpointed, 20, interval=0.2, message="a checkpoint after the state was written")
    on_web.kill_worker(w1)
    try:
        wait_until(lambda: (lambda r: r["restoredFrom"] and not r["moving"])(
            api.get(f"/v1/sessions/{session['id']}").json()), LOST_BOUND + 60, interval=0.5,
            message="the session running again from its checkpoint")
        after = api.get(f"/v1/sessions/{session['id']}").json()
        assert after["status"] == "running" and on_web.worker_of(after) == on_web.worker_name(w2)
        assert after["cdpUrl"] == session["cdpUrl"]
        state = visit(after["cdpUrl"], f"{pages.base}/state", "state()")
        assert state["local"] == "checkpointed" and "js_cookie=checkpointed" in state["cookie"], state
    finally:
        on_web.start_worker(w1)
    wait_until(lambda: not on_web.browsers_on(w1), 30, message="worker 1's next life to end the earlier one's browsers")


def test_worker_restarted_from_the_procfile_line_ends_its_earlier_lifes_browsers(on_web, api):
    w1 = on_web.worker_hosts[0]
    sessions = [on_web.create_on(api, w1) for _ in range(2)]
    on_web.kill_worker(w1)
    try:
        assert on_web.browsers_on(w1), "Chromium outlives a SIGKILLed worker"
    finally:
        assert on_web.start_worker(w1) == on_web.worker_name(w1)
    wait_until(lambda: not on_web.browsers_on(w1), 30, message="the restarted worker to end its earlier life's browsers")
    for session in sessions:
        assert api.wait_status(session["id"], "stopped", timeout=LOST_BOUND)["stopReason"] == "worker_lost"
    assert not list(on_web.worker_profiles(w1).iterdir())
