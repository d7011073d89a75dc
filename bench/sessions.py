"""Prints the spine's figures: create latency vs a bare launch, relay vs direct CDP, memory.

    PYTHONPATH=. .venv/bin/python bench/sessions.py [--launcher selenium|direct|both] [--n 20]

Runs real Redis, a real worker and the web process on 127.0.0.1; nothing is asserted,
only printed (the machine is shared and noisy: compare ratios, not absolutes).
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from core.config import load
from bench.common import evaluate_round_trips, pct, running_broker, summary, tree_memory
from tasks.browser_users import BrowserUsers
from tasks.chromium_flags import browser_flags
from tasks.launchers import make_launcher
from tasks.running_browser import RunningBrowser, session_temp_dir
from tasks.confinement import start_checks
from tests.support.cdp import RawCdp
from tests.support.processes import TEST_FLAGS

EVALS = 2000
BIG_BYTES = 24 * 1024 * 1024
BIG_REPEATS = 5


@contextmanager
def bare_launcher(launcher_name: str) -> Iterator[Callable[..., float]]:
    """A launcher set up as a worker sets it up (its browser users, the sandbox if this host gives one);
    yields a call that launches one browser until CDP answers, hands it to ``use`` if given, stops it, and
    returns the launch's seconds."""
    base = load()
    config = dataclasses.replace(base, chromium=dataclasses.replace(
        base.chromium, launcher=launcher_name, extra_flags=tuple(shlex.split(TEST_FLAGS))))
    root = Path(tempfile.mkdtemp(prefix="bb-bench-bare-"))
    root.chmod(0o711)
    count = itertools.count()
    try:
        users = BrowserUsers(config.chromium.browser_user)
        launcher = make_launcher(config, users, start_checks(config, users, root / "worker"))

        def launch_once(use: Callable[[RunningBrowser], None] | None = None) -> float:
            profile = root / str(next(count))
            profile.mkdir()
            start = time.perf_counter()
            browser = launcher.start(profile, browser_flags(config), 30, {})
            took = time.perf_counter() - start
            try:
                if use is not None:
                    use(browser)
            finally:
                launcher.stop(browser)
            shutil.rmtree(profile, ignore_errors=True)
            shutil.rmtree(session_temp_dir(profile), ignore_errors=True)
            return took

        yield launch_once
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bare_launches(launcher_name: str, n: int) -> list[float]:
    with bare_launcher(launcher_name) as launch_once:
        return [launch_once() for _ in range(n)]


def eval_round_trips(url: str, n: int) -> list[float]:
    cdp = RawCdp(url)
    page = cdp.attach_new_page()
    times = evaluate_round_trips(cdp, page, n)
    cdp.close()
    return times


def big_frame_throughput(url: str) -> float:
    """MB/s for a 24 MB Runtime.evaluate answer, best of a few (the noise is all on the slow side)."""
    cdp = RawCdp(url)
    page = cdp.attach_new_page()
    cdp.call("Runtime.evaluate", {"expression": f"globalThis.big = 'q'.repeat({BIG_BYTES})"}, page)
    best = 0.0
    for _ in range(BIG_REPEATS):
        start = time.perf_counter()
        value = cdp.evaluate("big", page)
        best = max(best, len(value) / (time.perf_counter() - start) / 1e6)
    cdp.close()
    return best


def bench_launcher(name: str, n: int) -> dict:
    print(f"\n== launcher: {name}")
    bare = bare_launches(name, n)
    print(f"bare launch (launcher only, until CDP answers): {summary(bare)}")
    with running_broker(BROKER_LAUNCHER=name) as (broker, api):
        api.delete(f"/v1/sessions/{api.create_session()['id']}")
        creates = []
        for _ in range(n):
            start = time.perf_counter()
            session = api.create_session()
            creates.append(time.perf_counter() - start)
            api.stop_session(session["id"])
        print(f"POST /v1/sessions → 201:                    {summary(creates)}")
        ratio = pct(creates, 50) / pct(bare, 50)
        print(f"create / bare launch (p50):                 {ratio:.2f}x")

        session = api.create_session()
        direct_url = broker.store().sessions.get(session["id"])["browserWsUrl"]
        eval_round_trips(direct_url, 200)
        relay = eval_round_trips(session["cdpUrl"], EVALS)
        direct = eval_round_trips(direct_url, EVALS)
        rt_ratio = pct(relay, 50) / pct(direct, 50)
        print(f"Runtime.evaluate round trip, direct:        {summary(direct, 'us', 1e6)}")
        print(f"Runtime.evaluate round trip, relay:         {summary(relay, 'us', 1e6)}")
        print(f"relay / direct round trip (p50):            {rt_ratio:.2f}x")
        thr_direct = big_frame_throughput(direct_url)
        thr_relay = big_frame_throughput(session["cdpUrl"])
        print(f"24 MB frame: direct {thr_direct:.0f} MB/s, relay {thr_relay:.0f} MB/s, ratio {thr_relay / thr_direct:.2f}x")
        api.stop_session(session["id"])

        idle = [api.create_session() for _ in range(4)]
        time.sleep(2)
        worker_pid = next(iter(broker.workers.values())).pid
        own_pss, own_rss = tree_memory([worker_pid])
        worker = psutil.Process(worker_pid)
        w_info = worker.memory_full_info()
        web_info = psutil.Process(broker.web.pid).memory_full_info()
        per_session_pss = (own_pss - w_info.pss / 2**20) / len(idle)
        per_session_rss = (own_rss - w_info.rss / 2**20) / len(idle)
        print(f"idle session (browser + driver), PSS:       {per_session_pss:.0f} MiB (RSS sum {per_session_rss:.0f} MiB)")
        print(f"broker processes RSS: web {web_info.rss / 2**20:.0f} MiB, worker {w_info.rss / 2**20:.0f} MiB")
        for s in idle:
            api.delete(f"/v1/sessions/{s['id']}")
        for s in idle:
            api.wait_status(s["id"], "stopped")
    return {"create_ratio": ratio, "rt_ratio": rt_ratio}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--launcher", default="both", choices=["selenium", "direct", "both"])
    parser.add_argument("--n", type=int, default=20)
    args = parser.parse_args()
    for name in (["selenium", "direct"] if args.launcher == "both" else [args.launcher]):
        bench_launcher(name, args.n)


if __name__ == "__main__":
    main()
