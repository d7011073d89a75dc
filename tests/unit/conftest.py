"""The fast layer: core against a real redis-server, no workers, no browsers."""
from __future__ import annotations

from dataclasses import replace

import pytest

from core.config import load
from core.store import Store


@pytest.fixture
def store(redis_server) -> Store:
    """A Store on database 15 of the suite's Redis, emptied before each test."""
    config = replace(load(), redis_url=redis_server.url(15), create_wait=5, launch_timeout=5, session_retention=60)
    store = Store(config)
    store.redis.flushdb()
    return store
