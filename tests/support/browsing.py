"""Pages opened through a session's cdpUrl the way users do, with Playwright for Python."""
from __future__ import annotations

from playwright.sync_api import sync_playwright


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
