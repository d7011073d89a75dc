"""Session cookies as API.md states them: export and inject on a live browser, pages see the result, bad input changes nothing."""
from __future__ import annotations

import threading
import time

import pytest

from core.store import ALL_SCOPES
from core.cdp import CdpConnection, CdpError
from core.cookies import replace_cookies
from tests.support.api import ISO_Z, Api
from tests.support.browsing import playwright_driver
from tests.support.cdp import page_view
from tests.support.keys import make_key

COOKIE_FIELDS = {"name", "value", "domain", "path", "secure", "httpOnly", "sameSite", "expires"}
HOST = "127.0.0.1"
#: Within Chromium's 400-day cap, so it comes back as given.
IN_A_MONTH = int(time.time()) + 30 * 86400


def cookies_path(session: dict) -> str:
    return f"/v1/sessions/{session['id']}/cookies"


def export(api: Api, session: dict, **params: str) -> dict:
    answer = api.get(cookies_path(session), params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def by_name(exported: dict) -> dict[str, dict]:
    return {c["name"]: c for c in exported["cookies"]}


def inject(api: Api, session: dict, cookies: list[dict], mode: str | None = None) -> dict:
    body: dict = {"cookies": cookies}
    if mode:
        body["mode"] = mode
    answer = api.put(cookies_path(session), json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def cookie_pairs(text: str) -> set[str]:
    return {part.strip() for part in text.split(";") if part.strip()}


# -- export ---------------------------------------------------------------

def test_export_lists_every_cookie_httponly_included(api, session_factory, pages):
    session = session_factory(api, url=f"{pages.base}/set-cookie?name=sid&value=s3cret&httponly=1")
    inject(api, session, [{"name": "theme", "value": "dark", "domain": HOST, "expires": IN_A_MONTH, "sameSite": "Strict"}])
    exported = export(api, session)
    assert set(exported) == {"sessionId", "exportedAt", "count", "cookies"}
    assert exported["sessionId"] == session["id"] and ISO_Z.match(exported["exportedAt"])
    assert exported["count"] == len(exported["cookies"]) == 2
    assert all(set(c) == COOKIE_FIELDS for c in exported["cookies"])
    cookies = by_name(exported)
    assert cookies["sid"] == {"name": "sid", "value": "s3cret", "domain": HOST, "path": "/", "secure": False,
                              "httpOnly": True, "sameSite": "Lax", "expires": None}
    assert cookies["theme"] == {"name": "theme", "value": "dark", "domain": HOST, "path": "/", "secure": False,
                                "httpOnly": False, "sameSite": "Strict", "expires": IN_A_MONTH}
    _, document_cookie = page_view(session, f"{pages.base}/echo-cookies")
    assert cookie_pairs(document_cookie) == {"theme=dark"}


def test_domain_filter_matches_the_site_and_its_subdomains_only(api, session_factory):
    session = session_factory(api)
    domains = {"host": "example.com", "dot": ".example.com", "sub": "sub.example.com", "deep": ".deep.sub.example.com",
               "bad": "badexample.com", "suffix": "example.com.evil.net", "other": "other.org"}
    inject(api, session, [{"name": name, "value": "1", "domain": domain} for name, domain in domains.items()])
    for wanted in (".example.com", "example.com", "EXAMPLE.com"):
        assert set(by_name(export(api, session, domain=wanted))) == {"host", "dot", "sub", "deep"}
    assert set(by_name(export(api, session, domain="sub.example.com"))) == {"sub", "deep"}
    assert set(by_name(export(api, session, domain="badexample.com"))) == {"bad"}
    nothing = export(api, session, domain="nothing.test")
    assert nothing["count"] == 0 and nothing["cookies"] == []
    assert export(api, session)["count"] == len(domains)


@pytest.mark.parametrize("domain", ["http://example.com", "example.com/path", "exa mple.com", "example.com:80", ""])
def test_bad_domain_filter_is_422(api, seeded, domain):
    answer = api.get(cookies_path(seeded), params={"domain": domain})
    assert answer.status_code == 422, answer.text
    assert "domain" in answer.json()["errors"]["query"]


# -- inject ---------------------------------------------------------------

def test_merge_overwrites_same_name_domain_path_and_keeps_the_rest(api, session_factory):
    session = session_factory(api)
    inject(api, session, [
        {"name": "a", "value": "old", "domain": HOST},
        {"name": "a", "value": "old-x", "domain": HOST, "path": "/x"},
        {"name": "a", "value": "old-dot", "domain": ".example.com"},
        {"name": "b", "value": "kept", "domain": HOST, "httpOnly": True},
    ])
    answer = inject(api, session, [{"name": "a", "value": "new", "domain": HOST}, {"name": "c", "value": "added", "domain": HOST}])
    assert answer == {"sessionId": session["id"], "count": 2, "mode": "merge"}
    values = {(c["name"], c["domain"], c["path"]): c["value"] for c in export(api, session)["cookies"]}
    assert values == {("a", HOST, "/"): "new", ("a", HOST, "/x"): "old-x", ("a", ".example.com", "/"): "old-dot",
                      ("b", HOST, "/"): "kept", ("c", HOST, "/"): "added"}
    assert inject(api, session, [], mode="merge")["count"] == 0
    assert len(export(api, session)["cookies"]) == 5


def test_replace_clears_every_cookie_first_httponly_included(api, session_factory, pages):
    session = session_factory(api, url=f"{pages.base}/set-cookie?name=sid&value=page&httponly=1")
    inject(api, session, [{"name": "old", "value": "1", "domain": ".example.com"}])
    answer = inject(api, session, [{"name": "fresh", "value": "1", "domain": HOST}], mode="replace")
    assert answer == {"sessionId": session["id"], "count": 1, "mode": "replace"}
    assert set(by_name(export(api, session))) == {"fresh"}
    inject(api, session, [], mode="replace")
    assert export(api, session)["cookies"] == []


def test_expires_in_the_past_deletes_the_cookie(api, session_factory):
    session = session_factory(api)
    inject(api, session, [{"name": "gone", "value": "1", "domain": HOST}, {"name": "stays", "value": "1", "domain": HOST}])
    inject(api, session, [{"name": "gone", "value": "", "domain": HOST, "expires": 1}])
    assert set(by_name(export(api, session))) == {"stays"}


def test_injected_cookies_are_what_the_page_sends_and_sees(api, session_factory, pages):
    session = session_factory(api)
    inject(api, session, [
        {"name": "visible", "value": "v1", "domain": HOST},
        {"name": "hidden", "value": "h1", "domain": HOST, "httpOnly": True, "expires": IN_A_MONTH},
        {"name": "elsewhere", "value": "e1", "domain": HOST, "path": "/elsewhere"},
        {"name": "foreign", "value": "f1", "domain": ".example.com"},
    ])
    header, document_cookie = page_view(session, f"{pages.base}/echo-cookies")
    assert cookie_pairs(header) == {"visible=v1", "hidden=h1"}
    assert cookie_pairs(document_cookie) == {"visible=v1"}
    inject(api, session, [{"name": "visible", "value": "v2", "domain": HOST}])
    header, _ = page_view(session, f"{pages.base}/echo-cookies")
    assert cookie_pairs(header) == {"visible=v2", "hidden=h1"}


def test_an_export_injected_into_another_session_gives_the_same_cookies(api, session_factory, pages):
    source = session_factory(api, url=f"{pages.base}/set-cookie?name=sid&value=from-page&httponly=1")
    inject(api, source, [
        {"name": "host_only", "value": "1", "domain": "example.com", "secure": True},
        {"name": "whole_site", "value": "2", "domain": ".example.com", "sameSite": "None", "secure": True, "expires": IN_A_MONTH},
        {"name": "strict", "value": "3", "domain": "shop.example.com", "path": "/cart", "sameSite": "Strict", "httpOnly": True},
        {"name": "unicode", "value": "h\u00e9llo w\u00f6rld", "domain": "example.com"},
        {"name": "plain", "value": "4", "domain": HOST},
    ])
    exported = export(api, source)
    target = session_factory(api)
    inject(api, target, exported["cookies"], mode="replace")
    assert export(api, target)["cookies"] == exported["cookies"]
    inject(api, source, exported["cookies"], mode="replace")
    assert export(api, source)["cookies"] == exported["cookies"]
    header, _ = page_view(target, f"{pages.base}/echo-cookies")
    assert cookie_pairs(header) == {"sid=from-page", "plain=4"}


def test_up_to_the_configured_number_of_cookies_is_taken(api, session_factory):
    """Spread over 50 sites: Chromium itself keeps at most 180 cookies per site and evicts the rest."""
    session = session_factory(api)
    cookies = [{"name": f"n{i:04d}", "value": "v", "domain": f"site{i % 50}.example"} for i in range(1000)]
    assert inject(api, session, cookies, mode="replace")["count"] == 1000
    assert export(api, session)["count"] == 1000


def test_openapi_documents_the_cookie_calls(api):
    operations = api.get("/openapi.json").json()["paths"]["/v1/sessions/{session_id}/cookies"]
    assert {"get", "put"} <= set(operations)
    assert "409" in operations["get"]["responses"] and "422" in operations["put"]["responses"]


# -- state, tenancy, scopes ------------------------------------------------

def test_cookies_of_a_stopped_session_are_409(api, session_factory):
    session = session_factory(api)
    api.stop_session(session["id"])
    for answer in (api.get(cookies_path(session)),
                   api.put(cookies_path(session), json={"cookies": [{"name": "a", "value": "1", "domain": HOST}]})):
        assert answer.status_code == 409, answer.text
        assert answer.json()["code"] == 409 and "running" in answer.json()["message"]


@pytest.mark.parametrize("session_id", [f"ses_{'0' * 32}", "nope"])
def test_unknown_session_is_404(api, session_id):
    for method, body in (("GET", None), ("PUT", {"cookies": []})):
        answer = api.request(method, f"/v1/sessions/{session_id}/cookies", json=body)
        assert answer.status_code == 404, answer.text
        assert answer.json()["code"] == 404 and answer.json()["message"]


def test_another_projects_session_is_404_and_untouched(broker, api, session_factory):
    session = session_factory(api)
    inject(api, session, [{"name": "mine", "value": "1", "domain": HOST}])
    before = export(api, session)["cookies"]
    other = Api(broker.url, make_key(broker, scopes=ALL_SCOPES, project="cookie-other"))
    assert other.get(cookies_path(session)).status_code == 404
    put = other.put(cookies_path(session), json={"cookies": [{"name": "theirs", "value": "1", "domain": HOST}], "mode": "replace"})
    assert put.status_code == 404
    assert export(api, session)["cookies"] == before


def test_scopes_read_and_write(broker, api, session_factory):
    session = session_factory(api)
    inject(api, session, [{"name": "mine", "value": "1", "domain": HOST}])
    before = export(api, session)["cookies"]
    reader = Api(broker.url, make_key(broker, scopes=("sessions:read",), project="default"))
    writer = Api(broker.url, make_key(broker, scopes=("sessions:write",), project="default"))
    assert reader.get(cookies_path(session)).json()["cookies"] == before
    refused = reader.put(cookies_path(session), json={"cookies": [], "mode": "replace"})
    assert refused.status_code == 403 and "sessions:write" in refused.json()["message"]
    assert writer.get(cookies_path(session)).status_code == 403
    assert Api(broker.url, None).get(cookies_path(session)).status_code == 401
    assert export(api, session)["cookies"] == before


# -- bad input changes nothing ---------------------------------------------

@pytest.fixture(scope="module")
def seeded(api, pages):
    """One running session holding a page-set httpOnly cookie and a few injected ones, for every refusal below."""
    session = api.create_session(url=f"{pages.base}/set-cookie?name=sid&value=seed&httponly=1")
    inject(api, session, [{"name": "keep", "value": "1", "domain": HOST, "expires": IN_A_MONTH},
                          {"name": "site", "value": "2", "domain": ".example.com", "secure": True}])
    yield session
    api.stop_session(session["id"])


def ok(**fields) -> dict:
    return {"name": "n", "value": "v", "domain": HOST, **fields}


def without(key: str) -> dict:
    cookie = ok()
    del cookie[key]
    return cookie


BAD_BODIES = [
    ({"cookies": [without("name")]}, ("cookies", "0", "name")),
    ({"cookies": [without("value")]}, ("cookies", "0", "value")),
    ({"cookies": [without("domain")]}, ("cookies", "0", "domain")),
    ({"cookies": [ok(name=7)]}, ("cookies", "0", "name")),
    ({"cookies": [ok(name=None)]}, ("cookies", "0", "name")),
    ({"cookies": [ok(value=7)]}, ("cookies", "0", "value")),
    ({"cookies": [ok(domain=["127.0.0.1"])]}, ("cookies", "0", "domain")),
    ({"cookies": [ok(secure="true")]}, ("cookies", "0", "secure")),
    ({"cookies": [ok(httpOnly=1)]}, ("cookies", "0", "httpOnly")),
    ({"cookies": [ok(expires="2030-01-01")]}, ("cookies", "0", "expires")),
    ({"cookies": [ok(expires=-5)]}, ("cookies", "0", "expires")),
    ({"cookies": [ok(expires=True)]}, ("cookies", "0", "expires")),
    ({"cookies": [ok(path="no-slash")]}, ("cookies", "0", "path")),
    ({"cookies": [ok(path=3)]}, ("cookies", "0", "path")),
    ({"cookies": [ok(sameSite="lax")]}, ("cookies", "0", "sameSite")),
    ({"cookies": [ok(sameSite="Whenever")]}, ("cookies", "0", "sameSite")),
    ({"cookies": [ok(sameSite=None)]}, ("cookies", "0", "sameSite")),
    ({"cookies": [ok(sameSite="None")]}, ("cookies", "0", "sameSite")),
    ({"cookies": [ok(name="a;b")]}, ("cookies", "0", "name")),
    ({"cookies": [ok(name="a=b")]}, ("cookies", "0", "name")),
    ({"cookies": [ok(value="tab\there")]}, ("cookies", "0", "value")),
    ({"cookies": [ok(value=" padded")]}, ("cookies", "0", "value")),
    ({"cookies": [ok(name="", value="")]}, ("cookies", "0", "value")),
    ({"cookies": [ok(name="", value="a=b")]}, ("cookies", "0", "value")),
    ({"cookies": [ok(domain="a.0")]}, ("cookies", "0", "domain")),
    ({"cookies": [ok(path="/a b")]}, ("cookies", "0", "path")),
    ({"cookies": [ok(name="__Http-id", secure=True)]}, ("cookies", "0", "httpOnly")),
    ({"cookies": [ok(value="x" * 4096)]}, ("cookies", "0", "value")),
    ({"cookies": [ok(domain="http://127.0.0.1")]}, ("cookies", "0", "domain")),
    ({"cookies": [ok(domain="127.0.0.1:8000")]}, ("cookies", "0", "domain")),
    ({"cookies": [ok(domain="")]}, ("cookies", "0", "domain")),
    ({"cookies": [ok(name="__Host-id", secure=True, domain=".example.com")]}, ("cookies", "0", "domain")),
    ({"cookies": [ok(name="__Secure-id")]}, ("cookies", "0", "secure")),
    ({"cookies": [ok(partitionKey="x")]}, ("cookies", "0", "partitionKey")),
    ({"cookies": ["n=v"]}, ("cookies", "0")),
    ({"cookies": "n=v"}, ("cookies",)),
    ({"cookies": None}, ("cookies",)),
    ({"mode": "replace"}, ("cookies",)),
    ({"cookies": [ok()], "mode": "upsert"}, ("mode",)),
    ({"cookies": [ok()], "mode": "replace", "extra": 1}, ("extra",)),
    ({"cookies": [ok(name=f"c{i}") for i in range(1001)], "mode": "replace"}, ("cookies",)),
    ({"cookies": [ok(name="fine"), ok(name="bad;")], "mode": "replace"}, ("cookies", "1", "name")),
]


@pytest.mark.parametrize("body,path", BAD_BODIES)
def test_invalid_inject_is_422_and_changes_nothing(api, seeded, body, path):
    before = export(api, seeded)["cookies"]
    assert {"sid", "keep", "site"} <= {c["name"] for c in before}
    answer = api.put(cookies_path(seeded), json=body)
    assert answer.status_code == 422, answer.text
    payload = answer.json()
    assert payload["code"] == 422 and payload["status"] == "Unprocessable Entity" and payload["message"]
    errors = payload["errors"]["json"]
    for key in path:
        errors = errors[key]
    assert errors
    assert export(api, seeded)["cookies"] == before


@pytest.mark.parametrize(
    "data,content_type",
    [("{not json", "application/json"), ("cookies=a", "application/x-www-form-urlencoded"), ("[1,", "application/json")],
)
def test_malformed_inject_is_400_and_changes_nothing(api, seeded, data, content_type):
    before = export(api, seeded)["cookies"]
    answer = api.put(cookies_path(seeded), data=data, headers={"Content-Type": content_type})
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == 400 and answer.json()["message"]
    assert export(api, seeded)["cookies"] == before


def test_replace_refused_by_chromium_puts_the_old_cookies_back(broker, api, seeded):
    """The schema stops what Chromium refuses; should one slip through, replace must not leave the browser empty."""
    before = export(api, seeded)["cookies"]
    ws_url = broker.store().sessions.get(seeded["id"])["browserWsUrl"]
    with CdpConnection(ws_url) as conn, pytest.raises(CdpError):
        replace_cookies(conn, [ok(name="fine"), ok(name="bad;")])
    assert export(api, seeded)["cookies"] == before


# -- a client driving the browser at the same time ---------------------------

def test_playwright_client_keeps_working_while_cookies_are_exported_and_injected(broker, api, session_factory, pages):
    session = session_factory(api)
    echo = f"{pages.base}/echo-cookies"
    rounds: list[int] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def churn() -> None:
        """Inject and export back to back on a connection of its own until the Playwright side is done."""
        own = Api(broker.url, broker.api_key)
        try:
            while not done.is_set() or len(rounds) < 3:
                n = len(rounds) + 1
                put = own.put(cookies_path(session), json={"cookies": [{"name": "churn", "value": str(n), "domain": HOST}]})
                assert put.status_code == 200, put.text
                got = own.get(cookies_path(session))
                assert got.status_code == 200 and by_name(got.json())["churn"]["value"] == str(n)
                rounds.append(n)
        except BaseException as error:
            failures.append(error)

    p = playwright_driver()
    browser = p.chromium.connect_over_cdp(session["cdpUrl"])
    context = browser.contexts[0]
    page = context.pages[0]
    worker = threading.Thread(target=churn, daemon=True)
    worker.start()
    for i in range(8):
        page.goto(f"{echo}?round={i}")
        assert page.evaluate("6 * 7") == 42
        context.add_cookies([{"name": f"pw{i}", "value": str(i), "domain": HOST, "path": "/"}])
    done.set()
    worker.join(60)
    assert not worker.is_alive() and not failures, failures
    assert browser.is_connected()

    last = str(rounds[-1])
    assert {c["name"]: c["value"] for c in context.cookies()}["churn"] == last
    page.goto(echo)
    assert {f"churn={last}", "pw7=7"} <= cookie_pairs(page.inner_text("#c"))
    assert {f"pw{i}" for i in range(8)} <= set(by_name(export(api, session)))

    inject(api, session, [{"name": "only", "value": "1", "domain": HOST}], mode="replace")
    assert [(c["name"], c["value"]) for c in context.cookies()] == [("only", "1")]
    page.reload()
    assert cookie_pairs(page.inner_text("#c")) == {"only=1"}
    browser.close()
    assert api.get(f"/v1/sessions/{session['id']}").json()["status"] == "running"
