"""The one place that reads and writes Redis: records, their keys, TTLs and encoding.

Every process (web, worker, CLI) goes through :class:`Store`; no other module
knows a Redis key. Records are JSON documents; state changes that race (a create
giving up while a worker takes the launch, two DELETEs) are compare-and-set
transactions on the record's ``status``.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

import redis

from app.config import Config

PREFIX = "bb"
STOP_CHANNEL = f"{PREFIX}:session-stops"

#: Status a session record moves through. Only the last three are shown to users:
#: pending (queued) → launching (a worker took it) → running → stopping → stopped;
#: abandoned is a create that gave up before its browser was ready.
PENDING, LAUNCHING, RUNNING, STOPPING, STOPPED, ABANDONED = (
    "pending", "launching", "running", "stopping", "stopped", "abandoned",
)
VISIBLE_STATUSES = (RUNNING, STOPPING, STOPPED)

ALL_SCOPES = (
    "sessions:read", "sessions:write",
    "contexts:read", "contexts:write",
    "proxies:read", "proxies:write",
)
DEFAULT_PROJECT = "default"


def utcnow_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_after(seconds: float) -> str:
    return datetime.fromtimestamp(time.time() + seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id(prefix: str) -> str:
    """128 bits of randomness: a session id is the capability that opens its CDP socket."""
    return f"{prefix}_{secrets.token_hex(16)}"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class Store:
    def __init__(self, config: Config, client: redis.Redis | None = None) -> None:
        self.config = config
        self.redis = client or redis.Redis.from_url(
            config.redis_url,
            decode_responses=True,
            socket_connect_timeout=3,
            socket_timeout=5,
            health_check_interval=10,
        )

    # -- keys -------------------------------------------------------------
    def _key_key(self, key_hash: str) -> str:
        return f"{PREFIX}:apikey:{key_hash}"

    def put_api_key(self, api_key: str, *, name: str, project: str, scopes: Iterable[str]) -> dict:
        record = {"name": name, "project": project, "scopes": sorted(set(scopes)), "createdAt": utcnow_iso()}
        self.redis.set(self._key_key(hash_key(api_key)), json.dumps(record))
        return record

    def get_api_key(self, api_key: str) -> dict | None:
        raw = self.redis.get(self._key_key(hash_key(api_key)))
        return json.loads(raw) if raw else None

    def ensure_api_key(self, api_key: str, *, name: str, project: str, scopes: Iterable[str]) -> None:
        """Idempotent: the bootstrap key is ensured at every process start."""
        existing = self.get_api_key(api_key)
        if existing is None or set(existing["scopes"]) != set(scopes) or existing["project"] != project:
            self.put_api_key(api_key, name=name, project=project, scopes=scopes)

    # -- sessions ---------------------------------------------------------
    def _session_key(self, session_id: str) -> str:
        return f"{PREFIX}:session:{session_id}"

    def _project_sessions_key(self, project: str) -> str:
        return f"{PREFIX}:project:{project}:sessions"

    def _launch_events_key(self, session_id: str) -> str:
        return f"{PREFIX}:launch-events:{session_id}"

    def create_session(self, record: dict) -> None:
        """Stored as pending, with a TTL, so an abandoned create leaves nothing behind for long."""
        ttl = int(self.config.create_wait + self.config.launch_timeout + 60)
        self.redis.set(self._session_key(record["id"]), json.dumps(record), ex=ttl, nx=True)

    def get_session(self, session_id: str) -> dict | None:
        raw = self.redis.get(self._session_key(session_id))
        return json.loads(raw) if raw else None

    def update_session(self, session_id: str, expect: Iterable[str] | None = None, **changes: Any) -> dict | None:
        """Apply ``changes`` only if the record's status is one of ``expect``; the new record, else None."""
        key = self._session_key(session_id)
        allowed = set(expect) if expect is not None else None

        def apply(pipe: redis.client.Pipeline) -> dict | None:
            raw = pipe.get(key)
            if raw is None:
                return None
            record = json.loads(raw)
            if allowed is not None and record["status"] not in allowed:
                return None
            record.update(changes)
            pipe.multi()
            pipe.set(key, json.dumps(record), keepttl=True)
            if record["status"] == RUNNING:
                pipe.persist(key)
                pipe.zadd(self._project_sessions_key(record["project"]), {session_id: record["createdMs"]})
            elif record["status"] == STOPPED:
                pipe.expire(key, self.config.session_retention)
            return record

        return self.redis.transaction(apply, key, value_from_callable=True)

    def list_sessions(self, project: str, status: str | None = None) -> list[dict]:
        """Newest first. Ids whose record has expired are pruned from the index on the way."""
        index = self._project_sessions_key(project)
        ids = self.redis.zrevrange(index, 0, -1)
        if not ids:
            return []
        raws = self.redis.mget([self._session_key(i) for i in ids])
        gone = [i for i, raw in zip(ids, raws) if raw is None]
        if gone:
            self.redis.zrem(index, *gone)
        records = [json.loads(raw) for raw in raws if raw]
        return [r for r in records if r["status"] in VISIBLE_STATUSES and (status is None or r["status"] == status)]

    def push_launch_event(self, session_id: str, event: dict) -> None:
        key = self._launch_events_key(session_id)
        pipe = self.redis.pipeline()
        pipe.rpush(key, json.dumps(event))
        pipe.expire(key, int(self.config.create_wait + self.config.launch_timeout + 60))
        pipe.execute()

    def next_launch_event(self, session_id: str, timeout: int) -> dict | None:
        """Block up to ``timeout`` whole seconds (kept below the socket timeout)."""
        item = self.redis.blpop([self._launch_events_key(session_id)], timeout=timeout)
        return json.loads(item[1]) if item else None

    def drop_launch_events(self, session_id: str) -> None:
        self.redis.delete(self._launch_events_key(session_id))

    # -- relay notifications ---------------------------------------------
    def announce_stop(self, session_id: str, reason: str) -> None:
        """Tell every web process to close the session's CDP clients now."""
        self.redis.publish(STOP_CHANNEL, json.dumps({"sessionId": session_id, "reason": reason}))

    def stop_announcements(self) -> Iterator[dict]:
        """Yields stop announcements forever; raises on a broken Redis connection (callers retry)."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(STOP_CHANNEL)
        try:
            while True:
                message = pubsub.get_message(timeout=1.0)
                if message and message["type"] == "message":
                    yield json.loads(message["data"])
        finally:
            pubsub.close()

    # -- workers ----------------------------------------------------------
    def _workers_key(self) -> str:
        return f"{PREFIX}:workers"

    def heartbeat(self, worker: str, info: dict) -> None:
        pipe = self.redis.pipeline()
        pipe.zadd(self._workers_key(), {worker: time.time()})
        pipe.set(f"{PREFIX}:worker:{worker}", json.dumps(info), ex=int(self.config.worker_ttl * 3))
        pipe.execute()

    def forget_worker(self, worker: str) -> None:
        pipe = self.redis.pipeline()
        pipe.zrem(self._workers_key(), worker)
        pipe.delete(f"{PREFIX}:worker:{worker}")
        pipe.execute()

    def live_workers(self) -> list[str]:
        since = time.time() - self.config.worker_ttl
        return self.redis.zrangebyscore(self._workers_key(), since, "+inf")

    def ping(self) -> bool:
        return bool(self.redis.ping())
