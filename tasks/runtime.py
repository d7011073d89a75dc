"""What one worker process holds: its store handle, its name, its Chromium pool, warm browsers, gateway, launch intake
and proxy forwarders."""
from __future__ import annotations

import functools
import logging
import urllib.request

from core.crypto import SecretBox
from core.download_archive import DownloadArchive
from core.egress import EgressPolicy
from core.dispatch import Dispatcher
from core.gateway_auth import GatewayKey
from core.snapshots import open_snapshot_store
from core.session_machine import SessionMachine
from core.store import Store
from tasks.celery_app import celery, config
from tasks.browser_users import BrowserUsers, NoBrowserUser
from tasks.chromium_flags import browser_flags
from tasks.launchers import make_launcher
from tasks.running_browser import RunningBrowser
from tasks.confinement import ConfinementError, start_checks
from tasks.contexts import ContextState
from tasks.downloads import DownloadGuards
from tasks.forwarder import Forwarders
from tasks.gateway import Gateway
from tasks.intake import LaunchIntake
from tasks.project_gate import ProjectGate
from tasks.pool import ChromiumPool
from tasks.warm import WarmBrowsers

log = logging.getLogger(__name__)

store = Store(config)
dispatcher = Dispatcher(celery, config)
machine = SessionMachine(store, dispatcher)
#: Refuses to import (so the worker to start) without BROKER_SECRET_KEY outside development.
secret_box = SecretBox.from_config(config)
contexts = ContextState(config, store, open_snapshot_store(config))
download_archive = DownloadArchive(open_snapshot_store(config))


@functools.cache
def download_guards() -> DownloadGuards:
    return DownloadGuards(config.download_max_bytes, lambda session_id, message: store.sessions.update_running(
        session_id, {"downloadError": message}))


def prepare_browser(key: str, browser: RunningBrowser) -> None:
    """Before any client reaches a browser: its downloads already land in its folder (tasks/downloads.py), and
    Chromium's /json/protocol is stored, once per browser version, for clients that discover it (app/relay_info.py).
    ``key``: the session's id, or a warm browser's key (its guard follows it to the session, pool.rekey_hooks)."""
    try:
        download_guards().start(key, browser)
    except Exception:  # the browser answered a moment ago; without a guard the profile's folder still holds
        log.exception("%s: the download guard could not connect", key)
    if store.cdp_protocol.version() == browser.version:
        return
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{browser.port}/json/protocol", timeout=5) as answer:
            store.cdp_protocol.save(browser.version, answer.read().decode())
    except OSError as error:
        log.warning("could not read Chromium's /json/protocol: %s", error)


@functools.cache
def forwarders() -> Forwarders:
    return Forwarders(EgressPolicy.parse(config.egress_allow), config.proxy_connect_timeout)


@functools.cache
def browser_users() -> BrowserUsers:
    try:
        return BrowserUsers(config.browser_user)
    except NoBrowserUser as error:
        raise ConfinementError(str(error)) from error


def isolation() -> dict[str, str]:
    """How this worker keeps its browsers apart, for its heartbeat (so /readyz and /metrics) and its start log.

    ``users``: ``per-browser`` (a root worker runs each browser as a user of its own) or ``shared`` (all as the
    worker's user: one tenant's pages could read another's profile through a ``file`` input). ``network``:
    ``forwarder``, each browser's own (tasks/forwarder.py), under ``egress``. ``projects``: ``one at a time`` where
    the users are shared (tasks/project_gate.py), else ``any``.
    """
    return {"users": "per-browser" if browser_users().switching else "shared", "network": "forwarder",
            "egress": forwarders().policy.describe(),
            "projects": "one at a time" if project_gate().enforced else "any"}


@functools.cache
def project_gate() -> ProjectGate:
    """Enforced only where browsers share the worker's user (not root) and BROKER_SHARED_USER_PROJECTS is not ``any``."""
    return ProjectGate(enforced=not browser_users().switching and config.shared_user_projects != "any")


@functools.cache
def pool() -> ChromiumPool:
    """Raises ConfinementError (from the start checks) if this worker's browsers could read the host."""
    users = browser_users()
    root = config.profiles_dir / worker_name()
    sandbox = start_checks(config, users, root)
    log.info("isolation: browsers' users %(users)s; network through each browser's own %(network)s, %(egress)s; "
             "projects %(projects)s", isolation())
    chromium_pool = ChromiumPool(make_launcher(config, users, sandbox), config.pool_size, root)
    # A browser's forwarder ends with it, whichever path ends the browser (or its launch), and follows a warm one.
    chromium_pool.release_hooks.append(forwarders().stop)
    chromium_pool.failed_launch_hooks.append(forwarders().stop)
    chromium_pool.rekey_hooks.append(forwarders().rekey)
    chromium_pool.release_hooks.append(download_guards().stop)
    chromium_pool.release_hooks.append(project_gate().release)
    chromium_pool.rekey_hooks.append(download_guards().rekey)
    chromium_pool.release_hooks.append(lambda _: intake().reconcile())
    chromium_pool.release_hooks.append(lambda _: warm_browsers().wake())
    return chromium_pool


@functools.cache
def gateway() -> Gateway:
    """Started before the worker takes its first launch: each session's record names its address."""
    return Gateway(config, GatewayKey.from_config(config), lambda session_id: pool().get(session_id))


@functools.cache
def warm_browsers() -> WarmBrowsers:
    return WarmBrowsers(pool(), store, worker_name, config.warm_browsers,
                        lambda key: browser_flags(config, forwarders().start(key)), config.launch_timeout,
                        on_ready=lambda: intake().reconcile(), prepare=prepare_browser)


@functools.cache
def intake() -> LaunchIntake:
    """A warm browser is room too, for creates that waited: a plain one takes it, any other ends it for its slot."""
    return LaunchIntake(celery, worker_name(), pool(), lambda: warm_browsers().room())


def browser_counts() -> dict[str, int]:
    """Slots by use, for the heartbeat (and so /readyz) and Flower."""
    return pool().counts()


_name: list[str] = []


def set_worker_name(name: str) -> None:
    _name[:] = [name]


def current_worker_name() -> str | None:
    """None until Celery has named the worker (its first log lines)."""
    return _name[0] if _name else None


def worker_name() -> str:
    if not _name:
        raise RuntimeError("the worker's name is set when Celery starts the worker")
    return _name[0]
