"""Prints how long one scrape of GET /metrics takes, with one real worker and then with many workers heartbeating.

    PYTHONPATH=. .venv/bin/python bench/metrics.py [--workers 50] [--n 200]

Every figure is read from Redis at scrape time (core/metrics.py), so a scrape's
cost grows with the workers it reports on; the extra workers here are heartbeats
written straight to the store, as real workers on other hosts would write them.
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import requests

from bench.common import running_broker, summary

COUNTS = {"slots": 4, "free": 1, "warm": 1, "running": 2, "launching": 0}


def timed_scrapes(url: str, n: int, before: Callable[[], None] = lambda: None) -> tuple[list[float], int]:
    times, size = [], 0
    with requests.Session() as http:
        for _ in range(n):
            before()
            started = time.perf_counter()
            answer = http.get(f"{url}/metrics", timeout=10)
            times.append(time.perf_counter() - started)
            assert answer.status_code == 200
            size = len(answer.content)
    return times, size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    with running_broker(BROKER_POOL_SIZE="2") as (broker, api):
        for session in [api.create_session() for _ in range(2)]:
            api.stop_session(session["id"])
        times, size = timed_scrapes(broker.url, args.n)
        print(f"/metrics, 1 worker: {summary(times)}; {size} bytes")
        store = broker.store()

        def heartbeats() -> None:
            """Untimed, before each scrape: the extra workers stay live (a silent one is reaped)."""
            for i in range(args.workers - 1):
                store.workers.heartbeat(f"bench-{i}@host-{i}", {"browsers": COUNTS})

        times, size = timed_scrapes(broker.url, args.n, heartbeats)
        print(f"/metrics, {args.workers} workers: {summary(times)}; {size} bytes")


if __name__ == "__main__":
    main()
