"""docker-compose.yml as written, each container a set of namespaces: redis, web, flower and worker replicas.

The deployment is ``docker compose up --scale worker=2`` (tests/support/compose.py
says what stands for what). The test talks from the Docker host, as a user of
the compose file's default BROKER_PUBLIC_URL (http://127.0.0.1:8000) does; a
namespace ``outside`` stands for any other machine, reaching only what
``ports:`` publish.

Two shapes of the worker containers (issue 23 item 6): as the image ships them
(its USER, ``broker``: browsers share that user, so a worker holds one project's
sessions at a time) and as root, by the line the worker's service keeps
commented in docker-compose.yml (``user: root``: each browser a user of its
own, projects mixed on one worker). Every test runs on the first; the attacks
of one project's session on another's run on both. One shape is up at a time:
pytest takes the first down before it brings the second up.

Without the right to create namespaces the module is skipped, saying why;
with CI=true it must run, so there it fails instead.
"""
from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import requests
import websocket

from core.cdp import CdpError
from core.egress import EgressPolicy
from core.store import Store
from tests.support.api import Api
from tests.support.browsing import playwright_drive, puppeteer_drive, visit
from tests.support.cdp import RawCdp, load as load_page, new_tab
from tests.support.compose import (Container, MissingVariable, Project, compose_services, documented_options,
                                   image_user, interpolate)
from tests.support.hosts import GATEWAY_PORT
from tests.support.netns import NETNS_ETC, why_unavailable
from tests.support.pages import PageServer
from tests.support.processes import BROWSER_NAMES, SECRET_KEY, wait_until
from tests.support.settings import config_with

#: The compose network and the outside link: apart from 198.18.0.0/24 (tests/hosts/test_many_hosts.py).
PREFIX, OUTSIDE_PREFIX = "198.18.1", "198.18.2"
WEB_PORT, FLOWER_PORT = 8000, 5555
#: Flower's login (FLOWER_BASIC_AUTH): compose refuses to start without one.
FLOWER_LOGIN = ("operator", "flower-" + secrets.token_urlsafe(12))
#: The worker containers' user: the image's USER, or root as docker-compose.yml's commented line for the worker says.
AS_SHIPPED, ROOT_WORKER = "as-shipped", "root-worker"
#: Worker replicas per shape: the root shape is there for the attacks, which one replica holds.
WORKERS = {AS_SHIPPED: 2, ROOT_WORKER: 1}
#: A create lands on whichever replica takes its launch first: six tries missed the other one in a run with three test
#: workers (1 in 32 at even odds); sixteen miss it 1 in 32,768 times.
TRIES = 16


def _must_run() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def both_shapes(test=None, *, root_fails: str | None = None):
    """Run ``test`` on the root-worker deployment too (every test runs on the as-shipped one); ``root_fails``: why it
    is known to fail there (a strict xfail, so a fix shows)."""
    def mark(test):
        root = pytest.param(ROOT_WORKER, marks=pytest.mark.xfail(strict=True, reason=root_fails)) if root_fails \
            else ROOT_WORKER
        test.shapes = (AS_SHIPPED, root)
        return test
    return mark(test) if test is not None else mark


def pytest_generate_tests(metafunc):
    """``compose`` is module-scoped and parametrized: pytest runs one shape's tests, takes it down, then the next's."""
    if "compose" in metafunc.fixturenames:
        metafunc.parametrize("compose", getattr(metafunc.function, "shapes", (AS_SHIPPED,)), indirect=True,
                             scope="module")


