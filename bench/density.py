"""Prints how many idle sessions fit in memory: PSS per session, the broker's own share, sessions per 24 GiB.

    PYTHONPATH=. .venv/bin/python bench/density.py [--sessions 20] [--budget-mib 0] [--page] [--variants all]

For each variant (launcher × launch flags) it starts a deployment with warm
browsers off, creates idle sessions until ``--sessions`` or until the browsers'
PSS passes ``--budget-mib``, lets them settle, then sums PSS (shared pages split
between the processes that map them, so a sum is real memory) over every
browser process (Chromium and, under Selenium, ChromeDriver) and over the
broker's own processes (web, worker; Redis apart). Sessions per 24 GiB is
(24 GiB − the broker's processes) ÷ PSS per session, the broker counted at what
it measured here plus the worker's growth per session. ``--page`` loads a small
127.0.0.1 page in each session instead of leaving it on about:blank.
"""
from __future__ import annotations

import argparse
import time

import psutil

from bench.common import running_broker
from tests.support.pages import PageServer
from tests.support.processes import TEST_FLAGS

GIB = 2**30
MIB = 2**20
SETTLE = 5.0
#: Launch flags tried for memory. The defaults (tasks/chromium_flags.py) carry the one kept (the network service in
#: the browser process); "network-process" undoes it, the others try what was measured and left out.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "selenium": ("selenium", []),
    "direct": ("direct", []),
    "selenium-network-process": ("selenium", ["--disable-features=NetworkServiceInProcess2"]),
    "selenium-no-spare-renderer": ("selenium", ["--disable-features=SpareRendererForSitePerProcess"]),
    "selenium-in-process-gpu": ("selenium", ["--in-process-gpu"]),
}


def pss(procs: list[psutil.Process]) -> float:
    total = 0
    for proc in procs:
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / MIB


def browser_processes(worker: psutil.Process) -> list[psutil.Process]:
    """Everything the worker started: Chromium, its zygotes and helpers, and ChromeDriver."""
    return worker.children(recursive=True)


def measure(name: str, launcher: str, flags: list[str], count: int, budget_mib: float, page: str | None) -> None:
    extra = " ".join([TEST_FLAGS, *flags])
    with running_broker(BROKER_LAUNCHER=launcher, BROKER_POOL_SIZE=str(count), BROKER_WARM_BROWSERS="0",
                        BROKER_CHROMIUM_EXTRA_FLAGS=extra, BROKER_CREATE_WAIT="120",
                        BROKER_LAUNCH_TIMEOUT="120") as (broker, api):
        worker = psutil.Process(next(iter(broker.workers.values())).pid)
        web = psutil.Process(broker.web.pid)
        redis = psutil.Process(broker.redis.proc.pid)
        worker_before = pss([worker])
        body = {"url": page} if page else {}
        sessions = []
        while len(sessions) < count:
            sessions.append(api.create_session(**body))
            if budget_mib and pss(browser_processes(worker)) > budget_mib:
                break
        time.sleep(SETTLE)
        browsers = pss(browser_processes(worker))
        worker_after, web_now, redis_now = pss([worker]), pss([web]), pss([redis])
        per_session = browsers / len(sessions)
        growth = max(0.0, worker_after - worker_before) / len(sessions)
        broker_fixed = web_now + worker_before
        fits = int((24 * GIB / MIB - broker_fixed) // (per_session + growth))
        broker_at_capacity = broker_fixed + growth * fits
        processes = len(browser_processes(worker)) / len(sessions)
        print(f"\n== {name}{' (page loaded)' if page else ''}: {len(sessions)} idle sessions")
        print(f"  PSS per session (browser + driver)   {per_session:6.1f} MiB   ({processes:.1f} processes each)")
        print(f"  broker: web {web_now:.0f} MiB, worker {worker_after:.0f} MiB "
              f"(+{growth:.2f} MiB per session), Redis {redis_now:.0f} MiB")
        print(f"  broker ÷ browsers here               {(web_now + worker_after) / browsers * 100:5.1f} %")
        print(f"  idle sessions per 24 GiB             {fits}   (target ≥ 120); broker then "
              f"{broker_at_capacity:.0f} MiB = {broker_at_capacity / (fits * per_session) * 100:.1f} % of the browsers "
              f"(target ≤ 5 %)")
        for session in sessions:
            api.delete(f"/v1/sessions/{session['id']}")
        for session in sessions:
            api.wait_status(session["id"], "stopped", 120)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--budget-mib", type=float, default=0, help="stop adding sessions past this much browser PSS")
    parser.add_argument("--page", action="store_true", help="load a small 127.0.0.1 page in each session")
    parser.add_argument("--variants", default="all", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    args = parser.parse_args()
    names = list(VARIANTS) if args.variants == "all" else [v.strip() for v in args.variants.split(",")]
    pages = PageServer() if args.page else None
    try:
        for name in names:
            launcher, flags = VARIANTS[name]
            measure(name, launcher, flags, args.sessions, args.budget_mib,
                    f"{pages.base}/page?title=idle" if pages else None)
    finally:
        if pages:
            pages.close()


if __name__ == "__main__":
    main()
