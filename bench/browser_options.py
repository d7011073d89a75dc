"""Create → 201 with browser options (issue 29): warm (options over CDP at hand-over) and cold (extensions, the
locale and the time zone need a launch of their own), beside plain creates, one session at a time, interleaved so
each sees the same machine; then what the worker's interception of document requests (the first request of a tab
created with its URL) costs a navigation.

    .venv/bin/python -m bench.browser_options [--n 20] [--launcher direct|selenium]

The last cases run with BROKER_HEADLESS_USER_AGENT=keep: a session with nothing to hold gets no connection at all,
so its navigations are not intercepted.
"""
from __future__ import annotations

import argparse
import io
import json
import time
import zipfile

from bench.common import pct, running_broker, summary
from bench.speed import stop_and_wait, wait_warm
from tests.support.api import Api
from tests.support.cdp import RawCdp, navigate
from tests.support.pages import PageServer

#: Every option applied over CDP.
OPTIONS = {"viewport": {"width": 1280, "height": 720, "deviceScaleFactor": 2, "mobile": False},
           "geolocation": {"latitude": 48.85, "longitude": 2.35}, "extraHTTPHeaders": {"X-Bench": "1"},
           "blockResources": ["image", "font"]}
LANGUAGE = {"locale": "fr-FR", "timezoneId": "Europe/Paris"}
EXTENSION = {"manifest.json": json.dumps({"manifest_version": 3, "name": "Bench", "version": "1", "content_scripts": [
    {"matches": ["<all_urls>"], "js": ["c.js"]}]}), "c.js": "document.documentElement.dataset.bench = '1';"}


def extension_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in EXTENSION.items():
            archive.writestr(name, content)
    return out.getvalue()


def create_once(api: Api, body: dict) -> tuple[float, str]:
    start = time.perf_counter()
    session = api.create_session(**body)
    took = time.perf_counter() - start
    stop_and_wait(api, session["id"])
    return took, session["launch"]


def navigations(api: Api, pages: PageServer, n: int) -> list[float]:
    """Seconds from Page.navigate to the load event, ``n`` times in one tab of one session."""
    session = api.create_session()
    try:
        with RawCdp(session["cdpUrl"]) as cdp:
            page = cdp.attach_first_page()
            took = []
            for i in range(n):
                start = time.perf_counter()
                assert navigate(cdp, page, f"{pages.base}/page?title=nav-{i}") is None
                took.append(time.perf_counter() - start)
            return took
    finally:
        stop_and_wait(api, session["id"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--launcher", default="direct", choices=["selenium", "direct"])
    args = parser.parse_args()
    pages = PageServer()
    with running_broker(BROKER_LAUNCHER=args.launcher, BROKER_WARM_BROWSERS="1", BROKER_POOL_SIZE="3") as (broker,
                                                                                                            api):
        extension = api.post("/v1/extensions", files={"file": ("bench.zip", extension_zip())}).json()
        cases = {"warm, no options": {}, "warm, every option over CDP": OPTIONS, "cold, locale and time zone": LANGUAGE,
                 "cold, one extension": {"extensionIds": [extension["id"]]},
                 "cold, one extension and every other option": {**OPTIONS, **LANGUAGE,
                                                                "extensionIds": [extension["id"]]}}
        create_once(api, {})
        times: dict[str, list[float]] = {name: [] for name in cases}
        launches: dict[str, set[str]] = {name: set() for name in cases}
        for _ in range(args.n):
            for name, body in cases.items():
                wait_warm(broker, 1)
                took, launch = create_once(api, body)
                times[name].append(took)
                launches[name].add(launch)
        navigated = {"navigation, document requests intercepted": navigations(api, pages, args.n * 2)}
    with running_broker(BROKER_LAUNCHER=args.launcher, BROKER_WARM_BROWSERS="1", BROKER_POOL_SIZE="3",
                        BROKER_HEADLESS_USER_AGENT="keep") as (broker, api):
        name = "warm, no options, Chromium's user agent kept"
        create_once(api, {})
        times[name], launches[name] = [], set()
        for _ in range(args.n):
            wait_warm(broker, 1)
            took, launch = create_once(api, {})
            times[name].append(took)
            launches[name].add(launch)
        navigated["navigation, not intercepted (user agent kept)"] = navigations(api, pages, args.n * 2)
    pages.close()
    print(f"== create → 201, launcher {args.launcher}, one warm browser, n={args.n} each, interleaved (the last "
          "case: a deployment of its own, after the others)")
    for name, values in times.items():
        print(f"  {name:<48} {summary(values)}  launch: {', '.join(sorted(launches[name]))}")
    base = pct(times["warm, no options"], 50)
    print(f"  options on a warm browser add, p50: {(pct(times['warm, every option over CDP'], 50) - base) * 1000:.1f} ms")
    print(f"== Page.navigate → load event of a local page, one tab, n={args.n * 2} each")
    for name, values in navigated.items():
        print(f"  {name:<48} {summary(values)}")


if __name__ == "__main__":
    main()