@pytest.fixture(scope="module")
def compose(request):
    """``docker compose up --scale worker=N`` of one shape, and ``down`` (processes, namespaces, links, hosts files,
    folders) however its tests end."""
    reason = why_unavailable()
    if reason:
        if _must_run():
            pytest.fail(f"CI=true but the compose tests cannot run: {reason}")
        pytest.skip(f"the compose tests need network namespaces: {reason}")
    shape = request.param
    workers = WORKERS[shape]
    overrides = {}
    if shape == ROOT_WORKER:
        documented = documented_options("worker")
        assert documented.get("user") == "root", "docker-compose.yml no longer documents the worker's `user: root`"
        overrides = {"worker": {"user": documented["user"]}}
    workdir = Path(tempfile.mkdtemp(prefix="bb-compose-"))
    api_key = "bb_" + secrets.token_urlsafe(24)
    # As the compose file's comment says: the secrets and Flower's login from the shell (or an .env file); nothing else
    # set but BROKER_EGRESS_ALLOW, below.
    variables = {"BROKER_BOOTSTRAP_API_KEY": api_key, "BROKER_SECRET_KEY": SECRET_KEY,
                 "FLOWER_BASIC_AUTH": ":".join(FLOWER_LOGIN)}
    project = Project(workdir, variables, {"worker": workers}, prefix=PREFIX, outside_prefix=OUTSIDE_PREFIX,
                      overrides=overrides)
    try:
        project.shape = shape
        project.api_key = api_key
        project.url = f"http://127.0.0.1:{WEB_PORT}"
        with project.net.inside(project.docker_host):
            # The Docker host's address on the compose network: containers reach it as their gateway.
            project.pages = PageServer(project.docker_host.address)
        # The page server opened as an internal site, by its address and port alone: the rest of the compose
        # network (Redis, the web's port, each worker's gateway) stays refused to sessions.
        opened = f"{project.docker_host.address}/32:{project.pages.httpd.server_address[1]}"
        project.variables["BROKER_EGRESS_ALLOW"] = opened
        project.up()
        with project.net.inside(project.docker_host):
            try:
                wait_until(lambda: _ready_workers(project) == workers, 120, interval=0.5,
                           message=f"/readyz counting {workers} worker(s)")
            except TimeoutError as error:
                logs = {f"{c.service}-{c.index}": project.log(c)[-1500:] for c in
                        [*project.replicas("worker"), *project.replicas("web")]}
                raise TimeoutError(f"{error}; /readyz: {_readyz(project)}; the logs end: {logs}") from None
        yield project
    finally:
        try:
            if hasattr(project, "pages"):
                project.pages.close()
            for container in project.replicas("worker"):
                project.stop(container)
            left = [p for p in project.processes() if _is_browser(p)]
        finally:
            project.down()
            leftovers = project.net.leftovers() + project.folders_left()
            if project.net.made_netns_etc and os.path.isdir(NETNS_ETC) and not os.listdir(NETNS_ETC):
                leftovers.append(NETNS_ETC)
            if not os.environ.get("BB_KEEP_HOSTS"):
                shutil.rmtree(workdir, ignore_errors=True)
                leftovers += [str(workdir)] if workdir.exists() else []
        assert not left, f"browser processes outlived the workers' containers: {left}"
        assert not leftovers, f"left on the machine: {leftovers}"
        # A container's processes end with its PID 1 (the kernel kills them); each is gone once reaped.
        wait_until(lambda: not project.processes(), 30, message="the containers' processes to end with docker compose down")


def _is_browser(proc: psutil.Process) -> bool:
    try:
        return proc.name().startswith(BROWSER_NAMES)
    except psutil.NoSuchProcess:
        return False


def _readyz(project: Project) -> str:
    try:
        return requests.get(f"{project.url}/readyz", timeout=2).text[:1000]
    except requests.RequestException as error:
        return repr(error)


def _ready_workers(project: Project) -> int:
    try:
        answer = requests.get(f"{project.url}/readyz", timeout=2)
    except requests.RequestException:
        return 0
    if not answer.headers.get("content-type", "").startswith("application/json"):
        return 0
    return answer.json().get("workers") or 0


@pytest.fixture
def on_host(compose):
    """The test's thread on the Docker host for the test's length."""
    with compose.net.inside(compose.docker_host):
        yield compose


@pytest.fixture
def api(on_host) -> Api:
    api = Api(on_host.url, on_host.api_key)
    yield api
    for session in api.get("/v1/sessions", params={"status": "running", "page_size": 100}).json():
        api.delete(f"/v1/sessions/{session['id']}")


