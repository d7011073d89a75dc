"""Creates as real traffic sends them (issue 26): the broker's create → 201 and lifecycle against the machine's bare
launch, with no waiting for the warm pool between creates.

    PYTHONPATH=. .venv/bin/python bench/arrivals.py [--seconds 60] [--launcher default|direct|selenium]
        [--pool-size auto] [--cold 10] [--floor 10]

Each pattern runs on a fresh broker (one worker) with the project's defaults unless told otherwise: creates 3 s
apart; Poisson arrivals, mean 1 s apart, each session held 1 s, then held 3 s, then a burst of 4 after 5 s of
quiet (the worker still sized by that traffic); a burst of 4 on a fresh worker after 5 s of quiet; the lifecycle
(create, Playwright ``connect_over_cdp``, load a 127.0.0.1 page, read its title, DELETE) at Poisson arrivals mean
1 s apart. The bare launch (spawn until ``Browser.getVersion`` answers) is measured by both launchers before and
after. ``--cold N``: cold creates (warm browsers off), Selenium against the direct launcher, alternating with bare
launches of each. ``--floor N``: the lifecycle's steps against a running browser with no broker between, its
floor. Nothing is asserted: the machine is shared, and the load average is printed beside the figures.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import threading
import time
from collections.abc import Callable

from playwright.async_api import async_playwright

from bench.common import pct, running_broker
from bench.sessions import bare_launches
from core.config import load
from core.store.metrics import CREATE_PATHS, WARM_OFFERS
from tests.support.api import Api
from tests.support.pages import PageServer
from tests.support.processes import Broker, wait_until

MS = 1000
SEED = 26


def poisson_gaps(rng: random.Random, mean: float, seconds: float) -> list[float]:
    """Start times of arrivals over ``seconds``, exponential gaps of mean ``mean``."""
    times, t = [], 0.0
    while True:
        t += rng.expovariate(1 / mean)
        if t > seconds:
            return times
        times.append(t)


def figures(name: str, values: list[float], bare: float) -> None:
    fast = sum(1 for v in values if v <= 0.05) / len(values) * 100
    print(f"  {name:<46} p50 {pct(values, 50) * MS:7.0f}  p95 {pct(values, 95) * MS:7.0f}  "
          f"max {max(values) * MS:7.0f} ms  p95 ÷ bare {pct(values, 95) / bare:5.2f}×  ≤50 ms {fast:3.0f} %  "
          f"(n={len(values)})", flush=True)


def load_average() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


def wait_for_warm(broker: Broker, count: int = 1) -> None:
    (nodename,) = broker.workers
    wait_until(lambda: len(broker.store().warm.offered_by(nodename)) >= count, 120, message="warm browsers")


def held(api_for: Callable[[], Api], starts: list[float], hold: float) -> list[float]:
    """One thread per arrival: create (timed), hold, DELETE."""
    creates: list[float] = []
    lock = threading.Lock()

    def arrival() -> None:
        api = api_for()
        t0 = time.perf_counter()
        session = api.create_session()
        took = time.perf_counter() - t0
        with lock:
            creates.append(took)
        time.sleep(hold)
        api.delete(f"/v1/sessions/{session['id']}")

    threads = []
    origin = time.perf_counter()
    for start in starts:
        time.sleep(max(0.0, origin + start - time.perf_counter()))
        thread = threading.Thread(target=arrival)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return creates


def api_factory(broker: Broker) -> Callable[[], Api]:
    local = threading.local()

    def api() -> Api:
        if not hasattr(local, "api"):
            local.api = Api(broker.url, broker.api_key)
        return local.api
    return api


async def lifecycles(api_for: Callable[[], Api], starts: list[float], url: str) -> list[float]:
    """create → connect_over_cdp → goto → title → close → DELETE per arrival, overlapping as they come."""
    totals: list[float] = []
    async with async_playwright() as p:

        async def one() -> None:
            t0 = time.perf_counter()
            session = await asyncio.to_thread(lambda: api_for().create_session())
            browser = await p.chromium.connect_over_cdp(session["cdpUrl"])
            page = browser.contexts[0].pages[0]
            await page.goto(url)
            assert await page.title() == "lifecycle"
            await browser.close()
            await asyncio.to_thread(lambda: api_for().delete(f"/v1/sessions/{session['id']}"))
            totals.append(time.perf_counter() - t0)

        origin = time.perf_counter()
        tasks = []
        for start in starts:
            await asyncio.sleep(max(0.0, origin + start - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return totals


def lifecycle_floor(n: int, url: str) -> list[float]:
    """The lifecycle's steps with no broker between: Playwright's ``connect_over_cdp`` straight to a browser already
    running (as a warm one is), load, title, close; one at a time, each on a fresh direct launch (not timed). What
    the broker's lifecycle cannot go under; it adds the create, the relay and the DELETE."""
    from playwright.sync_api import sync_playwright

    from bench.sessions import bare_launcher

    times: list[float] = []
    with sync_playwright() as p, bare_launcher("direct") as launch_once:

        def use(browser) -> None:
            t0 = time.perf_counter()
            client = p.chromium.connect_over_cdp(browser.ws_url())
            page = client.contexts[0].pages[0]
            page.goto(url)
            assert page.title() == "lifecycle"
            client.close()
            times.append(time.perf_counter() - t0)

        for _ in range(n):
            launch_once(use)
    return times


