"""During a Redis outage every entry point answers 503 with Retry-After, sockets included; never a 500 (issue 25).

The deployment has a Redis of its own (appendfsync always), killed while a session runs and started again on
the same port with its data: the session is still there to stop, and no other module's deployment sees the outage.
"""
from __future__ import annotations

import secrets
import signal
from urllib.parse import urlsplit

import pytest
import requests
import websocket
from kombu.transport.redis import Channel

from tests.support.api import Api
from tests.support.processes import Broker, Redis, end_process, wait_until

#: Where kombu's Redis transport keeps the messages a worker took and has not acknowledged yet.
UNACKED = Channel.unacked_key


@pytest.fixture(scope="module")
def outage(brokers, workdir):
    """A running session, then its deployment's Redis killed; started again (same port, same data) afterwards."""
    redis = Redis(workdir, persist=True)
    broker = Broker(redis, workdir, "bb_" + secrets.token_urlsafe(24), BROKER_WARM_BROWSERS="0")
    brokers.append(broker)
    broker.start_web(wait=False)
    broker.start_worker()
    api = Api(broker.url, broker.api_key)
    session = api.create_session()
    # The launch task acknowledges its message once it returns, just after the create's answer: an outage before
    # that is another fault (a worker that cannot ack, issue 25 item 3), not what this module is about. Until then
    # kombu keeps the message in Redis's "unacked" hash.
    wait_until(lambda: broker.store().redis.hlen(UNACKED) == 0, 30, message="the launch task's acknowledgement")
    end_process(redis.proc, signal.SIGKILL)
    yield broker, api, session
    redis.start()
    api.stop_session(session["id"], timeout=60)
    broker.stop()
    redis.stop()


def assert_unavailable(answer: requests.Response) -> None:
    assert answer.status_code == 503, (answer.status_code, answer.text[:300])
    assert answer.headers.get("Retry-After") and "Redis" in answer.json()["message"]


def test_rest_answers_503(outage):
    broker, api, session = outage
    assert_unavailable(api.get(f"/v1/sessions/{session['id']}"))
    assert_unavailable(api.post("/v1/sessions", json={}))
    assert requests.get(f"{broker.url}/readyz", timeout=30).status_code == 503


def test_files_answer_503(outage):
    _, api, session = outage
    assert_unavailable(api.get(f"/v1/sessions/{session['id']}/downloads"))


def test_discovery_answers_503(outage):
    broker, _, session = outage
    token = urlsplit(session["cdpUrl"]).query
    assert_unavailable(requests.get(f"{broker.url}/ws/session/{session['id']}/json/version?{token}", timeout=30))


@pytest.mark.parametrize("socket_url", ["cdp", "live view"])
def test_a_socket_upgrade_answers_503(outage, socket_url):
    broker, _, session = outage
    if socket_url == "cdp":
        url = session["cdpUrl"]
    else:
        live = urlsplit(session["liveViewUrl"])
        url = f"ws://{live.netloc}{live.path}/socket?{live.query}"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=30, suppress_origin=True)
    assert refused.value.status_code == 503
    headers = {k.lower(): v for k, v in (refused.value.resp_headers or {}).items()}
    assert headers.get("retry-after")
