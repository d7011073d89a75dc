"""docker-compose.yml as written, each container a set of namespaces: redis, web, flower and two worker replicas.

The deployment is ``docker compose up --scale worker=2`` (tests/support/compose.py
says what stands for what). The test talks from the Docker host, as a user of
the compose file's default BROKER_PUBLIC_URL (http://127.0.0.1:8000) does; a
namespace ``outside`` stands for any other machine, reaching only what
``ports:`` publish.

Without the right to create namespaces the module is skipped, saying why;
with CI=true it must run, so there it fails instead.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
from dataclasses import replace
from pathlib import Path

import psutil
import pytest
import requests

from core.config import load
from core.store import Store
from tests.support.api import Api
from tests.support.browsing import playwright_drive, puppeteer_drive, visit
from tests.support.compose import Container, MissingVariable, Project, compose_services, interpolate
from tests.support.hosts import GATEWAY_PORT
from tests.support.netns import NETNS_ETC, why_unavailable
from tests.support.pages import PageServer
from tests.support.processes import BROWSER_NAMES, SECRET_KEY, wait_until

#: The compose network and the outside link: apart from 198.18.0.0/24 (tests/hosts/test_many_hosts.py).
PREFIX, OUTSIDE_PREFIX = "198.18.1", "198.18.2"
WEB_PORT, FLOWER_PORT = 8000, 5555
#: Flower's login (FLOWER_BASIC_AUTH): compose refuses to start without one.
FLOWER_LOGIN = ("operator", "flower-" + secrets.token_urlsafe(12))


def _must_run() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def compose():
    """``docker compose up --scale worker=2``, and ``down`` (processes, namespaces, links, hosts files, folders) however the module ends."""
    reason = why_unavailable()
    if reason:
        if _must_run():
            pytest.fail(f"CI=true but the compose tests cannot run: {reason}")
        pytest.skip(f"the compose tests need network namespaces: {reason}")
    workdir = Path(tempfile.mkdtemp(prefix="bb-compose-"))
    api_key = "bb_" + secrets.token_urlsafe(24)
    # As the compose file's comment says: the secrets and Flower's login from the shell (or an .env file); nothing else set.
    # The test's page server is on the Docker host's address in the compose network: opened as an internal site.
    variables = {"BROKER_BOOTSTRAP_API_KEY": api_key, "BROKER_SECRET_KEY": SECRET_KEY,
                 "BROKER_EGRESS_ALLOW": f"{PREFIX}.0/24",
                 "FLOWER_BASIC_AUTH": ":".join(FLOWER_LOGIN)}
    project = Project(workdir, variables, {"worker": 2}, prefix=PREFIX, outside_prefix=OUTSIDE_PREFIX)
    try:
        project.up()
        project.api_key = api_key
        project.url = f"http://127.0.0.1:{WEB_PORT}"
        with project.net.inside(project.docker_host):
            # The Docker host's address on the compose network: containers reach it as their gateway.
            project.pages = PageServer(project.docker_host.address)
            wait_until(lambda: _ready_workers(project) == 2, 120, interval=0.5, message="/readyz counting both workers")
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
            leftovers = project.net.leftovers() + [f for f in project.made_folders if os.path.exists(f)]
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
    return Store(replace(load(), redis_url=f"redis://{redis.address}:6379/0"))


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
    for _ in range(6):
        session = api.create_session()
        sessions.setdefault(worker_of(on_host, session), session)
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
    for _ in range(6):
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
    assert stopped["stopReason"] == "worker_lost" and stopped["snapshotError"] is None
    assert worker_name(replica) not in store(on_host).workers.live()
    restored = api.create_session(contextId=context["id"])
    assert worker_of(on_host, restored) in {worker_name(c) for c in others}
    assert visit(restored["cdpUrl"], f"{pages.base}/state", "state()")["local"] == "before-stop"
    api.stop_session(restored["id"])
    assert api.delete(f"/v1/contexts/{context['id']}").status_code == 204
