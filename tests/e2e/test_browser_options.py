"""The browser a create asks for (issue 29): each option as a real page and a real server see it, in every target of
the session (first tab, popup, a context the client makes); extensions uploaded and loaded; project defaults; and
bad values refused with nothing started."""
from __future__ import annotations

import io
import json
import subprocess
import zipfile

import pytest

from core.store.apikeys import ALL_SCOPES
from tests.support.api import Api
from tests.support.browsing import playwright_driver
from tests.support.cdp import RawCdp
from tests.support.keys import make_key
from tests.support.processes import ROOT, wait_until

VIEWPORT = {"width": 1024, "height": 700, "deviceScaleFactor": 2, "mobile": False}
PAGE_SEES = """() => ({userAgent: navigator.userAgent, language: navigator.language, languages: navigator.languages,
  timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone, webdriver: navigator.webdriver,
  brands: navigator.userAgentData ? navigator.userAgentData.brands.map(b => b.brand) : null,
  width: innerWidth, dpr: devicePixelRatio})"""
MARKER_EXTENSION = {
    "manifest.json": json.dumps({"manifest_version": 3, "name": "Marker", "version": "1.0", "content_scripts": [
        {"matches": ["<all_urls>"], "js": ["marker.js"], "run_at": "document_end"}]}),
    "marker.js": "document.documentElement.dataset.marked = 'by-extension';",
}


