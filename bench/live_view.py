"""Prints the live view's figures: frames per second, change-to-viewer latency, the CPU a watched session costs,
and what a viewer does to a CDP client's round trips on the same session.

    PYTHONPATH=. .venv/bin/python bench/live_view.py [--seconds 10] [--changes 30] [--screenshots docs/img]

A real broker (direct launcher, one worker) on 127.0.0.1; the viewer is Playwright's own headless Chromium,
as a person's browser. The watched page repaints every animation frame (the worst case: a static page sends
no frames at all). Frame rate, latency and CPU with no CDP client on the session (the viewer gets
BROKER_LIVE_VIEW_MAX_FPS) and with one connected (BROKER_LIVE_VIEW_BUSY_FPS). Round trips alternate blocks with
and without a viewer so the shared machine's noise falls on both; a watched block starts once its viewer is up.
Nothing is asserted; with ``--screenshots`` it also writes the README's pictures.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import psutil
import websocket
from playwright.sync_api import Browser, Page, sync_playwright

from bench.common import evaluate_round_trips, pct, running_broker, summary
from tests.support.cdp import RawCdp
from tests.support.pages import PageServer
from tests.support.viewer import ANIMATE, CHROMIUM, person_flags, wait_frames

STOP_ANIMATION = "requestAnimationFrame = () => 0"
#: The colour of the viewer's picture at its middle right, read from the <img> the frame was drawn into.
VIEWER_PIXEL = """() => { const img = document.getElementById('screen'); const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight; const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  return Array.from(g.getImageData(Math.floor(c.width * 0.75), Math.floor(c.height / 2), 1, 1).data.slice(0, 3)); }"""
BLOCKS = 12
EVALS_PER_BLOCK = 1000
#: A watched block starts once the viewer has its first frame and this long more: the figure is a viewer left
#: open, as a person watches, not the second it takes to open one (blocks of ~0.2 s measured mostly that).
VIEWER_SETTLE = 0.5
#: A live view asks every second whether a CDP client is on its session (BROKER_LIVE_VIEW_BUSY_FPS).
PACE_NOTICED = 1.5


def browser_processes(broker) -> list[psutil.Process]:
    """The session browsers' processes: the direct launcher's Chromium are the worker's descendants."""
    procs = []
    for worker in broker.workers.values():
        procs += [p for p in psutil.Process(worker.pid).children(recursive=True) if "chrom" in p.name()]
    return procs


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def cpu_share(procs: list[psutil.Process], seconds: float) -> float:
    """Percent of one core the processes used over ``seconds`` of wall time."""
    before = cpu_seconds(procs)
    time.sleep(seconds)
    return 100 * (cpu_seconds(procs) - before) / seconds


class RemoteViewer:
    """The viewer page's socket, read by a thread that only counts frames.

    A person's browser runs on the person's machine; on this 2-core one it would take the very cores
    the session's browser and its CDP client use, and the figures would measure that instead of what
    the broker costs. So the CPU and round-trip figures use this client; latency uses a real page.
    """

    def __init__(self, live_view_url: str) -> None:
        base, query = live_view_url.split("?", 1)
        self.ws = websocket.create_connection(f"{base.replace('http', 'ws', 1)}/socket?{query}",
                                              skip_utf8_validation=True, suppress_origin=True)
        self.frames = 0
        self.first_frame = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def settle(self) -> None:
        """Until the view is up (its first frame came) and VIEWER_SETTLE more; then counts frames from zero."""
        self.first_frame.wait(30)
        time.sleep(VIEWER_SETTLE)
        self.frames = 0

    def _read(self) -> None:
        try:
            while True:
                if json.loads(self.ws.recv()).get("type") == "frame":
                    self.frames += 1
                    self.first_frame.set()
        except (websocket.WebSocketException, OSError, ValueError):
            return

    def close(self) -> None:
        self.ws.close()
        self.thread.join()


def compare_round_trips(session: dict, cdp: RawCdp, page_session: str,
                        expression: str) -> tuple[list[float], list[float], float]:
    """Blocks without and with a viewer open, alternating (and each kind first in turn), so noise falls on both;
    and the frames per second the viewer got meanwhile."""
    without, with_viewer, frames, watched_for = [], [], 0, 0.0
    for block in range(BLOCKS):
        watched = block % 4 in (1, 2)
        viewer = RemoteViewer(session["liveViewUrl"]) if watched else None
        if viewer:
            viewer.settle()
        start = time.perf_counter()
        (with_viewer if watched else without).extend(evaluate_round_trips(cdp, page_session, EVALS_PER_BLOCK, expression))
        if viewer:
            watched_for += time.perf_counter() - start
            frames += viewer.frames
            viewer.close()
    return without, with_viewer, frames / watched_for


def watched_cpu(session: dict, browsers: list[psutil.Process], web: list[psutil.Process],
                seconds: float) -> tuple[float, float]:
    """The browser's and the web process's CPU with one viewer (and nothing else) open."""
    remote = RemoteViewer(session["liveViewUrl"])
    remote.settle()
    try:
        return cpu_share(browsers, seconds), cpu_share(web, seconds)
    finally:
        remote.close()


def open_viewer(person: Browser, url: str) -> Page:
    view = person.new_page(viewport={"width": 1280, "height": 800})
    view.goto(url)
    wait_frames(view)
    return view


def frame_rate(view: Page, seconds: float) -> float:
    start = view.evaluate("window.liveView.frames")
    time.sleep(seconds)
    return (view.evaluate("window.liveView.frames") - start) / seconds


