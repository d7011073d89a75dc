"""Web process RSS before and after 80 MB request bodies (declared and chunked), which must be refused unread.

Run: PYTHONPATH=. .venv/bin/python bench/body_limit.py
"""
from __future__ import annotations

import time

import psutil

from bench.common import running_broker

BODY = 80 * 1024 * 1024
PIECE = 1024 * 1024


def chunks():
    yield b'{"url": "http://127.0.0.1/'
    for _ in range(BODY // PIECE):
        yield b"a" * PIECE


def main() -> None:
    with running_broker() as (broker, api):
        web = psutil.Process(broker.web.pid)
        api.get("/v1/sessions")
        rss = [web.memory_info().rss / 2**20]
        started = time.perf_counter()
        declared = api.post("/v1/sessions", data=b"{" + b" " * (BODY - 1), headers={"Content-Type": "application/json"})
        declared_s = time.perf_counter() - started
        rss.append(web.memory_info().rss / 2**20)
        started = time.perf_counter()
        chunked = api.post("/v1/sessions", data=chunks(), headers={"Content-Type": "application/json"})
        chunked_s = time.perf_counter() - started
        rss.append(web.memory_info().rss / 2**20)
        print(f"80 MB with Content-Length: {declared.status_code} in {declared_s:.2f} s (client sends all, server drains)")
        print(f"80 MB chunked: {chunked.status_code} in {chunked_s:.2f} s")
        print(f"web RSS: before {rss[0]:.1f} MiB, after declared {rss[1]:.1f} MiB, after chunked {rss[2]:.1f} MiB")


if __name__ == "__main__":
    main()
