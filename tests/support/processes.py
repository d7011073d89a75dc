"""Real Redis, Celery worker and web processes for the suite, each started and ended by PID.

Every process the suite starts carries ``BB_TEST_RUN=<id>`` in its environment,
and so do their children (Chromium, ChromeDriver), so leak checks find exactly
this run's processes and never another run's.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path

import psutil
import redis
import requests
from redis.exceptions import RedisError

from core.dispatch import LAUNCH_QUEUE
from core.store import Store, keys
from tests.support import secrets
from tests.support.settings import config_with

ROOT = Path(__file__).resolve().parents[2]
RUN_MARK = "BB_TEST_RUN"
RUN_ID = uuid.uuid4().hex
TEST_FLAGS = '--host-resolver-rules="MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"'
BROWSER_NAMES = ("chromium", "chromedriver", "chrome_crashpad_handler")
#: Encrypts stored proxy passwords in the suite's deployments; tests grep logs for secrets, never for this.
SECRET_KEY = "bb-test-secret-" + uuid.uuid4().hex
secrets.use_deployment_secret(SECRET_KEY)


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.05, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {message}")


def gone(proc: psutil.Process) -> bool:
    """Exited or a zombie; one that exits between the two questions is gone too (asked one after the other,
    ``is_running`` then ``status``, raised NoSuchProcess and lost a CI run's watcher thread)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def end_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run_processes(names: tuple[str, ...] = BROWSER_NAMES) -> list[psutil.Process]:
    """This run's live browser-side processes (by the environment mark, never by name alone)."""
    found = []
    for proc in psutil.process_iter(["name"]):
        try:
            if not any(n in (proc.info["name"] or "") for n in names):
                continue
            if proc.environ().get(RUN_MARK) == RUN_ID and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def describe_process(proc: psutil.Process) -> str:
    """PID, age, parent and the start of the command line: enough to tell which launch left it."""
    try:
        args = " ".join(arg for arg in proc.cmdline() if arg.startswith(("--user-data-dir", "--type")) or "/" in arg)
        return f"{proc.pid} ({proc.name()}, {time.time() - proc.create_time():.0f} s old, parent {proc.ppid()}): {args[:300]}"
    except psutil.Error as error:
        return f"{proc.pid}: {error!r}"


class Redis:
    def __init__(self, workdir: Path, persist: bool = False, data_dir: Path | None = None) -> None:
        """``data_dir``: where its data is (an RDB or append-only file there is loaded); by default a folder of its
        own, since two persistent servers of one run must not share (and load) one append-only file."""
        self.port = free_port()
        self.workdir = workdir
        self.data_dir = data_dir or workdir / f"redis-{self.port}"
        self.persist = persist
        self.proc: subprocess.Popen | None = None
        self.start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis.from_url(self.url(db))

    def start(self, empty: bool = False) -> None:
        """``empty``: whatever it persisted is deleted first, as a cache-only Redis or a failover that lost its
        writes comes back."""
        if empty:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(exist_ok=True)
        log = open(self.workdir / f"redis-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--databases", "64",
             "--appendonly", "yes" if self.persist else "no", "--appendfsync", "always", "--dir", str(self.data_dir)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        wait_until(self._answers, 10, message="redis-server")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc:
            end_process(self.proc)


class Broker:
    """One deployment: a web process and one or more workers sharing a Redis."""

    def __init__(self, redis: Redis, workdir: Path, api_key: str, db: int = 0, **env: str) -> None:
        self.redis = redis
        self.redis_url = redis.url(db)
        self.workdir = workdir
        self.api_key = api_key
        secrets.remember("bootstrap API key", api_key)
        self.port = free_port()
        self._url = f"http://127.0.0.1:{self.port}"
        self._web_starting = False
        self.state_dir = workdir / f"state-{self.port}"
        # Outside the (0700) workdir: browsers' users must be able to walk down to their profiles.
        self.profiles_dir = Path(tempfile.gettempdir()) / f"bb-test-profiles-{RUN_ID[:8]}-{self.port}"
        self.env = {
            **os.environ,
            RUN_MARK: RUN_ID,
            "REDIS_URL": self.redis_url,
            "PORT": str(self.port),
            "BROKER_BIND": "127.0.0.1",
            "BROKER_PUBLIC_URL": self._url,
            "BROKER_BOOTSTRAP_API_KEY": api_key,
            "BROKER_SECRET_KEY": SECRET_KEY,
            "BROKER_PROXY_CONNECT_TIMEOUT": "3",
            "BROKER_STATE_DIR": str(self.state_dir),
            "BROKER_PROFILES_DIR": str(self.profiles_dir),
            "BROKER_CHROMIUM_EXTRA_FLAGS": TEST_FLAGS,
            "BROKER_HEARTBEAT_INTERVAL": "1",
            "BROKER_WORKER_TTL": "5",
            "BROKER_RELAY_PING_INTERVAL": "2",
            "BROKER_CLIENT_LEASE": "3",
            # The suite's page servers and upstream proxies listen on loopback: opened by configuration, as an operator
            # opens an internal site. tests/e2e/test_tenant_isolation.py runs deployments with the default policy.
            "BROKER_EGRESS_ALLOW": "127.0.0.0/8",
            # The project's default launcher (direct): ChromeDriver's path costs ~0.08 CPU-s and ~85 ms more a launch
            # on the 2-core machine. It runs where it is under test: tests/conftest.py's ``selenium_broker`` (and
            # ``any_broker``, every promise by both launchers), tests/e2e/test_tenant_isolation.py and
            # tests/e2e/test_redis_restart.py. Four slots (the default fits the machine: six on two cores).
            "BROKER_LAUNCHER": "direct",
            "BROKER_POOL_SIZE": "4",
            # No warm browser where none is under test: a spare is a launch beside the test's own (the 2-core machine
            # is the suite's limit), ended unused with its worker or for the slot of a create that launches cold
            # (a context, a proxy, browser options). Where warm browsers are under test a deployment sets
            # BROKER_WARM_BROWSERS itself: tests/e2e/test_warm.py (both launchers), test_files.py, test_redis_loss.py,
            # test_tenant_isolation.py; tests/e2e/test_serve.py and tests/hosts/test_compose.py run the project's
            # defaults, as shipped. With a spare, only in a free session slot (BROKER_WARM_MAX=0) and only that one
            # (BROKER_WARM_WINDOW=0: a keeper that follows demand launched ~3.5 spares per session in deployments
            # whose tests create a few sessions at once and then none); test_warm.py's ``solo`` follows demand (its own
            # slots, 10 s of creates).
            "BROKER_WARM_BROWSERS": "0",
            "BROKER_WARM_MAX": "0",
            "BROKER_WARM_WINDOW": "0",
            **env,
        }
        self.workers: dict[str, subprocess.Popen] = {}
        self.worker_logs: list[Path] = []
        self.web: subprocess.Popen | None = None

    def _spawn(self, args: list[str], log_name: str, env: dict) -> subprocess.Popen:
        log = open(self.workdir / log_name, "ab")
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    @property
    def url(self) -> str:
        """The web process's address, once it answers (see ``start_web``)."""
        self.wait_web()
        return self._url

    def start_web(self, wait: bool = True) -> None:
        """``wait=False``: the web process starts while the caller goes on (a module's workers start, ~2 s each,
        beside it); the first use of ``url`` waits for it to answer."""
        self.web = self._spawn([sys.executable, "-m", "web"], f"web-{self.port}.log", self.env)
        self._web_starting = True
        if wait:
            self.wait_web()

    def wait_web(self) -> None:
        if self._web_starting:
            wait_until(self._web_answers, 30, message="web process")
            self._web_starting = False

    def _web_answers(self, url: str | None = None) -> bool:
        try:
            return requests.get(f"{url or self._url}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    def start_another_web(self, **env: str) -> tuple[subprocess.Popen, str]:
        """A second web process of this deployment (same Redis, settings but ``env``), as a scaled-out web tier runs."""
        port = free_port()
        proc = self._spawn([sys.executable, "-m", "web"], f"web-{port}.log",
                           {**self.env, "PORT": str(port), "BROKER_PUBLIC_URL": f"http://127.0.0.1:{port}", **env})
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: self._web_answers(url), 30, message="second web process")
        return proc, url

    def spawn_worker(self, name: str, **env: str) -> subprocess.Popen:
        """A worker process, not yet known to be up (tests of a worker that must refuse to start)."""
        args = [sys.executable, "-m", "celery", "-A", "tasks.celery_app", "worker", "-Q", "browsers.launch",
                "-n", f"{name}@test", "--loglevel=INFO", "--without-gossip", "--without-mingle"]
        self.worker_logs.append(self.workdir / f"worker-{name}.log")
        return self._spawn(args, f"worker-{name}.log", {**self.env, **env})

    def worker_log(self, name: str) -> str:
        return (self.workdir / f"worker-{name}.log").read_text(errors="replace")

    def start_worker(self, name: str | None = None, wait: bool = True, **env: str) -> str:
        """``wait=False``: returns once the process is started; ``wait_worker`` then waits for its heartbeat, so a
        test starts two workers side by side (a start is mostly waiting: Celery's boot, Chromium's start check)."""
        name = name or f"w{len(self.workers)}-{self.port}"
        nodename = f"{name}@test"
        self.workers[nodename] = self.spawn_worker(name, **env)
        if wait:
            self.wait_worker(nodename)
        return nodename

    def wait_worker(self, nodename: str) -> None:
        try:
            wait_until(lambda: nodename in self.live_workers(), 60, message=f"worker {nodename} heartbeat")
        except TimeoutError as error:
            raise TimeoutError(f"{error}; its log ends: {self.worker_log(nodename.split('@')[0])[-3000:]}") from None

    def waiting_launches(self) -> int:
        """Launch messages still in Redis: creates in line that no worker has taken."""
        return self.store().redis.llen(LAUNCH_QUEUE)

    def task_done(self, task_id: str) -> bool:
        """Whether a worker of this deployment has logged the task as finished (Celery's own log line)."""
        done = re.compile(rf"Task \S+\[{re.escape(task_id)}\] (succeeded|failed|raised)")
        return any(done.search(path.read_text(errors="replace")) for path in self.worker_logs if path.exists())

    def store(self) -> Store:
        return Store(config_with(REDIS_URL=self.redis_url, BROKER_WORKER_TTL=5))

    def live_workers(self) -> list[str]:
        try:
            return self.store().workers.live()
        except RedisError:
            return []

    def stop_worker(self, nodename: str, sig: int = signal.SIGTERM) -> None:
        end_process(self.workers.pop(nodename), sig, timeout=60)

    def stop(self) -> None:
        for nodename in list(self.workers):
            self.stop_worker(nodename)
        if self.web:
            end_process(self.web)

    def remove_profiles_root(self) -> None:
        shutil.rmtree(self.profiles_dir, ignore_errors=True)

    def profile_dirs(self) -> list[Path]:
        """Every browser's profile folder, warm browsers' included."""
        return [p for p in self.leftovers() if p.is_dir()]

    def session_profiles(self) -> dict[str, Path]:
        """Each session browser's profile folder, from the PID files the pools write.

        A warm browser's folder keeps its own name once a session has it; its PID
        file is renamed after the session.
        """
        found = {}
        for pid_file in self.profiles_dir.glob("*/ses_*.pids"):
            try:
                found[pid_file.stem] = Path(json.loads(pid_file.read_text())["profile"])
            except (OSError, ValueError, KeyError):
                continue  # being written, renamed or removed right now
        return found

    def footprint(self) -> tuple[frozenset[str], int, frozenset[str]]:
        """Every stored session record (pending ones too), the launches waiting in the queue, and the sessions'
        browser profiles: what a refused create must leave exactly as it was."""
        store = self.store()
        records = frozenset(store.redis.scan_iter(match=keys.session("*"), count=1000))
        return records, self.waiting_launches(), frozenset(self.session_profiles())

    def browser_counts(self, nodename: str) -> dict[str, int]:
        """A worker's slots by use, as its last heartbeat told them."""
        try:
            return self.store().workers.states().get(nodename, {}).get("browsers", {})
        except RedisError:
            return {}

    def browser_processes(self) -> list[psutil.Process]:
        """This deployment's live Chromium and ChromeDriver processes: its workers' ``PORT`` (the web's) reaches
        every browser's environment (core.config.browser_environment)."""
        found = []
        for proc in run_processes():
            try:
                if proc.environ().get("PORT") == str(self.port):
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def leftovers(self) -> list[Path]:
        """Profile directories and PID files of the workers' pools."""
        return list(self.profiles_dir.glob("*/*")) if self.profiles_dir.exists() else []

    def worker_profiles(self, nodename: str) -> Path:
        return self.profiles_dir / nodename
