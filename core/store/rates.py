"""Sliding-window counts of what a caller did lately, for rate limits that hold across web processes."""
from __future__ import annotations

import math
import secrets
import time

from core.store import keys
from core.store.base import Pipeline, RecordKind


class RecentCreates(RecordKind):
    def take(self, key_id: str, limit: int, window: float = 60.0) -> int | None:
        """Count one session create by ``key_id``; if ``limit`` were passed, count nothing and return the
        whole seconds until the oldest counted create leaves the window (for Retry-After)."""
        key = keys.recent_creates(key_id)

        def take(pipe: Pipeline) -> int | None:
            now = time.time()
            recent = pipe.zrangebyscore(key, now - window, "+inf", start=0, num=limit, withscores=True)
            if len(recent) >= limit:
                return max(1, math.ceil(recent[0][1] + window - now))
            pipe.multi()
            pipe.zremrangebyscore(key, "-inf", now - window)
            pipe.zadd(key, {f"{now}:{secrets.token_hex(4)}": now})
            pipe.expire(key, math.ceil(window))
            return None

        return self.redis.transaction(take, key, value_from_callable=True)
