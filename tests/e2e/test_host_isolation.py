"""A session reads nothing of the host, and its browser runs neither as root nor as another session's user.

The tenant here is whoever holds the cdpUrl: everything goes through the relay,
the way Puppeteer or Playwright would drive it.
"""
from __future__ import annotations

import contextlib
import os
import pwd
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest

from core.config import load as load_config
from tasks.browser_users import BrowserUsers
from tasks.launchers.base import hand_back
from tests.support.cdp import RawCdp
from tests.support.processes import Broker, end_process, wait_until
from tests.support.browsing import visit

BLOCKED = "net::ERR_BLOCKED_BY_ADMINISTRATOR"
TEXT = "document.documentElement ? document.documentElement.innerText : ''"
#: CI runs as root on a machine of the project's kind: what such a machine gives is asserted, not tolerated.
IN_CI = os.environ.get("CI", "").lower() == "true"


@contextlib.contextmanager
def fresh_page(cdp: RawCdp) -> Iterator[str]:
    """A tab of its own per URL: Chromium 156 crashes on a blocked chrome:// load right after an error page."""
    target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    cdp.call("Page.enable", {}, session)
    try:
        yield session
    finally:
        cdp.call("Target.closeTarget", {"targetId": target})


def load(cdp: RawCdp, session: str, url: str) -> str | None:
    """Navigate and wait for the load event; the navigation's error text, if any."""
    error = cdp.call("Page.navigate", {"url": url}, session).get("errorText")
    if not error:
        assert cdp.wait_event("Page.loadEventFired", session, 20), f"{url} never finished loading"
    return error


def profile_of(broker: Broker, session_id: str) -> Path:
    return broker.session_profiles()[session_id]


@pytest.fixture
def host(any_broker, any_api, session_factory) -> dict:
    """What a tenant must not read: a key file in the state folder, another session's profile, /etc/passwd.

    The key file is world-readable on purpose (as serve.sh once left it): only the state folder's mode
    and the policy stand between it and a page.
    """
    key_file = any_broker.state_dir / "api-key"
    key_file.write_text(any_broker.api_key + "\n")
    key_file.chmod(0o644)
    other = session_factory(any_api)
    other_profile = profile_of(any_broker, other["id"])
    port_file = other_profile / "DevToolsActivePort"
    wait_until(port_file.exists, 10, message="the other session's DevToolsActivePort")
    yield {
        "files": [
            (key_file.as_uri(), any_broker.api_key),
            (any_broker.state_dir.as_uri() + "/", "api-key"),
            (port_file.as_uri(), port_file.read_text().split("\n")[1]),
            (other_profile.as_uri() + "/", "DevToolsActivePort"),
            ("file:///etc/passwd", "root:x:0:0"),
        ],
        "chrome": [("chrome://version/", "Command Line"), ("chrome://settings/", "Settings"),
                   ("view-source:file:///etc/passwd", "root:x:0:0")],
        "key_file": key_file,
        "port_file": port_file,
    }
    key_file.unlink()


def test_navigation_to_host_files_and_chrome_pages_is_refused_by_chromium(any_api, session_factory, host, pages):
    session = session_factory(any_api)
    cdp = RawCdp(session["cdpUrl"])
    for url, secret in [*host["files"], *host["chrome"]]:
        with fresh_page(cdp) as page:
            assert load(cdp, page, url) == BLOCKED, url
            assert secret not in cdp.evaluate(TEXT, page), url
    # Target.createTarget navigates too.
    target = cdp.call("Target.createTarget", {"url": host["files"][0][0]})["targetId"]
    page = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    wait_until(lambda: cdp.evaluate("location.href", page) != "about:blank", 10, message="the new tab's navigation")
    assert host["files"][0][1] not in cdp.evaluate(TEXT, page)
    with fresh_page(cdp) as page:
        assert load(cdp, page, f"{pages.base}/page?title=still-works") is None
        assert cdp.evaluate("document.title", page) == "still-works"
    cdp.close()


