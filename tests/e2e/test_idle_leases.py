"""Idle timeouts that a dead web process cannot freeze: its CDP clients stop counting once their lease runs out."""
from __future__ import annotations

import signal
import subprocess
import sys

import requests

from tests.support.cdp import RawCdp
from tests.support.processes import ROOT, end_process, free_port, wait_until


def test_a_client_of_a_web_process_that_died_stops_counting_and_the_idle_timeout_fires(broker, api, session_factory):
    port = free_port()
    env = {**broker.env, "PORT": str(port), "BROKER_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    log = open(broker.workdir / f"web-extra-{port}.log", "ab")
    web = subprocess.Popen([sys.executable, "-m", "web"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # The second web process first: its start can outlast the session's 2 s idle timeout.
        wait_until(lambda: _answers(port), 30, message="the second web process")
        session = session_factory(api, idleTimeout=2)
        client = RawCdp(session["cdpUrl"].replace(str(broker.port), str(port)))
        client.call("Browser.getVersion")
        web.send_signal(signal.SIGKILL)
        web.wait(10)
        client.close()
        stopped = api.wait_status(session["id"], "stopped", timeout=30)
        assert stopped["stopReason"] == "timeout"
    finally:
        end_process(web)


def test_a_connected_client_keeps_an_idle_session_running_past_its_idle_timeout(api, session_factory):
    session = session_factory(api, idleTimeout=2)
    with RawCdp(session["cdpUrl"]) as client:
        client.call("Browser.getVersion")
        other = session_factory(api, idleTimeout=2)
        api.wait_status(other["id"], "stopped", timeout=30)
        client.call("Browser.getVersion")
        assert api.get(f"/v1/sessions/{session['id']}").json()["status"] == "running"
    stopped = api.wait_status(session["id"], "stopped", timeout=30)
    assert stopped["stopReason"] == "timeout"


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
    except requests.RequestException:
        return False
