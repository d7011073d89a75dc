"""How one Chromium is started and ended: two launchers behind one interface (base.py), chosen by BROKER_LAUNCHER.

``selenium`` (chromedriver.py, the default) lets ChromeDriver start the browser and ends ChromeDriver once
the browser answers; ``direct`` (direct.py) starts Chromium itself. Either way the browser gets the flags
of tasks/chromium_flags.py, is only handed out after it answered a real CDP call, runs as a user of its
own (tasks/browser_users.py), and has Chromium's sandbox unless the worker found at start that this host
cannot give it one (tasks/confinement.py).
"""
from __future__ import annotations

from core.config import Config
from tasks.browser_users import BrowserUsers
from tasks.launchers.base import BaseLauncher, Launcher
from tasks.launchers.chromedriver import SeleniumLauncher
from tasks.launchers.direct import DirectLauncher

LAUNCHERS: dict[str, type[BaseLauncher]] = {"selenium": SeleniumLauncher, "direct": DirectLauncher}


def make_launcher(config: Config, users: BrowserUsers, sandbox: bool) -> Launcher:
    try:
        return LAUNCHERS[config.chromium.launcher](config, users, sandbox)
    except KeyError:
        raise ValueError(f"BROKER_LAUNCHER must be one of {', '.join(LAUNCHERS)}, not {config.chromium.launcher!r}") from None