def test_fetch_from_an_http_page_reads_no_host_file_or_chrome_page(any_api, session_factory, host, pages):
    session = session_factory(any_api)
    cdp = RawCdp(session["cdpUrl"])
    urls = [url for url, _ in [*host["files"], *host["chrome"]]]
    with fresh_page(cdp) as page:
        assert load(cdp, page, f"{pages.base}/page?title=fetcher") is None
        outcomes = cdp.call("Runtime.evaluate", {
            "expression": f"Promise.allSettled({urls!r}.map(u => fetch(u).then(r => r.text())))"
                          ".then(all => all.map(o => o.status))",
            "awaitPromise": True, "returnByValue": True}, page)["result"]["value"]
        assert outcomes == ["rejected"] * len(urls)
        assert cdp.evaluate("document.title", page) == "fetcher"
    cdp.close()


def test_iframes_of_an_http_page_show_no_host_file_or_chrome_page(any_api, session_factory, host, pages):
    session = session_factory(any_api)
    cdp = RawCdp(session["cdpUrl"])
    targets = [*host["files"], *host["chrome"]]
    query = "&".join(f"src={quote(url, safe='')}" for url, _ in targets)
    with fresh_page(cdp) as page:
        assert load(cdp, page, f"{pages.base}/frames?{query}") is None
        tree = cdp.call("Page.getFrameTree", {}, page)["frameTree"]
        frames = tree.get("childFrames", [])
        assert len(frames) == len(targets)
        for child in frames:
            world = cdp.call("Page.createIsolatedWorld", {"frameId": child["frame"]["id"]}, page)["executionContextId"]
            text = cdp.call("Runtime.evaluate", {"expression": TEXT, "contextId": world, "returnByValue": True},
                            page)["result"].get("value", "")
            assert not [secret for _, secret in targets if secret in text], child["frame"]
            assert not child["frame"]["url"].startswith(("file:", "chrome:", "view-source:"))
        assert cdp.evaluate("document.title", page) == "frames"
    cdp.close()


def _read_uploads(cdp: RawCdp, page: str, paths: list[str]) -> list[str]:
    """What a page reads from files a CDP client put in an <input type=file>: the path goes around any URL policy."""
    read = []
    for path in paths:
        document = cdp.call("DOM.getDocument", {}, page)["root"]["nodeId"]
        node = cdp.call("DOM.querySelector", {"nodeId": document, "selector": "#f"}, page)["nodeId"]
        cdp.call("DOM.setFileInputFiles", {"files": [path], "nodeId": node}, page)
        read.append(cdp.call("Runtime.evaluate", {
            "expression": "document.getElementById('f').files[0].text().catch(e => 'FAILED ' + e.name)",
            "awaitPromise": True, "returnByValue": True}, page)["result"]["value"])
    return read


def test_a_path_given_to_the_browser_reaches_only_its_own_session(any_broker, any_api, session_factory, host, pages):
    """File permissions hold where the policy cannot look: the state folder and other profiles stay closed."""
    session = session_factory(any_api)
    own_port_file = profile_of(any_broker, session["id"]) / "DevToolsActivePort"
    cdp = RawCdp(session["cdpUrl"])
    with fresh_page(cdp) as page:
        assert load(cdp, page, f"{pages.base}/upload") is None
        own, key, other = _read_uploads(cdp, page, [str(own_port_file), str(host["key_file"]), str(host["port_file"])])
    cdp.close()
    assert own.startswith(own_port_file.read_text().split("\n")[0])
    assert any_broker.api_key not in key and key.startswith("FAILED")
    assert "/devtools/browser/" not in other and other.startswith("FAILED")


def session_processes(broker: Broker, session_id: str) -> list[psutil.Process]:
    """Every process of the session's browser, found by its profile folder, plus its ChromeDriver if any.

    One that ends while it is looked at (a renderer or utility process the browser let go) is left out: a CI run
    on a busy machine saw a PID end between the listing and ``parent()``."""
    flag = f"--user-data-dir={profile_of(broker, session_id)}"
    procs = [p for p in psutil.process_iter(["cmdline"]) if flag in (p.info["cmdline"] or [])]
    live, drivers = [], set()
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = proc.parent()
            if parent is not None and parent not in procs and parent.name() == "chromedriver":
                drivers.add(parent)
            live.append(proc)
    return live + list(drivers)