def store(project: Project) -> Store:
    """Redis is not published; the Docker host reaches the container on the compose network (Network.inside)."""
    redis = project.replicas("redis")[0]
    return Store(config_with(REDIS_URL=f"redis://{redis.address}:6379/0"))


def worker_name(container: Container) -> str:
    return f"broker-1@{container.hostname}"


def worker_of(project: Project, session: dict) -> str:
    return store(project).sessions.get(session["id"])["worker"].removeprefix("browsers.worker.")


def replica_of(project: Project, session: dict) -> Container:
    name = worker_of(project, session)
    return next(c for c in project.replicas("worker") if worker_name(c) == name)


def test_compose_interpolation_as_compose_does_it():
    variables = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${UNSET:-d} ${EMPTY-d} $SET $$SET", variables) == "x d d  x $SET"
    with pytest.raises(MissingVariable, match="set an initial API key"):
        interpolate(compose_services()["web"]["environment"]["BROKER_BOOTSTRAP_API_KEY"], {})


def test_published_web_port_answers_readyz_with_both_worker_replicas(on_host):
    ready = requests.get(f"{on_host.url}/readyz", timeout=10).json()
    assert ready["status"] == "ok" and ready["workers"] == 2
    assert set(store(on_host).workers.live()) == {worker_name(c) for c in on_host.replicas("worker")}


def test_sessions_land_on_both_replicas_and_are_driven_through_the_web_by_puppeteer_and_playwright(on_host, api):
    pages = on_host.pages
    sessions: dict[str, dict] = {}
    for _ in range(TRIES):
        session = api.create_session()
        if worker_of(on_host, session) in sessions:
            api.stop_session(session["id"])
            continue
        sessions[worker_of(on_host, session)] = session
        if len(sessions) == 2:
            break
    assert set(sessions) == {worker_name(c) for c in on_host.replicas("worker")}
    for name, session in sessions.items():
        replica = replica_of(on_host, session)
        assert session["cdpUrl"].startswith(f"ws://127.0.0.1:{WEB_PORT}/")
        # BROKER_WORKER_HOST=auto: the replica's own hostname resolved through its /etc/hosts.
        assert store(on_host).sessions.get(session["id"])["gateway"] == f"{replica.address}:{GATEWAY_PORT}"
        title = f"on-{replica.hostname}"
        driven = puppeteer_drive(session["cdpUrl"], f"{pages.base}/page?title={title}")
        assert driven["title"] == title and driven["heading"] == title
        played = playwright_drive(session["cdpUrl"], f"{pages.base}/page?title=pw-{title}")
        assert played == {"heading": f"pw-{title}"}
        web = on_host.replicas("web")[0]
        assert f"gateway: session {session['id']}: admitted a connection from {web.address}" in on_host.log(replica)
    for session in api.get("/v1/sessions", params={"status": "running", "page_size": 100}).json():
        api.stop_session(session["id"])


def test_context_saved_on_one_replica_is_restored_on_the_other_through_the_shared_snapshots_volume(on_host, api):
    pages = on_host.pages
    context = api.post("/v1/contexts", json={}).json()
    first = api.create_session(contextId=context["id"])
    visit(first["cdpUrl"], f"{pages.base}/set-cookie?name=auth&value=shared&httponly=1&persistent=1")
    visit(first["cdpUrl"], f"{pages.base}/state", "state('from-one')")
    saved_on = worker_of(on_host, first)
    assert api.stop_session(first["id"])["snapshotError"] is None
    assert list(on_host.volume("snapshots").rglob("*")), "the snapshot lies on the shared volume"
    second = None
    for _ in range(TRIES):
        candidate = api.create_session(contextId=context["id"])
        if worker_of(on_host, candidate) != saved_on:
            second = candidate
            break
        api.stop_session(candidate["id"])
    assert second is not None, "no create landed on the other replica"
    assert "auth=shared" in visit(second["cdpUrl"], f"{pages.base}/echo-cookies")
    assert visit(second["cdpUrl"], f"{pages.base}/state", "state()")["local"] == "from-one"
    api.stop_session(second["id"])
    assert api.delete(f"/v1/contexts/{context['id']}").status_code == 204


