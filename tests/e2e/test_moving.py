"""Sessions that outlive their worker (API.md, "Moving"): SIGTERM moves a movable session to another worker, or to the
same worker's successor under its name, with the same id and cdpUrl; its client reconnects and finds its page as
it left it; the API never says ``stopped`` meanwhile. A SIGKILLed worker's session with checkpoints comes back
from its last one; a move no worker takes up ends."""
from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest
import websocket

from tests.support.api import Api
from tests.support.browsing import playwright_driver, visit, wait_local_storage_on_disk
from tests.support.processes import Broker, Redis, end_process, gone, wait_until

JS = Path(__file__).resolve().parents[1] / "js"
#: Seconds the whole move may take here (save, relaunch, restore) on a loaded 2-core machine.
MOVE_BOUND = 60


@pytest.fixture(scope="module")
def moving(brokers, tmp_path_factory):
    """A deployment of its own: its workers come and go test by test."""
    workdir = tmp_path_factory.mktemp("moving")
    redis = Redis(workdir)
    broker = Broker(redis, workdir, "bb_" + secrets.token_urlsafe(24), BROKER_POOL_SIZE="2",
                    BROKER_WARM_BROWSERS="0", BROKER_MOVE_WAIT=str(MOVE_BOUND))
    brokers.append(broker)
    broker.start_web()
    yield broker
    broker.stop()
    redis.stop()


@pytest.fixture
def api(moving) -> Api:
    api = Api(moving.url, moving.api_key)
    yield api
    for session in api.get("/v1/sessions", params={"status": "running"}).json():
        api.delete(f"/v1/sessions/{session['id']}")
    for nodename in list(moving.workers):
        moving.stop_worker(nodename)


