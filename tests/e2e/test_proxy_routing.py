"""Sessions with a proxy: every request really goes through it (loopback included), bad upstreams fail loads, nothing leaks.

The upstreams are real proxy servers on 127.0.0.1 that demand credentials
(tests/support/upstreams.py); what they let through is read from their own logs.
"""
from __future__ import annotations

import secrets
import socket
from contextlib import closing

import psutil
import pytest

from tests.support.cdp import evaluate, load
from tests.support.processes import free_port, run_processes
from tests.support.upstreams import HttpUpstream, PproxyUpstream, SocksUpstream

USER = "broker-user"


def page_address(pages) -> str:
    return pages.base.removeprefix("http://")


def listening_ports(broker) -> set[int]:
    """Ports the deployment's worker processes listen on: the gateway's and each browser's forwarder."""
    ports = set()
    for proc in broker.workers.values():
        for conn in psutil.Process(proc.pid).net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN:
                ports.add(conn.laddr.port)
    return ports


def forwarder_port(session: dict) -> int:
    """The session's own forwarder, as its browser was told (--proxy-server): warm browsers of the deployment come and
    go beside it, each with a forwarder of its own, so a before/after difference of all ports would not name it."""
    for proc in run_processes(("chromium",)):
        try:
            flags = proc.cmdline()
        except psutil.NoSuchProcess:
            continue
        if any(flag.endswith(f"/{session['id']}") for flag in flags if flag.startswith("--user-data-dir=")):
            server = next(flag for flag in flags if flag.startswith("--proxy-server="))
            return int(server.rsplit(":", 1)[1])
    raise AssertionError(f"no browser of {session['id']}")


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    """Every password this module hands out, good and wrong: none may show up in an answer or a log."""
    return {}


def _upstream(kind: type[PproxyUpstream], workdir, passwords: dict[str, str]) -> PproxyUpstream:
    password = "pw-" + secrets.token_hex(16)
    passwords[kind.scheme] = password
    return kind(workdir, f"{kind.scheme}-{free_port()}", USER, password).start()


@pytest.fixture(scope="module")
def http_upstream(workdir, passwords):
    upstream = _upstream(HttpUpstream, workdir, passwords)
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def socks_upstream(workdir, passwords):
    upstream = _upstream(SocksUpstream, workdir, passwords)
    yield upstream
    upstream.stop()


@pytest.fixture(params=["http", "socks5"])
def upstream(request, http_upstream, socks_upstream) -> PproxyUpstream:
    return http_upstream if request.param == "http" else socks_upstream


def test_every_request_goes_through_the_proxy_loopback_included(api, pages, upstream, proxy_factory, session_factory):
    proxy = proxy_factory(upstream.server, upstream.password, USER)
    first_path, second_path = f"/first-{secrets.token_hex(4)}", f"/second-{secrets.token_hex(4)}"
    let_through = len(upstream.targets())

    session = session_factory(api, proxyId=proxy["id"], url=f"{pages.base}{first_path}")
    assert session["proxyId"] == proxy["id"]
    loaded = load(session, f"{pages.base}{second_path}?title=through-{upstream.scheme}")

    assert loaded.error is None and loaded.status == 200 and loaded.title == f"through-{upstream.scheme}"
    assert first_path in pages.hits and second_path in pages.hits
    new = upstream.targets()[let_through:]
    assert new.count(page_address(pages)) >= 2, new


def test_https_and_websockets_are_tunnelled_through_the_proxy(api, pages, upstream, proxy_factory, session_factory):
    """The page server speaks no TLS, so the https load fails in the TLS handshake: after the tunnel was made."""
    session = session_factory(api, proxyId=proxy_factory(upstream.server, upstream.password, USER)["id"])
    let_through = len(upstream.targets())

    loaded = load(session, f"https://{page_address(pages)}/tls")
    evaluate(session, f"new Promise(done => {{ const ws = new WebSocket('ws://{page_address(pages)}/ws');"
                      " ws.onclose = ws.onerror = () => done(true); })")

    assert loaded.error == "net::ERR_SSL_PROTOCOL_ERROR"
    assert upstream.targets()[let_through:].count(page_address(pages)) >= 2


def test_a_session_without_a_proxy_does_not_touch_the_upstreams(api, pages, http_upstream, socks_upstream,
                                                                session_factory):
    before = (http_upstream.log_text(), socks_upstream.log_text())
    session = session_factory(api)
    path = f"/direct-{secrets.token_hex(4)}"

    loaded = load(session, f"{pages.base}{path}?title=direct")

    assert loaded.error is None and loaded.title == "direct" and path in pages.hits
    assert (http_upstream.log_text(), socks_upstream.log_text()) == before


