"""Prints what a session video (issue 28's optional ``recording.mp4``) would cost on this machine, by either road.

    PYTHONPATH=. .venv/bin/python -m bench.recording_video [--seconds 60] [--viewport 800x600]

Needs Debian's ``ffmpeg`` (``apt-get install -y ffmpeg``; the broker itself does not use it). Bare headless
Chromiums (no broker), bench/recording.py's busy page, Playwright moving the mouse and scrolling:

- Screencast frames, as the live view takes them (JPEG quality 60, at most 10 fps kept): the browser's CPU with the
  screencast on against off (half as long), the JPEG bytes a session would keep per minute, and ffmpeg's CPU and
  wall time turning them into H.264 (``-preset ultrafast``).
- From the rrweb events (the road that costs a session nothing while it runs): the busy page recorded by the
  worker's own recorder, then replayed at 1× by rrweb's Replayer in a second browser with the screencast on: its
  wall time and CPU (before any encoding, which costs what the first road's does).

Nothing is asserted; the load average is printed beside the figures.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
from playwright.sync_api import Page, sync_playwright

from bench.common import tree_cpu
from bench.recording import PAGE, load_average
from core.recordings import RRWEB_DIR
from tasks.session_watch import BINDING, WORLD, recorder_source
from tests.support.pages import html_site
from tests.support.viewer import CHROMIUM, person_flags

#: The live view's screencast (proxy/live_screencast.py, BROKER_LIVE_VIEW_QUALITY and _MAX_FPS defaults).
SCREENCAST = {"format": "jpeg", "quality": 60, "maxWidth": 1920, "maxHeight": 1080}
MAX_FPS = 10


def browser_pid(seen: set[int]) -> int:
    """The browser process Playwright started last: the one among our children not seen before, not a renderer."""
    for child in psutil.Process().children(recursive=True):
        if child.pid not in seen and "chrom" in child.name() and "--type=" not in " ".join(
                child.cmdline()):
            return child.pid
    raise RuntimeError("no new browser process")


def drive(page: Page, seconds: float) -> None:
    end = time.monotonic() + seconds
    step = 0
    while time.monotonic() < end:
        step += 1
        page.mouse.move(100 + step % 400, 200 + step % 300)
        page.mouse.wheel(0, 40 if step % 20 < 10 else -40)
        page.wait_for_timeout(50)


def screencast_road(playwright, site: str, seconds: float, width: int, height: int, folder: Path) -> None:
    seen = {c.pid for c in psutil.Process().children(recursive=True)}
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=person_flags())
    pid = browser_pid(seen)
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(f"{site}/typical?busy")
    cdp = page.context.new_cdp_session(page)
    frames: list[tuple[float, str]] = []

    def frame(event: dict) -> None:
        frames.append((time.perf_counter(), event["data"]))
        cdp.send("Page.screencastFrameAck", {"sessionId": event["sessionId"]})
    cdp.on("Page.screencastFrame", frame)
    before = tree_cpu(pid)
    drive(page, seconds / 2)
    off = (tree_cpu(pid) - before) / (seconds / 2)
    cdp.send("Page.startScreencast", SCREENCAST)
    before, started = tree_cpu(pid), time.perf_counter()
    drive(page, seconds)
    on = (tree_cpu(pid) - before) / seconds
    cdp.send("Page.stopScreencast")
    browser.close()

    kept: list[tuple[float, str]] = []
    for at, data in frames:
        if not kept or at - kept[-1][0] >= 1 / MAX_FPS:
            kept.append((at, data))
    jpeg_bytes = 0
    with open(folder / "frames.txt", "w") as listing:
        for i, (at, data) in enumerate(kept):
            jpeg = base64.b64decode(data)
            jpeg_bytes += len(jpeg)
            (folder / f"{i:05d}.jpg").write_bytes(jpeg)
            until = kept[i + 1][0] if i + 1 < len(kept) else started + seconds
            listing.write(f"file '{i:05d}.jpg'\nduration {max(until - at, 0.001):.3f}\n")
    per_minute = 60 / seconds
    print(f"screencast at {width}x{height}: browser CPU {off:.2f} → {on:.2f} CPU-s per second with it on; "
          f"{len(frames)} frames sent, {len(kept)} kept at ≤{MAX_FPS} fps, {jpeg_bytes * per_minute / 2**20:.1f} MiB "
          f"of JPEG per minute ({load_average()})", flush=True)

    video = folder / "video.mp4"
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
                    "-i", str(folder / "frames.txt"), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    "-fps_mode", "vfr", str(video)], check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    print(f"ffmpeg H.264 ultrafast: {cpu * per_minute:.1f} CPU-s and {wall * per_minute:.1f} s wall per minute of "
          f"video, {video.stat().st_size * per_minute / 2**20:.1f} MiB of MP4 per minute ({load_average()})", flush=True)


def replay_road(playwright, site: str, seconds: float, width: int, height: int) -> None:
    recorder = playwright.chromium.launch(executable_path=CHROMIUM, args=person_flags())
    page = recorder.new_page(viewport={"width": width, "height": height})
    cdp = page.context.new_cdp_session(page)
    events: list[dict] = []
    cdp.on("Runtime.bindingCalled", lambda event: events.extend(json.loads(event["payload"])))
    for method in ("Page.enable", "Runtime.enable"):
        cdp.send(method)
    cdp.send("Runtime.addBinding", {"name": BINDING, "executionContextName": WORLD})
    cdp.send("Page.addScriptToEvaluateOnNewDocument", {"source": recorder_source(), "worldName": WORLD,
                                                       "runImmediately": True})
    page.goto(f"{site}/typical?busy")
    drive(page, seconds)
    time.sleep(0.5)
    recorder.close()

    seen = {c.pid for c in psutil.Process().children(recursive=True)}
    player = playwright.chromium.launch(executable_path=CHROMIUM, args=person_flags())
    pid = browser_pid(seen)
    view = player.new_page(viewport={"width": width, "height": height})
    view.set_content("<!doctype html><body style='margin:0'></body>")
    view.add_script_tag(content=(RRWEB_DIR / "rrweb" / "dist" / "rrweb.umd.min.cjs").read_text())
    screencast = view.context.new_cdp_session(view)
    frames = []

    def frame(event: dict) -> None:
        frames.append(len(event["data"]))
        screencast.send("Page.screencastFrameAck", {"sessionId": event["sessionId"]})
    screencast.on("Page.screencastFrame", frame)
    view.evaluate("(events) => { window.replayer = new rrweb.Replayer(events, {root: document.body}); }", events)
    screencast.send("Page.startScreencast", SCREENCAST)
    before, started = tree_cpu(pid), time.perf_counter()
    view.evaluate("() => new Promise((done) => { replayer.on('finish', done); replayer.play(); })")
    wall, cpu = time.perf_counter() - started, tree_cpu(pid) - before
    player.close()
    print(f"replay of {seconds:.0f} s of rrweb events ({len(events)} events) at 1× with the screencast on: "
          f"{wall:.1f} s wall, {cpu:.1f} CPU-s of the replaying browser, {len(frames)} frames "
          f"({load_average()})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--viewport", default="800x600", help="Chromium's default viewport unless a create sets one")
    args = parser.parse_args()
    width, height = (int(x) for x in args.viewport.split("x"))
    print(f"start: {load_average()}; cores {len(os.sched_getaffinity(0))}", flush=True)
    with (html_site(lambda _path, _query: PAGE) as site, sync_playwright() as playwright,
          tempfile.TemporaryDirectory(prefix="bb-video-") as folder):
        screencast_road(playwright, site, args.seconds, width, height, Path(folder))
        replay_road(playwright, site, args.seconds, width, height)


if __name__ == "__main__":
    main()