class StatusWatch:
    """Polls the session through the API until told to stop: every status it answered, and whether it said moving."""

    def __init__(self, api: Api, session_id: str) -> None:
        self.api, self.session_id = api, session_id
        self.seen: list[tuple[str, bool]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            answer = self.api.get(f"/v1/sessions/{self.session_id}")
            if answer.status_code == 200:
                self.seen.append((answer.json()["status"], answer.json()["moving"]))
            time.sleep(0.1)

    def stop(self) -> list[tuple[str, bool]]:
        self._done.set()
        self._thread.join(5)
        return self.seen


#: The same client in each library users drive sessions with.
CLIENTS = {"puppeteer": (["node", "moving.mjs"], JS),
           "playwright": ([sys.executable, "-m", "tests.support.moving_client"], JS.parent.parent)}


def logged_in_client(cdp_url: str, page_url: str, library: str = "puppeteer") -> subprocess.Popen:
    """tests/js/moving.mjs (or tests/support/moving_client.py), once it has logged in."""
    command, cwd = CLIENTS[library]
    client = subprocess.Popen([*command, cdp_url, page_url], cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert json.loads(client.stdout.readline()) == {"ready": True}, client.stderr.read()
    return client


def close_code(cdp_url: str) -> threading.Thread:
    """A raw client's close frame, read in the background: the move's is 1012 (service restart)."""
    ws = websocket.create_connection(cdp_url, timeout=MOVE_BOUND)
    frames: list[bytes] = []

    def read() -> None:
        while (frame := ws.recv_frame()).opcode != websocket.ABNF.OPCODE_CLOSE:
            pass
        frames.append(frame.data)
        ws.close()

    thread = threading.Thread(target=read, daemon=True)
    thread.frames = frames  # type: ignore[attr-defined]
    thread.start()
    return thread


def move_and_check(moving: Broker, api: Api, pages, session: dict, leave: callable,
                   library: str = "puppeteer") -> dict:
    client = logged_in_client(session["cdpUrl"], f"{pages.base}/state", library)
    raw = close_code(session["cdpUrl"])
    watch = StatusWatch(api, session["id"])
    leave()
    out, err = client.communicate(timeout=MOVE_BOUND + 30)
    seen = watch.stop()
    assert client.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    # As a string, so pytest shows all of it (a dict it cuts at 240 characters): which of the state came back.
    whole = json.dumps(result)
    assert result["found"], whole
    assert result["local"] == "logged-in" and result["idb"] == "logged-in", whole
    assert "sid=s3cret" in result["cookie"] and "js_cookie=logged-in" in result["cookie"], whole
    assert {status for status, _ in seen} == {"running"}, "the API never answers other than running while it moves"
    assert (("running", True) in seen), "the API said it was moving"
    raw.join(MOVE_BOUND)
    assert raw.frames and int.from_bytes(raw.frames[0][:2], "big") == 1012, raw.frames
    after = api.get(f"/v1/sessions/{session['id']}").json()
    assert after["status"] == "running" and after["moving"] is False
    assert after["cdpUrl"] == session["cdpUrl"] and after["liveViewUrl"] == session["liveViewUrl"]
    return {**after, "backAfterMs": result["backAfterMs"]}


@pytest.mark.parametrize("library", ["puppeteer", "playwright"])
def test_sigterm_moves_a_session_to_another_worker(moving, api, pages, library):
    first = moving.start_worker(f"first-{library}")
    session = api.create_session(movable=True)
    assert session["movable"] is True and session["moving"] is False
    second = moving.start_worker(f"second-{library}", wait=False)  # it starts while the client logs in

    def leave() -> None:
        moving.wait_worker(second)
        moving.stop_worker(first)

    after = move_and_check(moving, api, pages, session, leave, library)
    assert after["worker"].endswith(second)


def test_a_worker_restarted_under_its_name_takes_its_session_back(moving, api, pages):
    """Recorded, too: its event log and its recording go on after the move."""
    only = moving.start_worker("only")
    session = api.create_session(movable=True, recording=True)

    def restart() -> None:
        moving.stop_worker(only)
        moving.start_worker("only")

    after = move_and_check(moving, api, pages, session, restart)
    assert after["worker"].endswith(only)
    assert visit(session["cdpUrl"], f"{pages.base}/page?title=after-the-move", "document.title") == "after-the-move"
    api.stop_session(session["id"])
    events = api.get(f"/v1/sessions/{session['id']}/events", params={"limit": 1000}).json()["events"]
    kinds = [event["type"] for event in events]
    assert kinds.count("created") == 1 and kinds.count("moved") == 1, kinds
    assert any(event["type"] == "navigation" and "after-the-move" in event["url"]
               for event in events[kinds.index("moved"):]), "the log goes on after the move"
    answer = api.get(f"/v1/sessions/{session['id']}/recording")
    assert answer.status_code == 200, answer.text
    full_snapshots = [event for event in answer.json() if event.get("type") == 2]
    assert len(full_snapshots) >= 2, "rrweb recorded pages before the move and after it"


def test_a_session_not_movable_ends_as_shutdown(moving, api):
    only = moving.start_worker("lone")
    session = api.create_session()
    assert session["movable"] is False
    moving.stop_worker(only)
    assert api.wait_status(session["id"], "stopped")["stopReason"] == "shutdown"


def test_movable_must_be_a_boolean(moving, api):
    answer = api.post("/v1/sessions", json={"movable": "yes"})
    assert answer.status_code == 422, answer.text


def test_a_session_moved_too_often_ends_as_move_limit(moving, api):
    """A crash loop: each worker the session lands on stops; past the limit it ends, saying why. The next worker
    starts while the one before stops (its session waits in the move queue for it either way)."""
    name = moving.start_worker("loop-0")
    session = api.create_session(movable=True)
    for turn in range(1, 4):
        following = moving.start_worker(f"loop-{turn}", wait=False)
        moving.stop_worker(name)
        moving.wait_worker(following)
        name = following
        wait_until(lambda: not api.get(f"/v1/sessions/{session['id']}").json()["moving"], MOVE_BOUND,
                   message="the session running again")
        assert api.get(f"/v1/sessions/{session['id']}").json()["worker"].endswith(name)
    moving.stop_worker(name)
    assert api.wait_status(session["id"], "stopped")["stopReason"] == "move_limit"


def test_a_session_deleted_while_it_moves_ends_deleted(moving, api):
    """No worker is up to take it: the DELETE finds it moving; the next worker finishes its stop, not its move."""
    name = moving.start_worker("gone")
    session = api.create_session(movable=True)
    moving.stop_worker(name)
    assert api.get(f"/v1/sessions/{session['id']}").json()["moving"] is True
    assert api.delete(f"/v1/sessions/{session['id']}").status_code == 204
    moving.start_worker("next")
    stopped = api.wait_status(session["id"], "stopped", timeout=MOVE_BOUND)
    assert stopped["stopReason"] == "deleted"


# -- checkpoints (a worker lost) and moves no worker takes up ---------------------------------------------------
#: Seconds between checkpoints here: long enough that a change made right after one is not in the next before the
#: SIGKILL, short enough for the test.
CHECKPOINT_INTERVAL = 4


def moves_folder(broker: Broker, session_id: str) -> Path:
    """Where the deployment's file:// snapshot store keeps the session's move and checkpoints."""
    return broker.state_dir / "snapshots" / "moves" / session_id


def checkpointed_at(api: Api, session_id: str) -> str | None:
    return api.get(f"/v1/sessions/{session_id}").json()["checkpointedAt"]


def next_checkpoint(api: Api, session_id: str, after: float) -> str:
    """The first checkpoint saved after ``after`` (Unix seconds), as soon as the API shows it."""
    found: list[str] = []

    def saved() -> bool:
        at = checkpointed_at(api, session_id)
        if at and datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() > after:
            found.append(at)
        return bool(found)

    wait_until(saved, CHECKPOINT_INTERVAL * 3 + 10, interval=0.05, message="a checkpoint")
    return found[0]


@pytest.mark.parametrize("body", [{"checkpointInterval": "5"}, {"checkpointInterval": -1},
                                  {"checkpointInterval": 86401}, {"checkpointInterval": 5, "movable": False}])
def test_a_bad_checkpoint_interval_is_a_422_naming_it_and_starts_nothing(moving, api, body):
    before = moving.footprint()
    answer = api.post("/v1/sessions", json=body)
    assert answer.status_code == 422 and "checkpointInterval" in answer.text, answer.text
    assert moving.footprint() == before


def test_a_sigkilled_workers_session_comes_back_from_its_last_checkpoint(moving, api, pages):
    """Its state up to the last checkpoint is back, on the other worker, at the same cdpUrl; what came after is
    lost, and the session says when its state is from. Its checkpoints are deleted when it ends."""
    lost = moving.start_worker("crashing")
    session = api.create_session(checkpointInterval=CHECKPOINT_INTERVAL)
    assert session["movable"] is True and session["checkpointInterval"] == CHECKPOINT_INTERVAL
    survivor = moving.start_worker("surviving", wait=False)  # it starts while the page writes its state
    client = playwright_driver().chromium.connect_over_cdp(session["cdpUrl"])
    page = client.contexts[0].new_page()
    page.goto(f"{pages.base}/state")
    page.evaluate("state('saved')")
    wait_local_storage_on_disk(moving.session_profiles()[session["id"]], "saved")
    written = time.time()
    page.evaluate("document.cookie = 'tick=1; path=/'")
    last = next_checkpoint(api, session["id"], after=written)
    page.evaluate("state('late')")
    client.close()
    moving.wait_worker(survivor)
    moving.stop_worker(lost, signal.SIGKILL)
    try:
        wait_until(lambda: api.get(f"/v1/sessions/{session['id']}").json().get("restoredFrom") == last, 30,
                   message="the session relaunched from its checkpoint")
        wait_until(lambda: not api.get(f"/v1/sessions/{session['id']}").json()["moving"], MOVE_BOUND,
                   message="the session running again")
        after = api.get(f"/v1/sessions/{session['id']}").json()
        assert after["status"] == "running" and after["worker"].endswith(survivor)
        assert after["cdpUrl"] == session["cdpUrl"] and after["restoredFrom"] == last
        state = visit(after["cdpUrl"], f"{pages.base}/state", "state()")
        assert state["local"] == "saved" and state["idb"] == "saved", state
        assert "js_cookie=saved" in state["cookie"] and "tick=1" in state["cookie"], state
        again = playwright_driver().chromium.connect_over_cdp(after["cdpUrl"])
        tabs = [tab.url for tab in again.contexts[0].pages]
        again.close()
        assert f"{pages.base}/state" in tabs, tabs
    finally:
        moving.start_worker("crashing")  # its next life ends the browser the killed one left
    api.stop_session(session["id"])
    assert not moves_folder(moving, session["id"]).exists()


def test_a_session_moves_when_the_platform_signals_every_process_at_once(moving, api, pages):
    """A dyno restart ("Stopping all processes with SIGTERM") reaches the browsers as well as the worker: Chromium
    shuts itself down, and the session moves all the same, from its profile as that exit left it, with the tabs it
    had at the signal. Chromium's network service, signalled too, takes the cookies it had not yet written to disk
    with it: they come back from the last checkpoint, session cookies included.

    The signals arrive in the worst order: Chromium has closed its tabs and exited before the worker hears its own
    (a busy host delays the worker's handler; it once ran after Chromium's exit and the session ended as
    ``shutdown``). Within SIGNAL_SPREAD that is one signal: neither housekeeping nor the worker's stop takes the
    browser for one that ended by itself."""
    first = moving.start_worker("first-dyno")
    session = api.create_session(movable=True, checkpointInterval=CHECKPOINT_INTERVAL)
    second = moving.start_worker("second-dyno", wait=False)  # it starts while the page writes its state
    client = playwright_driver().chromium.connect_over_cdp(session["cdpUrl"])
    page = client.contexts[0].new_page()
    page.goto(f"{pages.base}/state")
    page.evaluate("state('logged-in')")
    page.evaluate("document.cookie = 'tick=1; path=/'")
    wait_local_storage_on_disk(moving.session_profiles()[session["id"]], "logged-in")
    next_checkpoint(api, session["id"], after=time.time())
    client.close()
    moving.wait_worker(second)
    worker = moving.workers.pop(first)
    browsers = moving.browser_processes()
    for proc in browsers:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            continue
    chromium = [proc for proc in browsers if proc.name() == "chromium"]  # crashpad's handler may outlive it
    wait_until(lambda: all(gone(proc) for proc in chromium), 10, message="Chromium's exit")
    worker.send_signal(signal.SIGTERM)
    worker.wait(60)
    wait_until(lambda: api.get(f"/v1/sessions/{session['id']}").json()["worker"].endswith(second), MOVE_BOUND,
               message="the session on the other worker")
    wait_until(lambda: not api.get(f"/v1/sessions/{session['id']}").json()["moving"], MOVE_BOUND,
               message="the session running again")
    after = api.get(f"/v1/sessions/{session['id']}").json()
    assert after["status"] == "running" and after["cdpUrl"] == session["cdpUrl"], after
    again = playwright_driver().chromium.connect_over_cdp(after["cdpUrl"])
    tabs = [tab.url for tab in again.contexts[0].pages]
    again.close()
    assert f"{pages.base}/state" in tabs, tabs
    state = visit(after["cdpUrl"], f"{pages.base}/state", "state()")
    assert state["local"] == "logged-in" and state["idb"] == "logged-in", state
    assert "js_cookie=logged-in" in state["cookie"] and "tick=1" in state["cookie"], state
    api.stop_session(session["id"])


def test_a_move_no_worker_takes_up_ends_as_move_timeout(moving, api):
    """The session's worker stopped with no other up: past BROKER_MOVE_TIMEOUT it ends, its saved state deleted."""
    name = moving.start_worker("abandoning")
    session = api.create_session(movable=True)
    moving.stop_worker(name)
    assert api.get(f"/v1/sessions/{session['id']}").json()["moving"] is True
    assert moves_folder(moving, session["id"]).exists()
    impatient, url = moving.start_another_web(BROKER_MOVE_TIMEOUT="1")
    try:
        stopped = Api(url, moving.api_key).wait_status(session["id"], "stopped", timeout=30)
    finally:
        end_process(impatient)
    assert stopped["stopReason"] == "move_timeout" and stopped["moving"] is False
    assert not moves_folder(moving, session["id"]).exists()