def zipped(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


def lowered(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def first_tab(cdp_url: str, url: str, script: str = PAGE_SEES):
    """Playwright on the session's first tab, as a user's connect_over_cdp finds it."""
    browser = playwright_driver().chromium.connect_over_cdp(cdp_url)
    try:
        page = browser.contexts[0].pages[0]
        page.goto(url)
        return page.evaluate(script)
    finally:
        browser.close()


@pytest.fixture(scope="module")
def other_project(broker) -> Api:
    """A second tenant of the same deployment, whose defaults no other test sees."""
    return Api(broker.url, make_key(broker, scopes=ALL_SCOPES, project="options-other"))


def test_viewport_and_pixel_ratio_hold_in_the_first_tab_a_popup_and_a_new_context(any_api, session_factory, pages):
    session = session_factory(any_api, viewport=VIEWPORT, timezoneId="Asia/Tokyo", locale="de-DE")
    assert session["browserOptions"]["viewport"] == VIEWPORT and session["launch"] in ("warm", "cold")
    out = subprocess.run(["node", "options.mjs", session["cdpUrl"], f"{pages.base}/page"], cwd=ROOT / "tests" / "js",
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    for target in ("first", "popup", "context"):
        assert (seen[target]["width"], seen[target]["height"], seen[target]["dpr"]) == (1024, 700, 2), target
        assert (seen[target]["timeZone"], seen[target]["language"]) == ("Asia/Tokyo", "de-DE"), target
        assert seen[target]["webdriver"] is False, target


def stored_anywhere(broker, value: str) -> bool:
    """Whether ``value`` is in any key of the deployment's Redis, as bytes of a dump."""
    redis = broker.store().redis
    return any(value.encode() in (redis.dump(key) or b"") for key in redis.keys("*"))


def test_user_agent_locale_time_zone_and_headers_as_the_page_and_its_server_see_them(broker, api, session_factory,
                                                                                     pages):
    agent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) BrokerTest/1.0"
    session = session_factory(api, userAgent=agent, locale="fr-FR", timezoneId="America/Sao_Paulo",
                              extraHTTPHeaders={"X-Job": "nightly-42", "X-Team": "crawl"})
    assert session["browserOptions"]["extraHTTPHeaderNames"] == ["X-Job", "X-Team"]
    assert "nightly-42" not in json.dumps(api.get(f"/v1/sessions/{session['id']}").json())
    assert not stored_anywhere(broker, "nightly-42"), "extra headers' values are stored encrypted, as passwords are"
    seen = first_tab(session["cdpUrl"], f"{pages.base}/page?title=ua-{session['id']}")
    assert seen["userAgent"] == agent
    assert (seen["language"], seen["languages"]) == ("fr-FR", ["fr-FR", "fr"])
    assert seen["timeZone"] == "America/Sao_Paulo"
    [heard] = [lowered(h) for h in pages.headers_of(f"/page?title=ua-{session['id']}")]
    assert heard["user-agent"] == agent
    assert heard["accept-language"].startswith("fr-FR,fr")
    assert (heard["x-job"], heard["x-team"]) == ("nightly-42", "crawl")


def test_the_default_user_agent_does_not_say_headless(api, session_factory, pages):
    session = session_factory(api)
    seen = first_tab(session["cdpUrl"], f"{pages.base}/page?title=plain-{session['id']}")
    assert "HeadlessChrome" not in seen["userAgent"] and "Chrome/" in seen["userAgent"]
    assert seen["webdriver"] is False
    assert "Chromium" in seen["brands"] and not any("Headless" in b for b in seen["brands"])
    # A shared worker belongs to no page: only its own target's override reaches it.
    in_a_worker = first_tab(session["cdpUrl"], f"{pages.base}/page?title=worker-{session['id']}",
                            "() => new Promise(r => { const w = new SharedWorker(URL.createObjectURL(new Blob("
                            "['onconnect = e => e.ports[0].postMessage(navigator.userAgent)'])));"
                            " w.port.onmessage = e => r(e.data); })")
    assert in_a_worker == seen["userAgent"]
    [heard] = [lowered(h) for h in pages.headers_of(f"/page?title=plain-{session['id']}")]
    assert "HeadlessChrome" not in heard["user-agent"] and heard["user-agent"] == seen["userAgent"]
    assert '"Chromium"' in heard["sec-ch-ua"]


def test_a_blocked_image_is_never_requested(api, session_factory, pages):
    session = session_factory(api, blockResources=["image", "font"])
    tag = session["id"]
    seen = first_tab(session["cdpUrl"], f"{pages.base}/with-image?tag={tag}",
                     "() => new Promise(r => { const i = document.images[0];"
                     " if (i.complete) r(i.naturalWidth); else { i.onerror = () => r(-1); i.onload = () => r(1); } })")
    assert seen in (0, -1)
    assert f"/with-image?tag={tag}" in [path for path, _ in pages.httpd.heard]
    assert not pages.headers_of(f"/pixel.png?{tag}")


def test_an_uploaded_extension_changes_a_page_and_only_its_project_can_use_it(api, other_project, session_factory,
                                                                               pages):
    uploaded = api.post("/v1/extensions", files={"file": ("marker.zip", zipped(MARKER_EXTENSION))})
    assert uploaded.status_code == 201, uploaded.text
    extension = uploaded.json()
    assert (extension["name"], extension["version"]) == ("Marker", "1.0")
    assert api.get(f"/v1/extensions/{extension['id']}").json() == extension
    assert extension["id"] in [e["id"] for e in api.get("/v1/extensions").json()]
    try:
        session = session_factory(api, extensionIds=[extension["id"]])
        assert session["launch"] == "cold"
        marked = first_tab(session["cdpUrl"], f"{pages.base}/page?title=ext",
                           "() => new Promise(r => setTimeout(() => r(document.documentElement.dataset.marked), 300))")
        assert marked == "by-extension"
        # The managed policy still refuses chrome:// pages beside the extension's.
        blocked = first_tab(session["cdpUrl"], f"{pages.base}/page?title=ext2",
                            "() => fetch('chrome://version').then(() => 'read', () => 'refused')")
        assert blocked == "refused"
        assert other_project.get(f"/v1/extensions/{extension['id']}").status_code == 404
        refused = other_project.post("/v1/sessions", json={"extensionIds": [extension["id"]]})
        assert refused.status_code == 404 and extension["id"] in refused.json()["message"]
        assert other_project.delete(f"/v1/extensions/{extension['id']}").status_code == 404
    finally:
        assert api.delete(f"/v1/extensions/{extension['id']}").status_code == 204
    assert api.get(f"/v1/extensions/{extension['id']}").status_code == 404


@pytest.mark.parametrize("upload, reason", [
    (zipped({"marker.js": "1"}), "manifest.json"),
    (zipped({**MARKER_EXTENSION, "manifest.json": json.dumps({"manifest_version": 2, "name": "x", "version": "1"})}),
     "manifest_version"),
    (b"plain text", "Not a zip"),
])
def test_an_upload_chromium_would_not_load_is_a_422_and_stores_nothing(api, upload, reason):
    before = api.get("/v1/extensions").json()
    answer = api.post("/v1/extensions", files={"file": ("x.zip", upload)})
    assert answer.status_code == 422 and reason in answer.json()["message"]
    assert api.get("/v1/extensions").json() == before


@pytest.mark.parametrize("body, field", [
    ({"viewport": {"width": 0, "height": 600}}, "viewport"),
    ({"viewport": {"width": 800}}, "viewport"),
    ({"viewport": {"width": 800, "height": 600, "deviceScaleFactor": "2"}}, "viewport"),
    ({"userAgent": "bad\r\nX-Injected: 1"}, "userAgent"),
    ({"locale": "not a locale"}, "locale"),
    ({"timezoneId": "Mars/Olympus_Mons"}, "timezoneId"),
    ({"geolocation": {"latitude": 91, "longitude": 0}}, "geolocation"),
    ({"extraHTTPHeaders": {"Bad Name": "x"}}, "extraHTTPHeaders"),
    ({"extraHTTPHeaders": {"X-Split": "a\nb"}}, "extraHTTPHeaders"),
    ({"blockResources": ["script"]}, "blockResources"),
    ({"extensionIds": ["ext_nope"]}, "extensionIds"),
])
def test_bad_values_are_a_422_naming_the_field_and_start_nothing(broker, api, body, field):
    before = broker.footprint()
    answer = api.post("/v1/sessions", json=body)
    assert answer.status_code == 422, answer.text
    assert field in answer.json()["errors"]["json"]
    assert broker.footprint() == before


def test_project_defaults_fill_what_a_create_leaves_out(broker, other_project, session_factory, pages):
    defaults = {"viewport": {"width": 640, "height": 480, "deviceScaleFactor": 1, "mobile": False},
                "timezoneId": "Europe/Paris", "extraHTTPHeaders": {"X-Default": "default-secret-7"}}
    stored = other_project.put("/v1/session-defaults", json=defaults)
    assert stored.status_code == 200, stored.text
    assert stored.json()["extraHTTPHeaderNames"] == ["X-Default"] and stored.json()["timezoneId"] == "Europe/Paris"
    try:
        assert other_project.get("/v1/session-defaults").json() == stored.json()
        session = session_factory(other_project, timezoneId="Asia/Singapore")
        options = session["browserOptions"]
        assert (options["timezoneId"], options["viewport"]["width"]) == ("Asia/Singapore", 640)
        seen = first_tab(session["cdpUrl"], f"{pages.base}/page?title=defaults-{session['id']}")
        assert (seen["timeZone"], seen["width"]) == ("Asia/Singapore", 640)
        [heard] = [lowered(h) for h in pages.headers_of(f"/page?title=defaults-{session['id']}")]
        assert heard["x-default"] == "default-secret-7"
        assert not stored_anywhere(broker, "default-secret-7")
    finally:
        assert other_project.put("/v1/session-defaults", json={}).status_code == 200
    assert other_project.get("/v1/session-defaults").json()["timezoneId"] is None


def test_time_zone_and_locale_are_the_launchs_and_a_clients_own_context_overrides_them(api, session_factory, pages):
    """Playwright's ``new_context(locale=..., timezone_id=...)`` sets both on every page it opens: Chromium takes one
    override of each per renderer, so the session's are launch settings, never overrides that would refuse these."""
    session = session_factory(api, timezoneId="Asia/Tokyo", locale="de-DE")
    assert session["launch"] == "cold"
    sees = "() => [Intl.DateTimeFormat().resolvedOptions().timeZone, navigator.language, " \
           "Intl.DateTimeFormat().resolvedOptions().locale]"
    browser = playwright_driver().chromium.connect_over_cdp(session["cdpUrl"])
    try:
        first = browser.contexts[0].pages[0]
        first.goto(f"{pages.base}/page?title=launch-{session['id']}")
        assert first.evaluate(sees) == ["Asia/Tokyo", "de-DE", "de"]
        own = browser.new_context(locale="ja-JP", timezone_id="America/New_York")
        page = own.new_page()
        page.goto(f"{pages.base}/page?title=own-{session['id']}")
        assert page.evaluate(sees) == ["America/New_York", "ja-JP", "ja-JP"]
        own.close()
    finally:
        browser.close()
    [heard] = [lowered(h) for h in pages.headers_of(f"/page?title=launch-{session['id']}")]
    assert heard["accept-language"].startswith("de-DE,de")


def test_a_tab_created_with_its_url_sends_its_first_request_with_the_sessions_options(api, session_factory, pages):
    """``Target.createTarget {url}`` starts the navigation at once: its first request must already carry the
    session's user agent and headers, not Chromium's defaults."""
    agent = "Mozilla/5.0 (X11; Linux x86_64) FirstRequest/1.0"
    session = session_factory(api, userAgent=agent, extraHTTPHeaders={"X-First": "yes"})
    with RawCdp(session["cdpUrl"]) as cdp:
        for n in range(5):
            cdp.call("Target.createTarget", {"url": f"{pages.base}/page?title=created-{n}-{session['id']}"})
        wait_until(lambda: all(pages.headers_of(f"/page?title=created-{n}-{session['id']}") for n in range(5)), 30,
                   message="the created tabs' first requests")
    for n in range(5):
        [heard] = [lowered(h) for h in pages.headers_of(f"/page?title=created-{n}-{session['id']}")]
        assert (heard["user-agent"], heard.get("x-first")) == (agent, "yes"), n
        assert not [name for name in heard if name.startswith("sec-ch-ua")], n
    plain = session_factory(api)
    with RawCdp(plain["cdpUrl"]) as cdp:
        cdp.call("Target.createTarget", {"url": f"{pages.base}/page?title=created-{plain['id']}"})
        wait_until(lambda: pages.headers_of(f"/page?title=created-{plain['id']}"), 30, message="the first request")
    [heard] = [lowered(h) for h in pages.headers_of(f"/page?title=created-{plain['id']}")]
    assert "HeadlessChrome" not in heard["user-agent"] and "Chrome/" in heard["user-agent"]
    assert "Headless" not in heard["sec-ch-ua"]