def test_flower_port_answers_its_login_only_and_lists_both_workers(on_host):
    names = {worker_name(c) for c in on_host.replicas("worker")}
    url = f"http://127.0.0.1:{FLOWER_PORT}/workers"

    def listed() -> bool:
        try:
            page = requests.get(url, auth=FLOWER_LOGIN, timeout=5).text
        except requests.RequestException:
            return False
        return all(name in page for name in names)

    wait_until(listed, 60, interval=1, message="flower's /workers listing both replicas")
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, auth=(FLOWER_LOGIN[0], "wrong"), timeout=5).status_code == 401


def _connects(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=3).close()
        return True
    except OSError:
        return False


def test_only_published_ports_are_reachable_from_outside_and_flower_from_the_docker_host_only(compose):
    published = compose.outside.address.rsplit(".", 1)[0] + ".1"  # the Docker host, as the outside sees it
    worker = compose.replicas("worker")[0]
    with compose.net.inside(compose.outside):
        assert requests.get(f"http://{published}:{WEB_PORT}/readyz", timeout=10).json()["workers"] == 2
        assert not _connects(published, FLOWER_PORT), "flower is published on the Docker host's loopback only"
        assert not _connects(published, GATEWAY_PORT)
        assert not _connects(worker.address, GATEWAY_PORT)
        assert not _connects(compose.replicas("redis")[0].address, 6379)
    with compose.net.inside(compose.docker_host):
        assert _connects("127.0.0.1", FLOWER_PORT)
        assert _connects(worker.address, GATEWAY_PORT), "the gateway answers on the compose network"


# Issue 23's attacks 1-3 (tests/e2e/test_tenant_isolation.py runs them against a local deployment) against the worker
# containers of both shapes: a tenant holding its own session's cdpUrl, from a page of its own browser, aims at what
# another project's session has in its worker container: its browser's debugger, a ChromeDriver, its forwarder.

REFUSED_TEXT = "egress policy"
ALL_SCOPES = ("sessions:read", "sessions:write", "proxies:read", "proxies:write", "contexts:read", "contexts:write")
#: Attacker sessions made as shipped: the first create takes whichever warm browser is left on offer (most often the
#: other replica's), the next ones meet the victim's replica through its warm browser or the shared queue.
ATTACKERS_AS_SHIPPED = 3


@dataclass
class Tenants:
    victim: dict
    attacker: dict
    #: Every session of the attacker's project (the first is ``attacker``).
    attackers: list[dict]
    victim_replica: Container
    attacker_replica: Container


def make_key(project: Project, name: str) -> str:
    """A key of project ``name``, written into the deployment's store as tests/support/keys.py does for the suite's."""
    key = "bb_" + secrets.token_urlsafe(24)
    store(project).api_keys.put(key, name="test", project=name, scopes=ALL_SCOPES)
    return key


def _stop(sessions: list[tuple[Api, dict]]) -> None:
    """Each stopped, whatever its state (a DELETE of a stopping or stopped session is 204 too); all asked at once."""
    asked = [(api, session) for api, session in sessions
             if api.delete(f"/v1/sessions/{session['id']}").status_code == 204]
    for api, session in asked:
        api.wait_status(session["id"], "stopped", 30)


@pytest.fixture(scope="class")
def tenants(compose):
    """Two projects, ``victim`` and ``attacker``, a session each (the attacker's project several as shipped).

    As shipped the workers' browsers share the image's user, so a worker holds one project's sessions at a time
    (tasks/project_gate.py): the attacker's sessions run on the other replica, and each attack is aimed at the victim's
    container both through the attacker's loopback and through the victim's address. As root (one replica) both
    sessions run in one container, so the attacker's loopback is the victim's.
    """
    made: list[tuple[Api, dict]] = []
    try:
        with compose.net.inside(compose.docker_host):
            victim_api, attacker_api = (Api(compose.url, make_key(compose, name)) for name in ("victim", "attacker"))
            victim = victim_api.create_session()
            made.append((victim_api, victim))
            attackers = []
            for _ in range(ATTACKERS_AS_SHIPPED if compose.shape == AS_SHIPPED else 1):
                attackers.append(attacker_api.create_session())
                made.append((attacker_api, attackers[-1]))
            found = Tenants(victim, attackers[0], attackers, replica_of(compose, victim),
                            replica_of(compose, attackers[0]))
        yield found
    finally:
        with compose.net.inside(compose.docker_host):
            _stop(made)