def userns_allowed(uid: int) -> bool:
    """Whether the kernel lets that user make a user namespace: all Chromium's namespace sandbox needs here."""
    return subprocess.run(["unshare", "--user", "true"], user=uid, extra_groups=[], capture_output=True).returncode == 0


def browser_uid() -> int:
    """Who the deployments' browsers run as: a browser user under a root worker, else the worker's own user."""
    return pwd.getpwnam(f"{load_config().chromium.browser_user}-0").pw_uid if os.geteuid() == 0 else os.geteuid()


def sandbox_expected() -> bool:
    """Whether this host gives Chromium its sandbox, so the worker must run it sandboxed.

    Under CI=true the answer must be yes: CI runs as root on a machine of the project's kind, whose browser users may
    make user namespaces (checked by hand: `unshare --user true` as bb-browser-N succeeds there), so a sandbox that
    is off is a broken host or a broken worker, not an accepted variant. Elsewhere it follows what the host allows.
    """
    allowed = userns_allowed(browser_uid())
    if IN_CI and not allowed:
        pytest.fail(f"CI=true: uid {browser_uid()} may not make a user namespace (unshare --user), so Chromium's "
                    "sandbox cannot work here; this machine must allow it (sysctl kernel.unprivileged_userns_clone / "
                    "user.max_user_namespaces)")
    return allowed


