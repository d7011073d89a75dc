"""Listening to stop announcements as the relay does, for the fast layer's tests of when they are made."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from core.store import Store, keys

#: Published after the moves under test: every announcement they made was published before it, so the subscriber has
#: heard them all once it hears this (one Redis, one channel, published in order).
SENTINEL = "end-of-test"


@contextmanager
def announcements(store: Store) -> Iterator[list[dict]]:
    """Every stop announcement published inside the block, in order; filled when the block ends."""
    heard: list[dict] = []
    pubsub = store.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.STOP_CHANNEL)
    assert pubsub.get_message(timeout=2) is None  # the subscription is confirmed before the block runs
    try:
        yield heard
        store.redis.publish(keys.STOP_CHANNEL, json.dumps({"sessionId": SENTINEL}))
        while (message := pubsub.get_message(timeout=5)) is not None:
            announcement = json.loads(message["data"])
            if announcement["sessionId"] == SENTINEL:
                return
            heard.append(announcement)
        pytest.fail("the sentinel announcement never arrived")
    finally:
        pubsub.close()
