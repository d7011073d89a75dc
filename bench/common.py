"""Shared pieces of the benchmark scripts: real processes (the test harness's), percentiles, PSS."""
from __future__ import annotations

import json
import secrets
import shutil
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Iterator

import psutil

from tests.support.api import Api
from tests.support.cdp import RawCdp
from tests.support.processes import Broker, Redis


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(values: list[float], unit: str = "ms", scale: float = 1000) -> str:
    return (f"p50 {pct(values, 50) * scale:.1f} {unit}, p95 {pct(values, 95) * scale:.1f} {unit} "
            f"(min {min(values) * scale:.1f}, mean {statistics.fmean(values) * scale:.1f}, n={len(values)})")


def evaluate_round_trips(cdp: RawCdp, page_session: str, n: int, expression: str = "1+1") -> list[float]:
    """Seconds per ``Runtime.evaluate`` on one page, each sent only once the last answer is in."""
    return [evaluate_round_trip(cdp, page_session, 1_000_000 + i, expression) for i in range(n)]


def tree_memory(pids: list[int]) -> tuple[float, float]:
    """(PSS, RSS) in MiB over the processes and all their descendants; PSS does not double-count shared pages."""
    pss = rss = 0
    seen: set[int] = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for proc in procs:
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            try:
                info = proc.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            pss += info.pss
            rss += info.rss
    return pss / 2**20, rss / 2**20


@contextmanager
def running_broker(**env: str) -> Iterator[tuple[Broker, Api]]:
    workdir = Path(tempfile.mkdtemp(prefix="bb-bench-"))
    redis = Redis(workdir)
    broker = Broker(redis, workdir, "bb_" + secrets.token_urlsafe(24), **env)
    try:
        broker.start_web()
        broker.start_worker()
        yield broker, Api(broker.url, broker.api_key)
    finally:
        broker.stop()
        redis.stop()
        broker.remove_profiles_root()
        shutil.rmtree(workdir, ignore_errors=True)


def tree_cpu(pid: int) -> float:
    """CPU seconds so far of a process and every process under it (those that end meanwhile are left out)."""
    root = psutil.Process(pid)
    total = 0.0
    for member in [root, *root.children(recursive=True)]:
        try:
            times = member.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def evaluate_round_trip(cdp: RawCdp, page: str, message_id: int, expression: str = "1+1") -> float:
    """Seconds from sending one ``Runtime.evaluate`` on the raw socket to reading its answer."""
    payload = json.dumps({"id": message_id, "method": "Runtime.evaluate", "params": {"expression": expression},
                          "sessionId": page})
    start = time.perf_counter()
    cdp.ws.send(payload)
    while json.loads(cdp.ws.recv()).get("id") != message_id:
        pass
    return time.perf_counter() - start
