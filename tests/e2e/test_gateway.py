"""The worker's gateway on one host: forced for same-host browsers too, so it is tested wherever the suite runs.

tests/hosts/ runs the same paths across network namespaces; this module needs no privileges.
"""
from __future__ import annotations


import psutil
import pytest

from tests.support.api import Api
from tests.support.cdp import RawCdp
from tests.support.browsing import BIG_FRAME, playwright_drive, puppeteer_drive
from tests.support.gateway import SUITE_KEY, gateway_status
from tests.support.processes import Broker


@pytest.fixture(scope="module")
def gated(deploy) -> Broker:
    """A deployment (Redis database 7) whose web process reaches even its own host's browsers through the gateway."""
    broker = deploy(7, BROKER_GATEWAY_ALWAYS="1", BROKER_LAUNCHER="direct")
    broker.start_worker("gated")
    return broker


@pytest.fixture
def gated_api(gated) -> Api:
    return Api(gated.url, gated.api_key)


def worker_log(broker: Broker) -> str:
    return (broker.workdir / "worker-gated.log").read_text()


def test_puppeteer_playwright_and_a_20_mb_frame_pass_through_the_gateway(gated, gated_api, session_factory, pages):
    session = session_factory(gated_api)
    assert puppeteer_drive(session["cdpUrl"], f"{pages.base}/page?title=gated")["title"] == "gated"
    driven = playwright_drive(session["cdpUrl"], f"{pages.base}/page?title=wide", big_frame=BIG_FRAME)
    assert driven == {"heading": "wide", "bigFrameIntact": True}
    assert f"gateway: session {session['id']}: admitted" in worker_log(gated)


def test_large_frames_cross_the_gateway_in_fixed_memory(gated, gated_api, session_factory):
    session = session_factory(gated_api)
    worker = psutil.Process(next(iter(gated.workers.values())).pid)
    cdp = RawCdp(session["cdpUrl"])
    page = cdp.attach_new_page()
    cdp.call("Runtime.evaluate", {"expression": f"globalThis.big = 'g'.repeat({BIG_FRAME})"}, page)
    assert len(cdp.evaluate("big", page)) == BIG_FRAME
    before = worker.memory_info().rss
    for _ in range(5):
        assert len(cdp.evaluate("big", page)) == BIG_FRAME
    cdp.close()
    grown = worker.memory_info().rss - before
    assert grown < BIG_FRAME // 2, f"the worker grew {grown} bytes passing five {BIG_FRAME}-byte frames"


def test_cookie_export_and_inject_go_through_the_gateway(gated, gated_api, session_factory):
    session = session_factory(gated_api)
    cookie = {"name": "gw", "value": "yes", "domain": ".example.com", "path": "/"}
    assert gated_api.put(f"/v1/sessions/{session['id']}/cookies", json={"cookies": [cookie]}).status_code == 200
    exported = gated_api.get(f"/v1/sessions/{session['id']}/cookies").json()
    assert [(c["name"], c["value"]) for c in exported["cookies"]] == [("gw", "yes")]
    assert worker_log(gated).count(f"gateway: session {session['id']}: admitted") == 2


def test_gateway_refuses_missing_wrong_and_other_sessions_credentials(gated, gated_api, session_factory):
    mine, other = session_factory(gated_api), session_factory(gated_api)
    address = gated.store().sessions.get(mine["id"])["gateway"]
    assert gateway_status(address, mine["id"], None) == 403
    assert gateway_status(address, mine["id"], "0" * 64) == 403
    assert gateway_status(address, mine["id"], SUITE_KEY.credential(other["id"])) == 403
    assert gateway_status(address, mine["id"], SUITE_KEY.credential(mine["id"], purpose="upload")) == 403
    assert gateway_status(address, "ses_" + "0" * 32, SUITE_KEY.credential("ses_" + "0" * 32)) == 404
    assert gateway_status(address, mine["id"], SUITE_KEY.credential(mine["id"])) == 101
    cdp = RawCdp(mine["cdpUrl"])
    assert cdp.call("Browser.getVersion")["product"].startswith("Chrome/")
    cdp.close()


def test_a_stopped_sessions_credential_opens_nothing(gated, gated_api, session_factory):
    session = session_factory(gated_api)
    address = gated.store().sessions.get(session["id"])["gateway"]
    gated_api.stop_session(session["id"])
    assert gateway_status(address, session["id"], SUITE_KEY.credential(session["id"])) == 404


def test_gateway_credentials_appear_in_no_answer_and_no_log(gated, gated_api, session_factory):
    session = session_factory(gated_api)
    RawCdp(session["cdpUrl"]).close()
    credential = SUITE_KEY.credential(session["id"])
    answers = [gated_api.get(f"/v1/sessions/{session['id']}").text, gated_api.get("/v1/sessions").text]
    assert not any(credential in text for text in answers)
    logs = [p.read_text(errors="replace") for p in gated.workdir.glob("*.log")]
    assert logs and not any(credential in text for text in logs)
