"""What every launcher shares: the interface the pool calls, the browser's user and environment, and the
rule that a browser is only handed out after it answered a real CDP call."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from collections.abc import Mapping
from typing import Protocol

from core.cdp import CdpConnection, CdpError
from core.config import Config, browser_environment
from core.files import DOWNLOADS, UPLOADS
from tasks.browser_users import BrowserUser, BrowserUsers
from tasks.chromium_flags import sandbox_flags
from tasks.running_browser import POLL, RunningBrowser, session_temp_dir

log = logging.getLogger(__name__)


class LaunchError(RuntimeError):
    pass


class Launcher(Protocol):
    def start(self, profile_dir: Path, flags: list[str], timeout: float, env: Mapping[str, str]) -> RunningBrowser:
        ...

    def stop(self, browser: RunningBrowser) -> None: ...


class BaseLauncher:
    """A launcher starts and ends Chromium's processes; which flags they get is tasks/chromium_flags.py's."""

    def __init__(self, config: Config, users: BrowserUsers, sandbox: bool) -> None:
        self.config = config
        self.users = users
        self.sandbox = sandbox

    def _flags(self, flags: list[str]) -> list[str]:
        return sandbox_flags(flags, self.sandbox)


def child_env(profile_dir: Path, user: BrowserUser, extra: Mapping[str, str]) -> dict[str, str]:
    """The profile and the temp dir become the user's; the temp dir is its HOME too, so nothing lands elsewhere.

    The temp dir holds the session's download and upload folders (core/files.py): the user's, and deleted with it.
    ``extra`` is what the session's options set process-wide (its time zone and language), which no flag can.
    """
    temp = session_temp_dir(profile_dir)
    temp.mkdir(exist_ok=True)
    for folder in (DOWNLOADS, UPLOADS):
        (temp / folder).mkdir(exist_ok=True)
    user.take(profile_dir, temp)
    return {**browser_environment(), **extra, "TMPDIR": str(temp), "HOME": str(temp)}


def hand_back(profile_dir: Path, user: BrowserUser) -> None:
    """Once the browser's process tree has ended: nothing left running as its user, its folders
    out of that user's reach, then the user free for another browser."""
    strays = user.end_strays()
    if strays:
        log.warning("%s: ended %d process(es) still running as it after its browser's process tree had ended "
                    "(children started during the stop, or processes that left the tree)", user.name, len(strays))
    user.give_back(profile_dir, session_temp_dir(profile_dir))
    user.release()


def wait_for_cdp(browser: RunningBrowser, deadline: float) -> None:
    """The port file appears ~85 ms before the socket takes a handshake: ask until Chromium answers."""
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with CdpConnection(browser.ws_url(), timeout=max(0.5, deadline - time.monotonic())) as conn:
                version = conn.call("Browser.getVersion")
            browser.version = version.get("product", "")
            browser.user_agent = version.get("userAgent", "")
            browser.js_version = version.get("jsVersion", "")
            browser.revision = version.get("revision", "")
            return
        except (OSError, CdpError) as error:
            last_error = error
            time.sleep(POLL)
    raise LaunchError(f"Chromium did not answer CDP in time: {last_error}")
