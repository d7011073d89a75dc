"""Prints every speed figure of issue 12 in one run, each beside its target.

    PYTHONPATH=. .venv/bin/python bench/speed.py [--launcher selenium|direct|both] [--n 30] [--warm 2]

Per launcher: the bare launch by that launcher and a cold create (warm
browsers off), alternating one by one; create p50/p95/p99 warm, cold with a
context and cold with a proxy; the lifecycle (create → Playwright
``connect_over_cdp`` → load a 127.0.0.1 page → read its title → disconnect →
DELETE) with each part on its own, each followed by the same script against a
bare browser of that launcher (no broker), so the broker's share shows apart
from the machine's moment; stop latency (DELETE → ``stopped``); the relay's
``Runtime.evaluate`` round trip and an 8 MB frame against the same browser's
own socket, interleaved so both see the same noise; sessions per minute with 4
concurrent clients. Real Redis, worker and web
process on 127.0.0.1; nothing is asserted (the machine is shared: compare
ratios, not absolutes). A warm create or lifecycle starts once the worker has a
warm browser on offer again: those figures are latency with a warm browser at
hand; the 4-client figure is what sustained load gets.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Playwright, sync_playwright

from bench.common import evaluate_round_trip, pct, running_broker
from bench.sessions import bare_launcher
from tasks.running_browser import RunningBrowser
from tests.support.api import Api
from tests.support.cdp import RawCdp
from tests.support.pages import PageServer
from tests.support.processes import Broker, wait_until
from tests.support.upstreams import HttpUpstream

EVALS = 3000
EVAL_WARMUP = 200
FRAME_BYTES = 8 * 1024 * 1024
FRAME_REPEATS = 20
CLIENTS = 4
STOP_POLL = 0.005
MS = 1000
#: Seconds a bare browser has to finish starting before its lifecycle (a warm one is offered OFFER_SETTLE after
#: it answers when another is on offer, and waits on offer for a while more).
BARE_SETTLE = 1.5


def spread(values: list[float], scale: float = MS) -> str:
    return (f"p50 {pct(values, 50) * scale:7.1f}  p95 {pct(values, 95) * scale:7.1f}  p99 {pct(values, 99) * scale:7.1f}"
            f"  (n={len(values)})")


def verdict(value: float, target: float, at_most: bool = True) -> str:
    met = value <= target if at_most else value >= target
    return f"{'met' if met else 'MISSED'} (target {'≤' if at_most else '≥'} {target:g})"


def report(name: str, values: list[float], scale: float = MS) -> None:
    print(f"  {name:<44} {spread(values, scale)}")


def wait_warm(broker: Broker, count: int) -> None:
    (nodename,) = broker.workers
    wait_until(lambda: len(broker.store().warm.offered_by(nodename)) >= count, 120, message="warm browsers")


def stop_and_wait(api: Api, session_id: str) -> float:
    """DELETE, then read the session every few milliseconds until it is ``stopped``; seconds taken."""
    start = time.perf_counter()
    assert api.delete(f"/v1/sessions/{session_id}").status_code == 204
    while api.get(f"/v1/sessions/{session_id}").json()["status"] != "stopped":
        time.sleep(STOP_POLL)
    return time.perf_counter() - start


def timed_creates(api: Api, n: int, body: dict, before: Callable[[], None] = lambda: None) -> tuple[list, list]:
    """Create → 201 times, and DELETE → ``stopped`` times, one session at a time."""
    creates, stops = [], []
    for _ in range(n):
        before()
        start = time.perf_counter()
        session = api.create_session(**body)
        creates.append(time.perf_counter() - start)
        stops.append(stop_and_wait(api, session["id"]))
    return creates, stops


def drive(p: Playwright, cdp_url: str, url: str) -> tuple[float, float, float]:
    """What a user's script does with a browser: ``connect_over_cdp``, load a page and read its title, disconnect.

    Seconds of each of the three."""
    t0 = time.perf_counter()
    browser = p.chromium.connect_over_cdp(cdp_url)
    t1 = time.perf_counter()
    page = browser.contexts[0].pages[0]
    page.goto(url)
    assert page.title() == "lifecycle"
    t2 = time.perf_counter()
    browser.close()
    return t1 - t0, t2 - t1, time.perf_counter() - t2


def lifecycles(broker: Broker, api: Api, pages: PageServer, n: int, warm: int,
               launch_once: Callable[..., float]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """create → connect_over_cdp → goto → title → disconnect → DELETE, as a user's Playwright script does it;
    and after each, the same script against a browser the same launcher started, straight to its own socket.

    The second is what the lifecycle costs without the broker on this machine at that moment, so the
    broker's share reads apart from a shared machine's noise. It runs once the broker's refill is offered
    (so it never shares the cores with a launch of the broker's), ``BARE_SETTLE`` after its own browser
    answers (a warm browser handed out has finished starting too).
    """
    parts: dict[str, list[float]] = {name: [] for name in ("total", "create", "connect", "load", "close", "delete")}
    bare: dict[str, list[float]] = {name: [] for name in ("total", "connect", "load", "close")}
    url = f"{pages.base}/page?title=lifecycle"
    with sync_playwright() as p:

        def without_broker(browser: RunningBrowser) -> None:
            time.sleep(BARE_SETTLE)
            connect, load, close = drive(p, browser.ws_url(), url)
            for name, value in (("total", connect + load + close), ("connect", connect), ("load", load),
                                ("close", close)):
                bare[name].append(value)

        for _ in range(n):
            wait_warm(broker, warm)
            t0 = time.perf_counter()
            session = api.create_session()
            t1 = time.perf_counter()
            connect, load, close = drive(p, session["cdpUrl"], url)
            t2 = time.perf_counter()
            assert api.delete(f"/v1/sessions/{session['id']}").status_code == 204
            t3 = time.perf_counter()
            for name, value in (("total", t3 - t0), ("create", t1 - t0), ("connect", connect), ("load", load),
                                ("close", close), ("delete", t3 - t2)):
                parts[name].append(value)
            api.wait_status(session["id"], "stopped", 60)
            wait_warm(broker, warm)
            launch_once(without_broker)
    return parts, bare


def relay_vs_direct(broker: Broker, api: Api) -> None:
    """Both sockets open on one tab at once; calls alternate one by one, so noise falls on both sides alike."""
    session = api.create_session()
    direct_url = broker.store().sessions.get(session["id"])["browserWsUrl"]
    sides = {"relay": RawCdp(session["cdpUrl"]), "direct": RawCdp(direct_url)}
    # One tab, attached from both sockets: Chromium does the very same work for either side.
    target = sides["relay"].call("Target.createTarget", {"url": "about:blank"})["targetId"]
    pages = {name: cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
             for name, cdp in sides.items()}
    times: dict[str, list[float]] = {"relay": [], "direct": []}
    for i in range(EVALS + EVAL_WARMUP):
        for name in (("relay", "direct") if i % 2 == 0 else ("direct", "relay")):
            took = evaluate_round_trip(sides[name], pages[name], 1000 + i)
            if i >= EVAL_WARMUP:
                times[name].append(took)
    for name in ("direct", "relay"):
        report(f"Runtime.evaluate round trip, {name} (µs)", times[name], 1e6)
    p50 = pct(times["relay"], 50) / pct(times["direct"], 50)
    p95 = pct(times["relay"], 95) / pct(times["direct"], 95)
    print(f"  relay ÷ direct, p50                          {p50:.2f}×  {verdict(p50, 1.2)}")
    print(f"  relay ÷ direct, p95                          {p95:.2f}×  {verdict(p95, 1.5)}")

    for name, cdp in sides.items():
        cdp.call("Runtime.evaluate", {"expression": f"globalThis.big = 'q'.repeat({FRAME_BYTES})"}, pages[name])
    rates: dict[str, list[float]] = {"relay": [], "direct": []}
    for rnd in range(FRAME_REPEATS):
        for name in (("relay", "direct") if rnd % 2 == 0 else ("direct", "relay")):
            start = time.perf_counter()
            size = len(sides[name].evaluate("big", pages[name]))
            rates[name].append(size / (time.perf_counter() - start) / 1e6)
    direct, relay = statistics.median(rates["direct"]), statistics.median(rates["relay"])
    print(f"  8 MB frame, median MB/s: direct {direct:.0f}, relay {relay:.0f}   "
          f"relay ÷ direct {relay / direct:.2f}×  {verdict(relay / direct, 0.95, at_most=False)}")
    for cdp in sides.values():
        cdp.close()
    api.stop_session(session["id"])


def throughput(api: Api, cycles: int) -> float:
    """Sessions per minute: each client creates, evaluates over CDP, deletes and waits for ``stopped``."""
    def cycle(_: int) -> None:
        session = api.create_session()
        cdp = RawCdp(session["cdpUrl"])
        assert cdp.evaluate("21*2", cdp.attach_new_page()) == 42
        cdp.close()
        api.stop_session(session["id"], timeout=120)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as clients:
        list(clients.map(cycle, range(cycles)))
    return cycles / (time.perf_counter() - start) * 60


def bench_launcher(launcher: str, n: int, warm: int, pages: PageServer, workdir: Path) -> None:
    print(f"\n== launcher: {launcher}")
    bare, cold = [], []
    with bare_launcher(launcher) as launch_once, \
            running_broker(BROKER_LAUNCHER=launcher, BROKER_WARM_BROWSERS="0") as (_, api):
        api.stop_session(api.create_session()["id"])
        for i in range(n):  # one by one, each first in turn: both see the same moment of a shared machine
            if i % 2:
                cold += timed_creates(api, 1, {})[0]
            bare.append(launch_once())
            if not i % 2:
                cold += timed_creates(api, 1, {})[0]
    report("bare launch by this launcher (ms)", bare)
    report("create, cold (warm browsers off) (ms)", cold)
    ratio = pct(cold, 50) / pct(bare, 50)
    print(f"  cold create ÷ bare launch, p50               {ratio:.2f}×  {verdict(ratio, 1.2)}")

    with running_broker(BROKER_LAUNCHER=launcher, BROKER_WARM_BROWSERS=str(warm),
                        BROKER_POOL_SIZE=str(max(CLIENTS, warm + 2))) as (broker, api):
        warm_creates, stops = timed_creates(api, n, {}, lambda: wait_warm(broker, warm))
        report("create, warm (ms)", warm_creates)
        print(f"  warm create p50 {pct(warm_creates, 50) * MS:.1f} ms: {verdict(pct(warm_creates, 50) * MS, 30)};"
              f" p99 {pct(warm_creates, 99) * MS:.1f} ms: {verdict(pct(warm_creates, 99) * MS, 100)}")
        report("stop, DELETE → stopped (ms)", stops)

        context = api.post("/v1/contexts", json={}).json()
        report("create, cold with a context (ms)", timed_creates(api, n, {"contextId": context["id"]})[0])
        password = secrets.token_urlsafe(16)
        upstream = HttpUpstream(workdir, f"bench-{secrets.token_hex(4)}", "bench", password).start()
        try:
            proxy = api.post("/v1/proxies", json={"server": upstream.server, "username": "bench",
                                                   "password": password}).json()
            report("create, cold with a proxy (ms)", timed_creates(api, n, {"proxyId": proxy["id"]})[0])
        finally:
            upstream.stop()

        with bare_launcher(launcher) as launch_once:
            parts, bare_parts = lifecycles(broker, api, pages, n, warm, launch_once)
        for name in ("total", "create", "connect", "load", "close", "delete"):
            report(f"lifecycle: {name} (ms)", parts[name])
        print(f"  lifecycle p50 {pct(parts['total'], 50) * MS:.0f} ms: {verdict(pct(parts['total'], 50) * MS, 200)};"
              f" Playwright connect p95 {pct(parts['connect'], 95) * MS:.0f} ms:"
              f" {verdict(pct(parts['connect'], 95) * MS, 100)}")
        for name in ("total", "connect", "load", "close"):
            report(f"lifecycle without the broker: {name} (ms)", bare_parts[name])
        share = pct(parts["total"], 50) - pct(bare_parts["total"], 50)
        print(f"  the broker's share of the lifecycle, p50 difference   {share * MS:.0f} ms")

        relay_vs_direct(broker, api)
        print(f"  sessions per minute, {CLIENTS} concurrent clients   {throughput(api, 10 * CLIENTS):.0f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--launcher", default="both", choices=["selenium", "direct", "both"])
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--warm", type=int, default=2, help="BROKER_WARM_BROWSERS for the warm figures")
    args = parser.parse_args()
    pages = PageServer()
    workdir = Path(tempfile.mkdtemp(prefix="bb-bench-speed-"))
    try:
        for launcher in (["selenium", "direct"] if args.launcher == "both" else [args.launcher]):
            bench_launcher(launcher, args.n, args.warm, pages, workdir)
    finally:
        pages.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
