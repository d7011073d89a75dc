"""How long a session's cookie export of 100 cookies takes, and where the CDP call should run.

    .venv/bin/python -m bench.cookies [--samples 300]

Starts its own redis-server, web process and worker (the test harness's,
tests/support), one session holding 100 cookies, and prints p50 / p95 / max for:

- ``GET new``: the real API, a new HTTP connection per call, the web process calling CDP itself;
- ``GET kept``: the same over one kept-alive connection, as a pooled client sends it;
- ``healthz kept``: the web server's own floor on a kept-alive connection (no Redis, no CDP);
- ``PUT kept``: injecting the same 100 cookies (merge);
- ``cdp direct``: only what the web process does for an export — connect to the browser, read, normalise;
- ``task``: the same read as a Celery task on a worker, answer back over Redis
  (bench/cookie_task.py), i.e. what a task would cost in place of ``cdp direct``.
"""
from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
import requests

from bench.cookie_task import QUEUE, TASK, celery
from tasks.cdp import CdpConnection
from tasks.cookies import read_cookies
from tests.support.api import Api
from tests.support.processes import ROOT, Broker, Redis, end_process

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
    p = statistics.quantiles(laps, n=100)
    return f"{label:<13} p50 {statistics.median(laps):7.2f} ms   p95 {p[94]:7.2f} ms   max {max(laps):7.2f} ms   (n={len(laps)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bb-bench-cookies-"))
    redis_server = Redis(workdir)
    broker = Broker(redis_server, workdir, "bb_" + secrets.token_urlsafe(24))
    task_worker: subprocess.Popen | None = None
    try:
        broker.start_web()
        broker.start_worker()
        task_worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bench.cookie_task", "worker", "-Q", QUEUE, "-n", "bench@cookies",
             "--loglevel=WARNING", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=broker.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        api = Api(broker.url, broker.api_key)
        session = api.create_session()
        path = f"/v1/sessions/{session['id']}/cookies"
        body = {"cookies": sample_cookies(COOKIES), "mode": "replace"}
        assert api.put(path, json=body).status_code == 200
        assert api.get(path).json()["count"] == COOKIES
        ws_url = broker.store().get_session(session["id"])["browserWsUrl"]
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
            assert api.put(path, json={"cookies": body["cookies"]}).status_code == 200

        def cdp_direct() -> None:
            with CdpConnection(ws_url) as conn:
                assert len(read_cookies(conn)) == COOKIES

        def task() -> None:
            reply_key = f"bench:reply:{secrets.token_hex(8)}"
            celery.send_task(TASK, args=[ws_url, reply_key], queue=QUEUE)
            answer = replies.blpop([reply_key], timeout=60)
            assert answer and len(json.loads(answer[1])) == COOKIES

        print(f"cookie export/inject of {COOKIES} cookies, one session, {args.samples} samples each after {WARMUP} warm-up")
        calls = [("GET new", get_new), ("GET kept", get_kept), ("healthz kept", healthz_kept), ("PUT kept", put_kept),
                 ("cdp direct", cdp_direct), ("task", task)]
        results = {name: timed(call, args.samples) for name, call in calls}
        for name, laps in results.items():
            print(line(name, laps))
        for variant in ("GET new", "GET kept"):
            http_share = statistics.median(results[variant]) - statistics.median(results["cdp direct"])
            print(f"task variant, {variant}, estimated p50: {http_share + statistics.median(results['task']):.2f} ms "
                  f"({variant} p50 − cdp direct p50 + task p50)")
        api.stop_session(session["id"])
    finally:
        if task_worker:
            end_process(task_worker)
        broker.stop()
        redis_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
