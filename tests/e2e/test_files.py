"""Files and discovery for a browser that runs elsewhere (issue 14), with real clients through the cdpUrl.

The deployment (Redis database 20) reaches even its own host's browsers through the worker's gateway
(BROKER_GATEWAY_ALWAYS), so downloads, uploads and discovery take the path they take when the worker is
on another host. tests/hosts/ runs the same calls across network namespaces, with S3.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import secrets
import subprocess
import time
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import requests

from core.cdp import CdpError
from tests.support.api import Api
from tests.support.browsing import playwright_driver
from tests.support.cdp import RawCdp
from tests.support.pages import download_bytes
from tests.support.processes import ROOT, Broker, wait_until

CAP = 3 * 1024 * 1024
UPLOAD_CAP = 2 * 1024 * 1024
RETENTION = 600


@pytest.fixture(scope="module")
def filed(deploy) -> Broker:
    broker = deploy(20, BROKER_GATEWAY_ALWAYS="1", BROKER_LAUNCHER="direct", BROKER_DOWNLOAD_MAX_BYTES=str(CAP),
                    BROKER_UPLOAD_MAX_BYTES=str(UPLOAD_CAP), BROKER_DOWNLOAD_RETENTION=str(RETENTION),
                    BROKER_WARM_BROWSERS="1")
    broker.start_worker("filed")
    return broker


@pytest.fixture
def files_api(filed) -> Api:
    return Api(filed.url, filed.api_key)


def node(script: str, *args: str) -> dict:
    out = subprocess.run(["node", script, *args], cwd=ROOT / "tests" / "js", capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def listing(api: Api, session_id: str) -> dict:
    answer = api.get(f"/v1/sessions/{session_id}/downloads")
    assert answer.status_code == 200, answer.text
    return answer.json()


def complete(api: Api, session_id: str, name: str) -> dict:
    """The listing once ``name`` is complete."""
    found: list[dict] = []

    def done() -> bool:
        found[:] = [d for d in listing(api, session_id)["downloads"] if d["name"] == name and d["state"] == "complete"]
        return bool(found)

    wait_until(done, 30, message=f"download {name}")
    return found[0]


def record(broker: Broker, session_id: str) -> dict:
    return broker.store().sessions.get(session_id)


def stray_downloads(name: str) -> list[str]:
    """Anywhere on this host outside the session's own folders where a file of that name landed."""
    hits = []
    for root in ("/tmp", "/var/tmp", "/root/Downloads"):
        for folder, _, names in os.walk(root):  # folders of other tests come and go: errors are skipped
            if name in names and not folder.endswith("/downloads") and "bb-test-" not in folder:
                hits.append(f"{folder}/{name}")
    return hits


# -- downloads ---------------------------------------------------------------------------
def test_puppeteer_download_lands_in_the_session_folder_whatever_path_it_asks(filed, files_api, session_factory, pages):
    session = session_factory(files_api)
    name = f"report-{secrets.token_hex(4)}.pdf"
    link = f"{pages.base}/download?size=1024011&name={name}"
    assert node("files.mjs", "download", session["cdpUrl"], f"{pages.base}/page", link) == {"state": "completed"}
    entry = complete(files_api, session["id"], name)
    assert entry["size"] == 1024011 and entry["mimeType"] == "application/pdf"
    assert not Path("/tmp/puppeteer-elsewhere").exists() and not stray_downloads(name)
    body = files_api.get(f"/v1/sessions/{session['id']}/downloads/{name}")
    assert body.status_code == 200 and body.content == download_bytes(1024011)
    assert "attachment" in body.headers["Content-Disposition"]


def test_puppeteer_context_download_behavior_cannot_leave_the_session_folder(filed, files_api, session_factory, pages):
    session = session_factory(files_api)
    name = f"context-{secrets.token_hex(4)}.bin"
    link = f"{pages.base}/download?size=5000&name={name}"
    assert node("files.mjs", "download", session["cdpUrl"], f"{pages.base}/page", link, "context") == {"state": "completed"}
    assert complete(files_api, session["id"], name)["size"] == 5000
    assert not Path("/tmp/puppeteer-elsewhere").exists() and not stray_downloads(name)


