"""Real upstream proxies on 127.0.0.1 for the proxy tests, each counting what it let through in its own log.

Both are pproxy (a maintained-enough proxy server on PyPI; the broker itself does
not use it): an HTTP proxy with Basic auth and a SOCKS5 server with a user and
password. ``-v`` logs one line per connection it lets through and one per refused
login; ``--auth 0`` makes it check the credentials on every connection (by
default it trusts an address for 30 days after one good login). proxy.py is not
used: its top-level package is named ``proxy`` and would shadow the broker's own.

Both are started and ended by PID, their whole process tree with them.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import psutil

from tests.support.processes import RUN_ID, RUN_MARK, free_port, wait_until

#: pproxy -v: ``http 127.0.0.1:51514 -> 127.0.0.1:8080`` for each connection it lets through.
LET_THROUGH = re.compile(r"^(?:http|socks5) \S+ -> (\S+)$")


class _Upstream:
    scheme = ""

    def __init__(self, workdir: Path, name: str, username: str, password: str) -> None:
        if "__" in username + password:
            # pproxy's -l splits its URI into a chain of jumps at "__": such a password ends it at start.
            raise ValueError("pproxy cannot take '__' in a username or password; use secrets.token_hex")
        self.username = username
        self.password = password
        self.log_path = workdir / f"upstream-{name}.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def server(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def _spawn(self, args: list[str]) -> None:
        log = open(self.log_path, "ab")
        env = {**os.environ, RUN_MARK: RUN_ID}
        self.proc = subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT, env=env)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        procs = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        for proc in procs:
            try:
                proc.terminate()
            except psutil.NoSuchProcess:
                continue
        _, alive = psutil.wait_procs(procs, timeout=10)
        for proc in alive:
            proc.kill()
        psutil.wait_procs(alive, timeout=5)


class PproxyUpstream(_Upstream):
    """pproxy serving ``scheme`` with a user and password, checked on every connection."""

    def start(self) -> PproxyUpstream:
        """On a free port; again on another if pproxy exits first (the port was taken between our pick and its bind:
        a CI run lost a whole module's upstream that way, waiting 90 s on a pproxy that had gone)."""
        for _ in range(3):
            self.port = free_port()
            self._spawn(["pproxy", "-l", f"{self.scheme}://127.0.0.1:{self.port}#{self.username}:{self.password}",
                         "--auth", "0", "-v"])
            # Its import takes seconds on a loaded machine.
            wait_until(lambda: self._answers() or self.proc.poll() is not None, 90, message=f"pproxy ({self.scheme})")
            if self.proc.poll() is None:
                return self
        raise RuntimeError(f"pproxy ({self.scheme}) exited at start three times: {self.log_text()[-2000:]}")

    def targets(self) -> list[str]:
        """``host:port`` of every connection it let through to a destination, in order."""
        return [m.group(1) for m in map(LET_THROUGH.match, self.log_text().splitlines()) if m]

    def refusals(self) -> int:
        return sum("Unauthorized" in line for line in self.log_text().splitlines())


class HttpUpstream(PproxyUpstream):
    scheme = "http"


class SocksUpstream(PproxyUpstream):
    scheme = "socks5"
