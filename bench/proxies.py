"""What a session's forwarder costs: request latency and tunnel throughput, with and without it, on 127.0.0.1.

    .venv/bin/python -m bench.proxies

Three paths to one local page server, each measured the same way:
``upstream``  the client speaks to the pproxy upstream itself, credentials included (what a browser could do if
              ``--proxy-server`` carried credentials); ``forwarder`` through the broker's forwarder (tasks/forwarder.py,
              in this process, as in a worker) and on to the same upstream; ``direct`` the page server, no proxy.
Latency is one plain-HTTP GET on a new connection (as the forwarder serves them), sequential; throughput is one
large download through a CONNECT tunnel. Also the time to start and stop a forwarder.

Measured here (2 cores, shared): forwarder start 0.3 ms and stop 0.2 ms (p50); a GET on a new connection
0.5 ms direct, 1.3 ms via the upstream, 2.8 ms via forwarder and upstream (p50; the forwarder adds ~1.5 ms, one
more loopback hop and connection); 64 MiB through a tunnel 428 MiB/s via the upstream, 424 MiB/s via the
forwarder too (the upstream, pproxy, is the ceiling here, not the forwarder).
"""
from __future__ import annotations

import base64
import socket
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from core.proxy_address import ProxyAddress
from core.upstream import Upstream
from bench.common import summary
from tasks.forwarder import Forwarders
from tests.support.upstreams import HttpUpstream

REQUESTS = 300
BIG = 64 * 2**20
USER, PASSWORD = "bench", "bench-password"


class _Pages(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        size = BIG if self.path == "/big" else 64
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        block = b"x" * 65536
        left = size
        while left:
            self.wfile.write(block[: min(left, len(block))])
            left -= min(left, len(block))


def _receive_all(sock: socket.socket) -> int:
    total = 0
    while data := sock.recv(1 << 20):
        total += len(data)
    return total


def _get(proxy_port: int | None, origin: str, auth: bool) -> None:
    port = proxy_port or int(origin.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        target = f"http://{origin}/small" if proxy_port else "/small"
        extra = f"Proxy-Authorization: Basic {base64.b64encode(f'{USER}:{PASSWORD}'.encode()).decode()}\r\n" if auth else ""
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {origin}\r\n{extra}Connection: close\r\n\r\n".encode())
        assert _receive_all(sock) > 64


def _download(proxy_port: int, origin: str, auth: bool) -> float:
    with socket.create_connection(("127.0.0.1", proxy_port)) as sock:
        extra = f"Proxy-Authorization: Basic {base64.b64encode(f'{USER}:{PASSWORD}'.encode()).decode()}\r\n" if auth else ""
        sock.sendall(f"CONNECT {origin} HTTP/1.1\r\nHost: {origin}\r\n{extra}\r\n".encode())
        assert b" 200 " in sock.recv(4096)
        started = time.perf_counter()
        sock.sendall(f"GET /big HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n".encode())
        assert _receive_all(sock) >= BIG
        return BIG / 2**20 / (time.perf_counter() - started)


def main() -> None:
    pages = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    origin = f"127.0.0.1:{pages.server_address[1]}"
    logs = tempfile.TemporaryDirectory(prefix="bb-bench-")
    upstream = HttpUpstream(Path(logs.name), "bench", USER, PASSWORD).start()
    forwarders = Forwarders(connect_timeout=5)
    try:
        starts, stops = [], []
        for i in range(50):
            began = time.perf_counter()
            forwarders.start(f"ses_bench{i}", Upstream(ProxyAddress.parse(upstream.server), USER, PASSWORD))
            starts.append(time.perf_counter() - began)
            began = time.perf_counter()
            forwarders.stop(f"ses_bench{i}")
            stops.append(time.perf_counter() - began)
        print(f"forwarder start: {summary(starts)}")
        print(f"forwarder stop:  {summary(stops)}")

        url = forwarders.start("ses_bench", Upstream(ProxyAddress.parse(upstream.server), USER, PASSWORD))
        forwarder_port = int(url.rsplit(":", 1)[1])
        paths = {"direct": (None, False), "upstream": (upstream.port, True), "forwarder": (forwarder_port, False)}
        for name, (port, auth) in paths.items():
            _get(port, origin, auth)
            times = []
            for _ in range(REQUESTS):
                began = time.perf_counter()
                _get(port, origin, auth)
                times.append(time.perf_counter() - began)
            print(f"GET, new connection, {name:9}: {summary(times)}")
        for name, (port, auth) in paths.items():
            if port:
                rates = [_download(port, origin, auth) for _ in range(3)]
                print(f"64 MiB through a CONNECT tunnel, {name:9}: {max(rates):.0f} MiB/s best of 3")
    finally:
        forwarders.stop_all()
        upstream.stop()
        pages.shutdown()
        logs.cleanup()


if __name__ == "__main__":
    main()
