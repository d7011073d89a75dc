"""Per-project settings and the count of a project's live sessions against its cap."""
from __future__ import annotations

import time
from typing import Any

from core.store import keys
from core.store.base import Pipeline, RecordKind, dump

DEFAULT_PROJECT = "default"


class ProjectRecords(RecordKind):
    def set_settings(self, project: str, **settings: Any) -> dict:
        record = {**self.settings(project), **settings}
        self.redis.set(keys.project_settings(project), dump(record))
        return record

    def settings(self, project: str) -> dict:
        return self._load(keys.project_settings(project)) or {}

    def claim_slot(self, project: str, session_id: str, limit: int) -> bool:
        """Count a new session against the project's limit; False (nothing written) when it is reached.

        The session leaves the count when it stops or is abandoned (the FREE_HOLDS
        effect); one whose record never appeared within a create's lifetime is pruned.
        """
        live = keys.project_live(project)
        for stale in self.redis.zrangebyscore(live, "-inf", time.time() - self.config.create_lifetime):
            if not self.redis.exists(keys.session(stale)):
                self.redis.zrem(live, stale)

        def claim(pipe: Pipeline) -> bool:
            if pipe.zcard(live) >= limit:
                return False
            pipe.multi()
            pipe.zadd(live, {session_id: time.time()})
            return True

        return self.redis.transaction(claim, live, value_from_callable=True)
