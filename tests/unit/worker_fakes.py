"""What the in-process worker tests (test_worker_*.py) put in Chromium's place.

A fake browser is a real process (``sleep``), so ending it, killing it and finding it after a crash of the worker
are real; its debugger is one shared server (:class:`FakeDevTools`) that answers every CDP command the worker sends
(readiness and warm checks, download guards) and serves ``/json/protocol``. Everything else is the worker's own
code: the pool, the warm keeper, the intake, the forwarders, the session flows and the housekeeping.
"""
from __future__ import annotations

import asyncio
import json
import os
import pwd
import subprocess
import threading
import time
from dataclasses import dataclass
from collections.abc import Mapping
from pathlib import Path

import psutil
import tornado.netutil
import tornado.web
import tornado.websocket

from core.files import DOWNLOADS, UPLOADS
from tasks.browser_users import BrowserUser
from tasks.running_browser import RunningBrowser, session_temp_dir

VERSION = "FakeChrome/1.0"


class FakeDevTools:
    """One loopback HTTP and WebSocket server on a thread of its own; ``commands`` lists every CDP method called."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-devtools", daemon=True)
        self._thread.start()
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        devtools = self

        class Debugger(tornado.websocket.WebSocketHandler):
            def check_origin(self, origin: str) -> bool:
                return True

            def on_message(self, message: str | bytes) -> None:
                command = json.loads(message)
                devtools.commands.append(command["method"])
                result = {"product": VERSION, "userAgent": "Fake", "jsVersion": "1", "revision": "1"} \
                    if command["method"] == "Browser.getVersion" else {}
                answer = {"id": command["id"], "result": result}
                if "sessionId" in command:
                    answer["sessionId"] = command["sessionId"]
                self.write_message(json.dumps(answer))

        class Protocol(tornado.web.RequestHandler):
            def get(self) -> None:
                self.write({"domains": []})

        async def listen() -> tornado.httpserver.HTTPServer:
            server = tornado.web.Application([(r"/devtools/browser/.*", Debugger), (r"/json/protocol", Protocol)])
            http = tornado.httpserver.HTTPServer(server)
            http.add_sockets(sockets)
            return http

        self._server = asyncio.run_coroutine_threadsafe(listen(), self._loop).result(10)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._server.stop)
        self._loop.call_soon_threadsafe(self._loop.stop)


class LaunchRefused(RuntimeError):
    pass


@dataclass
class FakeUsers:
    """Browsers as the worker's own user: one user for all, as on a worker that is not root."""

    switching: bool = False

    def describe(self) -> str:
        return "as the worker's own user (fake)"


class FakeLauncher:
    """Starts a ``sleep`` per browser, in a session of its own as the real launchers do; ``refuse`` fails the next
    launches."""

    def __init__(self, devtools: FakeDevTools) -> None:
        self.devtools = devtools
        self.started: list[RunningBrowser] = []
        self.stopped: list[RunningBrowser] = []
        self.refuse = False
        self._lock = threading.Lock()

    def start(self, profile_dir: Path, flags: list[str], timeout: float, env: Mapping[str, str]) -> RunningBrowser:
        if self.refuse:
            raise LaunchRefused("this fake launcher refuses to start browsers")
        temp = session_temp_dir(profile_dir)
        for folder in (DOWNLOADS, UPLOADS):
            (temp / folder).mkdir(parents=True, exist_ok=True)
        user = pwd.getpwuid(os.geteuid())
        process = subprocess.Popen(["sleep", "600"], start_new_session=True)
        browser = RunningBrowser(profile_dir, self.devtools.port, f"/devtools/browser/{profile_dir.name}",
                                 [process.pid], process, BrowserUser(user.pw_name, user.pw_uid, user.pw_gid),
                                 process.pid, psutil.Process(process.pid), version=VERSION)
        with self._lock:
            self.started.append(browser)
        return browser

    def stop(self, browser: RunningBrowser) -> None:
        browser.handle.kill()
        browser.handle.wait(5)
        with self._lock:
            self.stopped.append(browser)

    def alive(self) -> list[RunningBrowser]:
        """Browsers whose process still runs."""
        return [browser for browser in self.started if browser.handle.poll() is None]


def slow_log_writes(worker, monkeypatch, seconds: float = 0.3) -> None:
    """Every write of a session's event log (core.store.session_events) takes ``seconds``: the watch's writer thread
    then lags well behind the launch it logs."""
    write = worker.store.session_events.add

    def slow_write(*args, **kwargs):
        time.sleep(seconds)
        return write(*args, **kwargs)

    monkeypatch.setattr(worker.store.session_events, "add", slow_write)
