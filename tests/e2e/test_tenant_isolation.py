"""What a tenant holding only its own session's cdpUrl can reach: the internet, and nothing of the host or of other tenants.

Each test runs an attack against a deployment with the default egress policy
(nothing opened but the one upstream proxy the victim uses), once per launcher,
with the victim's session going out through a saved proxy and the attacker's
on the worker's warm browser or a cold one. The attacker works as a user's
script would: through the relay, from a page of its own browser.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
from urllib.parse import urlsplit

import psutil
import pytest
import requests
import websocket

from core.cdp import CdpError
from tests.support.api import Api
from tests.support.cdp import RawCdp, load, new_tab
from tests.support.keys import make_key
from tests.support.processes import Broker, wait_until
from tests.support.upstreams import HttpUpstream

REFUSED_TEXT = "egress policy"
ALL_SCOPES = "sessions:read,sessions:write,proxies:read,proxies:write,contexts:read,contexts:write"


@pytest.fixture(scope="module")
def upstream(workdir):
    server = HttpUpstream(workdir, "isolation", "victim", "pw-" + secrets.token_hex(12)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["selenium", "direct"])
def strict(request, deploy, upstream) -> Broker:
    """The default policy, opened only for the victim's upstream proxy (as an operator opens an internal proxy)."""
    broker = deploy(40 + ["selenium", "direct"].index(request.param), BROKER_LAUNCHER=request.param,
                    BROKER_EGRESS_ALLOW=f"127.0.0.1/32:{upstream.port}", BROKER_WARM_BROWSERS="1")
    broker.start_worker()
    return broker


@pytest.fixture(scope="module")
def tenants(strict, upstream) -> dict:
    """Two projects on one worker: the victim's session through its saved proxy, the attacker's plain one."""
    victim = Api(strict.url, make_key(strict, scopes=ALL_SCOPES, project="victim"))
    attacker = Api(strict.url, make_key(strict, scopes=ALL_SCOPES, project="attacker"))
    proxy = victim.post("/v1/proxies", json={"server": upstream.server, "username": upstream.username,
                                             "password": upstream.password}).json()
    worker = next(iter(strict.workers))
    # On offer, not only started: a spare is offered a moment after it answers.
    wait_until(lambda: strict.store().warm.offered_by(worker), 60, message="a warm browser on offer")
    attacker_session = attacker.create_session()
    # A context fills the profile before launch, so this one is launched cold.
    context = attacker.post("/v1/contexts", json={}).json()
    cold_session = attacker.create_session(contextId=context["id"])
    victim_session = victim.create_session(proxyId=proxy["id"])
    yield {"victim": victim_session, "attacker": attacker_session, "attacker_cold": cold_session,
           "victim_api": victim, "attacker_api": attacker}
    for api, session in ((attacker, attacker_session), (attacker, cold_session), (victim, victim_session)):
        api.stop_session(session["id"])
    victim.delete(f"/v1/proxies/{proxy['id']}")
    attacker.delete(f"/v1/contexts/{context['id']}")


def browser_port(broker: Broker, session_id: str) -> int:
    return urlsplit(broker.store().sessions.get(session_id)["browserWsUrl"]).port


def browser_process(broker: Broker, session_id: str) -> psutil.Process:
    profile = broker.session_profiles()[session_id]
    flag = f"--user-data-dir={profile}"
    return next(p for p in psutil.process_iter(["cmdline"])
                if flag in (p.info["cmdline"] or []) and not any(a.startswith("--type=") for a in p.info["cmdline"]))


def forwarder_port(broker: Broker, session_id: str) -> int:
    flag = next(a for a in browser_process(broker, session_id).cmdline() if a.startswith("--proxy-server="))
    return urlsplit(flag.split("=", 1)[1]).port


def assert_refused(session: dict, url: str, secret: str = "") -> None:
    """The load fails, or shows the forwarder's refusal; never what ``url`` serves."""
    shown = load(session, url)
    assert not secret or secret not in shown.text, f"{url} answered the attacker: {shown.text[:200]}"
    assert shown.error or (shown.status == 403 and REFUSED_TEXT in shown.text), (url, shown)


def test_the_attackers_sessions_are_a_warm_and_a_cold_browser(strict, tenants):
    """The attacks below run from both: a warm browser's forwarder is made before any session exists."""
    profiles = strict.session_profiles()
    assert profiles[tenants["attacker"]["id"]].name.startswith("warm")
    assert profiles[tenants["attacker_cold"]["id"]].name == tenants["attacker_cold"]["id"]


@pytest.mark.parametrize("attacker", ["attacker", "attacker_cold"])
def test_a_page_reaches_no_debugger_not_even_its_own(strict, tenants, attacker):
    for session_id in (tenants["victim"]["id"], tenants[attacker]["id"]):
        port = browser_port(strict, session_id)
        for host in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]"):
            assert_refused(tenants[attacker], f"http://{host}:{port}/json/version", "webSocketDebuggerUrl")


