"""Worker heartbeats: who is alive, who went silent, and handing each lost worker to one reaper."""
from __future__ import annotations

import time

from core.store import keys
from core.store.base import RecordKind, dump


class WorkerRecords(RecordKind):
    def heartbeat(self, worker: str, info: dict) -> None:
        pipe = self.redis.pipeline()
        pipe.zadd(keys.WORKERS, {worker: time.time()})
        pipe.set(keys.worker(worker), dump(info), ex=int(self.config.worker_ttl * 3))
        pipe.execute()

    def silent(self) -> list[str]:
        return self.redis.zrangebyscore(keys.WORKERS, "-inf", time.time() - self.config.worker_ttl)

    def take_silent(self, worker: str) -> bool:
        """True for exactly one caller per lost worker, so its sessions are ended once."""
        return bool(self.redis.zrem(keys.WORKERS, worker))

    def forget(self, worker: str) -> None:
        pipe = self.redis.pipeline()
        pipe.zrem(keys.WORKERS, worker)
        pipe.delete(keys.worker(worker))
        pipe.execute()

    def live(self) -> list[str]:
        return self.redis.zrangebyscore(keys.WORKERS, time.time() - self.config.worker_ttl, "+inf")
