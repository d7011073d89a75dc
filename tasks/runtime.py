"""What one worker process holds: its store handle, its name and its Chromium pool."""
from __future__ import annotations

import functools

from app.store import Store
from tasks.celery_app import config
from tasks.chromium import make_launcher
from tasks.contexts import ContextState
from tasks.pool import ChromiumPool
from tasks.snapshots import open_snapshot_store

store = Store(config)
contexts = ContextState(config, store, open_snapshot_store(config))


@functools.cache
def pool() -> ChromiumPool:
    return ChromiumPool(make_launcher(config), config.pool_size, config.state_dir / "profiles" / worker_name())


_name: list[str] = []


def set_worker_name(name: str) -> None:
    _name[:] = [name]


def worker_name() -> str:
    if not _name:
        raise RuntimeError("the worker's name is set when Celery starts the worker")
    return _name[0]
