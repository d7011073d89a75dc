"""tests/js/moving.mjs's client in Playwright for Python (tests/e2e/test_moving.py): logs in on a page, says so,
waits for the close the move sends, reconnects to the same cdpUrl with ``connect_over_cdp`` and reads it all back
from the same tab. A process of its own, as a user's job is, and as the Puppeteer client is.

    python -m tests.support.moving_client <cdpUrl> <pageUrl>
"""
from __future__ import annotations

import json
import sys
import threading
import time

from playwright.sync_api import Error, sync_playwright

#: Seconds the client keeps trying to reconnect (the relay holds a connect while the session moves).
RECONNECT_FOR = 90


def main(cdp_url: str, page_url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.connect_over_cdp(cdp_url)
        page = browser.contexts[0].new_page()
        page.goto(page_url)
        page.evaluate("state('logged-in')")
        page.evaluate("document.cookie = 'sid=s3cret; path=/'")
        closed = threading.Event()
        browser.on("disconnected", lambda _: closed.set())
        print(json.dumps({"ready": True}), flush=True)
        while not closed.is_set():
            # Playwright's events arrive while it is called into: a cheap call until the close comes.
            try:
                browser.contexts
                page.wait_for_timeout(100)
            except Error:
                break
        lost_at = time.monotonic()
        until = lost_at + RECONNECT_FOR
        while True:
            try:
                again = playwright.chromium.connect_over_cdp(cdp_url)
                break
            except Error:
                if time.monotonic() > until:
                    raise
                time.sleep(0.25)
        pages = [p for context in again.contexts for p in context.pages]
        tab = next((p for p in pages if p.url == page_url), None)
        result: dict = {"backAfterMs": round((time.monotonic() - lost_at) * 1000), "urls": [p.url for p in pages],
                        "found": tab is not None}
        if tab is not None:
            result.update(tab.evaluate("state()"))
            result["cookie"] = tab.evaluate("document.cookie")
        again.close()
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
