"""Worker heartbeats: who is alive, who went silent, and handing each lost worker to one reaper.

Every time here is Redis's own clock (``TIME``), never a process's: workers and
reapers run on different hosts, and a host whose clock is off by more than a
TTL must neither look lost nor keep a lost worker looking alive.
"""
from __future__ import annotations

from core.store import keys
from core.store.base import RecordKind, dump, load

#: Scores the worker (ARGV[1]) with Redis's time and stores its info (ARGV[2]) for ARGV[3] ms; 1 if the worker
#: was not in the set before.
_HEARTBEAT = """
local t = redis.call('TIME')
local added = redis.call('ZADD', KEYS[1], tonumber(t[1]) + tonumber(t[2]) / 1000000, ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return added
"""
#: ZREM the worker (ARGV[1]) only if its last heartbeat is over ARGV[2] seconds old by Redis's time; 1 if removed.
_TAKE_IF_SILENT = """
local beat = redis.call('ZSCORE', KEYS[1], ARGV[1])
local t = redis.call('TIME')
if beat and tonumber(beat) < tonumber(t[1]) + tonumber(t[2]) / 1000000 - tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""


class WorkerRecords(RecordKind):
    def heartbeat(self, worker: str, info: dict) -> bool:
        """True if the store knew the worker already: False at its first heartbeat, and after Redis lost its data or
        a reaper declared it lost (what it had offered is gone from the store too)."""
        ttl_ms = max(1, int(self.config.worker.ttl * 3000))
        return not self.redis.eval(_HEARTBEAT, 2, keys.WORKERS, keys.worker(worker), worker, dump(info), ttl_ms)

    def _now(self) -> float:
        seconds, micros = self.redis.time()
        return seconds + micros / 1e6

    def info(self, worker: str) -> dict | None:
        """What the worker said in its last heartbeat (queue, free slots, gateway, pid), while it counts as live."""
        return self._load(keys.worker(worker))

    def silent(self) -> list[str]:
        return self.redis.zrangebyscore(keys.WORKERS, "-inf", self._now() - self.config.worker.ttl)

    def take_silent(self, worker: str) -> bool:
        """True for exactly one caller per lost worker, so its sessions are ended once.

        Only while the worker is still silent: one whose heartbeat got through
        since the caller looked is live again and is not taken.
        """
        return bool(self.redis.eval(_TAKE_IF_SILENT, 1, keys.WORKERS, worker, self.config.worker.ttl))

    def forget(self, worker: str) -> None:
        pipe = self.redis.pipeline()
        pipe.zrem(keys.WORKERS, worker)
        pipe.delete(keys.worker(worker))
        pipe.execute()

    def declare_lost(self, worker: str) -> None:
        """Forgotten, and counted: a launch a lost worker took off the queue (its host cut off) never runs there."""
        pipe = self.redis.pipeline()
        pipe.zrem(keys.WORKERS, worker)
        pipe.delete(keys.worker(worker))
        pipe.incr(keys.WORKERS_LOST)
        pipe.execute()

    def lost_count(self) -> int:
        return int(self.redis.get(keys.WORKERS_LOST) or 0)

    def live(self) -> list[str]:
        return self.redis.zrangebyscore(keys.WORKERS, self._now() - self.config.worker.ttl, "+inf")

    def heartbeat_ages(self) -> dict[str, float]:
        """Seconds since each known worker's last heartbeat, by Redis's clock; silent ones too, until reaped."""
        now = self._now()
        beats = self.redis.zrange(keys.WORKERS, 0, -1, withscores=True)
        return {worker: max(0.0, now - beat) for worker, beat in beats}

    def states(self) -> dict[str, dict]:
        """What each live worker said in its last heartbeat (its browser counts among it)."""
        live = self.live()
        raws = self.redis.mget([keys.worker(w) for w in live]) if live else []
        return {worker: load(raw) or {} for worker, raw in zip(live, raws)}
