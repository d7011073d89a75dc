"""The fast layer: core against a real redis-server, no workers, no browsers."""
from __future__ import annotations

import pytest

from core.session_machine import SessionMachine
from core.store import Store
from tests.support.settings import config_with


class RecordingDispatcher:
    """Stands in for the Celery dispatcher: the stop tasks and relaunches a move sends, kept for the test to read."""

    def __init__(self) -> None:
        self.stops: list[tuple[str, str, str]] = []
        self.relaunches: list[tuple[str, str]] = []

    def send_stop(self, worker: str, session_id: str, reason: str) -> None:
        self.stops.append((worker, session_id, reason))

    def send_relaunch(self, session_id: str, state: str) -> None:
        self.relaunches.append((session_id, state))


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def machine(store, dispatcher) -> SessionMachine:
    """The state machine over ``store``, its stop tasks recorded by ``dispatcher`` (modules may bring their own)."""
    return SessionMachine(store, dispatcher)


@pytest.fixture
def store(redis_server) -> Store:
    """A Store on database 15 of the suite's Redis, emptied before each test."""
    config = config_with(REDIS_URL=redis_server.url(15), BROKER_CREATE_WAIT=5, BROKER_LAUNCH_TIMEOUT=5,
                         BROKER_SESSION_RETENTION=60)
    store = Store(config)
    store.redis.flushdb()
    return store


@pytest.fixture(scope="session")
def devtools():
    """The fake browsers' debugger (tests/unit/worker_fakes.py), shared by every in-process worker test."""
    from tests.unit.worker_fakes import FakeDevTools

    server = FakeDevTools()
    yield server
    server.close()


@pytest.fixture
def make_worker(redis_server, devtools, tmp_path):
    """Builds workers (tasks/worker.py) the way the worker's bootstep does, but with a fake launcher, on database 12
    of the suite's Redis, emptied first; each test's workers are stopped and their fake browsers ended after it.

    ``make_worker(started=False, **variables)`` returns the worker with only its gateway listening (every running
    session's record names it), or, ``started``, after its whole start (tasks/worker.py ``Worker.start``:
    leftovers, housekeeping and warm keeper included); ``worker.pool.launcher`` is its FakeLauncher.
    """
    from core.dispatch import make_celery
    from tasks.worker import Worker
    from tests.unit.worker_fakes import FakeLauncher, FakeUsers

    built: list[Worker] = []

    def make(name: str = "w@test", started: bool = False, **settings) -> Worker:
        config = config_with(**{
            "REDIS_URL": redis_server.url(12), "BROKER_STATE_DIR": tmp_path / "state",
            "BROKER_PROFILES_DIR": tmp_path / "profiles", "BROKER_SNAPSHOT_URL": f"file://{tmp_path / 'snapshots'}",
            "BROKER_SECRET_KEY": "worker-tests-secret-key", "BROKER_POOL_SIZE": 2, "BROKER_WARM_BROWSERS": 0,
            "BROKER_CREATE_WAIT": 5, "BROKER_LAUNCH_TIMEOUT": 5, "BROKER_WORKER_HOST": "127.0.0.1",
            "BROKER_GATEWAY_BIND": "127.0.0.1", "BROKER_GATEWAY_PORT": 0, "BROKER_SHUTDOWN_GRACE": 5, **settings})
        if not built:
            Store(config).redis.flushdb()
        worker = Worker(config, make_celery(config), name, FakeLauncher(devtools), FakeUsers())
        built.append(worker)
        if started:
            worker.start()
        else:
            worker.gateway.start()
        return worker

    yield make
    for worker in built:
        worker.stop()
        for browser in worker.pool.launcher.alive():
            browser.handle.kill()
            browser.handle.wait(5)