def test_playwright_download_is_listed_under_its_own_name_and_save_as_is_not_needed(filed, files_api, session_factory,
                                                                                    pages):
    session = session_factory(files_api)
    name = f"table-{secrets.token_hex(4)}.csv"
    p = playwright_driver()
    browser = p.chromium.connect_over_cdp(session["cdpUrl"])
    page = browser.contexts[0].new_page()
    page.goto(f"{pages.base}/page")
    with page.expect_download() as info:
        page.evaluate("h => { const a = document.createElement('a'); a.href = h; a.download = ''; "
                      "document.body.append(a); a.click(); }", f"{pages.base}/download?size=777&name={name}")
    download = info.value
    assert download.suggested_filename == name
    assert download.failure() is None
    # A context of Playwright's own: its setDownloadBehavior goes to the session's folder too.
    context = browser.new_context()
    other = context.new_page()
    other.goto(f"{pages.base}/page")
    with other.expect_download() as info:
        other.evaluate("h => { const a = document.createElement('a'); a.href = h; a.download = ''; "
                       "document.body.append(a); a.click(); }", f"{pages.base}/download?size=778&name=ctx-{name}")
    assert info.value.failure() is None
    context.close()
    browser.close()
    assert complete(files_api, session["id"], name)["size"] == 777
    assert complete(files_api, session["id"], f"ctx-{name}")["size"] == 778
    assert not stray_downloads(name)


def test_raw_cdp_download_behavior_to_another_folder_is_rewritten(filed, files_api, session_factory, pages):
    session = session_factory(files_api)
    elsewhere = Path(f"/tmp/raw-elsewhere-{secrets.token_hex(4)}")
    name = f"raw-{secrets.token_hex(4)}.txt"
    with RawCdp(session["cdpUrl"]) as cdp:
        # Spelled with a JSON escape, so only a parser sees the method: the relay parses what could be it.
        cdp._ws.send('{"id": 900, "method": "Browser.setDownload\\u0042ehavior", "params": '
                      + json.dumps({"behavior": "allowAndName", "downloadPath": str(elsewhere)}) + "}")
        target, page = cdp.open_tab(f"{pages.base}/page")
        cdp.call("Page.navigate", {"url": f"{pages.base}/download?size=321&name={name}"}, page)
        assert complete(files_api, session["id"], name)["size"] == 321
        # A page's own CDP channel would pass around the relay: refused, and the client told.
        with pytest.raises(CdpError, match="refused by Browser Broker"):
            cdp.call("Target.exposeDevToolsProtocol", {"targetId": target, "bindingName": "cdp"})
    assert not elsewhere.exists()


def test_zip_holds_every_complete_download(filed, files_api, session_factory, pages):
    session = session_factory(files_api)
    names = {f"a-{secrets.token_hex(3)}.bin": 1000, f"b-{secrets.token_hex(3)}.bin": 200_000}
    with RawCdp(session["cdpUrl"]) as cdp:
        for name, size in names.items():
            _, page = cdp.open_tab(f"{pages.base}/page")
            cdp.call("Page.navigate", {"url": f"{pages.base}/download?size={size}&name={name}"}, page)
            complete(files_api, session["id"], name)
    answer = files_api.get(f"/v1/sessions/{session['id']}/downloads.zip")
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    assert {n: len(archive.read(n)) for n in archive.namelist()} == names
    assert all(archive.read(n) == download_bytes(size) for n, size in names.items())


