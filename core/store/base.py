"""The Redis connection every record kind shares, and the JSON encoding of records."""
from __future__ import annotations

import json
from typing import Any

import redis

from core.config import Config

Pipeline = redis.client.Pipeline
#: Retry-After (seconds) on every answer refused because Redis did not answer: REST and sockets alike.
STORAGE_RETRY_AFTER = "5"


def connect(config: Config) -> redis.Redis:
    """Short socket timeouts: with Redis down a request fails in seconds (503), it never hangs."""
    return redis.Redis.from_url(
        config.redis_url,
        decode_responses=True,
        socket_connect_timeout=3,
        socket_timeout=5,
        health_check_interval=10,
    )


def load(raw: str | None) -> Any:
    return json.loads(raw) if raw else None


def dump(record: Any) -> str:
    return json.dumps(record)


class RecordKind:
    """One kind of record: the shared client and configuration, and reading one JSON document."""

    def __init__(self, client: redis.Redis, config: Config) -> None:
        self.redis = client
        self.config = config

    def _load(self, key: str) -> Any:
        return load(self.redis.get(key))

    def _existing(self, ids: list[str], key_of: Any) -> set[str]:
        """Which of ``ids`` have a record, in one round trip."""
        if not ids:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for record_id in ids:
            pipe.exists(key_of(record_id))
        return {record_id for record_id, found in zip(ids, pipe.execute()) if found}

    def _store_indexed(self, key: str, index: str, record: dict, score: float) -> None:
        """A record and its place in its project's index, written together."""
        pipe = self.redis.pipeline()
        pipe.set(key, dump(record))
        pipe.zadd(index, {record["id"]: score})
        pipe.execute()

    def _page_indexed(self, index: str, key_of: Any, start: int, count: int) -> tuple[list[dict], int]:
        """One page of an index's records, newest first, and the index's size; ids whose record is gone are pruned.

        A page past the end is empty without asking Redis for it: a ``?page=`` of 20 digits is a valid
        request, but not a range Redis takes.
        """
        total = self.redis.zcard(index)
        if start >= total:
            return [], total
        ids = self.redis.zrevrange(index, start, start + count - 1)
        raws = self.redis.mget([key_of(i) for i in ids]) if ids else []
        gone = [i for i, raw in zip(ids, raws) if raw is None]
        if gone:
            self.redis.zrem(index, *gone)
        return [load(raw) for raw in raws if raw], self.redis.zcard(index)
