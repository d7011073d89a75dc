"""What the API says is what is saved (issue 25, item 4): a save that fails or is cut short changes nothing.

Each test: a context saved with cookie ``ck=v2``; a session sets ``ck=v3``; its save meets a fault (an immutable
snapshot folder, a full disk, S3 unreachable, the worker SIGKILLed mid-save). Then the context's cookies,
``lastSessionId``, ``updatedAt``, ``cookieCount`` and ``snapshotBytes`` are all as they were, the session's
``snapshotError`` says why, and the next session with the context gets exactly the cookies the API shows: v2.
"""
from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.support.api import Api
from tests.support.browsing import visit
from tests.support.processes import Broker, end_process, free_port, wait_until

#: Generous: the machine running the suite may be busy, and a failing S3 upload retries before it gives up.
STOP_WAIT = 120
#: Sessions of these deployments launch Chromium directly, and keep no warm browser busy beside them.
LEAN = {"BROKER_LAUNCHER": "direct", "BROKER_WARM_BROWSERS": "0", "BROKER_POOL_SIZE": "2"}
BUCKET = "bb-save-faults"


def fault_unavailable(reason: str) -> None:
    """A fault this machine cannot make: skipped on a developer's machine, a failure under CI (it must run there)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; CI is set, so this fault test must run")
    pytest.skip(reason)


def run_as_root(*args: str) -> None:
    """A command that needs root (chattr +i, mount); unavailable if it is missing or refused."""
    if shutil.which(args[0]) is None:
        fault_unavailable(f"{args[0]} is not installed")
    done = subprocess.run(list(args), capture_output=True, text=True)
    if done.returncode != 0:
        fault_unavailable(f"`{' '.join(args)}` failed ({done.stderr.strip() or done.returncode}): it needs root")


def set_ck(api: Api, session: dict, pages, value: str) -> None:
    visit(session["cdpUrl"], f"{pages.base}/set-cookie?name=ck&value={value}&persistent=1")
    assert values(api.get(f"/v1/sessions/{session['id']}/cookies").json()["cookies"]) == {"ck": value}


def values(cookies: list[dict]) -> dict[str, str]:
    return {c["name"]: c["value"] for c in cookies}


def by_name(cookies: list[dict]) -> list[dict]:
    return sorted(cookies, key=lambda c: (c["name"], c["domain"], c["path"]))


def context_as_api_says(api: Api, context_id: str) -> tuple[dict, list[dict]]:
    record = api.get(f"/v1/contexts/{context_id}").json()
    return record, by_name(api.get(f"/v1/contexts/{context_id}/cookies").json()["cookies"])


def context_at_v2(api: Api, pages) -> tuple[dict, list[dict]]:
    """A context whose one good save holds ``ck=v2``: its record and cookies as the API shows them."""
    context = api.post("/v1/contexts", json={}).json()
    first = api.create_session(contextId=context["id"])
    set_ck(api, first, pages, "v2")
    assert api.stop_session(first["id"], STOP_WAIT)["snapshotError"] is None
    record, cookies = context_as_api_says(api, context["id"])
    assert record["lastSessionId"] == first["id"] and record["snapshotBytes"] > 0 and record["cookieCount"] == 1
    assert values(cookies) == {"ck": "v2"}
    return record, cookies


def session_at_v3(api: Api, pages, context_id: str) -> dict:
    session = api.create_session(contextId=context_id)
    set_ck(api, session, pages, "v3")
    return session


def assert_nothing_changed(api: Api, before: dict, before_cookies: list[dict], failed: dict) -> None:
    """The failed session says so; the context is what it was, field for field, cookie for cookie."""
    after, after_cookies = context_as_api_says(api, before["id"])
    assert after == before, f"the context changed although its save failed: {before} -> {after}"
    assert after_cookies == before_cookies
    assert values(after_cookies) == {"ck": "v2"}
    assert failed["status"] == "stopped" and failed["snapshotError"], failed


def assert_next_session_gets(api: Api, context_id: str, cookies: list[dict]) -> None:
    """The next session's browser holds exactly the cookies the context's API shows."""
    following = api.create_session(contextId=context_id)
    got = by_name(api.get(f"/v1/sessions/{following['id']}/cookies").json()["cookies"])
    api.stop_session(following["id"], STOP_WAIT)
    assert got == cookies and values(got) == {"ck": "v2"}


# -- a local snapshot folder ------------------------------------------------------
@pytest.fixture(scope="module")
def file_broker(deploy) -> Broker:
    return deploy(50, **LEAN)


def test_immutable_snapshot_folder_leaves_the_context_as_it_was(file_broker, pages):
    broker, api = file_broker, Api(file_broker.url, file_broker.api_key)
    worker = broker.start_worker("immutable")
    try:
        before, before_cookies = context_at_v2(api, pages)
        folder = broker.state_dir / "snapshots" / before["id"]
        archives = sorted(p.name for p in folder.iterdir())
        second = session_at_v3(api, pages, before["id"])
        run_as_root("chattr", "+i", str(folder))
        try:
            failed = api.stop_session(second["id"], STOP_WAIT)
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        assert "not permitted" in failed["snapshotError"], failed["snapshotError"]
        assert_nothing_changed(api, before, before_cookies, failed)
        assert sorted(p.name for p in folder.iterdir()) == archives
        assert_next_session_gets(api, before["id"], before_cookies)
        assert api.delete(f"/v1/contexts/{before['id']}").status_code == 204
    finally:
        broker.stop_worker(worker)


@pytest.mark.parametrize("point", ["before-archive-write", "after-archive-write"])
def test_worker_killed_during_the_save_leaves_the_context_as_it_was(file_broker, pages, point):
    broker, api = file_broker, Api(file_broker.url, file_broker.api_key)
    steady = broker.start_worker("save-steady")
    before, before_cookies = context_at_v2(api, pages)
    broker.stop_worker(steady)

    crashing = f"crashing-{point}"
    nodename = broker.start_worker(crashing, BROKER_TEST_KILL_AT=point)
    second = session_at_v3(api, pages, before["id"])
    assert api.delete(f"/v1/sessions/{second['id']}").status_code == 204
    broker.workers[nodename].wait(STOP_WAIT)
    assert broker.workers.pop(nodename).returncode == -signal.SIGKILL

    steady = broker.start_worker("save-steady")
    try:
        lost = api.wait_status(second["id"], "stopped", timeout=STOP_WAIT)
        assert lost["stopReason"] == "worker_lost"
        assert_nothing_changed(api, before, before_cookies, lost)
        assert "lost before its context was saved" in lost["snapshotError"]
        assert_next_session_gets(api, before["id"], before_cookies)
        assert api.delete(f"/v1/contexts/{before['id']}").status_code == 204
    finally:
        # The killed worker's next life removes the profile its SIGKILL left behind; it starts while steady stops.
        cleaner = broker.start_worker(crashing, wait=False)
        broker.stop_worker(steady)
        broker.wait_worker(cleaner)
        broker.stop_worker(cleaner)


# -- a full disk ------------------------------------------------------------------
def fill(folder: Path) -> Path:
    """Write a file until the file system has no room left; the file, for the clean-up."""
    filler = folder / "filler"
    chunk = b"\0" * 4096
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    return filler


def test_full_disk_leaves_the_context_as_it_was(deploy, workdir, pages):
    mount = workdir / "full-disk"
    mount.mkdir()
    run_as_root("mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount))
    try:
        broker = deploy(51, BROKER_SNAPSHOT_URL=f"file://{mount}", **LEAN)
        api = Api(broker.url, broker.api_key)
        broker.start_worker("full-disk")
        try:
            before, before_cookies = context_at_v2(api, pages)
            folder = mount / before["id"]
            archives = sorted(p.name for p in folder.iterdir())
            second = session_at_v3(api, pages, before["id"])
            filler = fill(mount)
            try:
                failed = api.stop_session(second["id"], STOP_WAIT)
            finally:
                filler.unlink()
            assert "No space left" in failed["snapshotError"], failed["snapshotError"]
            assert_nothing_changed(api, before, before_cookies, failed)
            assert sorted(p.name for p in folder.iterdir()) == archives, "a half-written archive was left behind"
            assert_next_session_gets(api, before["id"], before_cookies)
            assert api.delete(f"/v1/contexts/{before['id']}").status_code == 204
        finally:
            broker.stop()
    finally:
        if subprocess.run(["umount", str(mount)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)
        mount.rmdir()


# -- S3 unreachable ---------------------------------------------------------------
class Moto:
    """A moto S3 server on a fixed port, stopped and started again on it."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "moto-save-faults.log"
        self.client = boto3.client("s3", endpoint_url=self.url, aws_access_key_id="test", aws_secret_access_key="test",
                                   region_name="us-east-1")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        wait_until(self._answers, 60, message="moto S3 server")

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc, timeout=10)
            self.proc = None

    def _answers(self) -> bool:
        try:
            self.client.list_buckets()
            return True
        except Exception:
            return False

    def objects(self) -> dict[str, bytes]:
        listed = self.client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        return {o["Key"]: self.client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}

    def put_back(self, objects: dict[str, bytes]) -> None:
        """moto keeps its objects in memory: a restarted server gets the bucket as it was before the outage."""
        self.client.create_bucket(Bucket=BUCKET)
        for key, body in objects.items():
            self.client.put_object(Bucket=BUCKET, Key=key, Body=body)


@pytest.fixture
def moto(workdir):
    server = Moto(workdir)
    server.start()
    server.client.create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def test_s3_unreachable_leaves_the_context_as_it_was(deploy, moto, pages):
    broker = deploy(52, BROKER_SNAPSHOT_URL=f"s3://{BUCKET}/broker", BROKER_S3_ENDPOINT_URL=moto.url,
                    AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1", **LEAN)
    api = Api(broker.url, broker.api_key)
    worker = broker.start_worker("s3")
    try:
        before, before_cookies = context_at_v2(api, pages)
        saved = moto.objects()
        assert len(saved) == 1
        second = session_at_v3(api, pages, before["id"])
        moto.stop()
        try:
            failed = api.stop_session(second["id"], STOP_WAIT)
        finally:
            moto.start()
            moto.put_back(saved)
        assert "connect" in failed["snapshotError"].lower(), failed["snapshotError"]
        assert_nothing_changed(api, before, before_cookies, failed)
        assert_next_session_gets(api, before["id"], before_cookies)
        assert api.delete(f"/v1/contexts/{before['id']}").status_code == 204
    finally:
        broker.stop_worker(worker)