def test_downloads_stay_readable_after_stop_and_leave_nothing_on_the_worker(filed, files_api, session_factory, pages):
    session = session_factory(files_api)
    name = f"kept-{secrets.token_hex(4)}.bin"
    with RawCdp(session["cdpUrl"]) as cdp:
        _, page = cdp.open_tab(f"{pages.base}/page")
        cdp.call("Page.navigate", {"url": f"{pages.base}/download?size=4242&name={name}"}, page)
        complete(files_api, session["id"], name)
    folder = Path(record(filed, session["id"])["downloadsPath"])
    files_api.stop_session(session["id"])
    assert not folder.exists()
    after = listing(files_api, session["id"])
    assert after["status"] == "stopped" and [(d["name"], d["size"]) for d in after["downloads"]] == [(name, 4242)]
    assert files_api.get(f"/v1/sessions/{session['id']}/downloads/{name}").content == download_bytes(4242)
    archive = zipfile.ZipFile(io.BytesIO(files_api.get(f"/v1/sessions/{session['id']}/downloads.zip").content))
    assert archive.namelist() == [name]
    expires = record(filed, session["id"])["downloadsExpireEpoch"]
    assert filed.store().redis.zscore("bb:download-expiries", session["id"]) == pytest.approx(expires)


@pytest.mark.parametrize("browser", ["warm", "cold"])
def test_a_download_over_the_cap_is_cancelled_and_the_session_says_why(filed, files_api, session_factory, pages,
                                                                        browser):
    # A warm browser's guard starts before its offer and follows it to the session; a context launches cold.
    if browser == "warm":
        (nodename,) = filed.workers
        wait_until(lambda: filed.store().warm.offered_by(nodename), 60, message="a warm browser on offer")
        session = session_factory(files_api)
    else:
        context = files_api.post("/v1/contexts", json={}).json()
        session = session_factory(files_api, contextId=context["id"])
    assert filed.session_profiles()[session["id"]].name.startswith("warm_") == (browser == "warm")
    small, big = f"fits-{secrets.token_hex(3)}.bin", f"huge-{secrets.token_hex(3)}.bin"
    with RawCdp(session["cdpUrl"]) as cdp:
        _, page = cdp.open_tab(f"{pages.base}/page")
        cdp.call("Page.navigate", {"url": f"{pages.base}/download?size=1000&name={small}"}, page)
        complete(files_api, session["id"], small)
        _, page = cdp.open_tab(f"{pages.base}/page")
        cdp.call("Page.navigate", {"url": f"{pages.base}/download?size={CAP + 1}&name={big}"}, page)
        wait_until(lambda: listing(files_api, session["id"])["downloadError"], 30, message="downloadError")
    after = listing(files_api, session["id"])
    assert "BROKER_DOWNLOAD_MAX_BYTES" in after["downloadError"]
    assert files_api.get(f"/v1/sessions/{session['id']}").json()["downloadError"] == after["downloadError"]
    wait_until(lambda: [d["name"] for d in listing(files_api, session["id"])["downloads"]] == [small], 15,
               message="the cancelled download's partial file to go")


# -- uploads -----------------------------------------------------------------------------
def test_puppeteer_upload_file_reads_every_byte_of_an_api_upload(filed, files_api, session_factory, pages):
    session = session_factory(files_api)
    data = secrets.token_bytes(1_500_000)
    answer = files_api.post(f"/v1/sessions/{session['id']}/uploads", files={"file": ("photo.jpg", data)})
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    assert stored["name"] == "photo.jpg" and stored["size"] == len(data)
    assert stored["path"].startswith(record(filed, session["id"])["uploadsPath"] + "/")
    read = node("files.mjs", "upload", session["cdpUrl"], f"{pages.base}/upload", stored["path"])
    assert (read["name"], read["size"]) == ("photo.jpg", len(data))
    assert hashlib.sha256(base64.b64decode(read["base64"])).hexdigest() == hashlib.sha256(data).hexdigest()
    again = files_api.post(f"/v1/sessions/{session['id']}/uploads", files={"file": ("photo.jpg", b"x")}).json()
    assert again["name"] == "photo (1).jpg"
    folder = Path(record(filed, session["id"])["uploadsPath"])
    files_api.stop_session(session["id"])
    assert not folder.exists()


