"""The ``selenium`` launcher (the default): ChromeDriver starts the browser, as the design asks, through Selenium.

ChromeDriver runs as the browser's user too, and only until the browser answers: it is then ended
(``detach``: the browser outlives it), because a ChromeDriver left listening on loopback takes
``POST /session`` from anyone, ``goog:chromeOptions.binary`` (any program) and ``debuggerAddress``
(any browser) included.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from tasks.chromium_flags import start_on_blank
from tasks.launchers.base import BaseLauncher, LaunchError, child_env, hand_back, wait_for_cdp
from tasks.running_browser import (EXIT_GRACE, RunningBrowser, close_browser, end_processes, own_processes,
                                  process_tree)

log = logging.getLogger(__name__)

#: ChromeDriver starts tried before a launch fails, when it exits at once (DRIVER_EXITED in Selenium's message).
DRIVER_START_ATTEMPTS = 3
DRIVER_EXITED = "unexpectedly exited"


class SeleniumLauncher(BaseLauncher):
    def start(self, profile_dir: Path, flags: list[str], timeout: float, env: Mapping[str, str]) -> RunningBrowser:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service

        deadline = time.monotonic() + timeout
        start_on_blank(profile_dir)
        options = webdriver.ChromeOptions()
        options.binary_location = self.config.chromium.path
        for flag in [*self._flags(flags), f"--user-data-dir={profile_dir}"]:
            options.add_argument(flag)
        # Without this ChromeDriver sets navigator.webdriver, which sites read as a bot.
        options.add_experimental_option("excludeSwitches", ["enable-automation"])
        # The browser outlives ChromeDriver, which is ended below once the browser answers.
        options.add_experimental_option("detach", True)
        user = self.users.acquire()
        service = None
        main: psutil.Process | None = None
        try:
            # An executable path means Selenium Manager is never run, so nothing is downloaded.
            # A session of its own, as with the direct launcher: a signal to the worker's process group
            # (a process manager, a terminal's Ctrl-C) must not kill browsers before their stop flow has run.
            for attempt in range(1, DRIVER_START_ATTEMPTS + 1):
                service = Service(
                    executable_path=self.config.chromium.chromedriver_path, log_output=subprocess.DEVNULL,
                    env=child_env(profile_dir, user, env), popen_kw={"start_new_session": True, **user.popen_kwargs()},
                )
                try:
                    driver = webdriver.Chrome(service=service, options=options)
                    break
                except WebDriverException as error:
                    # Selenium picks ChromeDriver's port by binding port 0 and letting it go: another socket
                    # (a forwarder of this worker, any process on the host) can take it before ChromeDriver
                    # binds it, and ChromeDriver then exits at once. A new port is another try.
                    if DRIVER_EXITED not in (error.msg or "") or attempt == DRIVER_START_ATTEMPTS:
                        raise LaunchError(f"ChromeDriver could not start Chromium: {error.msg}") from error
                    log.warning("ChromeDriver exited at start (its port taken meanwhile?); trying another port")
            address = driver.capabilities["goog:chromeOptions"]["debuggerAddress"]
            port = int(address.rsplit(":", 1)[1])
            main = _browser_process(service.process.pid)
            if main is None:
                raise LaunchError("ChromeDriver reported a browser that is not its child")
            _end_driver(service)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=5) as answer:
                ws_url = json.load(answer)["webSocketDebuggerUrl"]
            path = ws_url[ws_url.index("/devtools/"):]
            browser = RunningBrowser(profile_dir, port, path, [main.pid], None, user, os.getpgid(main.pid), main)
            wait_for_cdp(browser, deadline)
            return browser
        except BaseException:
            # Service has no ``process`` until ChromeDriver was started.
            roots = [p.pid for p in (getattr(service, "process", None), main) if p is not None]
            end_processes(process_tree(own_processes(roots)), grace=0)
            hand_back(profile_dir, user)
            raise

    def stop(self, browser: RunningBrowser) -> None:
        close_browser(browser)
        hand_back(browser.profile_dir, browser.user)


def _browser_process(driver_pid: int) -> psutil.Process | None:
    """The Chromium that ChromeDriver started: its child whose command line holds the debugging port."""
    try:
        children = psutil.Process(driver_pid).children()
    except psutil.NoSuchProcess:
        return None
    for child in children:
        try:
            if any(arg.startswith("--remote-debugging-port") for arg in child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def _end_driver(service: Any) -> None:
    """ChromeDriver killed outright: nothing of it is needed once the browser runs, and ``detach`` keeps the
    browser alive (checked: the browser answers /json/version after ChromeDriver's exit)."""
    service.process.kill()
    service.process.wait(EXIT_GRACE)