def cold_paths(n: int) -> None:
    """Cold create (warm browsers off) by each launcher, one at a time, alternating with a bare launch of it."""
    from bench.sessions import bare_launcher

    for launcher in ("selenium", "direct"):
        bare, cold = [], []
        with bare_launcher(launcher) as launch_once, \
                running_broker(BROKER_LAUNCHER=launcher, BROKER_WARM_BROWSERS="0") as (_, api):
            api.stop_session(api.create_session()["id"])
            for _ in range(n):
                bare.append(launch_once())
                t0 = time.perf_counter()
                session = api.create_session()
                cold.append(time.perf_counter() - t0)
                api.stop_session(session["id"])
        print(f"  {launcher:<9} bare launch p50 {pct(bare, 50) * MS:5.0f} ms   "
              f"cold create p50 {pct(cold, 50) * MS:5.0f}  p95 {pct(cold, 95) * MS:5.0f} ms   "
              f"÷ bare {pct(cold, 50) / pct(bare, 50):4.2f}×  (n={n})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60, help="length of each Poisson run")
    parser.add_argument("--launcher", default="default", choices=["default", "direct", "selenium"])
    parser.add_argument("--pool-size", default=None, help="BROKER_POOL_SIZE (the default: the project's)")
    parser.add_argument("--warm", default=None, help="BROKER_WARM_BROWSERS (the default: the project's)")
    parser.add_argument("--cold", type=int, default=0, help="also compare cold creates by launcher, N each")
    parser.add_argument("--spaced", type=int, default=10, help="creates 3 s apart")
    parser.add_argument("--bare", type=int, default=10, help="bare launches by each launcher, before and after")
    parser.add_argument("--floor", type=int, default=0, help="also the lifecycle's steps with no broker, N times")
    args = parser.parse_args()
    # The project's defaults: the test harness's deployments pin the launcher, pool and spares their tests were
    # written for.
    config = load()
    env = {"BROKER_LAUNCHER": config.chromium.launcher, "BROKER_POOL_SIZE": "auto", "BROKER_WARM_MAX": "auto",
           "BROKER_WARM_BROWSERS": str(config.worker.warm_browsers)}
    if args.launcher != "default":
        env["BROKER_LAUNCHER"] = args.launcher
    if args.pool_size:
        env["BROKER_POOL_SIZE"] = args.pool_size
    if args.warm:
        env["BROKER_WARM_BROWSERS"] = args.warm
    rng = random.Random(SEED)
    print(f"start: {load_average()}; cores {len(os.sched_getaffinity(0))}; settings {env}",
          flush=True)
    bare_before = {name: bare_launches(name, args.bare) for name in ("direct", "selenium")}
    for name, values in bare_before.items():
        print(f"  bare launch, {name:<8} p50 {pct(values, 50) * MS:5.0f} ms  (min {min(values) * MS:.0f}, "
              f"max {max(values) * MS:.0f})", flush=True)
    bare = pct(bare_before["direct"], 50)

    with running_broker(**env) as (broker, _):
        api = api_factory(broker)
        wait_for_warm(broker)
        spaced = []
        for _ in range(args.spaced):
            time.sleep(3)
            t0 = time.perf_counter()
            session = api().create_session()
            spaced.append(time.perf_counter() - t0)
            api().delete(f"/v1/sessions/{session['id']}")
        figures("creates 3 s apart", spaced, bare)
        figures("Poisson mean 1 s, held 1 s", held(api, poisson_gaps(rng, 1.0, args.seconds), 1.0), bare)
        figures("Poisson mean 1 s, held 3 s", held(api, poisson_gaps(rng, 1.0, args.seconds), 3.0), bare)
        time.sleep(5)
        figures("burst of 4 after 5 s quiet (after traffic)", held(api, [0.0] * 4, 1.0), bare)
        store = broker.store()
        print(f"  creates by path {store.metrics.counter(CREATE_PATHS)}, warm offers "
              f"{store.metrics.counter(WARM_OFFERS)} ({load_average()})", flush=True)

    with running_broker(**env) as (broker, _):
        wait_for_warm(broker)
        time.sleep(5)
        figures("burst of 4 after 5 s quiet (fresh worker)", held(api_factory(broker), [0.0] * 4, 1.0), bare)

    pages = PageServer()
    try:
        with running_broker(**env) as (broker, _):
            # A worker in service: its floor's spares all on offer (the burst above measures a worker just started).
            wait_for_warm(broker, int(env["BROKER_WARM_BROWSERS"]))
            totals = asyncio.run(lifecycles(api_factory(broker), poisson_gaps(rng, 1.0, args.seconds),
                                            f"{pages.base}/page?title=lifecycle"))
            figures("lifecycle, Poisson mean 1 s", totals, bare)
            print(f"  creates by path {broker.store().metrics.counter(CREATE_PATHS)}", flush=True)
        if args.floor:
            figures("lifecycle's steps, no broker (its floor)", lifecycle_floor(args.floor,
                                                                            f"{pages.base}/page?title=lifecycle"), bare)
    finally:
        pages.close()

    if args.cold:
        cold_paths(args.cold)
    bare_after = {name: bare_launches(name, args.bare) for name in ("direct", "selenium")}
    print("  bare launch after: " + ", ".join(f"{name} p50 {pct(v, 50) * MS:.0f} ms"
                                          for name, v in bare_after.items()))
    print(f"end: {load_average()}", flush=True)


if __name__ == "__main__":
    main()
