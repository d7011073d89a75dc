"""Browsers the worker must not go on serving, on a worker object with fake browsers (tasks/lifecycle.py through
tasks/worker.py): ghosts (their record gone), browsers of sessions declared lost, sessions left stopping, browsers
that exited by themselves, what an earlier life of the worker left, and the sessions of a worker that went silent.
tests/e2e/test_lifecycle.py and tests/e2e/test_redis_restart.py keep the same promises with real Chromium."""
from __future__ import annotations

import subprocess
import sys
import time

from core.states import Status, StopReason
from core.store import keys
from tasks.browser import end_session, launch_session
from tasks.running_browser import SIGNAL_SPREAD
from tests.support.records import new_session, running_session


def _running(worker) -> str:
    session_id = new_session(worker.store)
    launch_session(worker, session_id)
    return session_id


def test_a_browser_whose_record_is_gone_ends_at_the_second_look(make_worker):
    worker = make_worker()
    session_id = _running(worker)
    browser = worker.pool.get(session_id)
    worker.store.redis.delete(keys.session(session_id))  # Redis lost its data

    worker.housekeeping.settle_browsers_with_records()
    assert worker.pool.get(session_id) is browser, "one look is not enough"
    worker.housekeeping.settle_browsers_with_records()

    _wait(lambda: worker.pool.get(session_id) is None and session_id not in worker.stops_under_way,
          "the ghost's stop flow done")
    assert browser.handle.poll() is not None
    assert worker.forwarders.port(session_id) is None


def test_the_browser_of_a_session_declared_lost_is_ended_at_the_next_look(make_worker):
    worker = make_worker()
    session_id = _running(worker)
    browser = worker.pool.get(session_id)
    worker.machine.lose(session_id)  # a reaper took this worker for lost while it was cut off

    worker.housekeeping.settle_browsers_with_records()

    assert worker.pool.get(session_id) is None and browser.handle.poll() is not None
    assert worker.store.sessions.get(session_id)["stopReason"] == StopReason.WORKER_LOST


def test_a_session_left_stopping_with_no_stop_task_is_stopped_here(make_worker):
    worker = make_worker(BROKER_STOP_NEVER_SENT_AFTER=0.0)
    session_id = _running(worker)
    worker.machine.stop(session_id, StopReason.DELETED)  # its stop task is never consumed here

    worker.housekeeping.settle_browsers_with_records()

    _wait(lambda: worker.store.sessions.get(session_id)["status"] == Status.STOPPED, "the session stopped")
    assert worker.store.sessions.get(session_id)["stopReason"] == StopReason.DELETED
    assert worker.pool.get(session_id) is None


def test_a_browser_that_exited_by_itself_has_its_session_stopped_as_browser_closed(make_worker):
    worker = make_worker()
    session_id = _running(worker)
    browser = worker.pool.get(session_id)
    browser.handle.kill()
    browser.handle.wait(5)

    worker.housekeeping.notice_closed_browsers()

    record = worker.store.sessions.get(session_id)
    assert (record["status"], record["stopReason"]) == (Status.STOPPING, StopReason.BROWSER_CLOSED)
    end_session(worker, session_id, StopReason.BROWSER_CLOSED)  # what the stop task sent by the move does
    assert worker.store.sessions.get(session_id)["status"] == Status.STOPPED
    assert worker.pool.keys() == []


def test_a_movable_sessions_browser_that_exited_is_given_the_signal_spread_before_it_counts_as_closed(make_worker):
    """The platform's SIGTERM may reach the browser before its worker: within SIGNAL_SPREAD the worker's stop may
    still come, and then the session moves (tests/unit/test_worker_stop.py)."""
    worker = make_worker()
    session_id = new_session(worker.store, movable=True)
    launch_session(worker, session_id)
    browser = worker.pool.get(session_id)
    browser.handle.kill()
    browser.handle.wait(5)

    worker.housekeeping.notice_closed_browsers()
    assert worker.store.sessions.get(session_id)["status"] == Status.RUNNING

    browser.seen_gone_at -= SIGNAL_SPREAD
    worker.housekeeping.notice_closed_browsers()
    record = worker.store.sessions.get(session_id)
    assert (record["status"], record["stopReason"]) == (Status.STOPPING, StopReason.BROWSER_CLOSED)
    end_session(worker, session_id, StopReason.BROWSER_CLOSED)


def test_what_an_earlier_life_of_the_worker_left_is_ended_at_start(make_worker):
    earlier = make_worker()
    session_id = _running(earlier)
    left = earlier.pool.get(session_id)  # the earlier life was killed here: its browser runs on

    worker = make_worker(started=True)

    assert left.handle.poll() is not None, "the earlier life's browser is ended, found by its PID file"
    assert not left.profile_dir.exists()
    record = worker.store.sessions.get(session_id)
    assert (record["status"], record["stopReason"]) == (Status.STOPPED, StopReason.WORKER_LOST)


def test_a_browser_whose_launch_was_cut_short_before_its_pid_file_is_ended_at_start(make_worker):
    """Killed between Chromium's spawn and the PID file: only its profile folder, under this worker's, names it."""
    earlier = make_worker()
    profile = earlier.pool.root / "warm-cut-short"
    stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", f"--user-data-dir={profile}"],
                             start_new_session=True)
    elsewhere = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)",
                                  f"--user-data-dir={earlier.pool.root.parent}/another-worker/warm-x"],
                                 start_new_session=True)
    try:
        make_worker(started=True)
        assert stray.wait(5) is not None
        assert elsewhere.poll() is None, "another worker's browser is not this one's to end"
    finally:
        for proc in (stray, elsewhere):
            proc.kill()
            proc.wait(5)


def test_the_sessions_of_a_worker_that_went_silent_are_ended_by_a_live_worker(make_worker):
    worker = make_worker(name="alive@test", started=True, BROKER_WORKER_TTL=0.5, BROKER_HEARTBEAT_INTERVAL=0.1)
    session_id = running_session(worker.machine)  # on the worker w@test, which beat once and went silent
    worker.store.workers.heartbeat("w@test", {})

    _wait(lambda: worker.store.sessions.get(session_id)["status"] == Status.STOPPED, "the lost session ended")
    assert worker.store.sessions.get(session_id)["stopReason"] == StopReason.WORKER_LOST
    assert "alive@test" in worker.store.workers.live(), "a worker never reaps itself"


def _wait(condition, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)
