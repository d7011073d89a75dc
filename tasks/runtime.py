"""What one worker process holds: its store handle, its name, its Chromium pool, gateway, launch intake and proxy forwarders."""
from __future__ import annotations

import functools

from core.crypto import SecretBox
from core.dispatch import Dispatcher
from core.gateway_auth import GatewayKey
from core.snapshots import open_snapshot_store
from core.states import SessionMachine
from core.store import Store
from tasks.celery_app import celery, config
from tasks.browser_users import BrowserUsers, NoBrowserUser
from tasks.chromium import make_launcher
from tasks.confinement import ConfinementError, start_checks
from tasks.contexts import ContextState
from tasks.forwarder import Forwarders
from tasks.gateway import Gateway
from tasks.intake import LaunchIntake
from tasks.pool import ChromiumPool

store = Store(config)
machine = SessionMachine(store, Dispatcher(celery, config))
#: Refuses to import (so the worker to start) without BROKER_SECRET_KEY outside development.
secret_box = SecretBox.from_config(config)
contexts = ContextState(config, store, open_snapshot_store(config))


@functools.cache
def forwarders() -> Forwarders:
    return Forwarders(config.proxy_connect_timeout)


@functools.cache
def pool() -> ChromiumPool:
    """Raises ConfinementError (from the start checks) if this worker's browsers could read the host."""
    try:
        users = BrowserUsers(config.browser_user)
    except NoBrowserUser as error:
        raise ConfinementError(str(error)) from error
    root = config.profiles_dir / worker_name()
    sandbox = start_checks(config, users, root)
    chromium_pool = ChromiumPool(make_launcher(config, users, sandbox), config.pool_size, root)
    # A session's forwarder ends with its browser, whichever path ends the browser.
    chromium_pool.release_hooks.append(forwarders().stop)
    chromium_pool.release_hooks.append(lambda _: intake().reconcile())
    return chromium_pool


@functools.cache
def gateway() -> Gateway:
    """Started before the worker takes its first launch: each session's record names its address."""
    return Gateway(config, GatewayKey.from_config(config), lambda session_id: pool().get(session_id))


@functools.cache
def intake() -> LaunchIntake:
    return LaunchIntake(celery, worker_name(), pool())


_name: list[str] = []


def set_worker_name(name: str) -> None:
    _name[:] = [name]


def worker_name() -> str:
    if not _name:
        raise RuntimeError("the worker's name is set when Celery starts the worker")
    return _name[0]