def test_wrong_credentials_fail_loads_and_the_session_still_stops(api, pages, upstream, passwords, proxy_factory,
                                                                  session_factory):
    wrong = "wrong-" + secrets.token_urlsafe(12)
    passwords[f"wrong-{upstream.scheme}"] = wrong
    session = session_factory(api, proxyId=proxy_factory(upstream.server, wrong, USER)["id"])
    path = f"/refused-{secrets.token_hex(4)}"
    refusals = upstream.refusals()

    plain = load(session, f"{pages.base}{path}")
    tunnelled = load(session, f"https://{page_address(pages)}{path}")

    assert plain.error is None and plain.status == 502 and "proxy" in plain.text
    assert tunnelled.error == "net::ERR_TUNNEL_CONNECTION_FAILED"
    assert path not in pages.hits
    assert upstream.refusals() > refusals
    assert api.stop_session(session["id"])["status"] == "stopped"


def test_an_upstream_that_is_down_fails_loads(api, pages, proxy_factory, session_factory):
    session = session_factory(api, proxyId=proxy_factory(f"http://127.0.0.1:{free_port()}", "x", USER)["id"])
    path = f"/down-{secrets.token_hex(4)}"

    plain = load(session, f"{pages.base}{path}")
    tunnelled = load(session, f"https://{page_address(pages)}{path}")

    assert plain.status == 502 and "cannot be reached" in plain.text
    assert tunnelled.error == "net::ERR_TUNNEL_CONNECTION_FAILED"
    assert path not in pages.hits
    assert api.stop_session(session["id"])["status"] == "stopped"


def test_a_silent_upstream_never_hangs_the_session(api, broker, pages, proxy_factory, session_factory):
    """It accepts connections and never answers: tunnels fail after BROKER_PROXY_CONNECT_TIMEOUT, a plain request
    that waits on it is cut when the session stops, and the forwarder's port goes with the session."""
    with closing(socket.socket()) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        session = session_factory(api, proxyId=proxy_factory(f"socks5://127.0.0.1:{silent.getsockname()[1]}", "x", USER)["id"])
        port = forwarder_port(session)
        assert port in listening_ports(broker)

        tunnelled = load(session, f"https://{page_address(pages)}/silent")
        evaluate(session, f"fetch('{pages.base}/never-answered').catch(() => null), true")
        stopped = api.stop_session(session["id"])

    assert tunnelled.error == "net::ERR_TUNNEL_CONNECTION_FAILED"
    assert stopped["status"] == "stopped"
    assert port not in listening_ports(broker)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_webrtc_gathers_no_candidate_around_the_forwarder(api, http_upstream, proxy_factory, session_factory):
    """Every session's traffic goes through its forwarder (the egress policy), so no session gathers host candidates,
    with a saved proxy or without one."""
    gather = ("new Promise(done => { const pc = new RTCPeerConnection({iceServers: []}), found = [];"
              " pc.createDataChannel('x');"
              " pc.onicecandidate = e => e.candidate ? found.push(e.candidate.candidate) : done(found);"
              " pc.createOffer().then(o => pc.setLocalDescription(o)); })")
    direct = session_factory(api)
    proxied = session_factory(api, proxyId=proxy_factory(http_upstream.server, http_upstream.password, USER)["id"])

    assert evaluate(direct, gather) == []
    assert evaluate(proxied, gather) == []


def test_check_reports_reachability_credentials_and_latency(api, pages, upstream, proxy_factory):
    target = {"target": page_address(pages)}
    good = api.post(f"/v1/proxies/{proxy_factory(upstream.server, upstream.password, USER)['id']}/check", json=target)
    wrong = api.post(f"/v1/proxies/{proxy_factory(upstream.server, 'not-it', USER)['id']}/check", json=target)

    assert good.status_code == 200 and wrong.status_code == 200
    assert good.json()["reachable"] is True and good.json()["latencyMs"] >= 0 and good.json()["error"] is None
    assert good.json()["target"] == page_address(pages)
    assert wrong.json()["reachable"] is False and wrong.json()["latencyMs"] is None and wrong.json()["error"]
    assert upstream.password not in good.text + wrong.text


def test_no_password_in_any_answer_or_log(api, broker, workdir, pages, http_upstream, passwords, proxy_factory,
                                          session_factory):
    proxy = proxy_factory(http_upstream.server, http_upstream.password, USER)
    session = session_factory(api, proxyId=proxy["id"], url=pages.base + "/logged")
    answers = [
        api.get(f"/v1/proxies/{proxy['id']}").text, api.get("/v1/proxies").text,
        api.get(f"/v1/sessions/{session['id']}").text, api.get("/v1/sessions").text,
        api.post(f"/v1/proxies/{proxy['id']}/check", json={"target": page_address(pages)}).text,
    ]
    api.stop_session(session["id"])
    broker_logs = [p.read_text(errors="replace") for p in workdir.glob("*.log") if not p.name.startswith("upstream-")]

    assert broker_logs and passwords
    for password in passwords.values():
        assert not any(password in text for text in answers + broker_logs)
    assert http_upstream.password not in http_upstream.log_text()
