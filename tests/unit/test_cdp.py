"""core.cdp, the one CDP client, against a real headless Chromium started by the test itself (no broker).

Commands and their answers, events kept and subscribed to, flat sessions (attached and auto-attached), many
threads on one connection while another listens, ends from another thread, and the same under gevent.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import websocket

from core.cdp import KEPT_EVENTS, CdpConnection, CdpError
from tests.support.processes import ROOT
from tests.support.viewer import CHROMIUM, own_temp, person_flags

START_TIMEOUT = 30
NEVER = "new Promise(() => {})"


@pytest.fixture(scope="module")
def browser_url(tmp_path_factory) -> Iterator[str]:
    """The browser-level CDP URL of a Chromium of this module's own, ended (with its whole tree) afterwards."""
    profile = tmp_path_factory.mktemp("cdp-profile")
    with own_temp() as env:
        proc = subprocess.Popen([CHROMIUM, *person_flags(), "--no-sandbox", f"--user-data-dir={profile}",
                                 "--remote-debugging-port=0", "about:blank"],
                                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield _devtools_url(profile, proc)
        finally:
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            proc.terminate()
            _, alive = psutil.wait_procs(tree, timeout=10)
            for left in alive:
                left.kill()
            psutil.wait_procs(alive, timeout=10)


def _devtools_url(profile: Path, proc: subprocess.Popen) -> str:
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        lines = port_file.read_text().split("\n") if port_file.exists() else []
        if len(lines) >= 2 and lines[1]:
            return f"ws://127.0.0.1:{lines[0]}{lines[1].strip()}"
        assert proc.poll() is None, f"Chromium exited with {proc.returncode}"
        time.sleep(0.05)
    raise AssertionError("Chromium did not open its debugging port in time")


@pytest.fixture
def cdp(browser_url) -> Iterator[CdpConnection]:
    with CdpConnection(browser_url, timeout=10) as conn:
        yield conn


@pytest.fixture
def tab(browser_url, cdp) -> Iterator[tuple[str, str]]:
    """A new tab: its target id and the flat session of ``cdp`` attached to it; closed afterwards (over a
    connection of its own: the test may have ended ``cdp``)."""
    target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    yield target, cdp.attach(target)
    with CdpConnection(browser_url) as closer:
        closer.call("Target.closeTarget", {"targetId": target})


def evaluate(cdp: CdpConnection, session: str, expression: str) -> object:
    return cdp.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)["result"]["value"]


def test_a_call_answers_its_result_or_the_browsers_error(cdp):
    assert cdp.call("Browser.getVersion")["product"].startswith("Chrome/")
    with pytest.raises(CdpError, match="Target.noSuchMethod"):
        cdp.call("Target.noSuchMethod")


