"""How long a session's cookie export of 100 cookies takes, and where the CDP call should run.

    .venv/bin/python -m bench.cookies [--samples 300]

Starts its own redis-server, web process and worker (the test harness's,
tests/support), one session holding 100 cookies, and prints p50 / p95 / max for:

- ``GET new``: the real API, a new HTTP connection per call, the web process calling CDP itself;
- ``GET kept``: the same over one kept-alive connection, as a pooled client sends it;
- ``healthz kept``: the web server's own floor on a kept-alive connection (no Redis, no CDP);
- ``PUT new`` / ``PUT kept``: injecting the same 100 cookies (merge);
- ``cdp direct``: only what the web process does for an export — connect to the browser, read, normalise;
- ``task``: the same read as a Celery task on a worker, answer back over Redis
  (bench/cookie_task.py), i.e. what a task would cost in place of ``cdp direct``.
"""
from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable

import redis
import requests

from bench.common import pct, running_broker
from bench.cookie_task import QUEUE, TASK, celery
from core.cdp import CdpConnection
from core.cookies import read_cookies
from tests.support.api import Api
from tests.support.processes import ROOT, Broker, end_process

COOKIES = 100
WARMUP = 20


def sample_cookies(n: int) -> list[dict]:
    """A realistic mix: several sites, subdomain cookies, httpOnly, secure, expiring and session cookies."""
    expires = int(time.time()) + 30 * 86400
    return [
        {"name": f"c{i:03d}", "value": secrets.token_urlsafe(24), "domain": f"{'.' if i % 2 else ''}site{i % 7}.example",
         "path": "/", "secure": i % 3 == 0, "httpOnly": i % 4 == 0, "sameSite": ("Lax", "Strict")[i % 2],
         "expires": expires if i % 5 else None}
        for i in range(n)
    ]


def timed(call: Callable[[], object], samples: int) -> list[float]:
    for _ in range(WARMUP):
        call()
    laps = []
    for _ in range(samples):
        start = time.perf_counter()
        call()
        laps.append((time.perf_counter() - start) * 1000)
    return laps


def line(label: str, laps: list[float]) -> str:
    return f"{label:<13} p50 {pct(laps, 50):7.2f} ms   p95 {pct(laps, 95):7.2f} ms   max {max(laps):7.2f} ms   (n={len(laps)})"


def measure(broker: Broker, api: Api, samples: int) -> None:
    session = api.create_session()
    path = f"/v1/sessions/{session['id']}/cookies"
    cookies = sample_cookies(COOKIES)
    assert api.put(path, json={"cookies": cookies, "mode": "replace"}).status_code == 200
    assert api.get(path).json()["count"] == COOKIES
    ws_url = broker.store().sessions.get(session["id"])["browserWsUrl"]
    replies = redis.Redis.from_url(broker.redis_url)
    celery.conf.broker_url = broker.redis_url

    def get_new() -> None:
        answer = requests.get(broker.url + path, headers={"X-API-Key": broker.api_key}, timeout=30)
        assert answer.json()["count"] == COOKIES

    def get_kept() -> None:
        assert api.get(path).json()["count"] == COOKIES

    def healthz_kept() -> None:
        assert api.get("/healthz").ok

    def put_kept() -> None:
        assert api.put(path, json={"cookies": cookies}).status_code == 200

    def put_new() -> None:
        answer = requests.put(broker.url + path, json={"cookies": cookies}, headers={"X-API-Key": broker.api_key}, timeout=30)
        assert answer.status_code == 200

    def cdp_direct() -> None:
        with CdpConnection(ws_url) as conn:
            assert len(read_cookies(conn)) == COOKIES

    def task() -> None:
        reply_key = f"bench:reply:{secrets.token_hex(8)}"
        celery.send_task(TASK, args=[ws_url, reply_key], queue=QUEUE)
        answer = replies.blpop([reply_key], timeout=60)
        assert answer and len(json.loads(answer[1])) == COOKIES

    print(f"cookie export/inject of {COOKIES} cookies, one session, {samples} samples each after {WARMUP} warm-up")
    calls = [("GET new", get_new), ("GET kept", get_kept), ("healthz kept", healthz_kept), ("PUT new", put_new),
             ("PUT kept", put_kept), ("cdp direct", cdp_direct), ("task", task)]
    results = {name: timed(call, samples) for name, call in calls}
    for name, laps in results.items():
        print(line(name, laps))
    for variant in ("GET new", "GET kept"):
        estimate = pct(results[variant], 50) - pct(results["cdp direct"], 50) + pct(results["task"], 50)
        print(f"task variant estimated p50 ({variant} − cdp direct + task): {estimate:.2f} ms")
    api.stop_session(session["id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    with running_broker() as (broker, api):
        task_worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bench.cookie_task", "worker", "-Q", QUEUE, "-n", "bench@cookies",
             "--loglevel=WARNING", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=broker.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            measure(broker, api, args.samples)
        finally:
            end_process(task_worker)


if __name__ == "__main__":
    main()