def test_raw_cdp_set_file_input_files_reads_an_api_upload(filed, files_api, session_factory, pages):
    session = session_factory(files_api)
    data = b"hello from the API\n" * 100
    path = files_api.post(f"/v1/sessions/{session['id']}/uploads", files={"file": ("note.txt", data)}).json()["path"]
    with RawCdp(session["cdpUrl"]) as cdp:
        _, page = cdp.open_tab(f"{pages.base}/upload")
        wait_until(lambda: cdp.evaluate("!!document.getElementById('f')", page), 10, message="the upload page")
        node_id = cdp.call("DOM.querySelector", {"nodeId": cdp.call("DOM.getDocument", {}, page)["root"]["nodeId"],
                                                 "selector": "#f"}, page)["nodeId"]
        cdp.call("DOM.setFileInputFiles", {"files": [path], "nodeId": node_id}, page)
        text = cdp.evaluate("document.getElementById('f').files[0].text()", page, await_promise=True)
    assert text == data.decode()


def uploads_on_disk(broker: Broker, session_id: str) -> list[str]:
    return sorted(p.name for p in Path(record(broker, session_id)["uploadsPath"]).iterdir())


@pytest.mark.parametrize("filename, why", [
    ("..", "'.' or '..'"), ("../escape.txt", "'/'"),
    # Sent as a quoted string, so the backslash is escaped once: the name the server reads is a\b.txt.
    ("a\\\\b.txt", "'\\'"), (".hidden", "start with '.'"),
    ("bad\x07name.txt", "control"), ("x" * 256, "255 bytes"), ("é" * 128, "255 bytes"),
])
def test_upload_with_a_bad_name_is_refused_and_stores_nothing(filed, files_api, session_factory, filename, why):
    session = session_factory(files_api)
    before = uploads_on_disk(filed, session["id"])
    answer = files_api.post(f"/v1/sessions/{session['id']}/uploads", files={"file": (filename, b"data")})
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == 422 and why in answer.json()["message"]
    assert uploads_on_disk(filed, session["id"]) == before


def test_upload_without_a_file_part_or_multipart_is_refused_and_stores_nothing(filed, files_api, session_factory):
    session = session_factory(files_api)
    url = f"/v1/sessions/{session['id']}/uploads"
    for answer in (files_api.post(url, files={"other": ("a.txt", b"data")}),
                   files_api.post(url, data={"file": "not a file"}),
                   files_api.post(url, json={"file": "x"}),
                   files_api.post(url)):
        assert answer.status_code == 422, answer.text
        assert answer.json()["status"] == "Unprocessable Entity" and "file" in answer.json()["message"]
    assert uploads_on_disk(filed, session["id"]) == []


