"""scripts/serve.sh, the README's run command: it serves, and SIGTERM or Ctrl-C stops it cleanly.

Clean means: the running session goes through the normal stop flow (its context
saved), the worker exits while Redis is still up, Redis stops last, and nothing
is left: no process, no profile, no browser temp folder.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests

from core.store import Store
from tests.support.api import Api
from tests.support.browsing import visit
from tests.support.processes import ROOT, RUN_ID, RUN_MARK, TEST_FLAGS, Redis, end_process, free_port, gone, wait_until
from tests.support.settings import config_with

#: Every process of one serve.sh run carries this in its environment (children inherit it).
SERVE_MARK = "BB_SERVE_RUN"


class Served:
    """One run of serve.sh on free ports with its own state, in a process group of its own as a terminal starts it."""

    def __init__(self, root: Path, egress_allow: str = "") -> None:
        """``egress_allow``: what the sessions may reach beyond public addresses (the test's page server)."""
        self.mark = uuid.uuid4().hex
        self.state = root / "state"
        # Short, like /tmp: Chromium puts a Unix socket (108 bytes at most) in its temp folder.
        self.tmp = Path(tempfile.mkdtemp(prefix="bbs-"))
        self.tmp.chmod(0o711)  # browsers' users enter their temp and profile folders below it
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_") and k not in ("REDIS_URL", "DYNO")}
        env.update({
            SERVE_MARK: self.mark,
            RUN_MARK: RUN_ID,
            "PORT": str(self.port),
            "BROKER_REDIS_PORT": str(free_port()),
            "FLOWER_PORT": str(free_port()),
            "BROKER_STATE_DIR": str(self.state),
            "BROKER_BIND": "127.0.0.1",
            "BROKER_CHROMIUM_EXTRA_FLAGS": TEST_FLAGS,
            "BROKER_HEARTBEAT_INTERVAL": "1",
            "BROKER_EGRESS_ALLOW": egress_allow,
            # Browsers' temp folders (bb-*) land here instead of /tmp, so the check sees only this run's.
            "TMPDIR": str(self.tmp),
        })
        self.log = root / "serve.log"
        with open(self.log, "ab") as log:
            # SIGINT at its default, as from a terminal: a test runner started in the background has it ignored,
            # its children inherit that, and bash cannot trap a signal that was ignored when it started.
            self.proc = subprocess.Popen(["env", "--default-signal=INT", "bash", "scripts/serve.sh"], cwd=ROOT,
                                         env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"serve.sh exited early:\n{self.log.read_text()[-3000:]}")
        try:
            return requests.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def api(self) -> Api:
        return Api(self.url, (self.state / "api-key").read_text().strip())

    def processes(self) -> list[psutil.Process]:
        """This run's live processes, found by the environment mark (never by name)."""
        found = []
        for proc in psutil.process_iter():
            try:
                if proc.environ().get(SERVE_MARK) == self.mark and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def kill_leftovers(self) -> None:
        for proc in self.processes():
            proc.kill()
        if self.proc.poll() is None:
            end_process(self.proc, signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)


def role(proc: psutil.Process) -> str:
    """Which of serve.sh's own children this is, from its command line."""
    argv = proc.cmdline()
    if Path(argv[0]).name.startswith("redis-server"):
        return "redis"
    if argv[1:3] == ["-m", "web"]:
        return "web"
    return next((name for name in ("worker", "flower") if name in argv), "other")


class ExitOrder:
    """Notes when each of the stack's main processes exits, polling every 20 ms from another thread.

    Every process found gone in one round gets that round's time: two that exit within one round (flower, then
    Redis a few milliseconds later) cannot be told apart, and were once noted in the order of the round's checks."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self.gone: dict[str, float] = {}
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        deadline = time.monotonic() + 180
        while len(self.gone) < len(self.procs) and time.monotonic() < deadline:
            now = time.monotonic()
            for name, proc in self.procs.items():
                if name not in self.gone and gone(proc):
                    self.gone[name] = now
            time.sleep(0.02)

    def wait(self) -> dict[str, float]:
        self._thread.join(200)
        return self.gone


def stopped_context_state(state: Path, context_id: str, session_id: str) -> tuple[list[dict], dict]:
    """What the stopped stack left in its Redis data file, read with a Redis of our own."""
    redis = Redis(state, data_dir=state)
    try:
        store = Store(config_with(REDIS_URL=redis.url()))
        return store.contexts.cookies(context_id), store.sessions.get(session_id)
    finally:
        redis.stop()


STOPS = {
    "sigterm_to_its_pid": lambda proc: os.kill(proc.pid, signal.SIGTERM),
    # A terminal's Ctrl-C: SIGINT to every process of the foreground process group.
    "ctrl_c_to_its_process_group": lambda proc: os.killpg(proc.pid, signal.SIGINT),
}


@pytest.mark.parametrize("how", STOPS)
def test_serve_stops_cleanly_saving_contexts_worker_first_redis_last(how, tmp_path, pages):
    served = Served(tmp_path, egress_allow=f"127.0.0.1/32:{pages.httpd.server_address[1]}")
    try:
        wait_until(served.ready, 180, interval=0.5, message="serve.sh to be ready")
        api = served.api()
        context = api.post("/v1/contexts", json={}).json()
        session = api.create_session(contextId=context["id"])
        visit(session["cdpUrl"], f"{pages.base}/set-cookie?name=kept&value=yes&persistent=1")
        main = {role(p): p for p in psutil.Process(served.proc.pid).children()}
        assert {"redis", "web", "worker", "flower"} <= set(main), main
        order = ExitOrder({name: main[name] for name in ("redis", "web", "worker", "flower")})

        STOPS[how](served.proc)
        assert served.proc.wait(180) == 0, served.log.read_text()[-3000:]
        gone = order.wait()

        assert set(gone) == {"redis", "web", "worker", "flower"}, gone
        # Redis is never seen gone in a round before the others (within one round, the order cannot be told).
        assert gone["worker"] <= gone["redis"] and gone["web"] <= gone["redis"] and gone["flower"] <= gone["redis"]
        assert served.processes() == []
        assert list(served.tmp.glob("browser-broker-profiles-*/*/*")) == []
        assert list(served.tmp.glob("bb-*")) == []
        assert list((served.state / "snapshots" / context["id"]).glob("*.tar.zst"))
        cookies, record = stopped_context_state(served.state, context["id"], session["id"])
        assert [c["value"] for c in cookies if c["name"] == "kept"] == ["yes"]
        assert record["status"] == "stopped" and record["snapshotError"] is None
    finally:
        served.kill_leftovers()
