"""Soak: many create → CDP → stop cycles from concurrent clients; the worker must not grow.

    PYTHONPATH=. .venv/bin/python bench/soak.py [--cycles 200] [--clients 4]

Prints throughput (sessions/minute), create latency, and the worker's process
count and memory before and after (figures only; nothing is asserted).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import time

import psutil

from bench.common import running_broker, summary
from tests.support.cdp import RawCdp


def worker_footprint(pid: int) -> tuple[int, float]:
    """(processes, RSS MiB) of the worker and everything under it."""
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    return len(procs), sum(p.memory_info().rss for p in procs) / 2**20


def one_cycle(api) -> float:
    start = time.perf_counter()
    session = api.create_session()
    created = time.perf_counter() - start
    cdp = RawCdp(session["cdpUrl"])
    page = cdp.attach_new_page()
    assert cdp.evaluate("21*2", page) == 42
    cdp.close()
    api.stop_session(session["id"], timeout=60)
    return created


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    with running_broker(BROKER_POOL_SIZE=str(args.clients)) as (broker, api):
        worker_pid = next(iter(broker.workers.values())).pid
        api.stop_session(api.create_session()["id"])
        count_before, rss_before = worker_footprint(worker_pid)
        web_before = psutil.Process(broker.web.pid).memory_info().rss / 2**20
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            creates = list(pool.map(lambda _: one_cycle(api), range(args.cycles)))
        elapsed = time.perf_counter() - start
        time.sleep(2)
        count_after, rss_after = worker_footprint(worker_pid)
        web_after = psutil.Process(broker.web.pid).memory_info().rss / 2**20
    print(f"{args.cycles} cycles, {args.clients} clients: {args.cycles / elapsed * 60:.0f} sessions/minute")
    print(f"create latency: {summary(creates)}")
    print(f"worker processes before/after: {count_before} / {count_after}; "
          f"worker RSS {rss_before:.0f} → {rss_after:.0f} MiB; web RSS {web_before:.0f} → {web_after:.0f} MiB")


if __name__ == "__main__":
    main()
