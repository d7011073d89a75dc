"""Offers of warm browsers: which worker has a browser launched and waiting, and handing each to one create.

One Redis list holds one entry per ready warm browser, ``[worker, key]``. A
create takes an entry with one atomic script that drops entries of workers
whose heartbeat is older than ``BROKER_WORKER_TTL`` (their browsers died with
them), so two creates never get the same browser and none is sent to a dead
worker. Of the live workers' offers it takes the oldest of the least loaded
worker (fewest browsers running or launching, as of its last heartbeat): a
session should not share two cores with more pages than it must. The worker withdraws an offer before it uses or ends that browser
itself; a withdraw that finds the entry gone tells it a create is on its way.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from core.store import keys
from core.store.base import RecordKind

#: Takes the oldest entry of the least loaded worker that heartbeat within ARGV[1] seconds by Redis's clock (the one
#: heartbeats are scored with); a worker's load is read from its heartbeat's record (key ARGV[2] .. name); entries
#: of silent workers are dropped on the way.
_TAKE = """
local t = redis.call('TIME')
local since = tonumber(t[1]) + tonumber(t[2]) / 1000000 - tonumber(ARGV[1])
local loads = {}
local best, best_load = nil, nil
for _, offer in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local worker = cjson.decode(offer)[1]
  local beat = redis.call('ZSCORE', KEYS[2], worker)
  if not beat or tonumber(beat) < since then
    redis.call('LREM', KEYS[1], 1, offer)
  else
    if loads[worker] == nil then
      loads[worker] = 0
      local info = redis.call('GET', ARGV[2] .. worker)
      if info then
        local browsers = cjson.decode(info)['browsers']
        if type(browsers) == 'table' then
          loads[worker] = (tonumber(browsers['running']) or 0) + (tonumber(browsers['launching']) or 0)
        end
      end
    end
    if best_load == nil or loads[worker] < best_load then best, best_load = offer, loads[worker] end
  end
end
if best then redis.call('LREM', KEYS[1], 1, best) end
return best or false
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
        """The oldest offer of the least loaded live worker, for exactly one caller; None when there is none."""
        raw = self._take(keys=[keys.WARM_OFFERS, keys.WORKERS], args=[self.config.worker.ttl, keys.worker("")])
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
