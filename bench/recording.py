"""Prints what recording a session costs: page loads with and without it, the browser's CPU and the relay's round
trip on a busy page, the session lifecycle, and the recording's bytes per minute.

    PYTHONPATH=. .venv/bin/python -m bench.recording [--loads 30] [--seconds 30] [--lifecycles 20]

A real broker (direct launcher, one worker, the project's warm browser) on 127.0.0.1 and a page server of its own.
Every comparison interleaves recorded and unrecorded runs, so the shared machine's noise falls on both, and prints
the load average beside its figures.

- Loads: Playwright through the cdpUrl navigates a "typical" page (300 table rows, a stylesheet, a form, a script;
  ~1500 elements) ``--loads`` times in each of two sessions, one recorded and one not, alternating page by page;
  each figure is ``page.goto`` to the load event, then ``page.title()`` (the script's next call, which waits for
  whatever the page's main thread is doing: a snapshot taken after the load event shows there).
- Busy page: both sessions on the same page with a feed that adds a row and ticks a clock every 200 ms, for
  ``--seconds``, side by side: Playwright moves the mouse and scrolls in each in turn, and a second CDP client of
  each session, through the relay, sends ``Runtime.evaluate "1"`` in turn (its round trip). CPU seconds of each
  session's browser processes over the same window; the recording's size (gzipped in the store, and raw).
- Lifecycle (bench/arrivals.py's: create, ``connect_over_cdp``, load a page, read its title, close, DELETE),
  alternating recorded and unrecorded, one at a time, each from a warm browser: on arrivals' small page and on the
  typical page. Beside it, untimed in the lifecycle: DELETE's answer to the session's record saying ``stopped``
  (polled every 20 ms), where a recorded page whose recording had not started yet has its full snapshot taken.

Nothing is asserted.
"""
from __future__ import annotations

import argparse
import http.server
import os
import threading
import time
from urllib.parse import urlsplit

import psutil

from bench.common import evaluate_round_trips, pct, running_broker, summary, tree_cpu
from tasks.session_watch import CHUNK_SECONDS
from tests.support.cdp import RawCdp
from tests.support.browsing import playwright_driver
from tests.support.processes import wait_until

ROWS = "".join(f"<tr><td>{i}</td><td>item {i}</td><td><a href='#r{i}'>open</a></td></tr>" for i in range(300))
PAGE = f"""<!doctype html><html><head><title>typical</title><style>
body {{ font: 14px sans-serif; margin: 2em; }} table {{ border-collapse: collapse; }} td {{ padding: 2px 8px; }}
tr:nth-child(odd) {{ background: #eef; }} #clock {{ font-weight: bold; }}
</style></head><body><h1>Orders</h1><p id=clock></p><form><input name=q><button>Search</button></form>
<ul id=feed></ul><table>{ROWS}</table>
<script>
const busy = location.search.includes('busy');
let n = 0;
if (busy) setInterval(() => {{
  document.getElementById('clock').textContent = new Date().toISOString();
  const li = document.createElement('li'); li.textContent = 'event ' + (++n);
  document.getElementById('feed').prepend(li);
  if (n > 50) document.getElementById('feed').lastChild.remove();
}}, 200);
</script></body></html>"""
#: bench/arrivals.py's lifecycle page (tests/support/pages.py's default page).
SMALL = "<!doctype html><title>lifecycle</title><h1>lifecycle</h1>"


#: Milliseconds the page's load event handlers took (before, rrweb took its first full snapshot in one).
LOAD_HANDLERS = ("(({loadEventStart, loadEventEnd}) => loadEventEnd - loadEventStart)"
                 "(performance.getEntriesByType('navigation')[0])")
NAMES = {False: "not recorded", True: "recorded"}
STEPS = ("create", "connect", "goto+title", "close+DELETE")
#: Seconds between two reads of a stopping session's record.
STOP_POLL = 0.02


