"""file:// snapshots do not move between hosts: a create that lands where the snapshot is not says so, and what to set.

Two workers with state folders of their own stand for two hosts (each one's
default file:// store is inside its own folder); tests/hosts moves a context
between real hosts through S3.
"""
from __future__ import annotations


from tests.support.api import Api
from tests.support.browsing import visit


def test_create_where_a_file_snapshot_is_not_is_409_saying_why_and_what_to_set(deploy, workdir, pages):
    broker = deploy(8, BROKER_LAUNCHER="direct", BROKER_WARM_BROWSERS="0")  # context sessions launch cold anyway
    api = Api(broker.url, broker.api_key)
    here = broker.start_worker("here", BROKER_STATE_DIR=str(workdir / "host-here"))
    context = api.post("/v1/contexts", json={}).json()
    session = api.create_session(contextId=context["id"])
    visit(session["cdpUrl"], f"{pages.base}/set-cookie?name=a&value=b&persistent=1")
    assert api.stop_session(session["id"])["snapshotError"] is None
    broker.stop_worker(here)

    there = broker.start_worker("there", BROKER_STATE_DIR=str(workdir / "host-there"))
    answer = api.post("/v1/sessions", json={"contextId": context["id"]})
    assert answer.status_code == 409, answer.text
    message = answer.json()["message"]
    assert "file:// snapshots stay on the host that saved them" in message and "s3://" in message
    assert api.get("/v1/sessions", params={"status": "running"}).json() == []
    log = (workdir / "worker-there.log").read_text()
    assert "file:// snapshots do not move between hosts" in log
    broker.stop_worker(there)
