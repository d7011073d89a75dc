"""Session records, their indexes and schedules; status changes only through :meth:`SessionRecords.move`.

The allowed moves and their effects are :mod:`core.states`; this module carries
each effect out inside the move's WATCHed transaction, so an index never
disagrees with the record it indexes.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from core.states import Deadline, Effect, Move, SessionRecord, Status
from core.store import keys
from core.store.base import Pipeline, RecordKind, dump, load
from core.store.events import SERVICE_RESTART, queue_stop_announcement
from core.store.metrics import STOP_REASONS, count_in

#: take_idle in one step: no reader (a connecting client, a test, the API) ever sees a due session off the schedule
#: while it is checked. KEYS: the idle schedule; ARGV: now, the session key prefix (``<prefix><id>`` is the record,
#: ``<prefix><id>:clients`` its clients' leases).
_TAKE_IDLE = """
local taken = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do
  local clients = ARGV[2] .. id .. ':clients'
  redis.call('ZREMRANGEBYSCORE', clients, '-inf', ARGV[1])
  if redis.call('ZCARD', clients) == 0 then
    redis.call('ZREM', KEYS[1], id)
    table.insert(taken, id)
  else
    local raw = redis.call('GET', ARGV[2] .. id)
    local timeout = raw and tonumber(cjson.decode(raw)['idleTimeout'])
    if timeout then
      redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[1]) + timeout, id)
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
end
return taken
"""


class SessionRecords(RecordKind):
    def create(self, record: SessionRecord, in_line: bool = True) -> None:
        """Stored pending with a TTL, so a create abandoned by a crash leaves nothing behind for long.

        With it, in the same transaction, the create's deadline (core.states): BROKER_CREATE_WAIT from this write,
        timed by Redis. ``in_line``: the create waits for a cold launch (it took no warm browser's offer).
        """
        pipe = self.redis.pipeline()
        pipe.set(keys.session(record["id"]), dump(record), ex=int(self.config.create_lifetime), nx=True)
        pipe.set(keys.create_deadline(record["id"]), 1, px=_ms(self.config.web.create_wait), nx=True)
        if in_line:
            pipe.zadd(keys.LAUNCH_LINE, {record["id"]: time.time()})
        pipe.hincrby(keys.SESSION_STATUS_ENTERED, record["status"], 1)
        pipe.execute()

    def join_line(self, session_id: str) -> bool:
        """A create whose warm browser fell through waits for a cold launch; False if it is no longer pending."""
        key = keys.session(session_id)

        def join(pipe: Pipeline) -> bool:
            record = load(pipe.get(key))
            if record is None or record["status"] != Status.PENDING:
                return False
            pipe.multi()
            pipe.zadd(keys.LAUNCH_LINE, {session_id: time.time()}, nx=True)
            return True

        return self.redis.transaction(join, key, value_from_callable=True)

    def waited_in_line(self, session_id: str | None = None) -> float:
        """Seconds the session (by default the longest waiting create) has been in line; 0 when not in line."""
        if session_id is None:
            oldest = self.redis.zrange(keys.LAUNCH_LINE, 0, 0, withscores=True)
            joined = oldest[0][1] if oldest else None
        else:
            joined = self.redis.zscore(keys.LAUNCH_LINE, session_id)
        return max(0.0, time.time() - joined) if joined is not None else 0.0

    def waiting_for_launch(self) -> int:
        """Creates in line for a cold launch; entries older than a create's wait (a crashed web process) are dropped."""
        self.redis.zremrangebyscore(keys.LAUNCH_LINE, "-inf", time.time() - self.config.web.create_wait)
        return self.redis.zcard(keys.LAUNCH_LINE)

    def get(self, session_id: str) -> SessionRecord | None:
        return self._load(keys.session(session_id))

    def existing(self, session_ids: list[str]) -> set[str]:
        return self._existing(session_ids, keys.session)

    def create_waits(self, session_id: str) -> bool:
        """Whether the session's create has not yet reached its deadline (core.states): a launch for it may run."""
        return bool(self.redis.exists(keys.create_deadline(session_id)))

    def deadline_left(self, session_id: str) -> float | None:
        """Seconds until the create's deadline; None once it has passed, or the create gave up or has its answer."""
        left = self.redis.pttl(keys.create_deadline(session_id))
        return left / 1000 if left > 0 else None

    def get_for_launch(self, session_id: str) -> tuple[SessionRecord | None, bool]:
        """The record and :meth:`create_waits`, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.session(session_id))
        pipe.exists(keys.create_deadline(session_id))
        raw, waits = pipe.execute()
        return load(raw), bool(waits)

    def update_running(self, session_id: str, fields: dict[str, Any]) -> SessionRecord | None:
        """Writes fields other than the status (live-view credentials, ``downloadError``) on a running session.

        None, and nothing written, if it is not running.

        Not a move: the status stays as it is, and a session that stopped meanwhile keeps its dead hashes.
        """
        key = keys.session(session_id)

        def write(pipe: Pipeline) -> SessionRecord | None:
            record = load(pipe.get(key))
            if record is None or record["status"] != Status.RUNNING:
                return None
            record.update(fields)
            pipe.multi()
            pipe.set(key, dump(record), keepttl=True)
            return record

        return self.redis.transaction(write, key, value_from_callable=True)

    def move(self, session_id: str, move: Move, changes: dict[str, Any]) -> SessionRecord | None:
        """The new record if the session was in one of ``move.sources``; else None and nothing written."""
        key = keys.session(session_id)

        def apply(pipe: Pipeline) -> SessionRecord | None:
            record = load(pipe.get(key))
            if record is None or record["status"] not in move.sources:
                return None
            if move.deadline is not None and not _deadline_allows(pipe, move, session_id):
                return None
            source = record["status"]
            record.update(changes, status=move.target.value)
            holder = keys.context_holder(record["contextId"]) if record.get("contextId") else None
            if holder is not None:
                pipe.watch(holder)
            holder_is_us = holder is not None and _holder_id(pipe.get(holder)) == session_id
            pipe.multi()
            pipe.set(key, dump(record), keepttl=True)
            for effect in move.effects:
                self._effect(pipe, effect, source, record, holder if holder_is_us else None)
            self._count_move(pipe, source, record)
            return record

        return self.redis.transaction(apply, key, value_from_callable=True)

    @staticmethod
    def _count_move(pipe: Pipeline, source: str, record: SessionRecord) -> None:
        """In the move's own transaction, so /metrics counts exactly the moves that happened."""
        pipe.hincrby(keys.SESSION_STATUS_LEFT, source, 1)
        pipe.hincrby(keys.SESSION_STATUS_ENTERED, record["status"], 1)
        if record["status"] == Status.STOPPED:
            count_in(pipe, STOP_REASONS, record.get("stopReason") or "unknown")

    def _effect(self, pipe: Pipeline, effect: Effect, source: str, record: SessionRecord,
                own_holder: str | None) -> None:
        session_id, project = record["id"], record["project"]
        if effect is Effect.PERSIST:
            pipe.persist(keys.session(session_id))
        elif effect is Effect.INDEX_RUNNING:
            pipe.zadd(keys.project_sessions(project), {session_id: record["createdMs"]})
            pipe.zadd(keys.project_running(project), {session_id: record["createdMs"]})
            pipe.sadd(keys.worker_sessions(record["worker"]), session_id)
            if record.get("expiresEpoch"):
                pipe.zadd(keys.SESSION_EXPIRIES, {session_id: record["expiresEpoch"]})
            if record.get("idleTimeout"):
                pipe.zadd(keys.SESSION_IDLE, {session_id: time.time() + record["idleTimeout"]})
        elif effect is Effect.UNSCHEDULE:
            pipe.zrem(keys.SESSION_EXPIRIES, session_id)
            pipe.zrem(keys.SESSION_IDLE, session_id)
            pipe.zrem(keys.MOVES_UNDER_WAY, session_id)
            pipe.delete(keys.session_clients(session_id))
        elif effect is Effect.FREE_HOLDS:
            pipe.zrem(keys.project_live(project), session_id)
            pipe.zrem(keys.project_running(project), session_id)
            if record.get("worker"):
                pipe.srem(keys.worker_sessions(record["worker"]), session_id)
            if record.get("proxyId"):
                pipe.zrem(keys.proxy_sessions(record["proxyId"]), session_id)
            if own_holder is not None:
                pipe.delete(own_holder)
        elif effect is Effect.LEAVE_LINE:
            pipe.zrem(keys.LAUNCH_LINE, session_id)
        elif effect is Effect.TELL_CREATE:
            self._queue_launch_event(pipe, session_id, {"event": "ready", "session": record})
        elif effect is Effect.ANNOUNCE_STOP:
            if source == Status.RUNNING:
                queue_stop_announcement(pipe, session_id, record.get("stopReason") or "unknown")
        elif effect is Effect.ANNOUNCE_MOVE:
            queue_stop_announcement(pipe, session_id, "moving", code=SERVICE_RESTART)
        elif effect is Effect.LEAVE_WORKER:
            pipe.srem(keys.worker_sessions(record["worker"]), session_id)
        elif effect is Effect.AWAIT_RELAUNCH:
            pipe.zadd(keys.MOVES_UNDER_WAY, {session_id: time.time()})
        elif effect is Effect.RELAUNCHED:
            pipe.zrem(keys.MOVES_UNDER_WAY, session_id)
        elif effect is Effect.EXTEND_DEADLINE:
            pipe.pexpire(keys.create_deadline(session_id), _ms(self.config.worker.launch_timeout))
        elif effect is Effect.END_DEADLINE:
            pipe.delete(keys.create_deadline(session_id))
        elif effect is Effect.EXPIRE_DOWNLOADS:
            if record.get("downloads"):
                pipe.zadd(keys.DOWNLOAD_EXPIRIES, {session_id: record["downloadsExpireEpoch"]})
        elif effect is Effect.RETAIN:
            pipe.expire(keys.session(session_id), self.config.sessions.retention)
            pipe.zadd(keys.project_sessions(project), {session_id: record["createdMs"]})
            pipe.zadd(keys.project_stopped(project), {session_id: record["createdMs"]})

    # -- archived downloads -------------------------------------------------------
    def take_expired_downloads(self) -> list[str]:
        """Sessions whose archived downloads are due for deletion; each id handed to exactly one caller."""
        due = self.redis.zrangebyscore(keys.DOWNLOAD_EXPIRIES, "-inf", time.time())
        return [session_id for session_id in due if self.redis.zrem(keys.DOWNLOAD_EXPIRIES, session_id)]

    # -- lists ----------------------------------------------------------------
    def page(self, project: str, status: str | None, start: int, count: int) -> tuple[list[SessionRecord], int]:
        """One page, newest first, and how many there are; bounded reads whatever the history's size.

        ``running`` and ``stopping`` come from the index of live sessions, ``stopped``
        from that of stopped ones, everything from the project's whole index.
        """
        if status == Status.STOPPED:
            index = keys.project_stopped(project)
        elif status in (Status.RUNNING, Status.STOPPING):
            index = keys.project_running(project)
        else:
            index = keys.project_sessions(project)
        records, total = self._page_indexed(index, keys.session, start, count)
        if status is not None:
            records = [r for r in records if r["status"] == status]
        return records, total

    # -- schedules --------------------------------------------------------------
    def take_expired(self) -> list[str]:
        """Sessions past their ``expiresAt``; each id is handed to exactly one caller (whoever removes it)."""
        due = self.redis.zrangebyscore(keys.SESSION_EXPIRIES, "-inf", time.time())
        return [session_id for session_id in due if self.redis.zrem(keys.SESSION_EXPIRIES, session_id)]

    def client_connected(self, session_id: str, client: str, lease: float) -> None:
        """A CDP client is on the session for ``lease`` seconds unless renewed, so a dead web process cannot pin it."""
        self.redis.zadd(keys.session_clients(session_id), {client: time.time() + lease})

    def renew_clients(self, clients: Iterable[tuple[str, str]], lease: float) -> None:
        """The web process's periodic word that its (session, client) entries are still connected."""
        pipe = self.redis.pipeline()
        for session_id, client in clients:
            pipe.zadd(keys.session_clients(session_id), {client: time.time() + lease}, xx=True)
        pipe.execute()

    def client_disconnected(self, session_id: str, client: str, idle_timeout: int | None) -> None:
        """The idle clock of a session that has one restarts from this goodbye."""
        self.redis.zrem(keys.session_clients(session_id), client)
        if idle_timeout:
            self.redis.zadd(keys.SESSION_IDLE, {session_id: time.time() + idle_timeout}, xx=True)

    def connected_clients(self, session_id: str) -> int:
        """Clients whose lease has not run out; expired entries (their web process died) are dropped."""
        key = keys.session_clients(session_id)
        self.redis.zremrangebyscore(key, "-inf", time.time())
        return self.redis.zcard(key)

    def take_idle(self) -> list[str]:
        """Sessions with no CDP client for their whole idleTimeout, each handed to exactly one caller.

        A due session that has a client stays on the schedule, a full idleTimeout
        later, so the clock never runs while someone is connected; a client whose
        web process died stops counting once its lease runs out. One script, so no
        reader sees a due session off the schedule while it is checked.
        """
        return list(self.redis.eval(_TAKE_IDLE, 1, keys.SESSION_IDLE, time.time(), keys.session("")))

    # -- the create's wait -----------------------------------------------------
    def push_launch_event(self, session_id: str, event: dict) -> None:
        pipe = self.redis.pipeline()
        self._queue_launch_event(pipe, session_id, event)
        pipe.execute()

    def _queue_launch_event(self, pipe: Pipeline, session_id: str, event: dict) -> None:
        key = keys.launch_events(session_id)
        pipe.rpush(key, json.dumps(event))
        pipe.expire(key, int(self.config.create_lifetime))

    def next_launch_event(self, session_id: str, timeout: int) -> dict | None:
        """Block up to ``timeout`` whole seconds (kept below the socket timeout)."""
        item = self.redis.blpop([keys.launch_events(session_id)], timeout=timeout)
        return json.loads(item[1]) if item else None

    def drop_launch_events(self, session_id: str) -> None:
        self.redis.delete(keys.launch_events(session_id))

    # -- per worker -------------------------------------------------------------
    def on_worker(self, queue: str) -> list[str]:
        """Running (or stopping) sessions whose browser the worker with this queue holds."""
        return sorted(self.redis.smembers(keys.worker_sessions(queue)))


def _deadline_allows(pipe: Pipeline, move: Move, session_id: str) -> bool:
    """Whether the create's deadline lets the move happen now. WATCHed: should the deadline key expire (or appear)
    before the move's EXEC, Redis fails the EXEC and the move is judged again; so it is decided by Redis's clock at
    the commit, not by the mover's clock at the read."""
    key = keys.create_deadline(session_id)
    pipe.watch(key)
    waiting = bool(pipe.exists(key))
    return waiting if move.deadline is Deadline.BEFORE else not waiting


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _holder_id(raw: str | None) -> str | None:
    """A context hold is ``{"holder": id, "since": epoch}``."""
    held = load(raw)
    return held["holder"] if held else None