def debugger_url(project: Project, session: dict) -> str:
    """The session's browser's own debugger, as its record keeps it (ws://127.0.0.1:<port>/devtools/browser/…)."""
    return store(project).sessions.get(session["id"])["browserWsUrl"]


def container_processes(container: Container) -> list[psutil.Process]:
    init = container.init()
    return [init, *init.children(recursive=True)]


def worker_process(container: Container) -> psutil.Process:
    """The service's command, run by the container's PID 1 (tini); its other children are browsers, left to it by
    the ChromeDriver that started them and ended."""
    return next(p for p in container.init().children() if not _is_browser(p))


def listening(container: Container) -> dict[int, set[int]]:
    """{PID: the TCP ports it listens on} for the container's processes, from the container's own network namespace
    (/proc/PID/net/tcp*; psutil's connections would read the test's)."""
    sockets: dict[str, int] = {}
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{container.init().pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                sockets[f"socket:[{fields[9]}]"] = int(fields[1].rsplit(":", 1)[1], 16)
    found: dict[int, set[int]] = {}
    for proc in container_processes(container):
        try:
            links = [os.readlink(f"/proc/{proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{proc.pid}/fd")]
        except OSError:  # ended meanwhile (or one of its descriptors closed between the two looks)
            continue
        ports = {sockets[link] for link in links if link in sockets}
        if ports:
            found[proc.pid] = ports
    return found


def _named(proc: psutil.Process, name: str) -> bool:
    try:
        return proc.name() == name
    except psutil.NoSuchProcess:
        return False


def _browser_flags(proc: psutil.Process) -> list[str] | None:
    """A browser process's command line (not a helper's: those have --type=); None for any other, or one ending
    (its command line already empty)."""
    try:
        flags = proc.cmdline() if proc.name() == "chromium" else []
    except psutil.NoSuchProcess:
        return None
    return flags if flags and not any(a.startswith("--type=") for a in flags) else None


def browser_process(project: Project, session: dict) -> psutil.Process:
    """The session's Chromium: the browser process in its replica's container listening on its debugger's port."""
    port = urlsplit(debugger_url(project, session)).port
    replica = replica_of(project, session)
    return next(psutil.Process(pid) for pid, ports in listening(replica).items() if port in ports)


def forwarder_port(project: Project, session: dict) -> int:
    """The session's forwarder, from its Chromium's command line (--proxy-server=http://127.0.0.1:<port>)."""
    flag = next(a for a in browser_process(project, session).cmdline() if a.startswith("--proxy-server="))
    return urlsplit(flag.split("=", 1)[1]).port


def victim_hosts(tenants: Tenants) -> list[str]:
    """The victim's container as the attacker's page can name it: its loopback (the attacker's own container's, where
    the two share a replica) and its address on the compose network."""
    return ["127.0.0.1", "localhost", tenants.victim_replica.address]


def assert_refused(session: dict, url: str, secret: str = "") -> None:
    """The load fails, or shows the forwarder's refusal; never what ``url`` serves."""
    shown = load_page(session, url)
    assert not secret or secret not in shown.text, f"{url} answered the attacker: {shown.text[:200]}"
    assert shown.error or (shown.status == 403 and REFUSED_TEXT in shown.text), (url, shown)


class TestOneTenantAgainstAnothersSessionInTheWorkerContainers:
    @both_shapes
    def test_readyz_says_how_each_worker_keeps_its_browsers_apart_and_they_are_so(self, on_host, tenants):
        """As shipped the browsers share the image's user and a worker holds one project at a time; with ``user: root``
        each browser has a user of its own (never root) and projects mix on one worker."""
        ready = requests.get(f"{on_host.url}/readyz", timeout=10).json()
        shipped = on_host.shape == AS_SHIPPED
        egress = EgressPolicy.parse((on_host.variables["BROKER_EGRESS_ALLOW"],)).describe()
        said = {"users": "shared" if shipped else "per-browser", "network": "forwarder", "egress": egress,
                "projects": "one at a time" if shipped else "any"}
        assert ready["isolation"] == {worker_name(c): said for c in on_host.replicas("worker")}
        sessions = [tenants.victim, *tenants.attackers]
        uids = [browser_process(on_host, s).uids().real for s in sessions]
        workers = {worker_process(c).uids().real for c in on_host.replicas("worker")}
        if shipped:
            assert workers == {pwd.getpwnam(image_user()).pw_uid}
            assert set(uids) == workers, "as shipped, every browser runs as the image's user"
            assert tenants.victim_replica not in {replica_of(on_host, s) for s in tenants.attackers}, \
                "a worker whose browsers share a user held two projects' sessions at once"
        else:
            assert workers == {0}
            assert tenants.attacker_replica is tenants.victim_replica
            assert len(set(uids)) == len(uids) and 0 not in uids, f"one user per browser, never root: {uids}"
            assert all(pwd.getpwuid(uid).pw_name.startswith("bb-browser-") for uid in uids)

    @both_shapes
    def test_1_no_page_reaches_another_sessions_debugger(self, on_host, tenants):
        """The victim's debugger (and the attacker's own): refused to the attacker's page by HTTP and by a page socket.
        From inside the victim's container, a socket with an Origin (as a page's carries) is refused by the debugger."""
        victim_ws = debugger_url(on_host, tenants.victim)
        port = urlsplit(victim_ws).port
        with on_host.net.inside(tenants.victim_replica.host):
            # The port is the victim's live debugger: without an Origin its container's loopback reaches it.
            assert requests.get(f"http://127.0.0.1:{port}/json/version", timeout=10).json()["webSocketDebuggerUrl"] \
                == victim_ws
            with pytest.raises(websocket.WebSocketBadStatusException):
                websocket.create_connection(victim_ws, origin="http://attacker.example", timeout=10)
        for host in victim_hosts(tenants):
            assert_refused(tenants.attacker, f"http://{host}:{port}/json/version", "webSocketDebuggerUrl")
        own = urlsplit(debugger_url(on_host, tenants.attacker)).port
        assert_refused(tenants.attacker, f"http://127.0.0.1:{own}/json/version", "webSocketDebuggerUrl")
        path = urlsplit(victim_ws).path
        with new_tab(tenants.attacker) as (cdp, page):
            for host in ("127.0.0.1", tenants.victim_replica.address):
                opened = """new Promise(done => { const ws = new WebSocket(%s); ws.onopen = () => done('open');
                    ws.onerror = () => done('error'); setTimeout(() => done('timeout'), 10000); })""" % json.dumps(
                    f"ws://{host}:{port}{path}")
                assert cdp.evaluate(opened, page, await_promise=True) == "error", host

    @both_shapes
    def test_2_no_chromedriver_is_left_listening_in_any_worker_container(self, on_host, tenants):
        """No ChromeDriver runs (the compose file leaves BROKER_LAUNCHER at its default, direct: every browser is the
        worker's own child), and in each worker container only the worker and its browsers listen."""
        for replica in on_host.replicas("worker"):
            deadline = time.monotonic() + 30
            while True:
                browsers = {p.pid: flags for p in container_processes(replica) if (flags := _browser_flags(p))}
                drivers = [p.pid for p in container_processes(replica) if _named(p, "chromedriver")]
                strangers = {pid: ports for pid, ports in listening(replica).items()
                             if pid not in {worker_process(replica).pid, *browsers}}
                if not drivers and not strangers or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert not drivers, f"ChromeDriver left in {replica.hostname}: {drivers}"
            assert not strangers, f"listening in {replica.hostname} beside the worker and its browsers: {strangers}"
            assert browsers, f"no browser in {replica.hostname} to look at"
            by_driver = {pid for pid, flags in browsers.items() if "--test-type=webdriver" in flags}
            assert not by_driver, f"the compose file's launcher is direct, yet ChromeDriver started: {by_driver}"

    @both_shapes
    def test_3_no_page_reaches_another_sessions_forwarder_nor_gives_a_context_its_proxy(self, on_host, tenants):
        """The victim's forwarder (and the attacker's own): refused to the attacker's page, and
        Target.createBrowserContext({proxyServer: it}) refused by the relay. What the operator opened (the page server)
        answers the same page, so the refusals are the policy's."""
        pages = on_host.pages
        assert load_page(tenants.attacker, f"{pages.base}/page?title=opened").title == "opened"
        victim = forwarder_port(on_host, tenants.victim)
        with on_host.net.inside(tenants.victim_replica.host):
            assert _connects("127.0.0.1", victim), "the victim's forwarder listens in its container"
        for host in victim_hosts(tenants):
            assert_refused(tenants.attacker, f"http://{host}:{victim}/")
        assert_refused(tenants.attacker, f"http://127.0.0.1:{forwarder_port(on_host, tenants.attacker)}/")
        with RawCdp(tenants.attacker["cdpUrl"]) as cdp:
            for host in ("127.0.0.1", tenants.victim_replica.address):
                with pytest.raises(CdpError):
                    cdp.call("Target.createBrowserContext", {"proxyServer": f"http://{host}:{victim}",
                                                             "proxyBypassList": "<-loopback>"})
            with pytest.raises(CdpError):
                cdp.call("Tethering.bind", {"port": 0})
            assert cdp.call("Target.getBrowserContexts")["browserContextIds"] == []

    @both_shapes
    def test_no_page_reaches_the_deployments_services_on_the_compose_network(self, on_host, tenants):
        """Only the page server's address and port are opened: Redis, the web, Flower, each worker's gateway and the
        Docker host's published port stay refused."""
        targets = [f"http://{on_host.replicas('redis')[0].address}:6379/",
                   f"http://{on_host.replicas('web')[0].address}:{WEB_PORT}/readyz",
                   f"http://{on_host.replicas('flower')[0].address}:{FLOWER_PORT}/",
                   f"http://{on_host.docker_host.address}:{WEB_PORT}/readyz",
                   *(f"http://{c.address}:{GATEWAY_PORT}/" for c in on_host.replicas("worker"))]
        for url in targets:
            assert_refused(tenants.attacker, url)


@both_shapes
def test_a_context_a_worker_saved_is_deleted_by_the_web_from_the_shared_snapshots_volume(on_host, api):
    """The snapshots volume is written by the workers and emptied by the web process (DELETE /v1/contexts/:id)."""
    context = api.post("/v1/contexts", json={}).json()
    session = api.create_session(contextId=context["id"])
    assert api.stop_session(session["id"])["snapshotError"] is None
    folder = on_host.volume("snapshots") / context["id"]
    assert list(folder.iterdir()), "the stop saved the context on the shared volume"
    answer = api.delete(f"/v1/contexts/{context['id']}")
    assert answer.status_code == 204, answer.text
    assert not folder.exists() or not list(folder.iterdir())


def test_sigterm_to_a_worker_container_stops_its_sessions_through_the_normal_flow(on_host, api):
    pages = on_host.pages
    context = api.post("/v1/contexts", json={}).json()
    session = api.create_session(contextId=context["id"])
    visit(session["cdpUrl"], f"{pages.base}/state", "state('before-stop')")
    replica = replica_of(on_host, session)
    others = [c for c in on_host.replicas("worker") if c is not replica]
    took = on_host.stop(replica)
    assert took < on_host.grace("worker"), f"PID 1 had not ended after stop_grace_period ({took:.1f} s): SIGKILLed"
    stopped = api.wait_status(session["id"], "stopped", timeout=10)
    assert stopped["stopReason"] == "shutdown" and stopped["snapshotError"] is None
    assert worker_name(replica) not in store(on_host).workers.live()
    restored = api.create_session(contextId=context["id"])
    assert worker_of(on_host, restored) in {worker_name(c) for c in others}
    assert visit(restored["cdpUrl"], f"{pages.base}/state", "state()")["local"] == "before-stop"
    api.stop_session(restored["id"])
    assert api.delete(f"/v1/contexts/{context['id']}").status_code == 204
