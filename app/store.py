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
from collections.abc import Callable, Iterable, Iterator
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

    # -- JSON records -----------------------------------------------------
    def _load(self, key: str) -> dict | None:
        raw = self.redis.get(key)
        return json.loads(raw) if raw else None

    def _store_indexed(self, key: str, index: str, record: dict, score: float) -> None:
        """A record and its place in its project's index, written together."""
        pipe = self.redis.pipeline()
        pipe.set(key, json.dumps(record))
        pipe.zadd(index, {record["id"]: score})
        pipe.execute()

    def _load_indexed(self, index: str, key_of: Callable[[str], str]) -> list[dict]:
        """The index's records, newest first; ids whose record is gone are skipped."""
        ids = self.redis.zrevrange(index, 0, -1)
        raws = self.redis.mget([key_of(i) for i in ids]) if ids else []
        return [json.loads(raw) for raw in raws if raw]

    # -- keys -------------------------------------------------------------
    def _key_key(self, key_hash: str) -> str:
        return f"{PREFIX}:apikey:{key_hash}"

    def put_api_key(self, api_key: str, *, name: str, project: str, scopes: Iterable[str]) -> dict:
        record = {"name": name, "project": project, "scopes": sorted(set(scopes)), "createdAt": utcnow_iso()}
        self.redis.set(self._key_key(hash_key(api_key)), json.dumps(record))
        return record

    def get_api_key(self, api_key: str) -> dict | None:
        return self._load(self._key_key(hash_key(api_key)))

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
        return self._load(self._session_key(session_id))

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
                pipe.sadd(self._worker_sessions_key(record["worker"]), session_id)
                if record.get("expiresEpoch"):
                    pipe.zadd(self._expiries_key(), {session_id: record["expiresEpoch"]})
                if record.get("idleTimeout"):
                    pipe.zadd(self._idle_key(), {session_id: time.time() + record["idleTimeout"]})
            if record["status"] in (STOPPED, ABANDONED):
                pipe.zrem(self._project_live_key(record["project"]), session_id)
            if record["status"] == STOPPED:
                pipe.expire(key, self.config.session_retention)
                pipe.zrem(self._expiries_key(), session_id)
                pipe.zrem(self._idle_key(), session_id)
                pipe.delete(self._clients_key(session_id))
                if record.get("worker"):
                    pipe.srem(self._worker_sessions_key(record["worker"]), session_id)
            if record["status"] in (STOPPED, ABANDONED) and record.get("proxyId"):
                pipe.zrem(self._proxy_sessions_key(record["proxyId"]), session_id)
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

    def _expiries_key(self) -> str:
        return f"{PREFIX}:session-expiries"

    def take_expired_sessions(self) -> list[str]:
        """Sessions past their ``expiresAt``; each id is handed to exactly one caller (whoever removes it)."""
        due = self.redis.zrangebyscore(self._expiries_key(), "-inf", time.time())
        return [session_id for session_id in due if self.redis.zrem(self._expiries_key(), session_id)]

    def _idle_key(self) -> str:
        return f"{PREFIX}:session-idle"

    def _clients_key(self, session_id: str) -> str:
        return f"{PREFIX}:session:{session_id}:clients"

    def client_connected(self, session_id: str) -> None:
        """A CDP client is on the session: it is not idle, whatever its idleTimeout."""
        pipe = self.redis.pipeline()
        pipe.incr(self._clients_key(session_id))
        pipe.zrem(self._idle_key(), session_id)
        pipe.execute()

    def client_disconnected(self, session_id: str, idle_timeout: int | None) -> None:
        """The last client gone starts the idle clock of a session that has one."""
        remaining = self.redis.decr(self._clients_key(session_id))
        if remaining <= 0 and idle_timeout:
            self.redis.zadd(self._idle_key(), {session_id: time.time() + idle_timeout})

    def take_idle_sessions(self) -> list[str]:
        """Sessions idle past their idleTimeout, each handed to exactly one caller."""
        due = self.redis.zrangebyscore(self._idle_key(), "-inf", time.time())
        taken = [session_id for session_id in due if self.redis.zrem(self._idle_key(), session_id)]
        return [s for s in taken if int(self.redis.get(self._clients_key(s)) or 0) <= 0]

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

    # -- projects ---------------------------------------------------------
    def _project_settings_key(self, project: str) -> str:
        return f"{PREFIX}:project:{project}:settings"

    def _project_live_key(self, project: str) -> str:
        return f"{PREFIX}:project:{project}:live"

    def set_project_settings(self, project: str, **settings: Any) -> dict:
        record = {**(self.get_project_settings(project)), **settings}
        self.redis.set(self._project_settings_key(project), json.dumps(record))
        return record

    def get_project_settings(self, project: str) -> dict:
        return self._load(self._project_settings_key(project)) or {}

    def claim_project_slot(self, project: str, session_id: str, limit: int) -> bool:
        """Count a new session against the project's limit; False (nothing written) when it is reached.

        The session leaves the count when it is stopped or abandoned (update_session).
        """
        live = self._project_live_key(project)
        never_stored = time.time() - (self.config.create_wait + self.config.launch_timeout + 60)
        for stale in self.redis.zrangebyscore(live, "-inf", never_stored):
            if not self.redis.exists(self._session_key(stale)):
                self.redis.zrem(live, stale)

        def claim(pipe: redis.client.Pipeline) -> bool:
            if pipe.zcard(live) >= limit:
                return False
            pipe.multi()
            pipe.zadd(live, {session_id: time.time()})
            return True

        return self.redis.transaction(claim, live, value_from_callable=True)

    # -- contexts ---------------------------------------------------------
    def _context_key(self, context_id: str) -> str:
        return f"{PREFIX}:context:{context_id}"

    def _context_cookies_key(self, context_id: str) -> str:
        return f"{PREFIX}:context:{context_id}:cookies"

    def _context_lock_key(self, context_id: str) -> str:
        return f"{PREFIX}:context:{context_id}:holder"

    def _project_contexts_key(self, project: str) -> str:
        return f"{PREFIX}:project:{project}:contexts"

    def create_context(self, record: dict) -> None:
        self._store_indexed(self._context_key(record["id"]), self._project_contexts_key(record["project"]),
                            record, time.time())

    def get_context(self, context_id: str) -> dict | None:
        return self._load(self._context_key(context_id))

    def list_contexts(self, project: str) -> list[dict]:
        return self._load_indexed(self._project_contexts_key(project), self._context_key)

    def delete_context(self, context_id: str, project: str) -> None:
        pipe = self.redis.pipeline()
        pipe.delete(self._context_key(context_id), self._context_cookies_key(context_id))
        pipe.zrem(self._project_contexts_key(project), context_id)
        pipe.execute()

    def claim_context(self, context_id: str, holder: str) -> str | None:
        """Make ``holder`` (a session id) the context's only user; the current holder's id if it is taken.

        A holder whose session has ended (or never got stored) no longer counts,
        so a crash between claim and release cannot lock a context forever.
        """
        lock = self._context_lock_key(context_id)

        def claim(pipe: redis.client.Pipeline) -> str | None:
            current = pipe.get(lock)
            if current and current != holder:
                session = pipe.get(self._session_key(current))
                status = json.loads(session)["status"] if session else None
                if status not in (None, STOPPED, ABANDONED):
                    return current
            pipe.multi()
            pipe.set(lock, holder)
            return None

        return self.redis.transaction(claim, lock, value_from_callable=True)

    def release_context(self, context_id: str, holder: str) -> None:
        lock = self._context_lock_key(context_id)

        def release(pipe: redis.client.Pipeline) -> None:
            if pipe.get(lock) == holder:
                pipe.multi()
                pipe.delete(lock)

        self.redis.transaction(release, lock)

    def update_context(self, context_id: str, **changes: Any) -> dict | None:
        key = self._context_key(context_id)

        def apply(pipe: redis.client.Pipeline) -> dict | None:
            raw = pipe.get(key)
            if raw is None:
                return None
            record = {**json.loads(raw), **changes, "updatedAt": utcnow_iso()}
            pipe.multi()
            pipe.set(key, json.dumps(record))
            return record

        return self.redis.transaction(apply, key, value_from_callable=True)

    def save_context_cookies(self, context_id: str, session_id: str, cookies: list[dict]) -> bool:
        """The cookie record of the last save; False if the context was deleted meanwhile."""
        if self.update_context(context_id, cookieCount=len(cookies), lastSessionId=session_id) is None:
            return False
        self.redis.set(self._context_cookies_key(context_id), json.dumps(cookies))
        return True

    def get_context_cookies(self, context_id: str) -> list[dict]:
        raw = self.redis.get(self._context_cookies_key(context_id))
        return json.loads(raw) if raw else []

    def point_to_snapshot(self, context_id: str, version: str, size: int, keep: int) -> list[str] | None:
        """Move the context to a fully written snapshot; the versions now beyond the newest ``keep``.

        None means the context is gone: the caller deletes the archive it wrote.
        """
        record = self.get_context(context_id)
        if record is None:
            return None
        versions = [version, *record.get("snapshotVersions", [])]
        updated = self.update_context(
            context_id, snapshotVersion=version, snapshotVersions=versions[:keep], snapshotBytes=size
        )
        return None if updated is None else versions[keep:]

    # -- proxies ----------------------------------------------------------
    # A proxy record carries its password only as ciphertext (app/crypto.py). The
    # ``:sessions`` sorted set lists the sessions using the proxy (score: when they
    # claimed it); a create claims before its session is stored, a session leaves
    # the set when it becomes stopped or abandoned (update_session), and a delete
    # is refused while a live user remains, all in WATCHed transactions.
    def _proxy_key(self, proxy_id: str) -> str:
        return f"{PREFIX}:proxy:{proxy_id}"

    def _proxy_sessions_key(self, proxy_id: str) -> str:
        return f"{PREFIX}:proxy:{proxy_id}:sessions"

    def _project_proxies_key(self, project: str) -> str:
        return f"{PREFIX}:project:{project}:proxies"

    def create_proxy(self, record: dict) -> None:
        self._store_indexed(self._proxy_key(record["id"]), self._project_proxies_key(record["project"]),
                            record, record["createdMs"])

    def get_proxy(self, proxy_id: str) -> dict | None:
        return self._load(self._proxy_key(proxy_id))

    def list_proxies(self, project: str) -> list[dict]:
        return self._load_indexed(self._project_proxies_key(project), self._proxy_key)

    def claim_proxy(self, proxy_id: str, project: str, session_id: str) -> bool:
        """Record ``session_id`` as a user of the proxy; False (and nothing written) if ``project`` has no such proxy."""
        key = self._proxy_key(proxy_id)

        def claim(pipe: redis.client.Pipeline) -> bool:
            raw = pipe.get(key)
            if raw is None or json.loads(raw)["project"] != project:
                return False
            pipe.multi()
            pipe.zadd(self._proxy_sessions_key(proxy_id), {session_id: time.time()})
            return True

        return self.redis.transaction(claim, key, value_from_callable=True)

    def delete_proxy(self, proxy_id: str) -> list[str] | None:
        """Delete the proxy unless a live session uses it: None if there was no such proxy, else the live users.

        An empty list means it is gone. A user whose record says stopped or
        abandoned, or whose record never appeared within a create's lifetime,
        is pruned rather than counted, so a crashed create cannot pin a proxy.
        """
        key, users = self._proxy_key(proxy_id), self._proxy_sessions_key(proxy_id)
        claim_grace = self.config.create_wait + self.config.launch_timeout + 60

        def delete(pipe: redis.client.Pipeline) -> list[str] | None:
            raw = pipe.get(key)
            if raw is None:
                return None
            claims = pipe.zrange(users, 0, -1, withscores=True)
            live, dead = [], []
            for session_id, claimed_at in claims:
                session = pipe.get(self._session_key(session_id))
                status = json.loads(session)["status"] if session else None
                gone = status in (STOPPED, ABANDONED) or (status is None and claimed_at < time.time() - claim_grace)
                (dead if gone else live).append(session_id)
            pipe.multi()
            if dead:
                pipe.zrem(users, *dead)
            if not live:
                pipe.delete(key, users)
                pipe.zrem(self._project_proxies_key(json.loads(raw)["project"]), proxy_id)
            return live

        return self.redis.transaction(delete, key, users, value_from_callable=True)

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

    def _worker_sessions_key(self, worker: str) -> str:
        return f"{PREFIX}:worker-sessions:{worker}"

    def worker_sessions(self, worker: str) -> list[str]:
        """Running (or stopping) sessions whose browser the worker ``worker`` (its queue name) holds."""
        return sorted(self.redis.smembers(self._worker_sessions_key(worker)))

    def silent_workers(self) -> list[str]:
        return self.redis.zrangebyscore(self._workers_key(), "-inf", time.time() - self.config.worker_ttl)

    def take_silent_worker(self, worker: str) -> bool:
        """True for exactly one caller per lost worker, so its sessions are ended once."""
        return bool(self.redis.zrem(self._workers_key(), worker))

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