class _Pages(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        data = (SMALL if self.path.startswith("/lifecycle") else PAGE).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def load_average() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


def browser_cpu(broker, session_id: str) -> float:
    """CPU seconds so far of the session's browser: the process listening on its debugging port (from the
    session's record) and every process under it."""
    port = urlsplit(broker.store().sessions.get(session_id)["browserWsUrl"]).port
    main = next(psutil.Process(c.pid) for c in psutil.net_connections("tcp")
                if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN)
    return tree_cpu(main.pid)


def page_loads(pages: dict, site: str, n: int) -> None:
    loads: dict[bool, list[float]] = {False: [], True: []}
    handlers: dict[bool, list[float]] = {False: [], True: []}
    for page in pages.values():
        page.goto(f"{site}/warmup")
    for i in range(n):
        for recorded in ((False, True) if i % 2 else (True, False)):
            started = time.perf_counter()
            pages[recorded].goto(f"{site}/typical?{i}")
            pages[recorded].title()
            loads[recorded].append(time.perf_counter() - started)
            handlers[recorded].append(pages[recorded].evaluate(LOAD_HANDLERS) / 1000)
    for recorded in (False, True):
        print(f"page load + title, {NAMES[recorded]:<12}: {summary(loads[recorded])}")
    for recorded in (False, True):
        print(f"load event handlers, {NAMES[recorded]:<12}: {summary(handlers[recorded])}")
    print(f"  ({load_average()})", flush=True)


def busy_pages(broker, sessions: dict, pages: dict, site: str, seconds: float) -> int:
    """Both sessions busy over the same window; the recording's bytes stored over it."""
    recording_id = sessions[True]["id"]
    for page in pages.values():
        page.goto(f"{site}/typical?busy")
    time.sleep(CHUNK_SECONDS + 1)
    stored_before = sum(c["bytes"] for c in broker.store().recordings.chunks(recording_id))
    clients = {k: RawCdp(s["cdpUrl"]) for k, s in sessions.items()}
    targets = {k: c.attach_first_page() for k, c in clients.items()}
    cpu_before = {k: browser_cpu(broker, s["id"]) for k, s in sessions.items()}
    trips: dict[bool, list[float]] = {False: [], True: []}
    deadline = time.monotonic() + seconds
    step = 0
    while time.monotonic() < deadline:
        step += 1
        for recorded in ((False, True) if step % 2 else (True, False)):
            pages[recorded].mouse.move(100 + step % 400, 200 + step % 300)
            pages[recorded].mouse.wheel(0, 40 if step % 20 < 10 else -40)
            trips[recorded] += evaluate_round_trips(clients[recorded], targets[recorded], 1, "1")
        time.sleep(0.05)
    cpu = {k: browser_cpu(broker, s["id"]) - cpu_before[k] for k, s in sessions.items()}
    for client in clients.values():
        client.close()
    for recorded in (False, True):
        print(f"busy page, {NAMES[recorded]:<12}: browser CPU {cpu[recorded]:.2f} s in {seconds:.0f} s "
              f"({100 * cpu[recorded] / seconds:.0f} % of a core); relay round trip (Runtime.evaluate \"1\") "
              f"{summary(trips[recorded])}")
    print(f"  ({load_average()})", flush=True)
    time.sleep(CHUNK_SECONDS + 1)
    return sum(c["bytes"] for c in broker.store().recordings.chunks(recording_id)) - stored_before


def until_stopped(api, session_id: str) -> float:
    """Seconds from now until the session's record says ``stopped``."""
    started = time.perf_counter()
    while api.get(f"/v1/sessions/{session_id}").json()["status"] != "stopped":
        if time.perf_counter() - started > 30:
            raise TimeoutError(f"session {session_id} did not stop in 30 s")
        time.sleep(STOP_POLL)
    return time.perf_counter() - started


def lifecycles(broker, api, url: str, title: str, n: int) -> None:
    """create → connect → goto → title → close → DELETE, alternating recorded and unrecorded, each from a warm
    browser (waited for, untimed, before each)."""
    playwright = playwright_driver()
    totals: dict[bool, list[float]] = {False: [], True: []}
    stops: dict[bool, list[float]] = {False: [], True: []}
    steps: dict[bool, dict[str, list[float]]] = {False: {}, True: {}}
    (nodename,) = broker.workers
    for i in range(n):
        for recorded in ((False, True) if i % 2 else (True, False)):
            wait_until(lambda: broker.store().warm.offered_by(nodename), 120, message="a warm browser")
            marks = [time.perf_counter()]
            session = api.create_session(recording=recorded)
            marks.append(time.perf_counter())
            browser = playwright.chromium.connect_over_cdp(session["cdpUrl"])
            page = browser.contexts[0].pages[0]
            marks.append(time.perf_counter())
            page.goto(url)
            assert page.title() == title
            marks.append(time.perf_counter())
            browser.close()
            assert api.delete(f"/v1/sessions/{session['id']}").status_code == 204
            marks.append(time.perf_counter())
            totals[recorded].append(marks[-1] - marks[0])
            for step, took in zip(STEPS, (b - a for a, b in zip(marks, marks[1:]))):
                steps[recorded].setdefault(step, []).append(took)
            stops[recorded].append(until_stopped(api, session["id"]))
    base = pct(totals[False], 50)
    for recorded in (False, True):
        parts = ", ".join(f"{step} {pct(values, 50) * 1000:.0f}" for step, values in steps[recorded].items())
        print(f"lifecycle ({title}), {NAMES[recorded]:<12}: {summary(totals[recorded])}; p50 by step: {parts} ms; "
              f"then DELETE → stopped {pct(stops[recorded], 50) * 1000:.0f} ms")
    print(f"  recorded ÷ not, p50: {pct(totals[True], 50) / base:.3f} ({load_average()})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loads", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--lifecycles", type=int, default=20, help="of each kind, on each page")
    parser.add_argument("--only", choices=["loads", "busy", "lifecycle"], default=None)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"start: {load_average()}; cores {len(os.sched_getaffinity(0))}", flush=True)
    with running_broker(BROKER_LAUNCHER="direct") as (broker, api):
        if args.only in (None, "lifecycle"):
            lifecycles(broker, api, f"{site}/lifecycle", "lifecycle", args.lifecycles)
            lifecycles(broker, api, f"{site}/typical", "typical", args.lifecycles)
        if args.only == "lifecycle":
            return
        playwright = playwright_driver()
        sessions = {recorded: api.create_session(recording=recorded) for recorded in (False, True)}
        browsers = {k: playwright.chromium.connect_over_cdp(s["cdpUrl"]) for k, s in sessions.items()}
        pages = {k: b.contexts[0].pages[0] for k, b in browsers.items()}
        if args.only in (None, "loads"):
            page_loads(pages, site, args.loads)
        busy = busy_pages(broker, sessions, pages, site, args.seconds) if args.only in (None, "busy") else 0
        for browser in browsers.values():
            browser.close()
        for session in sessions.values():
            api.stop_session(session["id"])
        recording_id = sessions[True]["id"]
        chunks = broker.store().recordings.chunks(recording_id)
        stored = sum(c["bytes"] for c in chunks)
        body = api.get(f"/v1/sessions/{recording_id}/recording").content
        print(f"recording: {len(chunks)} chunks, {sum(c['events'] for c in chunks)} events, {stored} bytes stored "
              f"(gzip), {len(body)} bytes of JSON; the busy page: {busy} bytes stored in {args.seconds:.0f} s, "
              f"{busy * 60 / args.seconds / 1024:.0f} KiB per minute")
    server.shutdown()


if __name__ == "__main__":
    main()
