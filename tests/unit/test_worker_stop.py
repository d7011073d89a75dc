"""The stop flow (tasks/browser.py ``end_session``) and the worker's own stop at SIGTERM (tasks/worker.py
``Worker.stop``), in-process with fake browsers. tests/e2e/test_lifecycle.py keeps them with real Chromium."""
from __future__ import annotations

from core.states import Status, StopReason
from tasks.browser import end_session, launch_session
from tasks.running_browser import SIGNAL_SPREAD
from tests.support.records import new_session


def _running(worker) -> str:
    session_id = new_session(worker.store)
    launch_session(worker, session_id)
    assert worker.store.sessions.get(session_id)["status"] == Status.RUNNING
    return session_id


def test_a_stop_ends_the_browser_and_everything_beside_it_then_records_the_end(make_worker):
    worker = make_worker()
    session_id = _running(worker)
    browser = worker.pool.get(session_id)
    worker.machine.stop(session_id, StopReason.DELETED)

    end_session(worker, session_id, StopReason.DELETED)

    record = worker.store.sessions.get(session_id)
    assert (record["status"], record["stopReason"]) == (Status.STOPPED, StopReason.DELETED)
    assert browser.handle.poll() is not None, "the browser's process has ended"
    assert not browser.profile_dir.exists(), "its profile is deleted"
    assert worker.pool.keys() == [] and worker.pool.free_slots() == 2
    assert worker.forwarders.port(session_id) is None
    assert session_id not in worker.download_guards._guards
    assert worker.project_gate.project() is None


def test_a_second_stop_of_a_session_leaves_it_to_the_first(make_worker):
    worker = make_worker()
    session_id = _running(worker)
    assert worker.stops_under_way.begin(session_id)

    end_session(worker, session_id, StopReason.TIMEOUT)

    assert worker.pool.get(session_id) is not None, "the stop under way ends the browser, not this one"
    assert worker.store.sessions.get(session_id)["status"] == Status.RUNNING


def test_a_worker_told_to_stop_ends_every_session_through_the_stop_flow_and_every_warm_browser(make_worker):
    worker = make_worker(started=True, BROKER_WARM_BROWSERS=1, BROKER_POOL_SIZE=3)
    sessions = [_running(worker), _running(worker)]
    _wait(lambda: worker.warm.ready_count() == 1, "a warm browser")
    assert len(worker.pool.launcher.alive()) == 3

    worker.stop()

    for session_id in sessions:
        record = worker.store.sessions.get(session_id)
        assert (record["status"], record["stopReason"]) == (Status.STOPPED, StopReason.SHUTDOWN)
    assert worker.pool.launcher.alive() == [], "no browser outlives its worker"
    assert worker.pool.keys() == []
    assert worker.store.warm.offered_by(worker.name) == set(), "the warm browsers' offers are withdrawn"
    assert worker.name not in worker.store.workers.live()


def test_a_movable_session_whose_browser_the_platforms_signal_ended_first_moves(make_worker):
    """A dyno restart signals every process: Chromium may have exited before the worker's handler runs. Within
    SIGNAL_SPREAD that browser ended with its worker, and the session moves; one that ended earlier ended by itself."""
    worker = make_worker(started=True)
    with_worker, by_itself = (new_session(worker.store, movable=True) for _ in range(2))
    for session_id in (with_worker, by_itself):
        launch_session(worker, session_id)
        browser = worker.pool.get(session_id)
        browser.handle.kill()
        browser.handle.wait(5)
        assert browser.exited()
    worker.pool.get(by_itself).seen_gone_at -= SIGNAL_SPREAD + 1

    worker.stop()

    moved = worker.store.sessions.get(with_worker)
    assert (moved["status"], moved["moving"]) == (Status.RUNNING, True), moved
    ended = worker.store.sessions.get(by_itself)
    assert (ended["status"], ended["stopReason"]) == (Status.STOPPED, StopReason.SHUTDOWN), ended
    assert worker.pool.launcher.alive() == []


def _wait(condition, what: str, timeout: float = 10) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)
