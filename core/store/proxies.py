"""Proxy records (password as ciphertext only) and the sessions that use each one.

The ``:sessions`` sorted set lists a proxy's users (score: when they claimed
it). A create claims before its session is stored; a session leaves the set
when it stops or is abandoned (the state machine's FREE_HOLDS effect); a delete
is refused while a live user remains. All in WATCHed transactions.
"""
from __future__ import annotations

import time

from core.states import LIVE_STATUSES
from core.store import keys
from core.store.base import Pipeline, RecordKind, load


class ProxyRecords(RecordKind):
    def create(self, record: dict) -> None:
        self._store_indexed(keys.proxy(record["id"]), keys.project_proxies(record["project"]), record,
                            record["createdMs"])

    def get(self, proxy_id: str) -> dict | None:
        return self._load(keys.proxy(proxy_id))

    def page(self, project: str, start: int, count: int) -> tuple[list[dict], int]:
        return self._page_indexed(keys.project_proxies(project), keys.proxy, start, count)

    def claim(self, proxy_id: str, project: str, session_id: str) -> bool:
        """Record ``session_id`` as a user; False (and nothing written) if ``project`` has no such proxy."""
        key = keys.proxy(proxy_id)

        def claim(pipe: Pipeline) -> bool:
            record = load(pipe.get(key))
            if record is None or record["project"] != project:
                return False
            pipe.multi()
            pipe.zadd(keys.proxy_sessions(proxy_id), {session_id: time.time()})
            return True

        return self.redis.transaction(claim, key, value_from_callable=True)

    def unclaim(self, proxy_id: str, session_id: str) -> None:
        self.redis.zrem(keys.proxy_sessions(proxy_id), session_id)

    def delete(self, proxy_id: str) -> list[str] | None:
        """Delete the proxy unless a live session uses it: None if there was no such proxy, else the live users.

        An empty list means it is gone. A user whose record is no longer live,
        or whose record never appeared within a create's lifetime, is pruned
        rather than counted, so a crashed create cannot pin a proxy.
        """
        key, users = keys.proxy(proxy_id), keys.proxy_sessions(proxy_id)
        grace = self.config.create_lifetime

        def delete(pipe: Pipeline) -> list[str] | None:
            record = load(pipe.get(key))
            if record is None:
                return None
            live, dead = [], []
            for session_id, claimed_at in pipe.zrange(users, 0, -1, withscores=True):
                session = load(pipe.get(keys.session(session_id)))
                if session is None:
                    gone = claimed_at < time.time() - grace
                else:
                    gone = session["status"] not in LIVE_STATUSES
                (dead if gone else live).append(session_id)
            pipe.multi()
            if dead:
                pipe.zrem(users, *dead)
            if not live:
                pipe.delete(key, users)
                pipe.zrem(keys.project_proxies(record["project"]), proxy_id)
            return live

        return self.redis.transaction(delete, key, users, value_from_callable=True)