def seccomp(pid: int) -> str:
    """The process's seccomp mode ("2": filtered, as Chromium's sandbox does); "" once it has ended."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ""
    return next(line.split()[1] for line in status.splitlines() if line.startswith("Seccomp:"))


def renderer_seccomp(procs: list[psutil.Process]) -> set[str]:
    modes = set()
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if "--type=renderer" in proc.cmdline() and (mode := seccomp(proc.pid)):
                modes.add(mode)
    return modes


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs a root worker")
def test_each_browser_runs_sandboxed_as_its_own_unprivileged_user(any_broker, any_api, session_factory, pages):
    """Its own user, not root; and sandboxed (renderers under a seccomp filter) wherever the host allows it, so
    always under CI=true (sandbox_expected)."""
    if not sandbox_expected():
        pytest.skip("this host lets no browser user make a user namespace: Chromium runs unsandboxed here")
    first, second = session_factory(any_api), session_factory(any_api)
    uids = {}
    for session in (first, second):
        assert visit(session["cdpUrl"], f"{pages.base}/page?title=unprivileged", "document.title") == "unprivileged"
        procs = session_processes(any_broker, session["id"])
        assert len(procs) >= 4
        assert not any(p.name() == "chromedriver" for p in procs), "ChromeDriver outlived the browser's start"
        owners = {p.uids().real for p in procs}
        assert len(owners) == 1 and 0 not in owners, owners
        uids[session["id"]] = owners.pop()
        profile = profile_of(any_broker, session["id"])
        assert profile.stat().st_uid == uids[session["id"]] and stat.S_IMODE(profile.stat().st_mode) == 0o700
        # A renderer puts its filter on a moment after it starts (Chromium keeps a spare one starting).
        wait_until(lambda: renderer_seccomp(procs) == {"2"}, 10,
                   message=f"every renderer under seccomp (now {renderer_seccomp(procs)})")
    assert uids[first["id"]] != uids[second["id"]]
    assert stat.S_IMODE(any_broker.state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(profile_of(any_broker, first["id"]).parent.stat().st_mode) == 0o711


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs a root worker")
def test_a_restored_context_profile_belongs_to_the_browser_user(broker, api, pages):
    context = api.post("/v1/contexts", json={}).json()
    first = api.create_session(contextId=context["id"])
    visit(first["cdpUrl"], f"{pages.base}/state", "state('kept')")
    api.stop_session(first["id"])
    again = api.create_session(contextId=context["id"])
    profile = profile_of(broker, again["id"])
    owner = profile.stat().st_uid
    assert owner != 0
    assert not [p for p in profile.rglob("*") if p.lstat().st_uid != owner]
    assert visit(again["cdpUrl"], f"{pages.base}/state", "state()")["local"] == "kept"
    api.stop_session(again["id"])
    api.delete(f"/v1/contexts/{context['id']}")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs a root worker")
def test_a_process_that_left_a_browsers_tree_is_ended_before_its_user_serves_again(tmp_path):
    users = BrowserUsers(load_config().chromium.browser_user)
    user = users.acquire()
    tmp_path.chmod(0o711)
    profile = tmp_path / "profile"
    profile.mkdir()
    user.take(profile)
    stray = subprocess.Popen(["sleep", "300"], start_new_session=True, **user.popen_kwargs())
    try:
        assert psutil.Process(stray.pid).uids().real == user.uid
        hand_back(profile, user)
        assert stray.poll() is not None, "a `sleep 300` left running under the user"
        assert profile.stat().st_uid == os.geteuid() and user.lock is None
    finally:
        end_process(stray, signal.SIGKILL)
        user.release()


@pytest.fixture(scope="module")
def bare(deploy) -> Broker:
    """A deployment with no web process (its own Redis database): its workers never take anyone's launches, nor
    launch spares (no warm browser) beside the start checks under test."""
    return deploy(6, web=False, BROKER_WARM_BROWSERS="0")


#: BROKER_SANDBOX_SETTLE (5 s by default) for workers whose renderers can never be sandboxed (``--no-sandbox``):
#: the start check waits this long for a seccomp filter that never comes.
NEVER_SANDBOXED_SETTLE = "1"


def refusal(broker: Broker, name: str, **env: str) -> str:
    """The log of a worker that must exit at start rather than take any launch."""
    worker = broker.spawn_worker(name, **env)
    try:
        assert worker.wait(60) != 0
    finally:
        end_process(worker, signal.SIGKILL)
    log = broker.worker_log(name)
    assert "this worker does not start" in log
    assert not list(broker.worker_profiles(f"{name}@test").iterdir())
    return log


def test_a_worker_without_the_chromium_policy_does_not_start(bare, tmp_path):
    assert "does not block file://*" in refusal(bare, "nopolicy", BROKER_CHROMIUM_POLICY_DIR=str(tmp_path))


def test_sandbox_on_refuses_a_browser_whose_renderers_are_not_sandboxed(bare):
    log = refusal(bare, "forcedon", BROKER_CHROMIUM_SANDBOX="on", BROKER_CHROMIUM_EXTRA_FLAGS="--no-sandbox",
                  BROKER_SANDBOX_SETTLE=NEVER_SANDBOXED_SETTLE)
    assert "BROKER_CHROMIUM_SANDBOX=on, but Chromium's sandbox does not work here" in log


def test_without_a_usable_sandbox_the_worker_says_so_and_runs_unsandboxed(bare):
    nodename = bare.start_worker("fallback", BROKER_CHROMIUM_EXTRA_FLAGS="--no-sandbox",
                                 BROKER_SANDBOX_SETTLE=NEVER_SANDBOXED_SETTLE)
    log = bare.worker_log("fallback")
    assert "CHROMIUM SANDBOX OFF: this host cannot give Chromium its sandbox" in log
    assert "Chromium sandbox OFF; managed policy in force" in log
    bare.stop_worker(nodename)


def test_the_worker_runs_chromium_sandboxed_where_the_host_allows_it_and_says_which(any_broker):
    log = any_broker.worker_log(next(iter(any_broker.workers)).split("@")[0])
    assert "managed policy in force" in log
    if sandbox_expected():
        assert "Chromium sandbox on" in log and "CHROMIUM SANDBOX OFF" not in log
    else:
        assert "CHROMIUM SANDBOX OFF" in log


def test_the_brokers_settings_and_secrets_stay_out_of_the_browser_environment(any_broker, any_api, session_factory):
    session = session_factory(any_api)
    procs = session_processes(any_broker, session["id"])
    for proc in procs:
        assert not [name for name in proc.environ() if name.startswith(("BROKER_", "REDIS_", "AWS_"))], proc
    (browser,) = [p for p in procs if p.name() != "chromedriver" and not any(a.startswith("--type=") for a in p.cmdline())]
    env = browser.environ()
    assert env["HOME"] == env["TMPDIR"] and Path(env["HOME"]).stat().st_uid == browser.uids().real
