"""One deployment over three hosts made of network namespaces: Redis, S3 and the web process on one, a worker on each other.

The worker runs exactly as the Procfile's ``worker`` line says (through
``sh -c``, as honcho and PaaS run it), with its host's own hostname, so its
name (``broker-1@<host>``) is what the Procfile gives on a real machine.
docker-compose.yml is checked against the variables set here
(tests/unit/test_deploy_files.py).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
from celery import Celery

from core.dispatch import LAUNCH_QUEUE
from core.store import Store
from tests.support.api import Api
from tests.support.netns import Host, Network
from tests.support.processes import RUN_ID, RUN_MARK, ROOT, SECRET_KEY, end_process, wait_until
from tests.support.settings import config_with

REDIS_PORT = 6379
WEB_PORT = 8000
S3_PORT = 5000
GATEWAY_PORT = 9223
BUCKET = "bb-hosts"
TTL = 5
#: What the web process needs to know about this topology (docker-compose.yml's web service must set each).
WEB_TOPOLOGY = ("REDIS_URL", "BROKER_SECRET_KEY", "BROKER_PUBLIC_URL", "BROKER_SNAPSHOT_URL", "BROKER_S3_ENDPOINT_URL")
#: What each worker needs (docker-compose.yml's worker service must set each).
WORKER_TOPOLOGY = (
    "REDIS_URL", "BROKER_SECRET_KEY", "BROKER_WORKER_HOST", "BROKER_GATEWAY_BIND", "BROKER_GATEWAY_PORT",
    "BROKER_SNAPSHOT_URL", "BROKER_S3_ENDPOINT_URL", "BROKER_STATE_DIR",
)


def procfile_command(process: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == process:
            return command.strip()
    raise KeyError(f"no {process} line in the Procfile")


class Deployment:
    def __init__(self, net: Network, workdir: Path, api_key: str) -> None:
        self.net = net
        self.workdir = workdir
        self.api_key = api_key
        self.web_host = net.add_host("web")
        self.worker_hosts = [net.add_host("w1"), net.add_host("w2")]
        web = self.web_host.address
        self.url = f"http://{web}:{WEB_PORT}"
        self.redis_url = f"redis://{web}:{REDIS_PORT}/0"
        self.s3_url = f"http://{web}:{S3_PORT}"
        self.common = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            RUN_MARK: RUN_ID,
            "REDIS_URL": self.redis_url,
            "BROKER_SECRET_KEY": SECRET_KEY,
            "BROKER_SNAPSHOT_URL": f"s3://{BUCKET}/contexts",
            "BROKER_S3_ENDPOINT_URL": self.s3_url,
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
            "BROKER_HEARTBEAT_INTERVAL": "1",
            "BROKER_WORKER_TTL": str(TTL),
            "BROKER_RELAY_PING_INTERVAL": "2",
            # create_on() steers a create to one host by pausing the others' shared queue; a warm offer
            # would take it past that to any host (tests/e2e/test_warm.py covers offers across workers).
            "BROKER_WARM_BROWSERS": "0",
            # Four slots a worker, whatever this machine's BROKER_POOL_SIZE=auto gives: eight creates fill both.
            "BROKER_POOL_SIZE": "4",
            # The page servers live on the test hosts' addresses: opened by configuration, as an internal site would be.
            "BROKER_EGRESS_ALLOW": "198.18.0.0/15",
        }
        self.processes: dict[str, subprocess.Popen] = {}

    # -- processes ---------------------------------------------------------------
    def _spawn(self, key: str, host: Host, args: list[str], env: dict) -> subprocess.Popen:
        log = open(self.workdir / f"{key}.log", "ab")
        proc = subprocess.Popen(host.command(*args), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes[key] = proc
        return proc

    def start_services(self) -> None:
        web = self.web_host
        # Reached from the other hosts, so not loopback-only (protected mode); the test network is private.
        self._spawn("redis", web, ["redis-server", "--port", str(REDIS_PORT), "--bind", web.address, "--save", "",
                                   "--appendonly", "no", "--protected-mode", "no"], self.common)
        self._spawn("s3", web, [sys.executable, "-m", "moto.server", "-H", web.address, "-p", str(S3_PORT)], self.common)

    def web_env(self, port: int = WEB_PORT) -> dict:
        return {**self.common, "PORT": str(port), "BROKER_BIND": self.web_host.address,
                "BROKER_PUBLIC_URL": f"http://{self.web_host.address}:{port}", "BROKER_BOOTSTRAP_API_KEY": self.api_key}

    def start_web(self, key: str = "web", port: int = WEB_PORT, **env: str) -> None:
        self._spawn(key, self.web_host, [sys.executable, "-m", "web"], {**self.web_env(port), **env})

    def worker_env(self, host: Host) -> dict:
        return {
            **self.common,
            "BROKER_WORKER_HOST": host.address,
            "BROKER_GATEWAY_BIND": "0.0.0.0",
            "BROKER_GATEWAY_PORT": str(GATEWAY_PORT),
            "BROKER_STATE_DIR": str(self.state_dir(host)),
            "BROKER_PROFILES_DIR": str(self.profiles_dir(host)),
            "BROKER_LAUNCHER": "direct",
            # Test pages come from the web host; every name lookup fails, so nothing leaves the test's network.
            # 127.0.0.1 stays itself: the browser's forwarder listens there (the rules map IP literals too).
            "BROKER_CHROMIUM_EXTRA_FLAGS": ('--host-resolver-rules="MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , '
                                            f'EXCLUDE {self.web_host.address}"'),
        }

    def start_worker(self, host: Host) -> str:
        """The Procfile's worker line on ``host``; returns its node name once it heartbeats."""
        return self.start_workers(host)[0]

    def start_workers(self, *hosts: Host) -> list[str]:
        """The Procfile's worker line on each host, all started before any is waited for (a start is mostly
        waiting: Celery's boot, Chromium's start check); their node names once each heartbeats."""
        for host in hosts:
            self._spawn(f"worker-{host.name}", host, ["sh", "-c", procfile_command("worker")], self.worker_env(host))
        names = []
        for host in hosts:
            name = self.worker_name(host)
            wait_until(lambda: self._worker_pid(host) is not None, 30, message=f"the Procfile line to start {name}")
            pid = self._worker_pid(host)
            # A heartbeat of this life, not the last one of an earlier life under the same name.
            wait_until(lambda: (self.store().workers.info(name) or {}).get("pid") == pid, 90,
                       message=f"worker {name} heartbeat")
            names.append(name)
        return names

    def _worker_pid(self, host: Host) -> int | None:
        try:
            return self.worker_process(host).pid
        except (StopIteration, psutil.NoSuchProcess):
            return None

    @staticmethod
    def worker_name(host: Host) -> str:
        return f"broker-1@{host.name}"

    def worker_process(self, host: Host) -> psutil.Process:
        """The Celery process itself (the Procfile's shell is its parent)."""
        shell = psutil.Process(self.processes[f"worker-{host.name}"].pid)
        return next(p for p in shell.children(recursive=True) if "celery" in " ".join(p.cmdline()))

    def kill_worker(self, host: Host) -> None:
        worker = self.worker_process(host)
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
        self.processes.pop(f"worker-{host.name}").wait(30)

    def stop_worker(self, host: Host) -> None:
        """SIGTERM to the Celery process, as a redeploy sends it: sessions stop through the normal flow."""
        key = f"worker-{host.name}"
        if key in self.processes and self.processes[key].poll() is None:
            worker = self.worker_process(host)
            worker.send_signal(signal.SIGTERM)
            worker.wait(90)
        proc = self.processes.pop(key, None)
        if proc is not None:
            proc.wait(30)

    def stop(self) -> None:
        for host in [self.web_host, *self.worker_hosts]:
            self.net.restore(host)
            self.stop_worker(host)
        for key in [k for k in self.processes if not k.startswith("worker-")]:
            end_process(self.processes.pop(key))

    def remove_profiles(self) -> None:
        for host in [self.web_host, *self.worker_hosts]:
            shutil.rmtree(self.profiles_dir(host), ignore_errors=True)

    def create_on(self, api: Api, host: Host, attempts: int = 1, **body) -> dict:
        """A session on ``host``'s worker: the other workers stop taking launches meanwhile (Celery remote control).

        ``attempts``: creates answered 503 are tried again, up to that many in all.
        """
        others = [self.worker_name(h) for h in self.running_workers() if h is not host]
        control = Celery(broker=self.redis_url)
        try:
            # A worker's launch intake (tasks/intake.py) consumes the shared queue again whenever it sees room, so
            # the pause can lapse: a session that lands elsewhere is stopped and the create made again.
            for _ in range(5):
                if others:
                    control.control.cancel_consumer(LAUNCH_QUEUE, destination=others, reply=True, timeout=10)
                for attempt in range(1, attempts + 1):
                    answer = api.post("/v1/sessions", json=body, timeout=120)
                    if answer.status_code != 503 or attempt == attempts:
                        break
                assert answer.status_code == 201, answer.text
                session = answer.json()
                if self.worker_of(session) == self.worker_name(host):
                    return session
                api.stop_session(session["id"])
        finally:
            if others:
                control.control.add_consumer(LAUNCH_QUEUE, destination=others, reply=True, timeout=10)
            control.close()
        raise AssertionError(f"five creates, none on {self.worker_name(host)}")

    def running_workers(self) -> list[Host]:
        hosts = [self.web_host, *self.worker_hosts]
        return [h for h in hosts if f"worker-{h.name}" in self.processes]

    def worker_of(self, session: dict) -> str:
        return self.store().sessions.get(session["id"])["worker"].removeprefix("browsers.worker.")

    # -- what tests look at -------------------------------------------------------
    def state_dir(self, host: Host) -> Path:
        return self.workdir / f"state-{host.name}"

    def profiles_dir(self, host: Host) -> Path:
        """Outside the (0700) work folder: browsers' users must be able to walk down to their profiles."""
        return Path(tempfile.gettempdir()) / f"bb-hosts-profiles-{self.net.tag}-{host.name}"

    def worker_profiles(self, host: Host) -> Path:
        return self.profiles_dir(host) / self.worker_name(host)

    def store(self) -> Store:
        """Only from a thread on the web host's network (Network.inside)."""
        return Store(config_with(REDIS_URL=self.redis_url, BROKER_WORKER_TTL=TTL))

    def browsers_on(self, host: Host) -> list[psutil.Process]:
        """Live Chromium processes whose profile is under ``host``'s state folder."""
        marker = str(self.profiles_dir(host))
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if marker in " ".join(proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except psutil.NoSuchProcess:
                continue
        return found

    def log(self, key: str) -> str:
        return (self.workdir / f"{key}.log").read_text(errors="replace")