def test_a_call_without_an_answer_times_out_and_the_connection_goes_on(cdp, tab):
    _, page = tab
    started = time.monotonic()
    with pytest.raises(websocket.WebSocketTimeoutException):
        cdp.call("Runtime.evaluate", {"expression": NEVER, "awaitPromise": True}, page, timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 2
    assert evaluate(cdp, page, "6 * 7") == 42


def test_commands_reach_a_flat_session_and_its_events_are_kept_for_wait_event(cdp, tab):
    _, page = tab
    cdp.call("Page.enable", session_id=page)
    assert cdp.call("Page.navigate", {"url": "data:text/html,<title>here</title>"}, page).get("errorText") is None
    loaded = cdp.wait_event("Page.loadEventFired", page, 10)
    assert loaded is not None and loaded["sessionId"] == page
    assert evaluate(cdp, page, "document.title") == "here"
    # The browser's own events are not a target's: none such came.
    assert cdp.wait_event("Page.loadEventFired", None, 0.2) is None


def test_sent_commands_keep_their_order_within_a_session(cdp, tab):
    _, page = tab
    for n in range(20):
        cdp.send("Runtime.evaluate", {"expression": f"window.seen = (window.seen || []).concat({n})"}, page)
    assert evaluate(cdp, page, "window.seen") == list(range(20))


def test_subscribers_get_their_events_and_the_others_are_kept_bounded(browser_url):
    with CdpConnection(browser_url) as cdp:
        created: list[dict] = []
        cdp.subscribe(created.append, "Target.targetCreated")
        cdp.call("Target.setDiscoverTargets", {"discover": True})
        target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        assert target in [event["params"]["targetInfo"]["targetId"] for event in created]
        assert cdp.wait_event("Target.targetCreated", None, 0.2) is None, "a subscribed event is not kept too"
        assert cdp.wait_event("Target.targetInfoChanged", None, 5) is not None, "an event nobody took is kept"
        cdp.call("Target.closeTarget", {"targetId": target})
    assert KEPT_EVENTS >= 100


def test_auto_attach_holds_each_new_tab_until_its_settings_are_sent(cdp):
    """The pattern every new target's settings follow (issue 29): attached before its page runs, set, let go."""
    attached: list[str] = []

    def on_attached(event: dict) -> None:
        page = event["params"]["sessionId"]
        attached.append(page)
        cdp.send("Emulation.setTimezoneOverride", {"timezoneId": "Pacific/Kiritimati"}, page)
        cdp.send("Runtime.runIfWaitingForDebugger", None, page)

    cdp.subscribe(on_attached, "Target.attachedToTarget")
    listener = threading.Thread(target=cdp.listen, daemon=True)
    listener.start()
    cdp.auto_attach(wait_for_debugger=True, filter=[{"type": "page"}])
    target = cdp.call("Target.createTarget", {"url": "data:text/html,<script>zone = Intl.DateTimeFormat()"
                                                     ".resolvedOptions().timeZone</script>"})["targetId"]
    page = cdp.attach(target)
    deadline = time.monotonic() + 10
    while evaluate(cdp, page, "typeof zone") != "string" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert evaluate(cdp, page, "zone") == "Pacific/Kiritimati", "the page's first script saw the setting"
    assert len(attached) >= 2, "the tab open before and the new one, each attached"
    cdp.call("Target.closeTarget", {"targetId": target})
    cdp.abort()
    listener.join(5)
    assert not listener.is_alive()


def test_many_threads_share_one_connection_while_another_listens(cdp, tab):
    _, page = tab
    events: list[dict] = []
    cdp.subscribe(events.append, "Runtime.consoleAPICalled")
    listener = threading.Thread(target=cdp.listen, daemon=True)
    listener.start()
    cdp.call("Runtime.enable", session_id=page)
    wrong: list[object] = []

    def work(n: int) -> None:
        for k in range(25):
            got = evaluate(cdp, page, f"console.log('x'); {n} * 1000 + {k}")
            if got != n * 1000 + k:
                wrong.append(got)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert not wrong
    deadline = time.monotonic() + 5
    while len(events) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(events) == 150
    cdp.abort()
    listener.join(5)
    assert not listener.is_alive()


def test_closing_from_another_thread_ends_the_listener_and_every_waiting_call(cdp, tab):
    _, page = tab
    ended = threading.Event()
    listener = threading.Thread(target=lambda: cdp.listen() or ended.set(), daemon=True)
    listener.start()
    failed: list[BaseException] = []

    def wait_forever() -> None:
        try:
            cdp.call("Runtime.evaluate", {"expression": NEVER, "awaitPromise": True}, page, timeout=30)
        except BaseException as error:  # noqa: BLE001 - the test looks at what it was
            failed.append(error)

    caller = threading.Thread(target=wait_forever)
    caller.start()
    time.sleep(0.3)
    started = time.monotonic()
    cdp.close()
    assert ended.wait(5) and time.monotonic() - started < 2
    caller.join(5)
    assert [type(error) for error in failed] == [websocket.WebSocketConnectionClosedException]
    assert cdp.listen(0.1) is False


def test_a_callback_that_would_wait_on_its_own_connection_is_told_so(cdp):
    errors: list[BaseException] = []

    def calls_back(event: dict) -> None:
        try:
            cdp.call("Browser.getVersion")
        except RuntimeError as error:
            errors.append(error)

    cdp.subscribe(calls_back, "Target.targetCreated")
    cdp.call("Target.setDiscoverTargets", {"discover": True})
    assert errors and "cannot wait on its own connection" in str(errors[0])


GEVENT_SCRIPT = """
from gevent import monkey
monkey.patch_all()
import sys, gevent, websocket
from core.cdp import CdpConnection

cdp = CdpConnection(sys.argv[1])
target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
page = cdp.attach(target)
frames = []
cdp.subscribe(frames.append, "Runtime.consoleAPICalled")
listener = gevent.spawn(cdp.listen)
cdp.call("Runtime.enable", session_id=page)

def work(n):
    return [cdp.call("Runtime.evaluate", {"expression": f"console.log(1); {n} + {k}", "returnByValue": True},
                     page)["result"]["value"] for k in range(20)]

results = [g.get() for g in [gevent.spawn(work, n) for n in range(5)]]
assert results == [[n + k for k in range(20)] for n in range(5)], results
gevent.sleep(0.5)
assert len(frames) == 100, len(frames)
cdp.call("Target.closeTarget", {"targetId": target})
cdp.close()
assert listener.get(timeout=5) is False
print("ok")
"""


def test_the_same_client_under_gevent(browser_url):
    """The web process monkey-patches (web.py): greenlets share a connection one of them listens on."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(GEVENT_SCRIPT), browser_url], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