def test_oversize_upload_is_refused_and_stores_nothing(filed, files_api, session_factory):
    session = session_factory(files_api)
    url = f"/v1/sessions/{session['id']}/uploads"
    over = files_api.post(url, files={"file": ("big.bin", b"\0" * (UPLOAD_CAP + 1))})
    assert over.status_code == 413 and "BROKER_UPLOAD_MAX_BYTES" in over.json()["message"]

    def chunked():
        boundary = b"bnd"
        yield b"--bnd\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n"
        for _ in range(UPLOAD_CAP // 65536 + 2):
            yield b"\1" * 65536
        yield b"\r\n--" + boundary + b"--\r\n"

    streamed = requests.post(f"{filed.url}{url}", data=chunked(), headers={
        "X-API-Key": filed.api_key, "Content-Type": "multipart/form-data; boundary=bnd"})
    assert streamed.status_code == 413, streamed.text
    declared = requests.post(f"{filed.url}{url}", data=b"\0" * (UPLOAD_CAP + 2 * 1024 * 1024), headers={
        "X-API-Key": filed.api_key, "Content-Type": "multipart/form-data; boundary=bnd"})
    assert declared.status_code == 413 and declared.json()["code"] == 413
    # The web process answers 413 as soon as it has counted too many bytes; the worker's door, which was
    # streaming the file into a partial one, removes it when its end of the stream closes, a moment later.
    wait_until(lambda: uploads_on_disk(filed, session["id"]) == [], 15, message="no partial upload left")
    assert files_api.post(url, files={"file": ("fits.bin", b"\0" * UPLOAD_CAP)}).status_code == 201


def test_another_projects_session_files_answer_404_and_change_nothing(filed, files_api, session_factory, pages):
    session = session_factory(files_api)
    with RawCdp(session["cdpUrl"]) as cdp:
        _, page = cdp.open_tab(f"{pages.base}/page")
        cdp.call("Page.navigate", {"url": f"{pages.base}/download?size=10&name=mine.bin"}, page)
        complete(files_api, session["id"], "mine.bin")
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "browser-broker"), "keys", "create", "--name", "other",
                          "--project", "other", "--scopes", "sessions:read,sessions:write"],
                         capture_output=True, text=True, env={**filed.env}, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    other = Api(filed.url, out.stdout.strip().split()[-1])
    base = f"/v1/sessions/{session['id']}"
    before = listing(files_api, session["id"])["downloads"]
    for answer in (other.get(f"{base}/downloads"), other.get(f"{base}/downloads/mine.bin"),
                   other.get(f"{base}/downloads.zip"),
                   other.post(f"{base}/uploads", files={"file": ("x.txt", b"x")})):
        assert answer.status_code == 404 and answer.json()["code"] == 404
    assert uploads_on_disk(filed, session["id"]) == []
    assert listing(files_api, session["id"])["downloads"] == before


def test_upload_to_a_stopped_session_is_a_conflict(filed, files_api, session_factory):
    session = session_factory(files_api)
    files_api.stop_session(session["id"])
    answer = files_api.post(f"/v1/sessions/{session['id']}/uploads", files={"file": ("late.txt", b"x")})
    assert answer.status_code == 409 and "running" in answer.json()["message"]
    assert listing(files_api, session["id"])["downloads"] == []


@pytest.fixture(scope="module")
def asked(filed) -> Iterator[dict]:
    """One running session for every bad name below: a refused read changes nothing, so they need no session each."""
    api = Api(filed.url, filed.api_key)
    session = api.create_session()
    yield session
    api.stop_session(session["id"])


@pytest.mark.parametrize("name, status", [("..", 404), ("nothing-here.bin", 404), (".hidden", 404),
                                          ("a%5Cb", 404), ("%07bell", 404), ("%C3%A9" * 200, 404)])
def test_bad_or_unknown_download_names_answer_json_errors(files_api, asked, name, status):
    answer = files_api.get(f"/v1/sessions/{asked['id']}/downloads/{name}")
    assert answer.status_code == status and answer.json()["code"] == status


# -- discovery ---------------------------------------------------------------------------
def test_json_version_has_every_field_chromium_gives(filed, files_api, session_factory):
    session = session_factory(files_api)
    base, token = session["cdpUrl"].replace("ws://", "http://").split("?token=")
    version = requests.get(f"{base}/json/version", params={"token": token}).json()
    assert set(version) == {"Browser", "Protocol-Version", "User-Agent", "V8-Version", "WebKit-Version",
                            "webSocketDebuggerUrl"}
    assert version["V8-Version"][0].isdigit() and version["WebKit-Version"].startswith("537.36 (@")
    assert version["webSocketDebuggerUrl"] == session["cdpUrl"]


def test_chrome_remote_interface_connects_with_the_cdp_url_alone(filed, files_api, session_factory):
    session = session_factory(files_api)
    assert node("cri.mjs", "cri", session["cdpUrl"]) == {"value": 42}


