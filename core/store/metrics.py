"""Figures any process adds to and the web process's ``/metrics`` reads: counters and histograms kept in Redis.

Workers may run on hosts no scraper reaches (only their gateway is open), and a
deployment may run several web processes: a figure written here by whichever
process saw the event is exported by every web process's ``/metrics``, so one
scrape of any of them sees the whole deployment. A write is one pipelined round
trip, as cheap as the event it counts is rare (a create, a stop, a snapshot).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.store import keys
from core.store.base import Pipeline, RecordKind

#: Counters and histograms by name; core.metrics gives each its Prometheus name, help and buckets.
STOP_REASONS = "stop_reasons"
CREATES = "creates"
CREATE_SECONDS = "create_seconds"
SNAPSHOT_SECONDS = "snapshot_seconds"
SNAPSHOT_BYTES = "snapshot_bytes"
#: Creates by how they came: ``warm`` (a spare at once), ``cold`` (launched at once), ``queued`` (waited in line for a
#: slot, then a launch or a spare); and whether a create that could use a spare found one on offer (``hit``, ``miss``).
CREATE_PATHS = "create_paths"
WARM_OFFERS = "warm_offers"
#: Seconds a create that went through the line (cold or queued) waited until a worker took its launch.
LAUNCH_WAIT_SECONDS = "launch_wait_seconds"
#: The one label value of a histogram without labels.
ALL = "all"

#: The field of a histogram's hash that counts every observation (Prometheus's ``+Inf`` bucket).
COUNT = "count"
SUM = "sum"


@dataclass(frozen=True)
class HistogramValues:
    """Cumulative counts by upper bound (as Prometheus wants them), the sum and the count of observations."""

    buckets: dict[float, int]
    sum: float
    count: int


def count_in(pipe: Pipeline, name: str, label: str, amount: int = 1) -> None:
    """Adds to a counter inside a caller's transaction (a session's move counts in the move's own MULTI)."""
    pipe.hincrby(keys.metric_counter(name), label, amount)


class MetricRecords(RecordKind):
    def count(self, name: str, label: str, amount: int = 1) -> None:
        self.redis.hincrby(keys.metric_counter(name), label, amount)

    def counter(self, name: str) -> dict[str, int]:
        """The counter's value for each label value seen so far."""
        return {label: int(value) for label, value in self.redis.hgetall(keys.metric_counter(name)).items()}

    def observe(self, name: str, label: str, value: float, buckets: Sequence[float]) -> None:
        """Each bucket whose bound is at least ``value`` counts it, so reads need no summing."""
        key = keys.metric_histogram(name, label)
        pipe = self.redis.pipeline(transaction=False)
        for bound in buckets:
            if value <= bound:
                pipe.hincrby(key, repr(float(bound)), 1)
        pipe.hincrby(key, COUNT, 1)
        pipe.hincrbyfloat(key, SUM, value)
        pipe.execute()

    def histogram(self, name: str, label: str, buckets: Sequence[float]) -> HistogramValues:
        raw = self.redis.hgetall(keys.metric_histogram(name, label))
        return HistogramValues(
            buckets={float(bound): int(raw.get(repr(float(bound)), 0)) for bound in buckets},
            sum=float(raw.get(SUM, 0.0)),
            count=int(raw.get(COUNT, 0)),
        )

    def session_statuses(self) -> tuple[dict[str, int], dict[str, int]]:
        """How many sessions entered and how many left each status, ever (written by every move)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.SESSION_STATUS_ENTERED)
        pipe.hgetall(keys.SESSION_STATUS_LEFT)
        entered, left = pipe.execute()
        return ({s: int(n) for s, n in entered.items()}, {s: int(n) for s, n in left.items()})
