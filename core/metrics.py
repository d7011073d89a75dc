"""The deployment's figures in Prometheus form: names, help, buckets, and the collector that reads them from the store.

Every figure but the relay's lives in Redis (core.store.metrics, the session
moves, the workers' heartbeats), written by whichever process saw it: a worker
on a host no scraper can reach still shows up in any web process's
``/metrics``. The collector reads the store at scrape time, so a scrape is a
handful of Redis round trips and nothing is kept in memory between scrapes.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from core.states import Status
from core.store import Store
from core.store.metrics import (
    ALL, CREATE_PATHS, CREATE_SECONDS, CREATES, LAUNCH_WAIT_SECONDS, WARM_OFFERS, SNAPSHOT_BYTES, SNAPSHOT_SECONDS, STOP_REASONS, HistogramValues,
)

PREFIX = "broker_"
#: A create waits for a launch (warm hand-over ~0.1 s, cold launch ~1 s) up to BROKER_CREATE_WAIT + launch timeout.
CREATE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: A cold create waits in line milliseconds with a slot free, seconds (up to BROKER_CREATE_WAIT) without.
LAUNCH_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
SNAPSHOT_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: A fresh profile packs to ~100 KB; BROKER_SNAPSHOT_MAX_BYTES defaults to 200 MB.
SNAPSHOT_BYTES_BUCKETS = (16e3, 64e3, 256e3, 1e6, 4e6, 16e6, 64e6, 256e6)
#: Snapshot operations, the label of both snapshot histograms.
SAVE, RESTORE = "save", "restore"
#: Statuses whose records never expire on their own, so entered minus left is exactly how many are in them now.
#: (A pending or launching record of a crashed create expires without a move; those show in the launch line.)
GAUGED_STATUSES = (Status.RUNNING, Status.STOPPING)
#: Slot uses a worker reports in its heartbeat (tasks.pool.ChromiumPool.counts).
SLOT_USES = ("slots", "spareSlots", "free", "warm", "running", "launching")


def _histogram(name: str, documentation: str, label: str | None,
               series: dict[str, HistogramValues]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=[label] if label else None)
    for value, h in series.items():
        buckets = [(floatToGoString(b), n) for b, n in h.buckets.items()] + [("+Inf", h.count)]
        family.add_metric([value] if label else [], buckets, h.sum)
    return family


class StoreFigures(Collector):
    """Reads every stored figure at scrape time; one instance per web process, registered by app.metrics."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> list[Metric]:
        """Nothing up front: describing would read Redis at registration."""
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._sessions()
        yield from self._creates()
        yield self._launch_line()
        yield from self._workers()
        yield from self._snapshots()

    def _sessions(self) -> Iterator[Metric]:
        entered, left = self.store.metrics.session_statuses()
        now = GaugeMetricFamily(PREFIX + "sessions", "Sessions in each status now (running, stopping).",
                                labels=["status"])
        for status in GAUGED_STATUSES:
            now.add_metric([status.value], max(0, entered.get(status, 0) - left.get(status, 0)))
        yield now
        total = CounterMetricFamily(PREFIX + "sessions_entered", "Sessions that entered each status.",
                                    labels=["status"])
        for status in Status:
            total.add_metric([status.value], entered.get(status, 0))
        yield total
        stops = CounterMetricFamily(PREFIX + "session_stops", "Sessions stopped, by stop reason.", labels=["reason"])
        for reason, count in sorted(self.store.metrics.counter(STOP_REASONS).items()):
            stops.add_metric([reason], count)
        yield stops

    def _creates(self) -> Iterator[Metric]:
        creates = CounterMetricFamily(PREFIX + "session_creates", "Session creates answered, by HTTP status "
                                      "(201 started, 409 context busy, 429 capped, 503 no slot in time).",
                                      labels=["code"])
        for code, count in sorted(self.store.metrics.counter(CREATES).items()):
            creates.add_metric([code], count)
        yield creates
        yield _histogram(PREFIX + "session_create_seconds", "Time from a create's request to its answer.", None,
                         {ALL: self.store.metrics.histogram(CREATE_SECONDS, ALL, CREATE_BUCKETS)})
        paths = CounterMetricFamily(PREFIX + "session_create_paths", "Sessions started, by how they came: warm (a "
                                    "spare at once), cold (launched at once), queued (waited in line for a slot, "
                                    "then a launch or a spare).",
                                    labels=["path"])
        counted = self.store.metrics.counter(CREATE_PATHS)
        for path in ("warm", "cold", "queued"):
            paths.add_metric([path], counted.get(path, 0))
        yield paths
        offers = CounterMetricFamily(PREFIX + "warm_offers", "Creates that could use a warm browser, by whether one "
                                     "was on offer (hit) or not (miss).", labels=["result"])
        counted = self.store.metrics.counter(WARM_OFFERS)
        for result in ("hit", "miss"):
            offers.add_metric([result], counted.get(result, 0))
        yield offers
        yield _histogram(PREFIX + "launch_wait_seconds", "Time a create that went through the line (cold or "
                         "queued) waited until a worker took its launch.", None,
                         {ALL: self.store.metrics.histogram(LAUNCH_WAIT_SECONDS, ALL, LAUNCH_WAIT_BUCKETS)})

    def _launch_line(self) -> Metric:
        return GaugeMetricFamily(PREFIX + "launch_queue_depth", "Creates waiting for a worker to take a cold launch.",
                                 value=self.store.sessions.waiting_for_launch())

    def _workers(self) -> Iterator[Metric]:
        slots = GaugeMetricFamily(PREFIX + "worker_slots", "Each live worker's browser slots by use, as of its "
                                  "last heartbeat.", labels=["worker", "use"])
        for worker, state in sorted(self.store.workers.states().items()):
            counts = state.get("browsers", {})
            for use in SLOT_USES:
                slots.add_metric([worker, use], counts.get(use, 0))
        yield slots
        target = GaugeMetricFamily(PREFIX + "worker_warm_target", "Warm browsers each live worker wants now (follows "
                                   "its recent creates; at least BROKER_WARM_BROWSERS), as of its last heartbeat.",
                                   labels=["worker"])
        for worker, state in sorted(self.store.workers.states().items()):
            target.add_metric([worker], state.get("browsers", {}).get("warmTarget", 0))
        yield target
        isolation = GaugeMetricFamily(PREFIX + "worker_isolation", "1 for each live worker, labelled with how its "
                                      "browsers are kept apart: users (per-browser or shared) and network "
                                      "(forwarder: each browser's own, under the egress policy).",
                                      labels=["worker", "users", "network"])
        for worker, state in sorted(self.store.workers.states().items()):
            kept = state.get("isolation") or {}
            isolation.add_metric([worker, kept.get("users", "unknown"), kept.get("network", "unknown")], 1)
        yield isolation
        ages = GaugeMetricFamily(PREFIX + "worker_heartbeat_age_seconds", "Seconds since each worker's last "
                                 "heartbeat (Redis's clock); a worker is lost past BROKER_WORKER_TTL.",
                                 labels=["worker"])
        for worker, age in sorted(self.store.workers.heartbeat_ages().items()):
            ages.add_metric([worker], age)
        yield ages

    def _snapshots(self) -> Iterator[Metric]:
        yield _histogram(PREFIX + "snapshot_seconds", "Time to save (pack and upload) or restore (download and "
                         "unpack) a context's profile snapshot.", "operation",
                         self._by_operation(SNAPSHOT_SECONDS, SNAPSHOT_SECONDS_BUCKETS))
        yield _histogram(PREFIX + "snapshot_bytes", "Size of the profile archive saved or restored.", "operation",
                         self._by_operation(SNAPSHOT_BYTES, SNAPSHOT_BYTES_BUCKETS))

    def _by_operation(self, name: str, buckets: Sequence[float]) -> dict[str, HistogramValues]:
        return {op: self.store.metrics.histogram(name, op, buckets) for op in (SAVE, RESTORE)}
