"""Offers of warm browsers: which worker has a browser launched and waiting, and handing each to one create.

One Redis list holds one entry per ready warm browser, ``[worker, key]``. A
create takes an entry with one atomic script that skips entries of workers
whose heartbeat is older than ``BROKER_WORKER_TTL`` (their browsers died with
them), so two creates never get the same browser and none is sent to a dead
worker. The worker withdraws an offer before it uses or ends that browser
itself; a withdraw that finds the entry gone tells it a create is on its way.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from core.store import keys
from core.store.base import RecordKind

#: Pops entries until one of a worker that heartbeat within ARGV[1] seconds by Redis's clock (the one
#: heartbeats are scored with); entries of silent workers are dropped on the way.
_TAKE = """
local t = redis.call('TIME')
local since = tonumber(t[1]) + tonumber(t[2]) / 1000000 - tonumber(ARGV[1])
while true do
  local offer = redis.call('LPOP', KEYS[1])
  if not offer then return false end
  local beat = redis.call('ZSCORE', KEYS[2], cjson.decode(offer)[1])
  if beat and tonumber(beat) >= since then return offer end
end
"""


@dataclass(frozen=True)
class WarmOffer:
    worker: str
    key: str


def _entry(worker: str, key: str) -> str:
    return json.dumps([worker, key])


class WarmOffers(RecordKind):
    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self._take = self.redis.register_script(_TAKE)

    def offer(self, worker: str, key: str) -> None:
        self.redis.rpush(keys.WARM_OFFERS, _entry(worker, key))

    def withdraw(self, worker: str, key: str) -> bool:
        """True if the offer was still there (now gone); False if a create has taken it."""
        return bool(self.redis.lrem(keys.WARM_OFFERS, 1, _entry(worker, key)))

    def take(self) -> WarmOffer | None:
        """The oldest offer of a live worker, for exactly one caller; None when there is none."""
        raw = self._take(keys=[keys.WARM_OFFERS, keys.WORKERS], args=[self.config.worker_ttl])
        if not raw:
            return None
        worker, key = json.loads(raw)
        return WarmOffer(worker, key)

    def offered_by(self, worker: str) -> set[str]:
        """Keys of the worker's browsers still on offer (not taken by a create)."""
        return {key for owner, key in map(json.loads, self.redis.lrange(keys.WARM_OFFERS, 0, -1)) if owner == worker}

    def forget(self, worker: str) -> None:
        """Withdraw every offer of a worker that is stopping, restarting or lost."""
        for key in self.offered_by(worker):
            self.withdraw(worker, key)
