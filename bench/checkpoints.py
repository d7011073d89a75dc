"""Prints what checkpoints cost a running session (docs/API.md, "Checkpoints"): each save's wall and CPU time in the
worker (from its log lines), and the round trips a CDP client sees on the page the whole time, beside the same
client on a session without checkpoints; the load average beside each (the machine may be shared).

    PYTHONPATH=. .venv/bin/python bench/checkpoints.py [--seconds 30] [--interval 2]

The client sets a cookie with every call, so every due checkpoint has something to save: the worst case. Two
profiles: an idle one and one holding ~4 MB of localStorage of random letters (zstd packs it to ~60 %; a repeated
letter would pack to nothing).
"""
from __future__ import annotations

import argparse
import os
import re
import time

from bench.common import pct, running_broker
from tests.support.cdp import RawCdp
from tests.support.pages import PageServer

#: ~4 MB of localStorage (2 M UTF-16 characters), random letters.
FILL = ("localStorage.setItem('bulk', Array.from({length: 2000000}, () => String.fromCharCode(97 + Math.random() * 26 "
        "| 0)).join('')); state('filled')")
SAVED = re.compile(r"session (ses_[0-9a-f]+): checkpoint saved in ([\d.]+) s \(CPU ([\d.]+) s, (\d+) bytes")


def round_trips(session: dict, page_url: str, fill: bool, seconds: float) -> list[float]:
    """Seconds per Runtime.evaluate (a cookie set) on the session's page, back to back for ``seconds``."""
    with RawCdp(session["cdpUrl"], timeout=60) as cdp:
        _, page = cdp.open_tab(page_url)
        time.sleep(1)
        cdp.evaluate(FILL if fill else "state('idle')", page, await_promise=True)
        times = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            cdp.evaluate(f"document.cookie = 'n={len(times)}; path=/'", page)
            times.append(time.perf_counter() - started)
            time.sleep(0.01)
    return times


def one_run(broker, api, page_url: str, fill: bool, interval: int, seconds: float) -> dict:
    load = os.getloadavg()[0]
    session = api.create_session(movable=True, checkpointInterval=interval)
    times = round_trips(session, page_url, fill, seconds)
    api.stop_session(session["id"], timeout=60)
    saves = [(float(wall), float(cpu), int(size)) for sid, wall, cpu, size in
             SAVED.findall("".join(broker.worker_log(name.split("@")[0]) for name in broker.workers))
             if sid == session["id"]]
    return {"times": times, "saves": saves, "load": (load + os.getloadavg()[0]) / 2}


def line(label: str, run: dict) -> str:
    times = run["times"]
    text = (f"{label}: client round trip p50 {pct(times, 50) * 1000:.1f} ms, p99 {pct(times, 99) * 1000:.1f} ms, "
            f"max {max(times) * 1000:.1f} ms (n={len(times)})")
    if run["saves"]:
        walls, cpus, sizes = zip(*run["saves"])
        text += (f"; {len(walls)} checkpoints: wall p50 {pct(walls, 50):.2f} s max {max(walls):.2f} s, CPU p50 "
                 f"{pct(cpus, 50):.2f} s max {max(cpus):.2f} s, archive {pct(sizes, 50) / 2**10:.0f} KiB")
    return f"{text}; load average {run['load']:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--interval", type=int, default=2)
    args = parser.parse_args()
    pages = PageServer()
    with running_broker(BROKER_WARM_BROWSERS="0", BROKER_LAUNCHER="direct") as (broker, api):
        page_url = f"{pages.base}/state"
        for fill, profile in ((False, "idle profile"), (True, "~4 MB localStorage")):
            without = one_run(broker, api, page_url, fill, 0, args.seconds)
            with_checkpoints = one_run(broker, api, page_url, fill, args.interval, args.seconds)
            print(line(f"{profile}, no checkpoints", without))
            print(line(f"{profile}, checkpoint every {args.interval} s", with_checkpoints))
    pages.close()


if __name__ == "__main__":
    main()
