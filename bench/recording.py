"""Prints what recording a session costs: page loads with and without it, the browser's CPU on a busy page, and
the recording's bytes per minute.

    PYTHONPATH=. .venv/bin/python -m bench.recording [--loads 30] [--seconds 30]

A real broker (direct launcher, one worker) on 127.0.0.1 and a page server of its own. Loads: Playwright through
the cdpUrl navigates a "typical" page (a few hundred elements, a stylesheet, a script) ``--loads`` times in each of
two sessions, one recorded and one not, alternating page by page so the shared machine's noise falls on both; each
figure is ``page.goto`` to the load event. Busy page: the same page with a feed that adds a row and a ticking clock
every 200 ms and a script scrolling and moving the mouse, for ``--seconds`` in each session, one after the other:
CPU seconds of the session's browser processes, and the recording's size (gzipped in the store, and raw).
Nothing is asserted.
"""
from __future__ import annotations

import argparse
import http.server
import threading
import time
from urllib.parse import urlsplit

import psutil

from bench.common import running_broker, summary
from tasks.session_watch import CHUNK_SECONDS
from tests.support.browsing import playwright_driver

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


#: Milliseconds the page's load event handlers took (rrweb takes its first full snapshot in one).
LOAD_HANDLERS = ("(({loadEventStart, loadEventEnd}) => loadEventEnd - loadEventStart)"
                 "(performance.getEntriesByType('navigation')[0])")


class _Pages(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        data = PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def browser_cpu(broker, session_id: str) -> float:
    """CPU seconds so far of the session's browser: the process listening on its debugging port (from the
    session's record) and every process under it."""
    port = urlsplit(broker.store().sessions.get(session_id)["browserWsUrl"]).port
    main = next(psutil.Process(c.pid) for c in psutil.net_connections("tcp")
                if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN)
    total = 0.0
    for member in [main, *main.children(recursive=True)]:
        try:
            times = member.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loads", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    site = f"http://127.0.0.1:{server.server_address[1]}"
    with running_broker(BROKER_LAUNCHER="direct") as (broker, api):
        playwright = playwright_driver()
        sessions = {recorded: api.create_session(recording=recorded) for recorded in (False, True)}
        browsers = {k: playwright.chromium.connect_over_cdp(s["cdpUrl"]) for k, s in sessions.items()}
        pages = {k: b.contexts[0].pages[0] for k, b in browsers.items()}
        loads: dict[bool, list[float]] = {False: [], True: []}
        handlers: dict[bool, list[float]] = {False: [], True: []}
        for page in pages.values():
            page.goto(f"{site}/warmup")
        for i in range(args.loads):
            for recorded in ((False, True) if i % 2 else (True, False)):
                started = time.perf_counter()
                pages[recorded].goto(f"{site}/typical?{i}")
                loads[recorded].append(time.perf_counter() - started)
                handlers[recorded].append(pages[recorded].evaluate(LOAD_HANDLERS) / 1000)
        print(f"page load, not recorded: {summary(loads[False])}")
        print(f"page load, recorded:     {summary(loads[True])}")
        print(f"load event handlers, not recorded: {summary(handlers[False])}")
        print(f"load event handlers, recorded:     {summary(handlers[True])} (rrweb's first snapshot runs here)")

        recording_id = sessions[True]["id"]
        stored_before_busy = 0
        for recorded, page in pages.items():
            page.goto(f"{site}/typical?busy")
            if recorded:
                time.sleep(CHUNK_SECONDS + 1)
                stored_before_busy = sum(c["bytes"] for c in broker.store().recordings.chunks(recording_id))
            before = browser_cpu(broker, sessions[recorded]["id"])
            deadline = time.monotonic() + args.seconds
            step = 0
            while time.monotonic() < deadline:
                step += 1
                page.mouse.move(100 + step % 400, 200 + step % 300)
                page.mouse.wheel(0, 40 if step % 20 < 10 else -40)
                time.sleep(0.05)
            cpu = browser_cpu(broker, sessions[recorded]["id"]) - before
            print(f"busy page, {'recorded' if recorded else 'not recorded'}: browser CPU {cpu:.2f} s in "
                  f"{args.seconds:.0f} s ({100 * cpu / args.seconds:.0f} % of a core)")
        for browser in browsers.values():
            browser.close()
        for session in sessions.values():
            api.stop_session(session["id"])
        chunks = broker.store().recordings.chunks(recording_id)
        stored = sum(c["bytes"] for c in chunks)
        busy = stored - stored_before_busy
        body = api.get(f"/v1/sessions/{recording_id}/recording").content
        print(f"recording: {len(chunks)} chunks, {sum(c['events'] for c in chunks)} events, {stored} bytes stored "
              f"(gzip), {len(body)} bytes of JSON; the busy page: {busy} bytes stored in "
              f"{args.seconds:.0f} s, {busy * 60 / args.seconds / 1024:.0f} KiB per minute")
    server.shutdown()


if __name__ == "__main__":
    main()
