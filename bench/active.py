"""What the machine carries (issue 26): N sessions each looping a realistic page, against a lone session.

    PYTHONPATH=. .venv/bin/python bench/active.py [--counts 1,2,4,6,8,10,12] [--seconds 8] [--launcher direct]
                                                  [--think 0]

A local page server (127.0.0.1) serves a page of a few KB of HTML that loads a script, an image and, from the
script, a fetch of JSON. Each of N sessions (one broker, one worker, warm browsers off, a pool of the largest N)
loops through Playwright over the broker's relay: load the page until its fetch has landed (the page load), then
five ``Runtime.evaluate('1+1')`` over a CDP session (the round trip), then wait ``--think`` seconds on average.
Without a wait each session keeps a core busy (the page comes from 127.0.0.1 at once), so the machine's throughput
is the bound and 2× comes at N = cores; a real job waits on remote servers most of its time. For each N: the p95 of
both, their ratio to N=1's, and the first N where either passes 2×; core/capacity.py's BROWSERS_PER_CORE keeps the
default pool size at or below it. Nothing is asserted: the machine is shared, and the load average is printed
beside the figures.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from playwright.async_api import Browser, async_playwright

from bench.common import pct, running_broker
from tests.support.api import Api

MS = 1000
#: A 1x1 PNG: the image the page shows.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
PARAGRAPHS = "".join(f"<p>Paragraph {i}: {'lorem ipsum dolor sit amet ' * 6}</p>" for i in range(20))
PAGE = f"""<!doctype html><html><head><title>active</title><script src="/app.js"></script></head>
<body><h1>A realistic page</h1><img src="/pixel.png?t={{t}}" width="32" height="32">{PARAGRAPHS}
<ul id="items"></ul></body></html>""".encode()
SCRIPT = b"""addEventListener('DOMContentLoaded', async () => {
  const items = await (await fetch('/data.json?' + Date.now())).json();
  const list = document.getElementById('items');
  for (const item of items) { const li = document.createElement('li'); li.textContent = item.name; list.append(li); }
  document.body.dataset.ready = '1';
});"""
DATA = ("[" + ",".join(f'{{"id": {i}, "name": "item {i}"}}' for i in range(50)) + "]").encode()
EVALS = 5


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        body, kind = {"/page": (PAGE.replace(b"{t}", str(time.time()).encode()), "text/html"),
                      "/app.js": (SCRIPT, "text/javascript"), "/pixel.png": (PIXEL, "image/png"),
                      "/data.json": (DATA, "application/json")}.get(path, (b"", "text/plain"))
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


async def loop_session(browser: Browser, url: str, until: float, think: float, loads: list[float],
                       trips: list[float]) -> None:
    page = browser.contexts[0].pages[0]
    cdp = await browser.contexts[0].new_cdp_session(page)
    # Jobs arrive when they arrive: a wait drawn at random (mean ``think``) keeps the sessions out of lockstep, where
    # every page would load at the same moment as every other.
    await asyncio.sleep(random.uniform(0, think))
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        await page.goto(url)
        await page.wait_for_selector("body[data-ready='1']")
        loads.append(time.perf_counter() - t0)
        for _ in range(EVALS):
            t0 = time.perf_counter()
            await cdp.send("Runtime.evaluate", {"expression": "1+1"})
            trips.append(time.perf_counter() - t0)
        await asyncio.sleep(random.uniform(0, 2 * think))


async def measure(api: Api, count: int, url: str, seconds: float, think: float) -> tuple[list[float], list[float]]:
    sessions = [await asyncio.to_thread(api.create_session) for _ in range(count)]
    loads: list[float] = []
    trips: list[float] = []
    try:
        async with async_playwright() as p:
            browsers = [await p.chromium.connect_over_cdp(s["cdpUrl"]) for s in sessions]
            until = time.perf_counter() + seconds
            await asyncio.gather(*(loop_session(b, url, until, think, loads, trips) for b in browsers))
            for browser in browsers:
                await browser.close()
    finally:
        for session in sessions:
            await asyncio.to_thread(api.delete, f"/v1/sessions/{session['id']}")
    return loads, trips


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1,2,4,6,8,10,12")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--launcher", default="direct")
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds each session waits between two loops: the remote servers' latency and the "
                             "script's own work, which a page served on 127.0.0.1 does not have")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/page"
    print(f"load average {os.getloadavg()[0]:.1f}; cores {len(os.sched_getaffinity(0))}; think {args.think} s",
          flush=True)
    try:
        with running_broker(BROKER_LAUNCHER=args.launcher, BROKER_WARM_BROWSERS="0",
                            BROKER_POOL_SIZE=str(max(counts))) as (_, api):
            lone_load = lone_trip = None
            passed = None
            for count in counts:
                loads, trips = asyncio.run(measure(api, count, url, args.seconds, args.think))
                load95, trip95 = pct(loads, 95), pct(trips, 95)
                if lone_load is None:
                    lone_load, lone_trip = load95, trip95
                ratio = max(load95 / lone_load, trip95 / lone_trip)
                if passed is None and ratio > 2:
                    passed = count
                print(f"  N={count:<3} page load p95 {load95 * MS:7.1f} ms ({load95 / lone_load:4.2f}×)  "
                      f"CDP round trip p95 {trip95 * MS:6.2f} ms ({trip95 / lone_trip:4.2f}×)  loads {len(loads):4}  "
                      f"load average {os.getloadavg()[0]:.1f}", flush=True)
            print(f"  first N past 2× a lone session's p95: {passed or 'none measured'}")
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
