"""The relay's figures: CDP clients this web process relays now, and the bytes it has relayed.

These live in the web process that holds the sockets, not in Redis: each web
process is scraped for its own (a deployment sums them). Read from the
registry at scrape time, so the pump threads only add to two integers.
"""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from proxy.registry import RelayRegistry


class RelayFigures(Collector):
    def __init__(self, registry: RelayRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("broker_relay_clients", "CDP clients this web process relays now.",
                                value=len(self.registry.connections()))
        relayed = CounterMetricFamily("broker_relay_bytes", "Bytes this web process has relayed, by direction.",
                                      labels=["direction"])
        for direction, count in sorted(self.registry.bytes_relayed().items()):
            relayed.add_metric([direction], count)
        yield relayed
