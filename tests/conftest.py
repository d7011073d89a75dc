"""The suite's real parts: a redis-server on a free port, Celery workers, the web process, a page server.

All are session-scoped and ended by PID at the end; the last teardown checks
that this run left no Chromium, ChromeDriver or profile directory behind.
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import secrets as used_secrets
from tests.support.api import Api
from tests.support.browsing import stop_playwright_driver
from tests.support.pages import PageServer
from tests.support.proxies import ProxyFactory
from tasks.running_browser import end_processes
from tests.support.processes import Broker, Redis, describe_process, run_processes, wait_until


#: The slowest test files, slowest first (per-file totals of a full run, docs/TESTING.md). Run in this order, the
#: pytest-xdist workers (scripts/test.sh, --dist loadfile) each take the longest file left when they free up, so
#: none is still on a long file while the others have run out; every other file keeps its place after these.
SLOWEST_FIRST = (
    "tests/e2e/test_moving.py",
    "tests/e2e/test_lifecycle.py",
    "tests/e2e/test_save_faults.py",
    "tests/hosts/test_many_hosts.py",
    "tests/e2e/test_warm.py",
    "tests/e2e/test_openapi_contract.py",
    "tests/e2e/test_cdp_clients.py",
    "tests/hosts/test_compose.py",
    "tests/e2e/test_files.py",
    "tests/e2e/test_redis_restart.py",
    "tests/e2e/test_host_isolation.py",
    "tests/e2e/test_live_view.py",
    "tests/e2e/test_context_faults.py",
    "tests/e2e/test_given_up_creates.py",
    "tests/e2e/test_tenant_isolation.py",
    "tests/e2e/test_recording.py",
    "tests/e2e/test_proxy_routing.py",
    "tests/e2e/test_redis_loss.py",
    "tests/e2e/test_contexts.py",
    "tests/e2e/test_gateway.py",
    "tests/e2e/test_events.py",
    "tests/e2e/test_browser_record.py",
    "tests/e2e/test_keys.py",
    "tests/e2e/test_browser_options.py",
    "tests/e2e/test_session_cookies.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    """The slowest files first (SLOWEST_FIRST); a file's own tests stay together and in their order."""
    rank = {path: place for place, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


#: Seconds per test file and per pytest-xdist worker (set-up, call and teardown summed, module fixtures included).
_file_seconds: dict[str, float] = defaultdict(float)
_worker_seconds: dict[str, float] = defaultdict(float)
_worker_files: dict[str, list[str]] = defaultdict(list)


def pytest_runtest_logreport(report) -> None:
    """Adds each phase's time to its file's total and its worker's, for the closing summary."""
    path = report.nodeid.split("::", 1)[0]
    _file_seconds[path] += report.duration
    worker = getattr(getattr(report, "node", None), "gateway", None)
    worker_id = worker.id if worker else "main"
    _worker_seconds[worker_id] += report.duration
    if path not in _worker_files[worker_id]:
        _worker_files[worker_id].append(path)


def pytest_terminal_summary(terminalreporter, config) -> None:
    """Per-file totals and each worker's sum: what SLOWEST_FIRST is ordered by, and whether the workers were
    balanced (with --dist loadfile the run takes about max(longest file, sum / workers))."""
    if hasattr(config, "workerinput") or not _file_seconds:
        return
    terminalreporter.write_sep("=", "slowest files (set-up, calls and teardown summed)")
    for path, seconds in sorted(_file_seconds.items(), key=lambda item: -item[1])[:25]:
        terminalreporter.write_line(f"{seconds:8.1f}s {path}")
    terminalreporter.write_line(f"{sum(_file_seconds.values()):8.1f}s in all, {len(_file_seconds)} files")
    for worker_id in sorted(_worker_seconds):
        terminalreporter.write_line(f"{_worker_seconds[worker_id]:8.1f}s on {worker_id} "
                                    f"({len(_worker_files[worker_id])} files)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skipped test fails, with its reason: CI runs as root on a machine set up by the test command,
    so anything a test skips for (no root, no Chromium, no namespaces) is a broken set-up, not a pass."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and os.environ.get("CI", "").lower() == "true":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every test: {reason}"


@pytest.fixture(scope="session", autouse=True)
def playwright_once():
    """The run's one Playwright driver (tests/support/browsing.py) ends with the run."""
    yield
    stop_playwright_driver()


@pytest.fixture(scope="session")
def workdir():
    path = Path(tempfile.mkdtemp(prefix="bb-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(workdir):
    server = Redis(workdir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def brokers(workdir, redis_server):
    """Deployments started so far, checked for leaks once all of them are down."""
    started: list[Broker] = []
    yield started
    for broker in started:
        broker.stop()
        # A module's own Redis too: its fixture stops it after the yield, which a set-up that raised never reaches (a
        # failed run once left a redis-server up). Stopping one twice is a no-op.
        broker.redis.stop()
    try:
        wait_until(lambda: not run_processes(), 60, message="browser processes of this run to end")
    except TimeoutError as error:
        # Said, then ended (they are this run's, by its mark): which browser outlived every worker is the clue.
        alive = run_processes()
        described = [describe_process(proc) for proc in alive]
        end_processes(alive, grace=0)
        raise AssertionError(f"{error}: {described}") from None
    leftovers = [p for broker in started for p in broker.leftovers()]
    for broker in started:
        broker.remove_profiles_root()
    assert not leftovers, f"profile directories left behind: {leftovers}"
    # Every secret any test used (tests/support/secrets.py), against everything the processes logged, shutdowns included.
    assert not used_secrets.found_in_logs(workdir), f"secrets in the logs: {used_secrets.found_in_logs(workdir)}"


@pytest.fixture(scope="module")
def deploy(brokers, workdir, redis_server) -> Iterator[Callable[..., Broker]]:
    """Starts deployments of the module's own (Redis database ``db``; the web process unless ``web=False``).

    They end with the module: a deployment left up to the end of the suite keeps its worker's
    housekeeping, its warm browser and its sessions' browsers busy beside every later module.
    """
    made: list[Broker] = []

    def start(db: int, web: bool = True, **env: str) -> Broker:
        # Empty first: an earlier module may have used the same database number, and whatever it left (sessions,
        # workers, launches) must not count here, whichever order the files run in.
        redis_server.client(db).flushdb()
        broker = Broker(redis_server, workdir, "bb_" + secrets.token_urlsafe(24), db, **env)
        brokers.append(broker)
        made.append(broker)
        if web:
            broker.start_web(wait=False)  # its first use waits (Broker.url); a module's workers start meanwhile
        return broker

    yield start
    for broker in made:
        broker.stop()


def _start(brokers: list[Broker], workdir: Path, redis: Redis, db: int = 0, **env: str) -> Broker:
    broker = Broker(redis, workdir, "bb_" + secrets.token_urlsafe(24), db, **env)
    brokers.append(broker)
    broker.start_web(wait=False)
    broker.start_worker()
    return broker


@pytest.fixture(scope="session")
def broker(brokers, workdir, redis_server) -> Broker:
    """The default deployment: the direct launcher (the project's default), pool of 4, no warm browser."""
    return _start(brokers, workdir, redis_server)


@pytest.fixture(scope="session")
def selenium_broker(brokers, workdir, redis_server) -> Broker:
    """A second deployment (its own Redis database) whose ChromeDriver starts each Chromium (Selenium)."""
    return _start(brokers, workdir, redis_server, db=1, BROKER_LAUNCHER="selenium")


@pytest.fixture(params=["selenium", "direct"])
def any_broker(request) -> Broker:
    """Runs a test once per launcher: both must keep every promise."""
    return request.getfixturevalue("selenium_broker" if request.param == "selenium" else "broker")


@pytest.fixture(scope="session")
def api(broker) -> Api:
    return Api(broker.url, broker.api_key)


@pytest.fixture
def any_api(any_broker) -> Api:
    return Api(any_broker.url, any_broker.api_key)


@pytest.fixture(scope="session")
def pages():
    server = PageServer()
    yield server
    server.close()


@pytest.fixture
def session_factory():
    """Creates sessions and stops whatever a test left running."""
    created: list[tuple[Api, str]] = []

    def create(api: Api, **body) -> dict:
        session = api.create_session(**body)
        created.append((api, session["id"]))
        return session

    yield create
    for api, session_id in created:
        api.delete(f"/v1/sessions/{session_id}")
    for api, session_id in created:
        api.wait_status(session_id, "stopped")


@pytest.fixture
def proxy_factory(api):
    """Creates proxies in the default deployment and deletes whatever a test left."""
    factory = ProxyFactory(api)
    yield factory
    factory.delete_all()