def test_json_list_page_sockets_go_through_the_relay(filed, files_api, session_factory, pages):
    session = session_factory(files_api)
    base, token = session["cdpUrl"].replace("ws://", "http://").split("?token=")
    with RawCdp(session["cdpUrl"]) as cdp:
        cdp.open_tab(f"{pages.base}/page?title=listed")
        wait_until(lambda: any(t["title"] == "listed" for t in requests.get(f"{base}/json/list",
                                                                             params={"token": token}).json()), 10)
    targets = requests.get(f"{base}/json", params={"token": token}).json()
    assert {t["type"] for t in targets} == {"page"}
    listed = next(t for t in targets if t["title"] == "listed")
    assert listed["webSocketDebuggerUrl"] == f"{session['cdpUrl'].split('?')[0]}/devtools/page/{listed['id']}?token={token}"
    assert node("cri.mjs", "page", listed["webSocketDebuggerUrl"])["value"].endswith("/page?title=listed 42")
    protocol = requests.get(f"{base}/json/protocol", params={"token": token}).json()
    assert {d["domain"] for d in protocol["domains"]} >= {"Browser", "Page", "Target"}
    assert requests.get(f"{base}/json/list", params={"token": "wrong"}).status_code == 404
    assert requests.get(f"{base}/json/list").status_code == 401


def test_playwright_connects_over_the_http_form_of_the_cdp_url(filed, files_api, session_factory, pages):
    session = session_factory(files_api)
    p = playwright_driver()
    browser = p.chromium.connect_over_cdp(session["cdpUrl"].replace("ws://", "http://"))
    page = browser.contexts[0].new_page()
    page.goto(f"{pages.base}/page?title=http-form")
    assert page.title() == "http-form"
    browser.close()


def test_archived_downloads_are_deleted_once_their_retention_runs_out(filed, files_api, session_factory, pages):
    session = session_factory(files_api)
    with RawCdp(session["cdpUrl"]) as cdp:
        _, page = cdp.open_tab(f"{pages.base}/page")
        cdp.call("Page.navigate", {"url": f"{pages.base}/download?size=99&name=brief.bin"}, page)
        complete(files_api, session["id"], "brief.bin")
    stopped = files_api.stop_session(session["id"])
    kept = record(filed, session["id"])
    assert kept["downloadsExpireEpoch"] == pytest.approx(
        datetime.fromisoformat(stopped["stoppedAt"].replace("Z", "+00:00")).timestamp() + RETENTION, abs=5)
    archived = filed.state_dir / "snapshots" / "downloads" / session["id"]
    assert (archived / "brief.bin").read_bytes() == download_bytes(99)
    # The retention's end, brought forward: the record and the schedule say when, the web process's sweep acts.
    store = filed.store()
    store.redis.zadd("bb:download-expiries", {session["id"]: time.time() - 1})
    store.redis.set(f"bb:session:{session['id']}", json.dumps({**kept, "downloadsExpireEpoch": time.time() - 1}),
                    keepttl=True)
    wait_until(lambda: not archived.exists(), 15, message="the sweep to delete the archive")
    for path in ("downloads", "downloads/brief.bin", "downloads.zip"):
        answer = files_api.get(f"/v1/sessions/{session['id']}/{path}")
        assert answer.status_code == 404 and "BROKER_DOWNLOAD_RETENTION" in answer.json()["message"]


def test_selenium_launched_browsers_download_into_their_session_folder_too(selenium_broker, session_factory, pages):
    """ChromeDriver starts Chromium, and the web process reaches it over loopback."""
    api = Api(selenium_broker.url, selenium_broker.api_key)
    session = session_factory(api)
    with RawCdp(session["cdpUrl"]) as cdp:
        _, page = cdp.open_tab(f"{pages.base}/page")
        cdp.call("Page.navigate", {"url": f"{pages.base}/download?size=2048&name=selenium.bin"}, page)
        assert complete(api, session["id"], "selenium.bin")["size"] == 2048
    assert api.get(f"/v1/sessions/{session['id']}/downloads/selenium.bin").content == download_bytes(2048)
