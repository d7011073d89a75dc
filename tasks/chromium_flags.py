"""What every Chromium is started with, and why: its command line and its profile's startup preferences.

The only module that knows Chromium's flags; the launchers (tasks/launchers/) add nothing but the
profile folder, the debugging port and, where the worker found no usable sandbox, ``--no-sandbox``.
No flag lets the debugger take a socket that carries an ``Origin`` (no ``--remote-allow-origins``):
a page's WebSocket always does, the relay's and the worker's never.
"""
from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path

from core.config import Config
from core.files import DOWNLOADS
from tasks.running_browser import session_temp_dir

#: Every browser gets these: the first group keeps Chromium off the network at start, the second keeps background
#: tabs as fast as the front one (a tab behind a newer one took ~3.5 s per screenshot without them).
BASE_FLAGS: tuple[str, ...] = (
    "--headless=new",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--password-store=basic",
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-crash-reporter",
    "--disable-breakpad",
    "--no-default-browser-check",
    # navigator.webdriver stays false, as in a browser a person drives.
    "--disable-blink-features=AutomationControlled",
)
#: Only when the worker found no usable sandbox (or was told so): logged at its start.
NO_SANDBOX_FLAG = "--no-sandbox"
#: Features every browser starts with off; a later ``--enable-features`` naming one (the extra-flags
#: setting) turns it back on.
DISABLED_FEATURES: tuple[str, ...] = (
    # Headless Chromium 156 still builds the omnibox popups as hidden WebUI targets that CDP lists
    # (often as ``page``): a client's ``pages()`` would show them beside the one real tab.
    "WebUIOmniboxPopup",
    "WebUIOmniboxAimPopup",
)
#: Features every browser starts with on (likewise undone by a later ``--disable-features``).
#: Measured (bench/density.py) and kept only what kept the suite green and cost no speed: Chromium's
#: spare renderer stays (off, it saved ~8 MiB per idle session but a new tab's first load took ~60 %
#: longer).
ENABLED_FEATURES: tuple[str, ...] = (
    # The network service on a browser thread, not in a process of its own: ~16 MiB less per browser.
    "NetworkServiceInProcess2",
)
DISABLE_FEATURES = "--disable-features="
ENABLE_FEATURES = "--enable-features="
FIRST_TAB = "about:blank"
#: Chromium's "open these pages at startup" (4) with the one page every browser starts on.
STARTUP_PREFS = {"restore_on_startup": 4, "startup_urls": [FIRST_TAB]}


def browser_flags(config: Config, extra: list[str] | None = None) -> list[str]:
    """Chromium honours only the last ``--enable-features`` and ``--disable-features``, so all are merged.

    Per feature the last flag naming it wins, so the extra-flags setting can undo a default.
    """
    features = {name: False for name in DISABLED_FEATURES} | {name: True for name in ENABLED_FEATURES}
    flags = []
    for flag in [*BASE_FLAGS, *user_agent_flags(config), *config.chromium.extra_flags, *(extra or [])]:
        for prefix, enabled in ((ENABLE_FEATURES, True), (DISABLE_FEATURES, False)):
            if flag.startswith(prefix):
                features.update((name, enabled) for name in flag[len(prefix):].split(",") if name)
                break
        else:
            flags.append(flag)
    for prefix, enabled in ((ENABLE_FEATURES, True), (DISABLE_FEATURES, False)):
        names = [name for name, on in features.items() if on is enabled]
        if names:
            flags.append(prefix + ",".join(names))
    return flags


def user_agent_flags(config: Config) -> list[str]:
    """Chromium's own user agent without ``HeadlessChrome``, for the whole browser: shared and service workers
    belong to no page, so no page's CDP override reaches them (tasks/browser_options.py sets the client hints)."""
    if config.sessions.headless_user_agent == "keep":
        return []
    return [f"--user-agent={chrome_user_agent(config.chromium.path)}"]


@functools.cache
def chrome_user_agent(chromium: str) -> str:
    """Chromium's reduced user agent (the same platform and zeroed minor versions on every Linux), as headless
    Chromium gives it with ``Chrome`` in place of ``HeadlessChrome``; the major version from the binary itself."""
    shown = subprocess.run([chromium, "--version"], capture_output=True, text=True, timeout=30).stdout
    found = re.search(r"(\d+)\.\d+\.\d+\.\d+", shown)
    if found is None:
        raise RuntimeError(f"{chromium} --version gave no version: {shown!r}")
    return (f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{found.group(1)}.0.0.0 "
            "Safari/537.36")


def sandbox_flags(flags: list[str], sandbox: bool) -> list[str]:
    """Chromium's sandbox is on unless told otherwise: off only where the worker's start check found none."""
    return flags if sandbox else [*flags, NO_SANDBOX_FLAG]


def extension_flags(folders: list[Path]) -> list[str]:
    """These unpacked extensions and no other. Debian's Chromium 156 still takes ``--load-extension`` in
    ``--headless=new`` (Google's branded Chrome dropped it); CDP's ``Extensions.loadUnpacked`` would need
    ``--remote-debugging-pipe``, which the broker's debugger socket is not."""
    paths = ",".join(str(folder) for folder in folders)
    return [f"--load-extension={paths}", f"--disable-extensions-except={paths}"]


def locale_flags(locale: str) -> list[str]:
    """``navigator.language(s)`` and ``Accept-Language``: the tag, then its language alone (Chromium adds the
    q-values: ``fr-FR,fr`` is sent as ``fr-FR,fr;q=0.9``)."""
    accept = f"{locale},{locale.split('-')[0]}" if "-" in locale else locale
    return [f"--lang={locale}", f"--accept-lang={accept}"]


def proxy_flags(proxy_url: str) -> list[str]:
    """Every request through ``proxy_url``, loopback included, and no WebRTC UDP around it.

    Chromium bypasses a proxy for localhost and 127.0.0.1 unless ``<-loopback>``
    removes that implicit rule; WebRTC would otherwise send UDP (and reveal the
    machine's addresses) outside the proxy.
    """
    return [
        f"--proxy-server={proxy_url}",
        "--proxy-bypass-list=<-loopback>",
        "--webrtc-ip-handling-policy=disable_non_proxied_udp",
        "--force-webrtc-ip-handling-policy",
    ]


def start_on_blank(profile_dir: Path) -> None:
    """Make the profile open exactly one ``about:blank`` tab, whoever starts Chromium, and download into the session's folder.

    Started by ChromeDriver (which passes no URL), Chromium otherwise opens
    ``chrome://new-tab-page-third-party/``, which looks hosts up, and Playwright's
    ``connect_over_cdp`` waits for that tab (seen: seconds). The preference is
    merged into a restored context's own Preferences, never replacing them.
    """
    prefs_file = profile_dir / "Default" / "Preferences"
    try:
        prefs = json.loads(prefs_file.read_text())
    except (OSError, ValueError):
        prefs = {}
    prefs["session"] = {**prefs.get("session", {}), **STARTUP_PREFS}
    # Downloads of the default browser context go to the session's folder with no CDP call at all; a context
    # restored from a snapshot gets this session's folder, never the one of the session that saved it.
    downloads = str(session_temp_dir(profile_dir) / DOWNLOADS)
    prefs["download"] = {**prefs.get("download", {}), "default_directory": downloads,
                         "prompt_for_download": False, "directory_upgrade": True}
    prefs["savefile"] = {**prefs.get("savefile", {}), "default_directory": downloads}
    prefs_file.parent.mkdir(parents=True, exist_ok=True)
    prefs_file.write_text(json.dumps(prefs))