def change_latencies(view: Page, cdp: RawCdp, page_session: str, changes: int) -> list[float]:
    """From the page setting a new colour (its clock) to the viewer showing a frame of it (the viewer's clock:
    both browsers on this machine, so one clock)."""
    latencies = []
    for i in range(changes):
        colour = [(i * 37) % 200 + 30, (i * 91) % 200 + 30, 60]
        seen = view.evaluate("window.liveView.frames")
        changed_at = cdp.evaluate(f"document.body.style.background = 'rgb({colour[0]}, {colour[1]}, {colour[2]})'; "
                                  "Date.now()", page_session)
        view.wait_for_function(
            f"([n, want]) => window.liveView.frames > n && ({VIEWER_PIXEL})().every((v, k) => Math.abs(v - want[k]) < 24)",
            arg=[seen, colour], polling="raf", timeout=20_000)
        latencies.append((view.evaluate("window.liveView.lastFrameAt") - changed_at) / 1000)
    return latencies


def screenshots(broker, api, person: Browser, pages: PageServer, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    docs = api.create_session(url=f"{broker.url}/docs")
    api.create_session(url=f"{pages.base}/?title=second")
    context = api.post("/v1/contexts", json={"name": "shop-login"}).json()
    api.stop_session(api.create_session(contextId=context["id"])["id"])
    view = open_viewer(person, docs["liveViewUrl"])
    view.wait_for_timeout(1500)
    view.screenshot(path=str(folder / "live-view.png"))
    board = person.new_page(viewport={"width": 1280, "height": 560})
    board.goto(f"{broker.url}/dashboard")
    board.fill("#key", api.http.headers["X-API-Key"])
    board.click("#login button[type=submit]")
    board.locator("#contexts td", has_text="shop-login").wait_for()
    board.screenshot(path=str(folder / "dashboard.png"))
    print(f"screenshots: {folder / 'live-view.png'}, {folder / 'dashboard.png'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--screenshots", type=Path)
    args = parser.parse_args()
    pages = PageServer()
    with running_broker(BROKER_LAUNCHER="direct", BROKER_WARM_BROWSERS="0") as (broker, api), sync_playwright() as p:
        person = p.chromium.launch(executable_path=CHROMIUM, args=person_flags())
        session = api.create_session(url=f"{pages.base}/?title=watched")
        # On the browser's own socket, not through cdpUrl: the broker does not count it as a CDP client, so the
        # viewer gets BROKER_LIVE_VIEW_MAX_FPS, as when nobody automates the session.
        quiet = RawCdp(broker.store().sessions.get(session["id"])["browserWsUrl"])
        quiet_session = quiet.attach_first_page()
        browsers, web = browser_processes(broker), [psutil.Process(broker.web.pid)]

        view = open_viewer(person, session["liveViewUrl"])
        latencies = {"no CDP client": change_latencies(view, quiet, quiet_session, args.changes)}
        cdp = RawCdp(session["cdpUrl"])
        page_session = cdp.attach_first_page()
        time.sleep(PACE_NOTICED)
        latencies["a CDP client connected"] = change_latencies(view, cdp, page_session, args.changes)
        static_fps = frame_rate(view, args.seconds / 2)
        view.close()
        round_trips = {
            "page unchanged": compare_round_trips(session, cdp, page_session, "1+1"),
            "script changes the page at every call": compare_round_trips(
                session, cdp, page_session, "document.body.textContent = String(globalThis.n = (globalThis.n || 0) + 1)"),
        }

        cdp.evaluate(ANIMATE, page_session)
        view = open_viewer(person, session["liveViewUrl"])
        fps = {"a CDP client connected": frame_rate(view, args.seconds)}
        frame_size = view.evaluate("[document.getElementById('screen').naturalWidth, "
                                   "document.getElementById('screen').naturalHeight]")
        view.close()
        unwatched = (cpu_share(browsers, args.seconds), cpu_share(web, args.seconds))
        watched = {"a CDP client connected": watched_cpu(session, browsers, web, args.seconds)}
        round_trips["page repaints every animation frame"] = compare_round_trips(session, cdp, page_session, "1+1")
        cdp.close()
        time.sleep(PACE_NOTICED)
        view = open_viewer(person, session["liveViewUrl"])
        fps["no CDP client"] = frame_rate(view, args.seconds)
        view.close()
        watched["no CDP client"] = watched_cpu(session, browsers, web, args.seconds)
        quiet.evaluate(STOP_ANIMATION, quiet_session)
        quiet.close()

        print(f"frames are {frame_size[0]}×{frame_size[1]} JPEG; a static page sends none "
              f"({static_fps:.1f} frames/s)")
        for mode in ("no CDP client", "a CDP client connected"):
            print(f"with {mode}:")
            print(f"  viewer frames per second, page repainting every frame: {fps[mode]:.1f}")
            print(f"  page change -> frame shown in the viewer:               {summary(latencies[mode])}")
            print(f"  session browser CPU, unwatched / watched (% of a core): {unwatched[0]:.0f} / {watched[mode][0]:.0f}")
            print(f"  web process CPU, unwatched / watched (% of a core):     {unwatched[1]:.0f} / {watched[mode][1]:.0f}")
        for scenario, (without, with_viewer, viewer_fps) in round_trips.items():
            print(f"Runtime.evaluate round trip, {scenario} (viewer got {viewer_fps:.1f} frames/s):")
            print(f"  without a viewer: {summary(without, 'us', 1e6)}")
            print(f"  with a viewer:    {summary(with_viewer, 'us', 1e6)}")
            print(f"  with ÷ without (p50 / p95): "
                  f"{pct(with_viewer, 50) / pct(without, 50):.2f}× / {pct(with_viewer, 95) / pct(without, 95):.2f}×")
        if args.screenshots:
            screenshots(broker, api, person, pages, args.screenshots)
        person.close()
    pages.close()


if __name__ == "__main__":
    main()
