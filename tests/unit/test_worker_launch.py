"""The launch flow (tasks/browser.py ``launch_session``) on a worker object with a fake launcher: what a launch task
does, in-process, in milliseconds. tests/e2e/test_lifecycle.py keeps the same promises with real Chromium."""
from __future__ import annotations

from core.states import Status
from tasks.browser import launch_session
from tests.support.records import new_session
from tests.unit.worker_fakes import VERSION, slow_log_writes


def test_a_launch_runs_the_session_in_its_own_browser(make_worker):
    worker = make_worker()
    session_id = new_session(worker.store)

    launch_session(worker, session_id)

    record = worker.store.sessions.get(session_id)
    assert record["status"] == Status.RUNNING
    assert record["worker"] == worker.queue
    assert record["browserVersion"] == VERSION
    browser = worker.pool.get(session_id)
    assert browser is not None and record["browserWsUrl"] == browser.ws_url()
    assert worker.pool.launcher.alive() == [browser]
    # What every browser gets before a client reaches it: its forwarder and its download guard.
    assert worker.forwarders.port(session_id) is not None
    assert session_id in worker.download_guards._guards
    assert worker.pool.counts() == {"slots": 2, "spareSlots": 0, "free": 1, "warm": 0, "running": 1, "launching": 0}
    # The waiting create hears the claim, then the running record.
    assert worker.store.sessions.next_launch_event(session_id, 1)["event"] == "claimed"


def test_a_launch_whose_session_is_no_longer_pending_starts_nothing(make_worker):
    worker = make_worker()
    session_id = new_session(worker.store)
    worker.machine.abandon(session_id)
    worker.intake.received(_consumer(), session_id)  # the slot reserved at receipt, as the consumer does

    launch_session(worker, session_id)

    assert worker.pool.launcher.started == []
    assert worker.pool.free_slots() == 2, "the slot reserved at receipt is given back"
    assert worker.store.sessions.get(session_id)["status"] == Status.ABANDONED


def test_a_browser_that_fails_to_start_gives_back_everything_and_tells_the_create(make_worker):
    worker = make_worker()
    worker.pool.launcher.refuse = True
    session_id = new_session(worker.store)

    launch_session(worker, session_id)

    assert worker.store.sessions.get(session_id)["status"] == Status.ABANDONED
    assert worker.pool.free_slots() == 2 and worker.pool.keys() == []
    assert worker.forwarders.port(session_id) is None
    assert worker.project_gate.project() is None
    events = [worker.store.sessions.next_launch_event(session_id, 1) for _ in range(2)]
    assert events[0]["event"] == "claimed"
    assert events[1]["event"] == "failed" and "refuses to start browsers" in events[1]["message"]


def test_a_full_pool_takes_no_more_launches_and_takes_them_again_when_a_slot_frees(make_worker):
    worker = make_worker()
    consumer = _consumer()
    first, second = new_session(worker.store), new_session(worker.store)
    for session_id in (first, second):
        worker.intake.received(consumer, session_id)
        launch_session(worker, session_id)

    assert consumer.cancelled == ["browsers.launch"], "the last slot stops the consumer of the launch queue"
    worker.pool.release(first)
    assert worker.intake._consuming, "a freed slot turns the consumer back on"


class _Consumer:
    """What the intake calls on Celery's consumer."""

    def __init__(self) -> None:
        self.cancelled: list[str] = []

    def cancel_task_queue(self, queue: str) -> None:
        self.cancelled.append(queue)


def _consumer() -> _Consumer:
    return _Consumer()


def test_a_session_runs_only_once_its_log_holds_its_created_event(make_worker, monkeypatch):
    """The session's watch writes its log on a thread of its own: a create that answered before that thread wrote
    showed a client an empty log (seen under load in CI). Here every write of the log takes 0.3 s."""
    worker = make_worker()
    session_id = new_session(worker.store)
    slow_log_writes(worker, monkeypatch)

    launch_session(worker, session_id)

    assert worker.store.sessions.get(session_id)["status"] == Status.RUNNING
    logged, _ = worker.store.session_events.page(session_id, None, 10)
    assert [event["type"] for event in logged] == ["created"]
