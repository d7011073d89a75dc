"""Do refills slow running sessions' pages (issue 26 item 1)? A running session's page loads with warm launches
under way beside it, against the same loads without.

    PYTHONPATH=. .venv/bin/python bench/refills.py [--rounds 6] [--phase 8] [--every 1.0]

One broker (one worker, warm browsers off, so nothing of its own launches), one session whose Playwright client
loads a 127.0.0.1 page (tests/support/pages.py) over and over through the broker's relay. The run alternates
phases of ``--phase`` seconds: quiet, then refills, where a thread launches a browser as the warm keeper does
(tasks/warm.py: the direct launcher, from a thread at LAUNCH_NICENESS, which its processes inherit) every
``--every`` seconds, each kept up ``KEPT`` seconds so its start-up's tail (~300 ms of CPU after CDP answers) lands in
the phase as well. A stream of one create a second makes one refill a second. Interleaving keeps a shared machine's
drift out of the ratio; the load average is printed beside it. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable

from playwright.sync_api import sync_playwright

from bench.common import pct, running_broker
from bench.sessions import bare_launcher
from tasks.warm import LAUNCH_NICENESS
from tests.support.pages import PageServer

MS = 1000
#: Seconds a refill's browser stays up: a spare is not ended after its launch, its start-up goes on.
KEPT = 1.5


class Refills:
    """A thread launching a niced browser every ``every`` seconds while ``on`` is set."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.on = threading.Event()
        self.done = threading.Event()
        self.launched = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with bare_launcher("direct") as launch_once:
            launches: list[threading.Thread] = []
            while not self.done.is_set():
                if not self.on.wait(0.1):
                    continue
                # One thread per launch, as their lives overlap (each up KEPT, one begun every ``every``).
                launch = threading.Thread(target=self._launch, args=(launch_once,), daemon=True)
                launch.start()
                launches.append(launch)
                self.done.wait(self.every)
            for launch in launches:
                launch.join(30)

    def _launch(self, launch_once: Callable[..., float]) -> None:
        if os.geteuid() == 0:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LAUNCH_NICENESS)
        launch_once(lambda _browser: time.sleep(KEPT))
        self.launched += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--phase", type=float, default=8.0, help="seconds of each phase")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between two refills")
    args = parser.parse_args()
    pages = PageServer()
    refills = Refills(args.every)
    refills.thread.start()
    loads: dict[str, list[float]] = {"quiet": [], "refills": []}
    print(f"start: load average {os.getloadavg()[0]:.1f}; cores {len(os.sched_getaffinity(0))}", flush=True)
    try:
        with running_broker(BROKER_WARM_BROWSERS="0") as (_, api), sync_playwright() as p:
            session = api.create_session()
            browser = p.chromium.connect_over_cdp(session["cdpUrl"])
            page = browser.contexts[0].pages[0]
            url = f"{pages.base}/page?title=refills"
            page.goto(url)
            for _ in range(args.rounds):
                for phase in ("quiet", "refills"):
                    if phase == "refills":
                        refills.on.set()
                    else:
                        refills.on.clear()
                    # A refill still up from the phase before is not this phase's.
                    time.sleep(KEPT if phase == "quiet" else 0.2)
                    until = time.monotonic() + args.phase
                    while time.monotonic() < until:
                        t0 = time.perf_counter()
                        page.goto(url)
                        loads[phase].append(time.perf_counter() - t0)
                print(f"  round: quiet p50 {pct(loads['quiet'], 50) * MS:5.1f} ms, refills p50 "
                      f"{pct(loads['refills'], 50) * MS:5.1f} ms so far; load average {os.getloadavg()[0]:.1f}",
                      flush=True)
            refills.on.clear()
            browser.close()
            api.delete(f"/v1/sessions/{session['id']}")
    finally:
        refills.done.set()
        refills.thread.join(30)
        pages.close()
    quiet, busy = loads["quiet"], loads["refills"]
    print(f"  page load, quiet    p50 {pct(quiet, 50) * MS:6.1f}  p95 {pct(quiet, 95) * MS:6.1f} ms  (n={len(quiet)})")
    print(f"  page load, refills  p50 {pct(busy, 50) * MS:6.1f}  p95 {pct(busy, 95) * MS:6.1f} ms  (n={len(busy)}, "
          f"{refills.launched} launches)")
    print(f"  refills ÷ quiet     p50 {pct(busy, 50) / pct(quiet, 50):4.2f}×  "
          f"p95 {pct(busy, 95) / pct(quiet, 95):4.2f}×; end: load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
