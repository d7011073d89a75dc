"""docker-compose.yml and the Dockerfile describe the topology tests/hosts runs (no Docker engine here to run them).

The multi-host module starts workers from the Procfile's worker line with the
variables in tests/support/hosts.py; these checks hold the compose file to the
same command, the same variables and the same gateway port, and to what
``--scale worker=N`` and an init process need.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests
import yaml

from tests.support.compose import MissingVariable, interpolate
from tests.support.hosts import GATEWAY_PORT, WEB_TOPOLOGY, WORKER_TOPOLOGY, procfile_command
from tests.support.processes import ROOT, SECRET_KEY, end_process, free_port, wait_until

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def procfile_words(process: str, **env: str) -> list[str]:
    """The Procfile line split into words as its shell expands them (no DYNO, no BROKER_WORKER_NAME)."""
    script = f'set -- {procfile_command(process)}; printf "%s\\0" "$@"'
    out = subprocess.run(["sh", "-c", script], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True)
    return out.stdout.split("\0")[:-1]


def test_compose_worker_runs_the_procfile_worker_line_with_a_stable_name():
    assert SERVICES["worker"]["command"] == procfile_words("worker")
    assert "broker-1@%h" in SERVICES["worker"]["command"]
    assert SERVICES["web"]["command"] == procfile_words("web")


def test_compose_sets_every_variable_the_multi_host_topology_needs():
    assert set(WEB_TOPOLOGY) <= set(SERVICES["web"]["environment"])
    assert set(WORKER_TOPOLOGY) <= set(SERVICES["worker"]["environment"])
    worker = SERVICES["worker"]["environment"]
    assert worker["BROKER_GATEWAY_BIND"] == "0.0.0.0" and worker["BROKER_WORKER_HOST"] == "auto"
    assert SERVICES["web"]["environment"]["BROKER_SECRET_KEY"] == worker["BROKER_SECRET_KEY"]
    assert SERVICES["web"]["environment"]["REDIS_URL"] == worker["REDIS_URL"] == "redis://redis:6379/0"


def test_gateway_port_is_open_between_containers_only_and_workers_scale():
    worker = SERVICES["worker"]
    assert int(worker["environment"]["BROKER_GATEWAY_PORT"]) == GATEWAY_PORT
    assert [str(GATEWAY_PORT)] == worker["expose"]
    assert "ports" not in worker and "container_name" not in worker and "hostname" not in worker
    assert re.search(rf"^EXPOSE .*\b{GATEWAY_PORT}\b", DOCKERFILE, re.M)


def test_every_container_runs_under_an_init_that_reaps_chromiums_helpers():
    assert re.search(r"apt-get install .*\btini\b", DOCKERFILE)
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in DOCKERFILE
    assert all(s.get("build") == "." for name, s in SERVICES.items() if name != "redis")


def test_the_image_holds_every_package_and_module_the_project_installs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = [p.rstrip("*") for p in project["packages"]["find"]["include"]]
    for package in packages:
        assert f"COPY {package} ./{package}" in DOCKERFILE
    copied = re.search(r"^COPY (pyproject\.toml .*) \./$", DOCKERFILE, re.M).group(1).split()
    assert all(f"{module}.py" in copied for module in project["py-modules"])


def test_the_image_installs_rrweb_from_its_lock_file_where_the_recorder_and_replay_page_look():
    """Recording needs rrweb in the worker and rrweb-player in the web process: both read from
    assets/rrweb/node_modules beside core (core/recordings.py), which the image must fill as scripts/setup.sh does."""
    from core.recordings import RRWEB_DIR

    stages = re.split(r"^FROM ", DOCKERFILE, flags=re.M)[1:]
    installs = [stage for stage in stages if re.search(r"^RUN npm ci\b", stage, re.M)]
    assert len(installs) == 1, "no stage runs npm ci for assets/rrweb"
    name = re.match(r"\S+ AS (\S+)", installs[0]).group(1)
    workdir = re.search(r"^WORKDIR (\S+)$", installs[0], re.M).group(1)
    copied = re.search(r"^COPY (.*) \./$", installs[0], re.M).group(1).split()
    assert copied == ["assets/rrweb/package.json", "assets/rrweb/package-lock.json"]
    final = stages[-1]
    target = RRWEB_DIR.relative_to(ROOT).as_posix()
    assert f"COPY --from={name} {workdir}/node_modules ./{target}" in final
    assert final.index(f"./{target}") > final.index("COPY core ./core")


def test_only_the_web_port_is_published_beyond_the_docker_hosts_loopback():
    published = {name: s["ports"] for name, s in SERVICES.items() if "ports" in s}
    assert published == {"web": ["8000:8000"], "flower": ["127.0.0.1:5555:5555"]}


def test_compose_refuses_to_start_flower_without_a_login():
    """FLOWER_BASIC_AUTH (user:password) is required, as the other secrets are; it is in Flower's environment, where
    Flower reads its --basic-auth from, and on no command line (``ps`` shows those to every user of the host)."""
    flower = SERVICES["flower"]
    with pytest.raises(MissingVariable, match="login for Flower"):
        interpolate(flower["environment"]["FLOWER_BASIC_AUTH"], {})
    with pytest.raises(MissingVariable):
        interpolate(flower["environment"]["FLOWER_BASIC_AUTH"], {"FLOWER_BASIC_AUTH": ""})
    assert interpolate(flower["environment"]["FLOWER_BASIC_AUTH"], {"FLOWER_BASIC_AUTH": "ops:pw"}) == "ops:pw"
    assert not any("auth" in word for word in flower["command"])


def test_flower_as_compose_starts_it_answers_only_its_login(redis_server, tmp_path: Path):
    """The compose service's command and FLOWER_BASIC_AUTH, against the suite's Redis on a free port: 401 without
    the login or with a wrong one, the page with it."""
    port, login = free_port(), ("ops", "flower-test-login")
    flower = SERVICES["flower"]
    assert flower["command"][0] == "celery"
    command = [sys.executable, "-m", *flower["command"], f"--port={port}", "--address=127.0.0.1"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "REDIS_URL": redis_server.url(15),
           "BROKER_SECRET_KEY": SECRET_KEY, "BROKER_STATE_DIR": str(tmp_path),
           "FLOWER_BASIC_AUTH": interpolate(flower["environment"]["FLOWER_BASIC_AUTH"],
                                            {"FLOWER_BASIC_AUTH": ":".join(login)})}
    url = f"http://127.0.0.1:{port}/workers"
    with open(tmp_path / "flower.log", "wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _answers(url) or proc.poll() is not None, 30, message="Flower")
        assert proc.poll() is None, (tmp_path / "flower.log").read_text()[-2000:]
        assert requests.get(url, timeout=5).status_code == 401
        assert requests.get(url, auth=(login[0], "wrong"), timeout=5).status_code == 401
        assert requests.get(url, auth=login, timeout=5).status_code == 200
    finally:
        end_process(proc)


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
        return True
    except requests.RequestException:
        return False
