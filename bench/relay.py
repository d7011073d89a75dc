"""The relay's CDP round trip against the browser's own socket, and against the least a relay in Python can add
(issue 26 item 4).

    PYTHONPATH=. .venv/bin/python bench/relay.py [--n 3000] [--expression 1]

One session on a real broker (one worker, the defaults); one tab, attached from five sockets at once: Chromium's own
(direct), the broker's relay (the web process), and three pumps, each a process of its own at the relay pumps'
niceness: two bare byte pumps that forward TCP bytes between the client and Chromium with nothing else (no WebSocket
framing, no CDP rules), one on two OS threads per connection (what the relay's pumps are), one on greenlets; and the
relay's own code (proxy.relay.RelayConnection, its frame tracking and CDP rules) in a gevent process with nothing
else in it (no WSGI server, no Redis, no registry). ``Runtime.evaluate`` calls go to the five in turn, one at a
time, each round in another order, so the machine's noise falls on all alike. Prints p50/p95 per side, each ÷
direct, and the load average. Nothing is asserted.

The bare thread pump is the floor: whatever it adds to a round trip (two more trips over loopback, two more
wake-ups of a process) any relay between two sockets adds; the relay's code alone shows what its frames and rules
add to that, and the broker's relay what the web process around it adds.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
from urllib.parse import urlsplit, urlunsplit

from proxy.relay import BUFFER_SIZE, PUMP_NICENESS, RelayConnection, detach

WARMUP = 300
MODES = ("threads", "gevent", "relay code")
END_OF_HEADERS = b"\r\n\r\n"


def copy(source: socket.socket, target: socket.socket) -> None:
    """One direction of a bare pump: read what came, write it on, until the source ends."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, PUMP_NICENESS)
    except OSError:
        pass
    buffer = bytearray(BUFFER_SIZE)
    view = memoryview(buffer)
    try:
        while size := source.recv_into(buffer):
            target.sendall(view[:size])
    except OSError:
        pass
    try:
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def headers(source: socket.socket, target: socket.socket) -> None:
    """The upgrade request or its answer, passed on whole (neither has a body)."""
    data = b""
    while END_OF_HEADERS not in data:
        data += source.recv(4096)
    target.sendall(data)


def relay_code(client: socket.socket, browser: socket.socket) -> None:
    """The upgrade passed through as it is, then the relay's own connection class splices, as in the web process."""
    headers(client, browser)
    headers(browser, client)
    RelayConnection("bench", "bench", detach(client), detach(browser), ping_interval=30.0).run()


def serve_pump(mode: str, host: str, port: int) -> None:
    """Runs in a process of its own: accepts on a free port (printed), pumps each connection to ``host:port``."""
    if mode != "threads":
        from gevent import monkey

        monkey.patch_all()
        import gevent
    server = socket.create_server(("127.0.0.1", 0))
    print(server.getsockname()[1], flush=True)
    while True:
        client, _ = server.accept()
        browser = socket.create_connection((host, port))
        for sock in (client, browser):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if mode == "relay code":
            gevent.spawn(relay_code, client, browser)
            continue
        threading.Thread(target=copy, args=(client, browser), daemon=True).start()
        threading.Thread(target=copy, args=(browser, client), daemon=True).start()


def start_pump(mode: str, direct_url: str) -> tuple[subprocess.Popen, str]:
    """A bare pump in front of Chromium's socket; the process and the URL that reaches Chromium through it."""
    parts = urlsplit(direct_url)
    process = subprocess.Popen([sys.executable, "-m", "bench.relay", "--pump", mode, "--to", parts.netloc],
                               stdout=subprocess.PIPE, text=True)
    port = int(process.stdout.readline())
    return process, urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))


def measure(n: int, expression: str) -> None:
    from bench.common import evaluate_round_trip, pct, running_broker
    from tests.support.cdp import RawCdp

    print(f"start: load average {os.getloadavg()[0]:.1f}", flush=True)
    pumps: list[subprocess.Popen] = []
    with running_broker() as (broker, api):
        session = api.create_session()
        direct_url = broker.store().sessions.get(session["id"])["browserWsUrl"]
        urls = {"direct": direct_url, "relay": session["cdpUrl"]}
        for mode in MODES:
            process, urls[f"pump, {mode}"] = start_pump(mode, direct_url)
            pumps.append(process)
        try:
            sides = {name: RawCdp(url) for name, url in urls.items()}
            target = sides["direct"].call("Target.createTarget", {"url": "about:blank"})["targetId"]
            pages = {name: cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
                     for name, cdp in sides.items()}
            names = list(sides)
            times: dict[str, list[float]] = {name: [] for name in names}
            for i in range(n + WARMUP):
                shift = i % len(names)
                for name in names[shift:] + names[:shift]:
                    took = evaluate_round_trip(sides[name], pages[name], 1000 + i, expression)
                    if i >= WARMUP:
                        times[name].append(took)
            for cdp in sides.values():
                cdp.close()
        finally:
            for process in pumps:
                process.kill()
                process.wait()
        api.stop_session(session["id"])
    direct50, direct95 = pct(times["direct"], 50), pct(times["direct"], 95)
    for name in names:
        p50, p95 = pct(times[name], 50), pct(times[name], 95)
        print(f"  {name:<14} p50 {p50 * 1e6:6.0f} µs  p95 {p95 * 1e6:6.0f} µs   ÷ direct: p50 {p50 / direct50:4.2f}×"
              f"  p95 {p95 / direct95:4.2f}×   added at p50 {(p50 - direct50) * 1e6:4.0f} µs  (n={len(times[name])})")
    print(f"end: load average {os.getloadavg()[0]:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000, help="round trips per side")
    parser.add_argument("--expression", default="1")
    parser.add_argument("--pump", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--to", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pump:
        host, port = args.to.rsplit(":", 1)
        serve_pump(args.pump, host, int(port))
    else:
        measure(args.n, args.expression)


if __name__ == "__main__":
    main()