def test_a_page_socket_never_opens_another_browsers_debugger(strict, tenants):
    """The page's socket goes to its forwarder (refused); even a socket that reached Chromium carries an Origin,
    which a debugger without --remote-allow-origins refuses (checked here straight from the test, as a page would)."""
    victim_ws = strict.store().sessions.get(tenants["victim"]["id"])["browserWsUrl"]
    opened = """new Promise(done => { const ws = new WebSocket(%s); ws.onopen = () => done('open');
                ws.onerror = () => done('error'); setTimeout(() => done('timeout'), 10000); })""" % json.dumps(victim_ws)
    with new_tab(tenants["attacker"]) as (cdp, page):
        assert cdp.evaluate(opened, page, await_promise=True) == "error"
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(victim_ws, origin="http://attacker.example", timeout=10)


def drivers_under(worker: psutil.Process) -> list[psutil.Process]:
    """The worker's ChromeDriver processes now; one that ends while it is looked at is not one (a CI run lost the
    test to a process of the tree that ended between the listing and its name)."""
    found = []
    for proc in worker.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.name() == "chromedriver":
                found.append(proc)
    return found


def test_no_chromedriver_is_left_listening(strict, tenants):
    worker = psutil.Process(next(iter(strict.workers.values())).pid)
    wait_until(lambda: not drivers_under(worker), 30, message="no ChromeDriver under the worker once its browsers run")


def test_no_page_reaches_another_sessions_forwarder_or_the_brokers_services(strict, tenants):
    victim, attacker = tenants["victim"], tenants["attacker"]
    record = strict.store().sessions.get(victim["id"])
    targets = [
        f"http://127.0.0.1:{forwarder_port(strict, victim['id'])}/",
        f"http://127.0.0.1:{forwarder_port(strict, attacker['id'])}/",
        f"{strict.url}/healthz",
        f"{strict.url}/metrics",
        f"http://127.0.0.1:{strict.redis.port}/",
    ]
    if record.get("gateway"):
        targets.append(f"http://{record['gateway']}/")
    for url in targets:
        assert_refused(attacker, url)


def test_a_client_cannot_give_a_context_its_own_proxy(strict, tenants):
    """Target.createBrowserContext with proxyServer would send a context around the session's forwarder."""
    victim_forwarder = f"http://127.0.0.1:{forwarder_port(strict, tenants['victim']['id'])}"
    with RawCdp(tenants["attacker"]["cdpUrl"]) as cdp:
        with pytest.raises(CdpError):
            cdp.call("Target.createBrowserContext", {"proxyServer": victim_forwarder, "proxyBypassList": "<-loopback>"})
        with pytest.raises(CdpError):
            cdp.call("Tethering.bind", {"port": 0})
        assert cdp.call("Target.getBrowserContexts")["browserContextIds"] == []


def test_what_the_operator_opens_is_reachable_and_nothing_beside_it(strict, tenants, upstream, pages):
    """BROKER_EGRESS_ALLOW=127.0.0.1/32:<upstream port>: that port answers (pproxy asks for credentials), the
    page server on another loopback port does not."""
    opened = load(tenants["attacker"], f"http://127.0.0.1:{upstream.port}/")
    assert opened.error is None and REFUSED_TEXT not in opened.text
    assert_refused(tenants["attacker"], f"{pages.base}/page?title=internal", "internal")


def test_a_session_with_a_saved_proxy_goes_out_through_it_alone(strict, tenants, upstream, pages):
    shown = load(tenants["victim"], f"{pages.base}/page?title=through-the-proxy")
    assert shown.title == "through-the-proxy"
    assert f"127.0.0.1:{pages.httpd.server_address[1]}" in upstream.targets()


def test_a_saved_proxy_on_a_refused_address_starts_no_browser(strict, tenants):
    api = tenants["attacker_api"]
    proxy = api.post("/v1/proxies", json={"server": f"http://127.0.0.1:{strict.redis.port}"}).json()
    before = strict.session_profiles()
    answer = api.post("/v1/sessions", json={"proxyId": proxy["id"]})
    assert answer.status_code >= 400 and "egress policy" in answer.json()["message"], answer.text
    assert strict.session_profiles().keys() <= before.keys()
    api.delete(f"/v1/proxies/{proxy['id']}")



def test_the_worker_says_how_its_browsers_are_kept_apart(strict, tenants):
    """At start in its log, and in every heartbeat: /readyz and /metrics show it."""
    shared = os.geteuid() != 0
    (isolation,) = requests.get(f"{strict.url}/readyz", timeout=10).json()["isolation"].values()
    assert isolation == {"users": "shared" if shared else "per-browser", "network": "forwarder",
                         "egress": f"public addresses only; also 127.0.0.1/32:{isolation['egress'].rsplit(':', 1)[1]}",
                         "projects": "one at a time" if shared else "any"}
    gauges = [line for line in requests.get(f"{strict.url}/metrics", timeout=10).text.splitlines()
              if line.startswith("broker_worker_isolation{")]
    assert len(gauges) == 1 and f'users="{isolation["users"]}"' in gauges[0] and 'network="forwarder"' in gauges[0]
    assert "isolation: browsers' users" in strict.worker_log(next(iter(strict.workers)).split("@")[0])
