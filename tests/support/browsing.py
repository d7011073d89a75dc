"""Pages opened through a session's cdpUrl the way users do: Playwright for Python, Puppeteer in Node."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from playwright.sync_api import Playwright, sync_playwright

from tests.support.processes import ROOT, wait_until

#: A frame this large must pass every hop intact (API.md: "Frames of many MB").
BIG_FRAME = 20 * 1024 * 1024
#: The run's Playwright driver and the network namespace it was started in.
_driver: dict = {}


def playwright_driver() -> Playwright:
    """One Playwright driver for the whole run: each start costs 0.6-1.4 s, and the suite opens ~100 pages.

    Its node process connects from the network namespace it started in, and tests/hosts run the test's thread
    in a host's namespace: in another namespace the driver is started again there.
    """
    namespace = os.stat("/proc/thread-self/ns/net").st_ino
    if _driver.get("namespace") != namespace:
        stop_playwright_driver()
        _driver.update(namespace=namespace, playwright=sync_playwright().start())
    return _driver["playwright"]


def stop_playwright_driver() -> None:
    if _driver:
        _driver["playwright"].stop()
        _driver.clear()


def visit(cdp_url: str, url: str, script: str | None = None):
    """Open ``url`` in a new page like a user's Playwright would; the script's value, or the page's text."""
    p = playwright_driver()
    browser = p.chromium.connect_over_cdp(cdp_url)
    page = browser.contexts[0].new_page()
    page.goto(url)
    result = page.evaluate(script) if script else page.inner_text("body")
    page.close()
    browser.close()
    return result


def puppeteer_drive(cdp_url: str, page_url: str) -> dict:
    """tests/js/drive.mjs: ``puppeteer.connect({browserWSEndpoint})``, a page, what it shows, ``disconnect()``."""
    out = subprocess.run(
        ["node", "drive.mjs", cdp_url, page_url], cwd=ROOT / "tests" / "js", capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def playwright_drive(cdp_url: str, page_url: str, big_frame: int = 0) -> dict:
    """connect_over_cdp, the first tab to ``page_url``, its heading; with ``big_frame``, a string that long back from the page."""
    p = playwright_driver()
    browser = p.chromium.connect_over_cdp(cdp_url)
    page = browser.contexts[0].pages[0]
    page.goto(page_url)
    result = {"heading": page.inner_text("h1")}
    if big_frame:
        text = page.evaluate(f"Array.from({{length: {big_frame // 8}}}, (_, i) => String(i % 9973).padStart(8, '.')).join('')")
        result["bigFrameIntact"] = text == "".join(str(i % 9973).rjust(8, ".") for i in range(big_frame // 8))
    browser.close()
    return result


def wait_local_storage_on_disk(profile: Path, value: str, timeout: float = 30) -> None:
    """Until Chromium has written a localStorage ``value`` a page set into the profile's LevelDB. It commits
    localStorage in batches, seconds after the page set it, so a copy of the profile made before (a checkpoint)
    lacks it; waited for rather than slept on, since how long that takes depends on the machine's load."""
    folder = profile / "Default" / "Local Storage" / "leveldb"
    # Chromium stores a value as Latin-1 where it can, else as UTF-16.
    forms = (value.encode("latin-1", errors="ignore"), value.encode("utf-16-le"))

    def written() -> bool:
        for path in folder.glob("*"):
            try:
                data = path.read_bytes()
            except OSError:
                continue  # compacted away meanwhile
            if any(form in data for form in forms):
                return True
        return False

    wait_until(written, timeout, interval=0.1, message=f"localStorage {value!r} written under {folder}")
