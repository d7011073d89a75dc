"""Pages opened through a session's cdpUrl the way users do: Playwright for Python, Puppeteer in Node."""
from __future__ import annotations

import json
import subprocess

from playwright.sync_api import sync_playwright

from tests.support.processes import ROOT


def visit(cdp_url: str, url: str, script: str | None = None):
    """Open ``url`` in a new page like a user's Playwright would; the script's value, or the page's text."""
    with sync_playwright() as p:
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
